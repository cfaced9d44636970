"""Learnable-delay layer speed and memory on CPU: spikelab's DelayedLinear vs the DCLS authors' Dcls1d.

The SHD setting of Hammouamri et al. (ICLR 2024): batch 32, T = 100, delays 0-24 steps (25 taps), the model's
first layer 140 -> 256 (input spikes need no gradient) and second 256 -> 256 (input gradient too); forward +
backward of one layer in training mode (Gaussian taps at the widest sigma), and the forward pass in eval mode
(rounded one-hot taps). Variants interleaved one iteration at a time in one process, medians; peak memory of one
step; a check that both compute the same output and gradients for the same weights and delays (method and
variants: ``spikelab/bench/delays.py::run_delays_benchmark``). Goal: DelayedLinear at least as fast as Dcls1d.

DCLS is optional, for the benchmark only: ``pip install --no-deps dcls==0.1.1`` (the version measured; its API
changed across releases). Timings depend on how busy the machine is: the result records the load average before
and after.

    python experiments/bench_delays.py --rounds 30           # table  (same as: spikelab bench delays)
    python experiments/bench_delays.py --rounds 30 --json    # full result (raw times included) as JSON

Expected (2-core VM, torch 2.13 CPU, 2 threads, dcls 0.1.1, load average about 1.4): training step 46 vs 122 ms
(2.7x faster) for 140 -> 256 and 75 vs 309 ms (4.1x) for 256 -> 256; peak memory 28 vs 63 MiB and 63 vs 113 MiB;
eval forward 1.1x faster. Outputs agree to 2e-7, gradients to float32 rounding.
"""
import sys

from spikelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "delays", *sys.argv[1:]]))
