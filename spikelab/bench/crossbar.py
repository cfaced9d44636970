"""Simulated crossbar inference against the plain layer (:func:`run_crossbar_benchmark`).

Workload (``reference/local-learning-lsm-crossbar.md`` section 3(b)): one 700 -> 256 layer, spike inputs at rate
``INPUT_RATE``, batch 32, T = 100, forward only (inference), every variant interleaved in one process. Variants:

================  =================================================================================================
name              what runs
================  =================================================================================================
``plain``         ``sl.Linear`` over the whole sequence (one matrix product): the reference of every ratio
``ideal``         the crossbar with every non-ideality off
``noise+adc``     RRAM programming noise, output noise 0.06 and a 9-bit ADC per tile (two 512-row tiles)
``read-noise``    the same plus exact per-cell read noise (1 %), drawn in output space
``*-steps``       the same, called once per time step as a recurrent layer would (100 reads of batch 32), against
                  ``plain-steps``
``resample``      the naive exact read noise: a fresh noisy weight matrix at every step (one per step for the batch)
``aihwkit*``      aihwkit's ``AnalogLinear`` with ``TorchInferenceRPUConfig`` and its Wan 2022 ReRAM model, default
                  periphery and ``is_perfect`` (only when aihwkit is installed)
================  =================================================================================================
"""
from __future__ import annotations

import os

import torch

from spikelab.layers import Linear
from .lif import INPUT_RATE
from .timing import check_rounds, machine_state, package_version, summarize_times, time_interleaved, torch_threads, versions

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
        missing["aihwkit"] = "aihwkit is not installed (pip install -e '.[crossbar-check]')"
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


def run_crossbar_benchmark(rounds: int = 30, warmup: int = 3, threads: int = 2, batch: int = 32, steps: int = 100,
                           in_features: int = 700, out_features: int = 256, seed: int = 0) -> dict:
    """Time every variant (module docstring); medians, ratios to the plain layer, the goals, and what was missing."""
    from spikelab.backends import crossbar

    check_rounds(rounds)
    load_before = os.getloadavg()[0]
    with torch_threads(threads), torch.no_grad():
        torch.manual_seed(seed)
        plain = Linear(in_features, out_features, bias=False)
        x = (torch.rand(steps, batch, in_features) < INPUT_RATE).float()
        noisy = crossbar.RRAM(read_noise=0.0)
        periphery = crossbar.Periphery()
        chips = {"ideal": crossbar.convert(plain, crossbar.Device.ideal(), crossbar.Periphery.ideal(), seed=seed),
                 "noise+adc": crossbar.convert(plain, noisy, periphery, seed=seed),
                 "read-noise": crossbar.convert(plain, crossbar.RRAM(read_noise=0.01), periphery, seed=seed)}
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
    variants = {name: summarize_times(t["forward"], t["backward"]) for name, t in times.items()}
    ratios = {}
    for name in variants:
        base = "plain-steps" if name.endswith("-steps") and name != "plain-steps" else "plain"
        if name != base:
            ratios[f"{name}/{base}"] = variants[name]["median_ms"] / variants[base]["median_ms"]
    goals = {f"{key} {op} {limit}": ratios[key] <= limit for key, (op, limit) in CROSSBAR_GOALS.items()
             if key in ratios}
    return {"config": {"in_features": in_features, "out_features": out_features, "batch": batch, "steps": steps,
                       "input_rate": INPUT_RATE, "rounds": rounds, "warmup": warmup, "threads": threads},
            "variants": variants, "ratios": ratios, "goals": goals, "missing": missing,
            "versions": versions("torch", "aihwkit"), "machine": machine_state(load_before)}


def format_crossbar_table(result: dict) -> str:
    """A plain-text table of :func:`run_crossbar_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"crossbar inference {cfg['in_features']} -> {cfg['out_features']}, spikes at rate {cfg['input_rate']}, "
             f"batch {cfg['batch']}, T={cfg['steps']}, {cfg['threads']} threads, {cfg['rounds']} rounds (torch "
             f"{result['versions']['torch']}, aihwkit {result['versions']['aihwkit']}, load average "
             f"{result['machine']['load_average_1min'][0]:.2f} -> {result['machine']['load_average_1min'][1]:.2f})",
             f"{'variant':<18}{'median ms':>10}{'IQR':>16}{'ratio':>22}"]
    for name, v in result["variants"].items():
        q1, q3 = v["iqr_ms"]
        ratio = next((f"{value:.2f}x {key.split('/')[1]}" for key, value in result["ratios"].items()
                      if key.split("/")[0] == name), "1.00")
        lines.append(f"{name:<18}{v['median_ms']:>10.2f}{f'{q1:.2f}-{q3:.2f}':>16}{ratio:>22}")
    for key, met in result["goals"].items():
        lines.append(f"goal {key}: {result['ratios'][key.split()[0]]:.2f} {'met' if met else 'NOT met'}")
    lines += [f"missing {name}: {why}" for name, why in result["missing"].items()]
    return "\n".join(lines)
