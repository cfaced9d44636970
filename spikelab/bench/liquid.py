"""NALSM feature extraction speed (:func:`run_liquid_benchmark`): samples per second of the plastic liquid.

Workload (``reference/local-learning-lsm-crossbar.md`` §2(e)): NALSM's feature extraction, one sample = 250 ms
at 1 ms steps with STDP and the astrocyte on (``rate_decay`` 0.99), every sample starting from the same
initialised weights (``batch_mode="independent"``), spike counts only (no raster). Input: N-MNIST-sized, 2312
channels, Bernoulli events at ``INPUT_RATE`` per channel and ms (N-MNIST's mean: 4,108 events in 300 ms over 2312
channels). Before timing, each liquid runs NALSM's initialisation phase on that input (``init_samples`` x 20
ms, plastic, sequential, STDP traces carried), so that the speed is that of an initialised liquid, as in NALSM's
feature extraction, rather than of the all-maximal start weights. Its firing rate settles within about 2,000
samples (NALSM1000, seed 0; rate in the timed extraction after 100 / 500 / 1,000 / 2,000 / 5,000 samples: 44.5 /
27.7 / 24.5 / 23.1 / 23.3 Hz; NALSM's phase 1 shows 50,000), hence ``INIT_SAMPLES`` = 2,000; the plastic kernel's
cost grows with the rate, and the result reports the rate each liquid ran at. (A liquid initialised as
``spikelab train --model nalsm`` does it on the real N-MNIST sample, 5,000 samples, fires at 14-15 Hz in phase 2.)

``data_dir`` (``spikelab bench liquid --data-dir DIR``, a folder holding ``NMNIST/Train`` and ``NMNIST/Test``)
runs the same on real N-MNIST recordings: phase 1 on random 20 ms windows of the training recordings' first 300
ms (NALSM's), the timed extraction on the first ``batch`` test recordings, 250 ms each. Bernoulli events reach
every channel alike (about 80 % of the 2312 channels fire in a sample); a recording's events fall on the digit's
edges (about 30 %), so far fewer input synapses take part and a real sample costs less.

=====================  ==========================================================================================
variant                what runs
=====================  ==========================================================================================
``nalsm1000-1t``       NALSM1000 (10x10x10), batch ``batch``, 1 thread (``torch.set_num_threads``)
``nalsm1000-2t``       the same on 2 threads (the batch's samples in parallel)
``lsm1000-1t``         the same liquid frozen (no STDP, no astrocyte): what the plasticity costs
``nalsm8000-2t``       NALSM8000 (20x20x20), batch ``batch_8000``, 2 threads: the cost of one sample
=====================  ==========================================================================================

Timing: :mod:`spikelab.bench.timing` (one process, interleaved rounds, medians; NALSM8000 in its own, shorter
loop). Reported per variant: median wall-clock ms per batch, ms per sample and samples per second, and the same
from the process's CPU time (for 2 threads the CPU time of both). The goal (at least ``GOAL_SAMPLES_PER_S``
samples/s of NALSM1000 feature extraction on 2 cores) is judged on the wall clock of ``nalsm1000-2t``: on a
machine shared with other jobs the threads also wait for a core (and share the caches), which lowers it; the
CPU-time figures show what the threads got. The result is a JSON-serialisable dict; nothing is printed (but
the dataset's progress bar on stderr while it bins the recordings of ``data_dir``).
"""
from __future__ import annotations

import os
import statistics

import torch

from .timing import check_rounds, machine_state, summarize_times, time_interleaved, versions

INPUT_RATE = 0.006
N_INPUT = 2 * 34 * 34
STEPS = 250
INIT_SAMPLES, INIT_MS, INIT_CHUNK = 2000, 20, 50
#: ms of each training recording that phase 1's random windows are drawn from (NALSM reads 300)
RECORDING_MS = 300
RATE_DECAY = 0.99
GOAL_SAMPLES_PER_S = 100.0


def _bernoulli(samples: int, steps: int, n_input: int, generator: torch.Generator) -> torch.Tensor:
    """``(steps, samples, n_input)`` events, each channel and ms one with probability ``INPUT_RATE``."""
    return (torch.rand(steps, samples, n_input, generator=generator) < INPUT_RATE).float()


def _init_batches(init_samples: int, n_input: int, train, generator: torch.Generator):
    """Phase 1's input in chunks: Bernoulli samples of ``INIT_MS``, or (``train``: a dataset) random recordings."""
    from spikelab.liquid import liquid_input

    for start in range(0, init_samples, INIT_CHUNK):
        samples = min(INIT_CHUNK, init_samples - start)
        if train is None:
            yield _bernoulli(samples, INIT_MS, n_input, generator)
        else:
            yield liquid_input(train, torch.randint(len(train), (samples,), generator=generator))


def _liquid(size: int, n_input: int, seed: int, init_samples: int, generator: torch.Generator, train=None):
    """A liquid after NALSM's initialisation on ``init_samples`` samples of the benchmark's input (``train``: the
    random windows of real recordings)."""
    from spikelab.liquid import LiquidStateMachine, initialise_liquid

    lsm = LiquidStateMachine(size=size, n_input=n_input, seed=seed)
    initialise_liquid(lsm, _init_batches(init_samples, n_input, train, generator), init_samples, INIT_MS,
                      window="first" if train is None else "random", generator=generator)
    return lsm


def _rate_hz(lsm, x, plastic: bool) -> float:
    """The liquid's mean firing rate in Hz over the extraction of ``x`` (1 ms steps)."""
    counts = lsm(x, plastic=plastic, rate_decay=RATE_DECAY, record=False).counts
    return counts.sum().item() / (counts.numel() * x.shape[0] * 1e-3)


def _extract(lsm, x, threads: int, plastic: bool):
    def forward():
        torch.set_num_threads(threads)   # the threads an independent batch runs on
        lsm(x, plastic=plastic, rate_decay=RATE_DECAY, record=False)

    return forward


def run_liquid_benchmark(rounds: int = 10, batch: int = 16, size: int = 1000, large_size: int | None = 8000,
                         batch_large: int = 2, rounds_large: int = 3, steps: int = STEPS, n_input: int = N_INPUT,
                         seed: int = 0, init_samples: int = INIT_SAMPLES, data_dir=None) -> dict:
    """Time NALSM feature extraction (module docstring): ``rounds`` timed rounds per ``size``-neuron variant after
    one warm-up round (compiles the kernels), ``rounds_large`` for the ``large_size`` liquid (None: left out), each
    liquid initialised on ``init_samples`` samples first (untimed); on Bernoulli events, or with ``data_dir`` on
    the N-MNIST recordings there (``n_input`` is then 2312)."""
    check_rounds(rounds)
    if large_size is not None:
        check_rounds(rounds_large)
    load_before = os.getloadavg()[0]
    threads_before = torch.get_num_threads()
    generator = torch.Generator().manual_seed(seed)
    names = {"plastic1": f"nalsm{size}-1t", "plastic2": f"nalsm{size}-2t", "frozen1": f"lsm{size}-1t",
             "large": f"nalsm{large_size}-2t"}
    from spikelab.liquid import liquid_input

    train = test = None
    if data_dir is not None:
        from spikelab.datasets import load_dataset

        train = load_dataset("nmnist", data_dir, train=True, dt=1.0, duration=float(RECORDING_MS))
        test = load_dataset("nmnist", data_dir, train=False, dt=1.0, duration=float(steps))
        n_input = N_INPUT

    def extraction_input(samples: int) -> torch.Tensor:
        return _bernoulli(samples, steps, n_input, generator) if test is None else liquid_input(test, range(samples))

    try:
        small = _liquid(size, n_input, seed, init_samples, generator, train)
        x = extraction_input(batch)
        plastic_rate = _rate_hz(small, x, True)
        rates = {names["plastic1"]: plastic_rate, names["plastic2"]: plastic_rate,
                 names["frozen1"]: _rate_hz(small, x, False)}
        timed = {names["plastic1"]: _extract(small, x, 1, True), names["plastic2"]: _extract(small, x, 2, True),
                 names["frozen1"]: _extract(small, x, 1, False)}
        times = time_interleaved(timed, rounds, warmup=1)
        sizes = {name: batch for name in timed}
        if large_size is not None:
            large = _liquid(large_size, n_input, seed, init_samples, generator, train)
            x_large = extraction_input(batch_large)
            rates[names["large"]] = _rate_hz(large, x_large, True)
            times.update(time_interleaved({names["large"]: _extract(large, x_large, 2, True)}, rounds_large, warmup=1))
            sizes[names["large"]] = batch_large
    finally:
        torch.set_num_threads(threads_before)
    variants = {}
    for name, t in times.items():
        summary = summarize_times(t["forward"], t["backward"])
        per_sample = summary["median_ms"] / sizes[name]
        cpu_per_sample = statistics.median(t["cpu"]) / sizes[name]
        variants[name] = {**summary, "cpu_median_ms": statistics.median(t["cpu"]), "batch": sizes[name],
                          "rate_hz": rates[name],
                          "ms_per_sample": per_sample, "samples_per_s": 1e3 / per_sample,
                          "cpu_ms_per_sample": cpu_per_sample, "samples_per_cpu_s": 1e3 / cpu_per_sample}
    one, two, frozen = (variants[names[k]] for k in ("plastic1", "plastic2", "frozen1"))
    source = f"Bernoulli events, rate {INPUT_RATE:g}" if data_dir is None else f"N-MNIST recordings in {data_dir}"
    return {"config": {"size": size, "large_size": large_size, "n_input": n_input, "input": source,
                       "steps": steps, "rate_decay": RATE_DECAY, "init": f"{init_samples} samples x {INIT_MS} ms",
                       "rounds": rounds, "rounds_large": rounds_large if large_size else None, "seed": seed},
            "variants": variants,
            "ratios": {f"{names['plastic2']}/{names['plastic1']} speed-up": two["samples_per_s"] / one["samples_per_s"],
                       f"{names['plastic1']}/{names['frozen1']} time": one["median_ms"] / frozen["median_ms"]},
            "goals": {f"{names['plastic2']} samples/s >= {GOAL_SAMPLES_PER_S:g}":
                      two["samples_per_s"] >= GOAL_SAMPLES_PER_S},
            "versions": versions("torch", "numba"), "machine": machine_state(load_before)}


def format_liquid_table(result: dict) -> str:
    """A plain-text table of :func:`run_liquid_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"NALSM feature extraction: {cfg['steps']} steps of 1 ms per sample, plastic (rate decay "
             f"{cfg['rate_decay']}), {cfg['n_input']} inputs: {cfg['input']}, after {cfg['init']} of "
             f"initialisation; {cfg['rounds']} rounds (numba {result['versions']['numba']}, load average "
             f"{result['machine']['load_average_1min'][0]:.2f} -> {result['machine']['load_average_1min'][1]:.2f})",
             f"{'variant':<15}{'batch':>6}{'rate Hz':>9}{'ms/batch':>11}{'IQR':>19}{'ms/sample':>11}{'samples/s':>11}"
             f"{'CPU ms/sample':>15}{'samples/CPU s':>15}"]
    for name, v in result["variants"].items():
        q1, q3 = v["iqr_ms"]
        lines.append(f"{name:<15}{v['batch']:>6}{v['rate_hz']:>9.1f}{v['median_ms']:>11.1f}{f'{q1:.1f}-{q3:.1f}':>19}"
                     f"{v['ms_per_sample']:>11.2f}{v['samples_per_s']:>11.1f}{v['cpu_ms_per_sample']:>15.2f}"
                     f"{v['samples_per_cpu_s']:>15.1f}")
    lines += [f"{key}: {value:.2f}" for key, value in result["ratios"].items()]
    two = result["variants"][f"nalsm{cfg['size']}-2t"]
    lines += [f"goal {key} (judged on the wall clock of 2 threads, {two['samples_per_s']:.1f}, which a busy machine "
              f"lowers; per CPU second of both threads {two['samples_per_cpu_s']:.1f}): {'met' if met else 'NOT met'}"
              for key, met in result["goals"].items()]
    return "\n".join(lines)
