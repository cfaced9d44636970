"""Simulated crossbar inference against the plain layer (:func:`run_crossbar_benchmark`).

Workload (``reference/local-learning-lsm-crossbar.md`` section 3(b)): one 700 -> 256 layer, spike inputs at rate
``INPUT_RATE``, batch 32, T = 100, forward only (inference), every variant interleaved in one process. Variants:

=====================  ============================================================================================
name                   what runs
=====================  ============================================================================================
``plain``              ``sl.Linear`` over the whole sequence (one matrix product): the reference of every ratio
``ideal``              the crossbar with every non-ideality off
``noise+adc``          RRAM programming noise, output noise 0.06 and a 9-bit ADC per tile (two tiles: 512 + 188
                       rows), the compiled read (``backend="numba"``, what ``"auto"`` picks on the CPU)
``read-noise``         the same plus exact per-cell read noise (1 %), its variances accumulated from the rows that
                       spiked
``*-torch``            the same read as tensor operations (``backend="torch"``: any device; the reference)
``*-steps``            the same, called once per time step as a recurrent layer would (100 reads of batch 32), against
                       ``plain-steps``
``resample``           the naive exact read noise: a fresh noisy weight matrix at every step (one per step for the
                       batch)
``aihwkit*``           aihwkit's ``AnalogLinear`` with ``TorchInferenceRPUConfig`` and its Wan 2022 ReRAM model, default
                       periphery and ``is_perfect`` (only when aihwkit is installed)
=====================  ============================================================================================

Each variant gets two medians: wall-clock time and the CPU time of the process. On a machine shared with other
jobs, wall-clock time also counts the time the process waits for a core, and with several torch threads every
parallel operation waits for its slowest thread, so wall-clock ratios drift with the load; CPU-time ratios
measure the work and are what the goals are judged on. The compiled read is single-threaded: with ``threads`` > 1
on an idle machine its share of the wall-clock time is larger than its share of the CPU time.
"""
from __future__ import annotations

import os
import statistics

import torch

from spikelab.layers import Linear
from .lif import INPUT_RATE
from .timing import (check_rounds, goals_met, machine_state, package_version, summarize_times, time_interleaved,
                     torch_threads, versions)

CROSSBAR_GOALS = {"noise+adc/plain": ("<=", 1.5), "read-noise/plain": ("<=", 2.5),
                  "noise+adc-steps/plain-steps": ("<=", 1.5)}


def _per_step(layer):
    def forward(x):
        return torch.stack([layer(x_t) for x_t in x])

    return forward


def _resample(weight: torch.Tensor, read_noise: float, seed: int):
    generator = torch.Generator().manual_seed(seed)

    def forward(x):
        return torch.stack([x_t @ (weight * (1 + read_noise * torch.randn(weight.shape, generator=generator))).t()
                            for x_t in x])

    return forward


def _aihwkit(weight: torch.Tensor, perfect: bool, missing: dict):
    if package_version("aihwkit") is None:
        missing["aihwkit"] = "aihwkit is not installed (pip install -e '.[crossbar-check]' && pip install --no-deps aihwkit==1.1.0)"
        return None
    try:
        from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel
        from aihwkit.nn import AnalogLinear
        from aihwkit.simulator.configs import TorchInferenceRPUConfig

        config = TorchInferenceRPUConfig()
        config.noise_model = ReRamWan2022NoiseModel(g_max=40.0)
        config.forward.is_perfect = perfect
        layer = AnalogLinear(weight.shape[1], weight.shape[0], bias=False, rpu_config=config)
        layer.set_weights(weight.clone())
        layer.eval()
        layer.program_analog_weights()
    except Exception as error:     # an aihwkit that does not run here is reported, not fatal
        missing["aihwkit"] = f"{type(error).__name__}: {error}"
        return None
    return lambda x: layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def _base(name: str) -> str:
    return "plain-steps" if name.endswith("-steps") else "plain"


def run_crossbar_benchmark(rounds: int = 30, warmup: int = 3, threads: int = 2, batch: int = 32, steps: int = 100,
                           in_features: int = 700, out_features: int = 256, seed: int = 0) -> dict:
    """Time every variant (module docstring); wall-clock and CPU medians, their ratios to the plain layer, the goals
    (on CPU time), and what was missing."""
    from spikelab.backends import crossbar

    check_rounds(rounds)
    load_before = os.getloadavg()[0]
    with torch_threads(threads), torch.no_grad():
        torch.manual_seed(seed)
        plain = Linear(in_features, out_features, bias=False)
        x = (torch.rand(steps, batch, in_features) < INPUT_RATE).float()
        periphery = crossbar.Periphery()
        devices = {"noise+adc": crossbar.RRAM(read_noise=0.0), "read-noise": crossbar.RRAM(read_noise=0.01)}
        chips = {"ideal": crossbar.convert(plain, crossbar.Device.ideal(), crossbar.Periphery.ideal(), seed=seed)}
        for name, device in devices.items():
            chips[name] = crossbar.convert(plain, device, periphery, seed=seed, backend="numba")
            chips[f"{name}-torch"] = crossbar.convert(plain, device, periphery, seed=seed, backend="torch")
        forwards = {"plain": plain, **chips, "plain-steps": _per_step(plain),
                    "noise+adc-steps": _per_step(chips["noise+adc"]), "read-noise-steps": _per_step(chips["read-noise"]),
                    "resample": _resample(plain.weight, 0.01, seed)}
        missing = {}
        for name, perfect in (("aihwkit", False), ("aihwkit-perfect", True)):
            forward = _aihwkit(plain.weight, perfect, missing)
            if forward is not None:
                forwards[name] = forward
        steps_to_time = {name: (lambda f=forward: (f(x), None)[1]) for name, forward in forwards.items()}
        times = time_interleaved(steps_to_time, rounds, warmup)
    variants = {name: {**summarize_times(t["forward"], t["backward"]), "cpu_median_ms": statistics.median(t["cpu"])}
                for name, t in times.items()}
    ratios, cpu_ratios = {}, {}
    for name, v in variants.items():
        base = _base(name)
        if name != base:
            ratios[f"{name}/{base}"] = v["median_ms"] / variants[base]["median_ms"]
            cpu_ratios[f"{name}/{base}"] = v["cpu_median_ms"] / variants[base]["cpu_median_ms"]
    goals = goals_met(cpu_ratios, CROSSBAR_GOALS)
    return {"config": {"in_features": in_features, "out_features": out_features, "batch": batch, "steps": steps,
                       "input_rate": INPUT_RATE, "rounds": rounds, "warmup": warmup, "threads": threads},
            "variants": variants, "ratios": ratios, "cpu_ratios": cpu_ratios, "goals": goals, "missing": missing,
            "versions": versions("torch", "numba", "aihwkit"), "machine": machine_state(load_before)}


def format_crossbar_table(result: dict) -> str:
    """A plain-text table of :func:`run_crossbar_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"crossbar inference {cfg['in_features']} -> {cfg['out_features']}, spikes at rate {cfg['input_rate']}, "
             f"batch {cfg['batch']}, T={cfg['steps']}, {cfg['threads']} threads, {cfg['rounds']} rounds (torch "
             f"{result['versions']['torch']}, numba {result['versions']['numba']}, aihwkit "
             f"{result['versions']['aihwkit']}, load average {result['machine']['load_average_1min'][0]:.2f} -> "
             f"{result['machine']['load_average_1min'][1]:.2f})",
             f"{'variant':<18}{'wall ms':>10}{'IQR':>16}{'CPU ms':>10}{'wall ratio':>12}{'CPU ratio':>11}  vs"]
    for name, v in result["variants"].items():
        q1, q3 = v["iqr_ms"]
        key = f"{name}/{_base(name)}"
        wall = f"{result['ratios'][key]:.2f}x" if key in result["ratios"] else "1.00x"
        cpu = f"{result['cpu_ratios'][key]:.2f}x" if key in result["cpu_ratios"] else "1.00x"
        lines.append(f"{name:<18}{v['median_ms']:>10.2f}{f'{q1:.2f}-{q3:.2f}':>16}{v['cpu_median_ms']:>10.2f}"
                     f"{wall:>12}{cpu:>11}  {_base(name)}")
    for key, met in result["goals"].items():
        ratio = key.split()[0]
        lines.append(f"goal {key} (CPU time): {result['cpu_ratios'][ratio]:.2f} {'met' if met else 'NOT met'} "
                     f"(wall clock {result['ratios'][ratio]:.2f})")
    lines += [f"missing {name}: {why}" for name, why in result["missing"].items()]
    return "\n".join(lines)
