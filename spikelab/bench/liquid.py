"""NALSM feature extraction speed (:func:`run_liquid_benchmark`): samples per second of the plastic liquid.

Workload (``reference/local-learning-lsm-crossbar.md`` §2(e)): NALSM's feature extraction, one sample = 250 ms
at 1 ms steps with STDP and the astrocyte on (``rate_decay`` 0.99), every sample starting from the same
initialised weights (``batch_mode="independent"``), spike counts only (no raster). Input: N-MNIST-sized, 2312
channels, Bernoulli events at ``INPUT_RATE`` per channel and ms (N-MNIST's mean: 4,108 events in 300 ms over 2312
channels). Before timing, each liquid runs a short initialisation phase (``INIT_SAMPLES`` x 20 ms, plastic,
sequential), so its activity is that of an initialised liquid rather than of the all-maximal start weights.

=====================  ==========================================================================================
variant                what runs
=====================  ==========================================================================================
``nalsm1000-1t``       NALSM1000 (10x10x10), batch ``batch``, numba on 1 thread
``nalsm1000-2t``       the same on 2 threads (the batch's samples in parallel)
``lsm1000-1t``         the same liquid frozen (no STDP, no astrocyte): what the plasticity costs
``nalsm8000-2t``       NALSM8000 (20x20x20), batch ``batch_8000``, 2 threads: the cost of one sample
=====================  ==========================================================================================

Timing: :mod:`spikelab.bench.timing` (one process, interleaved rounds, medians; NALSM8000 in its own, shorter
loop). Reported: median ms per batch, samples per second, ms per sample, and the 1000-neuron goal of at least
``GOAL_SAMPLES_PER_S`` samples/s. The result is a JSON-serialisable dict; nothing is printed.
"""
from __future__ import annotations

import os
import statistics

import torch

from spikelab.errors import ConfigError
from .timing import check_rounds, machine_state, summarize_times, time_interleaved, versions

INPUT_RATE = 0.006
N_INPUT = 2 * 34 * 34
STEPS = 250
INIT_SAMPLES, INIT_MS = 100, 20
RATE_DECAY = 0.99
GOAL_SAMPLES_PER_S = 100.0


def _liquid(size: int, seed: int, generator: torch.Generator):
    from spikelab.liquid import LiquidStateMachine

    lsm = LiquidStateMachine(size=size, n_input=N_INPUT, seed=seed)
    lsm.learn((torch.rand(INIT_MS, INIT_SAMPLES, N_INPUT, generator=generator) < INPUT_RATE).float())
    return lsm


def _extract(lsm, x, threads: int, plastic: bool):
    import numba

    def forward():
        numba.set_num_threads(threads)
        lsm(x, plastic=plastic, rate_decay=RATE_DECAY, record=False)

    return forward


def run_liquid_benchmark(rounds: int = 10, batch: int = 16, batch_8000: int = 2, rounds_8000: int = 3,
                         seed: int = 0, include_8000: bool = True) -> dict:
    """Time NALSM feature extraction (module docstring); ``rounds`` timed rounds per 1000-neuron variant after
    one warm-up round (compiles the kernels), ``rounds_8000`` for NALSM8000."""
    import numba

    check_rounds(rounds)
    load_before = os.getloadavg()[0]
    threads_before = numba.get_num_threads()
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise ConfigError("numba is limited to 1 thread here (NUMBA_NUM_THREADS=1); the 2-thread variant needs "
                          "2: unset NUMBA_NUM_THREADS or set it to 2")
    generator = torch.Generator().manual_seed(seed)
    try:
        small = _liquid(1000, seed, generator)
        x = (torch.rand(STEPS, batch, N_INPUT, generator=generator) < INPUT_RATE).float()
        steps = {"nalsm1000-1t": _extract(small, x, 1, True), "nalsm1000-2t": _extract(small, x, 2, True),
                 "lsm1000-1t": _extract(small, x, 1, False)}
        times = time_interleaved(steps, rounds, warmup=1)
        sizes = {name: batch for name in steps}
        if include_8000:
            check_rounds(rounds_8000)
            large = _liquid(8000, seed, generator)
            x8 = (torch.rand(STEPS, batch_8000, N_INPUT, generator=generator) < INPUT_RATE).float()
            times.update(time_interleaved({"nalsm8000-2t": _extract(large, x8, 2, True)}, rounds_8000, warmup=1))
            sizes["nalsm8000-2t"] = batch_8000
    finally:
        numba.set_num_threads(threads_before)
    variants = {}
    for name, t in times.items():
        summary = summarize_times(t["forward"], t["backward"])
        per_sample = summary["median_ms"] / sizes[name]
        variants[name] = {**summary, "cpu_median_ms": statistics.median(t["cpu"]), "batch": sizes[name],
                          "ms_per_sample": per_sample, "samples_per_s": 1e3 / per_sample}
    rate = variants["nalsm1000-1t"]["samples_per_s"]
    return {"config": {"n_input": N_INPUT, "input_rate": INPUT_RATE, "steps": STEPS, "rate_decay": RATE_DECAY,
                       "init": f"{INIT_SAMPLES} samples x {INIT_MS} ms", "rounds": rounds,
                       "rounds_8000": rounds_8000 if include_8000 else None, "seed": seed},
            "variants": variants,
            "ratios": {"nalsm1000-2t/nalsm1000-1t speed-up": rate and variants["nalsm1000-2t"]["samples_per_s"] / rate,
                       "nalsm1000-1t/lsm1000-1t time": variants["nalsm1000-1t"]["median_ms"]
                       / variants["lsm1000-1t"]["median_ms"]},
            "goals": {f"nalsm1000-1t samples/s >= {GOAL_SAMPLES_PER_S:g}": rate >= GOAL_SAMPLES_PER_S},
            "versions": versions("torch", "numba"), "machine": machine_state(load_before)}


def format_liquid_table(result: dict) -> str:
    """A plain-text table of :func:`run_liquid_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"NALSM feature extraction: {cfg['steps']} steps of 1 ms per sample, plastic (rate decay "
             f"{cfg['rate_decay']}), {cfg['n_input']} inputs at rate {cfg['input_rate']}, after {cfg['init']} of "
             f"initialisation; {cfg['rounds']} rounds (numba {result['versions']['numba']}, load average "
             f"{result['machine']['load_average_1min'][0]:.2f} -> {result['machine']['load_average_1min'][1]:.2f})",
             f"{'variant':<15}{'batch':>6}{'ms/batch':>11}{'IQR':>19}{'CPU ms':>10}{'ms/sample':>11}{'samples/s':>11}"]
    for name, v in result["variants"].items():
        q1, q3 = v["iqr_ms"]
        lines.append(f"{name:<15}{v['batch']:>6}{v['median_ms']:>11.1f}{f'{q1:.1f}-{q3:.1f}':>19}"
                     f"{v['cpu_median_ms']:>10.1f}{v['ms_per_sample']:>11.2f}{v['samples_per_s']:>11.1f}")
    lines += [f"{key}: {value:.2f}" for key, value in result["ratios"].items()]
    lines += [f"goal {key}: {'met' if met else 'NOT met'}" for key, met in result["goals"].items()]
    return "\n".join(lines)
