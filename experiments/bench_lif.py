"""LIF training speed and memory on CPU: spikelab vs snnTorch, SpikingJelly and the matrix-multiply floor.

700-256-256-20 LIF network, batch 32, T=100, forward + backward, variants interleaved one iteration at a
time in one process (method and variants: ``spikelab/bench/lif.py``), then the peak activation memory of
BPTT vs SLTT vs SLTT-K at T = 100 and 500. Goals: >= 1.5x faster than snnTorch, >= 1.1x faster than
SpikingJelly, within 1.3x of the floor; SLTT at most 30 % of BPTT's memory at T = 100.
SpikingJelly is optional (``pip install --no-deps spikingjelly loguru``). Timings depend on how busy the
machine is: the result records the load average before and after.

    python experiments/bench_lif.py --rounds 30            # tables  (same as: spikelab bench lif)
    python experiments/bench_lif.py --rounds 30 --json     # full result (raw times included) as JSON

Measured (2-core VM, torch 2.13 CPU, 2 threads, quiet machine): see the README's benchmark table.
"""
import sys

from spikelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "lif", *sys.argv[1:]]))
