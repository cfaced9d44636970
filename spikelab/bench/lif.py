"""LIF training speed against snnTorch, SpikingJelly and the matrix-multiply floor (:func:`run_lif_benchmark`).

Task (``reference/frameworks.md`` section 3, deepened to three layers): a 700-256-256-20 fully connected
LIF network, batch 32, T = 100 steps, Bernoulli(0.05) input spikes, loss = cross-entropy on the output
spike counts, one forward + ``loss.backward()`` per iteration.

Variants, all with the same input, targets and Linear weights (torch default init times ``weight_gain`` so
the hidden layers fire a few percent of the time) and the same dynamics: ``v = beta*v + I``, beta 0.9,
threshold 1, reset ``reset`` with the reset's spike detached, ATan surrogate with alpha 2:

``spikelab``      ``nn.Linear`` over the whole sequence + :class:`spikelab.neurons.LIF` (one scan per layer)
``snntorch``      ``nn.Linear`` + ``snntorch.Leaky`` called step by step, as in its tutorials
``spikingjelly``  ``layer.Linear`` + ``neuron.LIFNode(step_mode="m", decay_input=False, tau=1/(1-beta))``
                  (skipped with a note when spikingjelly is not installed)
``floor``         the same three ``nn.Linear`` on the whole sequence with identity in place of every LIF
                  layer (dense floats instead of spikes: the same matrix products), cross-entropy on the
                  summed outputs: the time of the matrix products alone, forward + backward

The default reset is ``"zero"``: it is the one reset with the same equations in all three frameworks
(SpikingJelly's soft reset subtracts the threshold *before* the decay, ``v = beta*(v - thr*s) + I``, while
snnTorch and spikelab subtract it after, ``v = beta*v + I - thr*s``), so the loss check can compare every
variant. ``reset="subtract"`` runs the same benchmark with snnTorch's subtractive reset.

Timing: :mod:`spikelab.bench.timing` (one process, interleaved rounds, medians). The result is a plain dict
(JSON-serialisable); nothing is printed.

:func:`run_ultra_benchmark` times the UltraLIF family's fused scans against their torch loop of steps in the same
way (one layer each, forward + backward).
"""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from spikelab.errors import ConfigError
from .timing import (check_rounds, goal_lines, goals_met, machine_state, package_version, median_ratio,
                     summarize_times, time_interleaved, torch_threads, training_step, versions)

BETA, THRESHOLD, ALPHA, INPUT_RATE, WEIGHT_GAIN = 0.9, 1.0, 2.0, 0.05, 3.0
GOALS = {"snntorch/spikelab": (">=", 1.5), "spikingjelly/spikelab": (">=", 1.1), "spikelab/floor": ("<=", 1.3)}


def _linears(sizes, seed: int, gain: float = WEIGHT_GAIN) -> list[nn.Linear]:
    with torch.random.fork_rng():  # seeded weights without touching the caller's random state
        torch.manual_seed(seed)
        layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
    return layers


def _copy(layers: list[nn.Linear], cls=nn.Linear, **kwargs) -> list[nn.Linear]:
    out = []
    for layer in layers:
        new = cls(layer.in_features, layer.out_features, **kwargs)
        new.load_state_dict(layer.state_dict())
        out.append(new)
    return out


def _spikelab(layers, reset):
    from spikelab.neurons import LIF

    net = nn.Sequential(*[m for layer in _copy(layers) for m in (layer, LIF(BETA, THRESHOLD, reset, slope=ALPHA))])
    return net, _sequential_forward(net)


def _sequential_forward(net):
    """Forward of a Linear/neuron Sequential that also hands the hidden layers' spikes to ``probe``."""

    def forward(x, probe=None):
        for i, module in enumerate(net):
            x = module(x)
            if probe is not None and i % 2 and i < len(net) - 1:
                probe.append(x)
        return x.sum(0)

    return forward


def _snntorch(layers, reset):
    import snntorch
    from snntorch import surrogate

    linears = nn.ModuleList(_copy(layers))
    lifs = nn.ModuleList(snntorch.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism=reset,
                                        spike_grad=surrogate.atan(alpha=ALPHA)) for _ in linears)
    net = nn.ModuleList([linears, lifs])

    def forward(x, probe=None):
        mems = [lif.init_leaky() for lif in lifs]
        out, hidden = [], [[] for _ in lifs]
        for x_t in x:
            for i, (linear, lif) in enumerate(zip(linears, lifs)):
                x_t, mems[i] = lif(linear(x_t), mems[i])
                hidden[i].append(x_t)
            out.append(x_t)
        if probe is not None:
            probe += [torch.stack(h) for h in hidden[:-1]]
        return torch.stack(out).sum(0)

    return net, forward


def _spikingjelly(layers, reset):
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    modules = []
    for linear in _copy(layers, layer.Linear, step_mode="m"):
        modules += [linear, neuron.LIFNode(tau=1 / (1 - BETA), decay_input=False, v_threshold=THRESHOLD,
                                           v_reset=0.0 if reset == "zero" else None,
                                           surrogate_function=surrogate.ATan(alpha=ALPHA), detach_reset=True,
                                           step_mode="m")]
    net = nn.Sequential(*modules)
    sequential = _sequential_forward(net)

    def forward(x, probe=None):
        functional.reset_net(net)
        return sequential(x, probe)

    return net, forward


def _floor(layers, reset):
    net = nn.Sequential(*_copy(layers))

    def forward(x, probe=None):
        return net(x).sum(0)

    return net, forward


PEERS = {"snntorch": ("snntorch", _snntorch), "spikingjelly": ("spikingjelly", _spikingjelly)}


def build_variants(layers: list[nn.Linear], reset: str, device="cpu") -> tuple[dict, dict]:
    """``({name: (net, forward)}, {peer: why it is missing})`` for spikelab, every installed peer and the floor,
    each a copy of ``layers`` on ``device``."""
    builders, missing = {"spikelab": _spikelab}, {}
    for name, (package, builder) in PEERS.items():
        if package_version(package) is None:
            missing[name] = f"{package} is not installed (pip install --no-deps {package})"
        else:
            builders[name] = builder
    builders["floor"] = _floor
    variants = {}
    for name, build in builders.items():
        try:
            net, forward = build(layers, reset)
            variants[name] = (net.to(device), forward)
        except Exception as error:  # a peer that imports but fails to build is reported, not fatal
            missing[name] = f"{type(error).__name__}: {error}"
    return variants, missing


def run_lif_benchmark(rounds: int = 30, warmup: int = 3, threads: int = 2, batch: int = 32, steps: int = 100,
                      sizes: tuple[int, ...] = (700, 256, 256, 20), seed: int = 0, reset: str = "zero") -> dict:
    """Time forward + backward of the LIF network for every available variant (see the module docstring).

    Args:
        rounds: timed iterations per variant (at least 2).
        warmup: untimed rounds first (numba compilation or cache loading, allocator warm-up).
        threads: torch intra-op threads for the run (restored afterwards).
        batch, steps, sizes: batch size, time steps T, layer widths (input, hidden..., output).
        seed: seeds weights, input and targets.
        reset: ``"zero"`` (the same equations in every framework) or ``"subtract"`` (see module docstring).

    Returns:
        A JSON-serialisable dict: ``config``, ``versions``, ``variants`` (per variant: median / IQR / min of
        forward, backward and total ms, the raw total times, loss, hidden firing rates, norm of the first
        layer's weight gradient), ``missing`` (peer -> why it was skipped), ``loss_check``, ``ratios``
        (``peer/spikelab``: how many times faster spikelab is; ``spikelab/floor``: its cost over the bare
        matrix products), ``goals`` and ``notes``.
    """
    check_rounds(rounds)
    if reset not in ("zero", "subtract"):
        raise ConfigError(f"reset must be 'zero' or 'subtract' (the resets all three frameworks have), got {reset!r}")
    triton_log = logging.getLogger("torch._library.triton")  # SpikingJelly's custom ops warn when triton is absent
    old_level = triton_log.level
    triton_log.setLevel(logging.ERROR)
    try:
        with torch_threads(threads):
            return _run(rounds, warmup, threads, batch, steps, tuple(sizes), seed, reset)
    finally:
        triton_log.setLevel(old_level)


def _run(rounds, warmup, threads, batch, steps, sizes, seed, reset) -> dict:
    layers = _linears(sizes, seed)
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(steps, batch, sizes[0], generator=generator) < INPUT_RATE).float()
    target = torch.randint(0, sizes[-1], (batch,), generator=generator)
    variants, missing = build_variants(layers, reset)
    load_before = os.getloadavg()[0]
    info = {}
    for name, (net, forward) in variants.items():  # one checked pass each: loss, rates, gradient (untimed)
        hidden = []
        loss = nn.functional.cross_entropy(forward(x, hidden), target)
        loss.backward()
        info[name] = {"loss": loss.item(), "hidden_rates": [h.mean().item() for h in hidden],
                      "grad_norm_w1": next(net.parameters()).grad.norm().item()}
    names = list(variants)
    times = time_interleaved({name: training_step(net, lambda forward=forward: nn.functional.cross_entropy(
        forward(x), target)) for name, (net, forward) in variants.items()}, rounds, warmup)

    result_variants = {name: {**summarize_times(times[name]["forward"], times[name]["backward"]), **info[name]}
                       for name in names}
    return {
        "config": {"rounds": rounds, "warmup": warmup, "threads": threads, "batch": batch, "steps": steps,
                   "sizes": list(sizes), "seed": seed, "reset": reset, "beta": BETA, "threshold": THRESHOLD,
                   "surrogate": f"atan(alpha={ALPHA})", "detach_reset": True, "input_rate": INPUT_RATE,
                   "weight_gain": WEIGHT_GAIN},
        "machine": machine_state(load_before),
        "versions": versions("torch", "numba", "snntorch", "spikingjelly"),
        "variants": result_variants,
        "missing": missing,
        "loss_check": _loss_check(result_variants, reset),
        "ratios": _ratios(result_variants),
        "goals": goals_met(_ratios(result_variants), GOALS),
        "notes": [
            "times are wall-clock ms per iteration (forward + loss + backward), interleaved in one process; "
            "load_average_1min (before, after) shows how busy the machine was",
            "peer/spikelab > 1 means spikelab is faster; spikelab/floor is its cost over the matrix products alone",
            "floor: identity in place of every LIF layer (same Linear products, forward + backward)",
        ] + [f"{name} skipped: {why}" for name, why in missing.items()],
    }


def _loss_check(variants: dict, reset: str) -> dict:
    """Do the variants with the same equations reach the same loss? (SpikingJelly's soft reset differs.)"""
    losses = {name: v["loss"] for name, v in variants.items() if name != "floor"}
    compared = [name for name in losses if not (name == "spikingjelly" and reset == "subtract")]
    spread = max(losses[name] for name in compared) - min(losses[name] for name in compared)
    return {"losses": losses, "compared": compared, "max_abs_diff": spread,
            "agree": spread <= 1e-4 * max(1.0, abs(losses["spikelab"]))}


def _ratios(variants: dict) -> dict:
    return {key: median_ratio(variants, *key.split("/")) for key in GOALS}


def format_lif_table(result: dict) -> str:
    """A plain-text table of :func:`run_lif_benchmark`'s result: medians, IQR, ratios, loss check, goals."""
    cfg = result["config"]
    lines = [f"LIF {'-'.join(map(str, cfg['sizes']))}, batch {cfg['batch']}, T={cfg['steps']}, "
             f"reset={cfg['reset']}, {cfg['threads']} threads, {cfg['rounds']} rounds "
             f"(torch {result['versions']['torch']}, numba {result['versions']['numba']}, load average "
             f"{result['machine']['load_average_1min'][0]:.2f} -> {result['machine']['load_average_1min'][1]:.2f})",
             f"{'variant':<13}{'fwd ms':>8}{'bwd ms':>8}{'total ms':>10}{'IQR':>16}{'min':>8}"
             f"{'x spikelab':>11}{'loss':>9}{'|dW1|':>9}  hidden rates"]
    base = result["variants"].get("spikelab", {}).get("median_ms")
    for name, v in result["variants"].items():
        q1, q3 = v["iqr_ms"]
        rates = ", ".join(f"{r:.1%}" for r in v["hidden_rates"])
        lines.append(f"{name:<13}{v['forward_median_ms']:>8.1f}{v['backward_median_ms']:>8.1f}{v['median_ms']:>10.1f}"
                     f"{f'{q1:.1f}-{q3:.1f}':>16}{v['min_ms']:>8.1f}{v['median_ms'] / base:>11.2f}"
                     f"{v['loss']:>9.4f}{v['grad_norm_w1']:>9.2f}  {rates}")
    check = result["loss_check"]
    lines.append(f"loss check ({', '.join(check['compared'])}): max |diff| {check['max_abs_diff']:.2e} -> "
                 f"{'agree' if check['agree'] else 'DIFFER'}")
    return "\n".join(lines + goal_lines(result))




#: the Ultra layers timed by :func:`run_ultra_benchmark`, each with learnable eps (and tau where it has one)
ULTRA_LAYERS = ("ultralif", "ultraplif", "ultradlif", "ultradplif")


def run_ultra_benchmark(rounds: int = 30, warmup: int = 3, threads: int = 1, batch: int = 32, steps: int = 100,
                        features: int = 256, seed: int = 0) -> dict:
    """Time forward + backward of each UltraLIF-family layer, fused scan against the torch loop of steps.

    Each layer (default parameters: learnable eps, learnable tau for UltraPLIF / UltraDPLIF) runs on the same
    ``randn`` input ``(steps, batch, features)`` (the diffusive layers' rings along the features) with loss = the
    sum of the spikes, once as ``backend="auto"`` (numba on the CPU, Triton on CUDA) and once as
    ``backend="torch"`` (the step functions in a loop, under autograd), interleaved.

    Returns:
        A JSON-serialisable dict: ``config``, ``machine``, ``versions``, ``layers`` (per layer: ``fused`` and
        ``loop`` times of :func:`~spikelab.bench.timing.summarize_times`, ``loop/fused``: how many times faster the
        fused scan is, and ``max_abs_diff``: the largest difference of the spikes and of dL/dx between the two).
    """
    check_rounds(rounds)
    from spikelab.neurons.ultra import ULTRA_NEURONS

    load_before = os.getloadavg()[0]
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, features, generator=generator)
    layers = {}
    with torch_threads(threads):
        for name in ULTRA_LAYERS:
            variants = {}
            for kind, backend in (("fused", "auto"), ("loop", "torch")):
                layer = ULTRA_NEURONS[name]()
                layer.backend = backend
                variants[kind] = layer
            check = {kind: _spikes_and_input_grad(layer, x) for kind, layer in variants.items()}
            times = time_interleaved({kind: training_step(layer, lambda layer=layer: layer(x).sum())
                                      for kind, layer in variants.items()}, rounds, warmup)
            summary = {kind: summarize_times(times[kind]["forward"], times[kind]["backward"]) for kind in variants}
            layers[name] = {**summary, "loop/fused": median_ratio(summary, "loop", "fused"),
                            "max_abs_diff": max((a - b).abs().max().item()
                                                for a, b in zip(check["fused"], check["loop"]))}
    return {"config": {"rounds": rounds, "warmup": warmup, "threads": threads, "batch": batch, "steps": steps,
                       "features": features, "seed": seed},
            "machine": machine_state(load_before), "versions": versions("torch", "numba"), "layers": layers}


def _spikes_and_input_grad(layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_()
    spikes = layer(x)
    spikes.sum().backward()
    layer.zero_grad(set_to_none=True)
    return spikes.detach(), x.grad


def format_ultra_table(result: dict) -> str:
    """A plain-text table of :func:`run_ultra_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"UltraLIF family, fused scan vs torch loop: batch {cfg['batch']}, T={cfg['steps']}, "
             f"{cfg['features']} features, {cfg['threads']} thread(s), {cfg['rounds']} rounds (load average "
             f"{result['machine']['load_average_1min'][0]:.2f} -> {result['machine']['load_average_1min'][1]:.2f})",
             f"{'layer':<12}{'fused ms':>10}{'loop ms':>10}{'loop/fused':>12}{'forward':>9}{'backward':>10}"
             f"{'max |diff|':>12}"]
    for name, r in result["layers"].items():
        fused, loop = r["fused"], r["loop"]
        lines.append(f"{name:<12}{fused['median_ms']:>10.1f}{loop['median_ms']:>10.1f}{r['loop/fused']:>12.2f}"
                     f"{loop['forward_median_ms'] / fused['forward_median_ms']:>9.2f}"
                     f"{loop['backward_median_ms'] / fused['backward_median_ms']:>10.2f}{r['max_abs_diff']:>12.1e}")
    lines.append("note: loop/fused, forward, backward: how many times faster the fused scan is (median times)")
    return "\n".join(lines)
