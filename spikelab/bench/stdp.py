"""STDP update speed against one forward pass of the same layer and SpikingJelly's ``STDPLearner``
(:func:`run_stdp_benchmark`).

Task: a 700 -> 256 ``Linear`` + LIF layer (the first layer of ``spikelab bench lif``), batch 32, T = 100 steps,
Bernoulli(0.05) input spikes. One forward pass gives the pre spikes (the input) and the post spikes (the LIF's
output); every variant then computes the weight change of the whole sequence from those same spikes:

================  ==================================================================================================
``forward``       the reference: one forward pass of the layer (``Linear`` on the whole sequence, LIF scan), no grad
``spikelab``      :class:`spikelab.STDP`'s update (``stdp_update``; all-to-all pairing, additive): two scans of
                  the post traces, then ``LTP - LTD`` as one spike-weighted sum over the presynaptic spikes, bounds
``nearest``       nearest-neighbour pairing (``stdp_terms`` + ``apply_stdp``): two trace scans, two
                  spike-weighted outer sums, bounds
``spikingjelly``  ``learning.STDPLearner(step_mode="m")`` on the same layer: its ``step()`` loops over the T steps,
                  each forming a ``(B, N_post, N_pre)`` outer product (skipped with a note when not installed)
``matmul``        the two dense ``(N_post x T*B) @ (T*B x N_pre)`` products alone, with traces given: what a plain
                  matrix-product implementation of the update costs before any trace or bound
================  ==================================================================================================

Agreement check: SpikingJelly's traces include the current step's spike (``x = (1 - 1/tau) x + s``) and its
default weight functions scale the change by ``w``; spikelab's functions reproduce its ``delta_w`` from the same
spikes (traces ``trace_scan(s, 1 - 1/tau, 1 / (1 - 1/tau))``, not shifted), and the maximum relative difference is
reported. Timing: :mod:`spikelab.bench.timing` (one process, interleaved rounds, medians). The result is a plain
JSON-serialisable dict; nothing is printed.
"""
from __future__ import annotations

import logging
import os

import torch

from spikelab.functional.plasticity import spike_outer_sum, stdp_update, trace_scan
from .timing import (check_rounds, goal_lines, goals_met, machine_state, median_ratio, package_version,
                     summarize_times, time_interleaved, torch_threads, versions)

INPUT_RATE, WEIGHT_GAIN, TAU, A_PLUS, A_MINUS = 0.05, 3.0, 20.0, 1e-3, 1.2e-3
GOALS = {"spikelab/forward": ("<=", 1.0), "spikingjelly/spikelab": (">=", 10.0)}


def _layer(sizes, seed):
    from spikelab.layers import Linear
    from spikelab.neurons import LIF

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        linear = Linear(*sizes, bias=False)
    with torch.no_grad():
        linear.weight.mul_(WEIGHT_GAIN)
    return linear, LIF(beta=0.9, threshold=1.0)


def _spikelab_update(linear, pre, post, pairing):
    from spikelab.plasticity import STDP

    params = STDP(tau_plus=TAU, tau_minus=TAU, a_plus=A_PLUS, a_minus=A_MINUS, pairing=pairing, w_min=-1.0,
                  w_max=1.0).params
    weight = linear.weight.detach()

    def update():   # what STDP's update runs: additive all-to-all takes LTP - LTD as one sum
        stdp_update(weight, pre, post, params)

    return update


def _spikingjelly(linear, lif, pre, post):
    from spikingjelly.activation_based import learning

    learner = learning.STDPLearner(step_mode="m", synapse=linear, sn=lif, tau_pre=TAU, tau_post=TAU)

    def update():
        learner.reset()
        learner.in_spike_monitor.records.append(pre)     # what its hooks record in one forward pass
        learner.out_spike_monitor.records.append(post)
        return learner.step(on_grad=False)

    return learner, update


def _agreement(delta_sj, weight, pre, post) -> float:
    """Max |spikelab - SpikingJelly| / max |SpikingJelly| of ``delta_w`` in SpikingJelly's conventions."""
    decay = 1 - 1 / TAU
    pre_trace, post_trace = trace_scan(pre, decay, 1 / decay), trace_scan(post, decay, 1 / decay)
    ours = weight * (spike_outer_sum(post, pre_trace) - spike_outer_sum(pre, post_trace).T)
    return ((ours - delta_sj).abs().max() / delta_sj.abs().max()).item()


def _untimed_result(step):
    """A step for :func:`time_interleaved` that returns nothing to backpropagate."""

    def run():
        step()

    return run


def run_stdp_benchmark(rounds: int = 30, warmup: int = 3, threads: int = 2, batch: int = 32, steps: int = 100,
                       sizes: tuple[int, int] = (700, 256), seed: int = 0) -> dict:
    """Time the STDP update of one sequence for every available variant (see the module docstring).

    Args:
        rounds: timed iterations per variant (at least 2).
        warmup: untimed rounds first (numba compilation or cache loading, allocator warm-up).
        threads: torch intra-op threads for the run (restored afterwards).
        batch, steps, sizes: batch size, time steps T, layer widths (input, output).
        seed: seeds weights and input.

    Returns:
        A JSON-serialisable dict: ``config``, ``machine``, ``versions``, ``variants`` (median / IQR / min ms),
        ``spikes`` (input and output firing rates), ``agreement`` (SpikingJelly vs spikelab, relative), ``missing``,
        ``ratios`` (``spikelab/forward``: the update's cost in forward passes; ``spikingjelly/spikelab``: how many
        times faster spikelab is), ``goals`` and ``notes``.
    """
    check_rounds(rounds)
    triton_log = logging.getLogger("torch._library.triton")   # SpikingJelly warns when triton is absent
    old_level = triton_log.level
    triton_log.setLevel(logging.ERROR)
    try:
        with torch_threads(threads), torch.no_grad():
            return _run(rounds, warmup, threads, batch, steps, tuple(sizes), seed)
    finally:
        triton_log.setLevel(old_level)


def _run(rounds, warmup, threads, batch, steps, sizes, seed) -> dict:
    linear, lif = _layer(sizes, seed)
    generator = torch.Generator().manual_seed(seed)
    pre = (torch.rand(steps, batch, sizes[0], generator=generator) < INPUT_RATE).float()
    post = lif(linear(pre))
    pre_trace, post_trace = trace_scan(pre, 0.95), trace_scan(post, 0.95)
    flat = steps * batch

    variants = {
        "forward": lambda: lif(linear(pre)),
        "spikelab": _spikelab_update(linear, pre, post, "all"),
        "nearest": _spikelab_update(linear, pre, post, "nearest"),
        "matmul": lambda: (post.reshape(flat, -1).T @ pre_trace.reshape(flat, -1),
                           post_trace.reshape(flat, -1).T @ pre.reshape(flat, -1)),
    }
    missing, agreement = {}, None
    if package_version("spikingjelly") is None:
        missing["spikingjelly"] = "spikingjelly is not installed (pip install --no-deps spikingjelly)"
    else:
        try:
            learner, update = _spikingjelly(linear, lif, pre, post)
            agreement = _agreement(update(), linear.weight.detach(), pre, post)
            variants["spikingjelly"] = update
        except Exception as error:   # a peer that imports but fails is reported, not fatal
            missing["spikingjelly"] = f"{type(error).__name__}: {error}"

    load_before = os.getloadavg()[0]
    times = time_interleaved({name: _untimed_result(f) for name, f in variants.items()}, rounds, warmup)
    result_variants = {name: summarize_times(times[name]["forward"], times[name]["backward"]) for name in variants}
    ratios = {key: median_ratio(result_variants, *key.split("/")) for key in GOALS}
    ratios["matmul/spikelab"] = median_ratio(result_variants, "matmul", "spikelab")
    return {
        "config": {"rounds": rounds, "warmup": warmup, "threads": threads, "batch": batch, "steps": steps,
                   "sizes": list(sizes), "seed": seed, "tau": TAU, "a_plus": A_PLUS, "a_minus": A_MINUS,
                   "input_rate": INPUT_RATE, "weight_gain": WEIGHT_GAIN},
        "machine": machine_state(load_before),
        "versions": versions("torch", "numba", "spikingjelly"),
        "spikes": {"input_rate": pre.mean().item(), "output_rate": post.mean().item()},
        "variants": result_variants,
        "agreement": agreement,
        "missing": missing,
        "ratios": ratios,
        "goals": goals_met(ratios, GOALS),
        "notes": [
            "times are wall-clock ms per sequence update, interleaved in one process; load_average_1min (before, "
            "after) shows how busy the machine was",
            "spikelab/forward: the update's cost in forward passes of the layer; spikingjelly/spikelab > 1: spikelab "
            "is faster; matmul/spikelab > 1: the update beats two dense matrix products",
            "agreement: spikelab's functions reproduce SpikingJelly's delta_w in its conventions (relative max diff)",
        ] + [f"{name} skipped: {why}" for name, why in missing.items()],
    }


def format_stdp_table(result: dict) -> str:
    """A plain-text table of :func:`run_stdp_benchmark`'s result: medians, IQR, ratios, agreement, goals."""
    cfg, spikes = result["config"], result["spikes"]
    lines = [f"STDP update, {cfg['sizes'][0]} -> {cfg['sizes'][1]}, batch {cfg['batch']}, T={cfg['steps']}, "
             f"{cfg['threads']} threads, {cfg['rounds']} rounds, input {spikes['input_rate']:.1%} / output "
             f"{spikes['output_rate']:.1%} spikes per step (torch {result['versions']['torch']}, load average "
             f"{result['machine']['load_average_1min'][0]:.2f} -> {result['machine']['load_average_1min'][1]:.2f})",
             f"{'variant':<14}{'median ms':>10}{'IQR':>18}{'min':>9}{'x forward':>11}"]
    base = result["variants"]["forward"]["median_ms"]
    for name, v in result["variants"].items():
        q1, q3 = v["iqr_ms"]
        lines.append(f"{name:<14}{v['median_ms']:>10.2f}{f'{q1:.2f}-{q3:.2f}':>18}{v['min_ms']:>9.2f}"
                     f"{v['median_ms'] / base:>11.2f}")
    if result["agreement"] is not None:
        lines.append(f"agreement with SpikingJelly's delta_w (its conventions): relative max diff "
                     f"{result['agreement']:.1e}")
    return "\n".join(lines + goal_lines(result))
