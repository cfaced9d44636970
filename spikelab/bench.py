"""CPU benchmarks: LIF training speed against snnTorch, SpikingJelly and the matrix-multiply floor
(:func:`run_lif_benchmark`, :func:`run_memory_benchmark`), and the learnable-delay layer against the DCLS
authors' ``Dcls1d`` (:func:`run_delays_benchmark`, at the end of this module).

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

Timing follows ``frameworks.md`` section 3: every variant is built in one process and run alternately,
one iteration at a time, in an order rotated every round, so background load hits all alike;
``warmup`` rounds are discarded. The result is a plain dict (JSON-serialisable); nothing is printed.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import statistics
import time

import torch
from torch import Tensor, nn

from .training.memory import peak_allocated_bytes
from .delays import SIGMA_OFFSET

BETA, THRESHOLD, ALPHA, INPUT_RATE, WEIGHT_GAIN = 0.9, 1.0, 2.0, 0.05, 3.0
GOALS = {"snntorch/spikelab": (">=", 1.5), "spikingjelly/spikelab": (">=", 1.1), "spikelab/floor": ("<=", 1.3)}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _linears(sizes, seed: int) -> list[nn.Linear]:
    with torch.random.fork_rng():  # seeded weights without touching the caller's random state
        torch.manual_seed(seed)
        layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(WEIGHT_GAIN)
            layer.bias.mul_(WEIGHT_GAIN)
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


def _training_step(module: nn.Module, loss_fn):
    """A timed step for :func:`_time_interleaved`: clear ``module``'s gradients, then ``loss_fn()`` (forward)."""

    def forward():
        module.zero_grad(set_to_none=True)
        return loss_fn()

    return forward


def _time_interleaved(steps: dict, rounds: int, warmup: int) -> dict:
    """Run every ``steps[name]()`` (forward: returns a loss to backpropagate, or None for forward-only) once per
    round, in an order rotated every round, so background load hits all variants alike; the first ``warmup``
    rounds are not kept. Returns ``{name: {"forward": [ms], "backward": [ms]}}``."""
    names = list(steps)
    times = {name: {"forward": [], "backward": []} for name in names}
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            loss = steps[name]()
            t1 = time.perf_counter()
            if loss is not None:
                loss.backward()
            t2 = time.perf_counter()
            if r >= warmup:
                times[name]["forward"].append(1e3 * (t1 - t0))
                times[name]["backward"].append(1e3 * (t2 - t1))
    return times


def _summary(samples: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return {"median_ms": median, "iqr_ms": [q1, q3], "min_ms": min(samples)}


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
    if rounds < 2:
        raise ValueError(f"rounds must be at least 2, got {rounds}")
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    triton_log = logging.getLogger("torch._library.triton")  # SpikingJelly's custom ops warn when triton is absent
    old_level = triton_log.level
    triton_log.setLevel(logging.ERROR)
    try:
        return _run(rounds, warmup, threads, batch, steps, tuple(sizes), seed, reset)
    finally:
        torch.set_num_threads(old_threads)
        triton_log.setLevel(old_level)


def _run(rounds, warmup, threads, batch, steps, sizes, seed, reset) -> dict:
    layers = _linears(sizes, seed)
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(steps, batch, sizes[0], generator=generator) < INPUT_RATE).float()
    target = torch.randint(0, sizes[-1], (batch,), generator=generator)
    builders, missing = {"spikelab": _spikelab}, {}
    for name, (package, builder) in PEERS.items():
        if _version(package) is None:
            missing[name] = f"{package} is not installed (pip install --no-deps {package})"
        else:
            builders[name] = builder
    builders["floor"] = _floor

    variants = {}
    for name, build in builders.items():
        try:
            net, forward = build(layers, reset)
        except Exception as error:  # a peer that imports but fails to build is reported, not fatal
            missing[name] = f"{type(error).__name__}: {error}"
            continue
        variants[name] = (net, forward)

    load_before = os.getloadavg()[0]
    info = {}
    for name, (net, forward) in variants.items():  # one checked pass each: loss, rates, gradient (untimed)
        hidden = []
        loss = nn.functional.cross_entropy(forward(x, hidden), target)
        loss.backward()
        info[name] = {"loss": loss.item(), "hidden_rates": [h.mean().item() for h in hidden],
                      "grad_norm_w1": next(net.parameters()).grad.norm().item()}
    names = list(variants)
    times = _time_interleaved({name: _training_step(net, lambda forward=forward: nn.functional.cross_entropy(
        forward(x), target)) for name, (net, forward) in variants.items()}, rounds, warmup)

    result_variants = {}
    for name in names:
        fwd, bwd = times[name]["forward"], times[name]["backward"]
        total = [a + b for a, b in zip(fwd, bwd)]
        result_variants[name] = {**_summary(total), "forward_median_ms": statistics.median(fwd),
                                 "backward_median_ms": statistics.median(bwd), "times_ms": total, **info[name]}
    return {
        "config": {"rounds": rounds, "warmup": warmup, "threads": threads, "batch": batch, "steps": steps,
                   "sizes": list(sizes), "seed": seed, "reset": reset, "beta": BETA, "threshold": THRESHOLD,
                   "surrogate": f"atan(alpha={ALPHA})", "detach_reset": True, "input_rate": INPUT_RATE,
                   "weight_gain": WEIGHT_GAIN},
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine(),
                    "load_average_1min": [load_before, os.getloadavg()[0]]},
        "versions": {"python": platform.python_version(),
                     **{p: _version(p) for p in ("torch", "numba", "snntorch", "spikingjelly")}},
        "variants": result_variants,
        "missing": missing,
        "loss_check": _loss_check(result_variants, reset),
        "ratios": _ratios(result_variants),
        "goals": _goals(result_variants),
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


def _ratio(variants: dict, a: str, b: str) -> float | None:
    if a in variants and b in variants:
        return variants[a]["median_ms"] / variants[b]["median_ms"]
    return None


def _ratios(variants: dict) -> dict:
    return {key: _ratio(variants, *key.split("/")) for key in GOALS}


def _goals(variants: dict) -> dict:
    goals = {}
    for key, (op, target) in GOALS.items():
        ratio = _ratio(variants, *key.split("/"))
        goals[f"{key} {op} {target}"] = None if ratio is None else (ratio >= target if op == ">=" else ratio <= target)
    return goals


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
    for key, met in result["goals"].items():
        ratio = result["ratios"][key.split()[0]]
        lines.append(f"goal {key}: " + ("n/a (peer missing)" if ratio is None else
                                         f"{ratio:.2f} {'met' if met else 'NOT met'}"))
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def run_memory_benchmark(steps=(100, 500), batch: int = 32, sizes=(700, 256, 256, 20), sltt_k: int = 2,
                         threads: int = 2, seed: int = 0) -> dict:
    """Peak activation memory of one training step, BPTT vs SLTT vs SLTT-K, for each T in ``steps``.

    The network is the speed benchmark's (LIF layers, zero reset, leaky readout, per-step loss). Memory is
    :func:`spikelab.training.memory.training_step_peak_bytes`: the peak of what torch allocates during
    forward + backward, counted from zero, so weights and the input batch are left out (the weight
    gradients, the same in every mode, are in). Nothing is printed.
    """
    from spikelab.models import build_model
    from spikelab.training import Trainer
    from spikelab.training.memory import training_step_peak_bytes

    torch.set_num_threads(threads)
    rows = []
    for t in steps:
        x = (torch.rand(t, batch, sizes[0], generator=torch.Generator().manual_seed(seed)) < INPUT_RATE).float()
        target = torch.arange(batch) % sizes[-1]
        row = {"steps": t}
        for mode in ("bptt", "sltt", "sltt-k"):
            torch.manual_seed(seed)
            net = build_model("mlp", sizes[:1], sizes[-1], hidden=sizes[1:-1], neuron_options={"beta": BETA},
                              readout_beta=BETA)
            trainer = Trainer(net, loss="per_step", mode=mode, sltt_k=sltt_k, progress=False)
            row[f"{mode}_mib"] = training_step_peak_bytes(trainer, x, target) / 2**20
        row["sltt/bptt"] = row["sltt_mib"] / row["bptt_mib"]
        rows.append(row)
    return {"config": {"sizes": list(sizes), "batch": batch, "sltt_k": sltt_k, "threads": threads}, "rows": rows}


def format_memory_table(result: dict) -> str:
    """A plain-text table of :func:`run_memory_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"peak activation memory of one training step, {'-'.join(map(str, cfg['sizes']))}, batch {cfg['batch']}",
             f"{'T':>5}{'BPTT MiB':>10}{'SLTT MiB':>10}{'SLTT-K MiB':>12}{'SLTT/BPTT':>11}  (K = {cfg['sltt_k']})"]
    for row in result["rows"]:
        lines.append(f"{row['steps']:>5}{row['bptt_mib']:>10.2f}{row['sltt_mib']:>10.2f}{row['sltt-k_mib']:>12.2f}"
                     f"{row['sltt/bptt']:>11.1%}")
    return "\n".join(lines)


# -- learnable delays: DelayedLinear vs the DCLS package's Dcls1d ---------------------------------------------------
DELAY_LAYERS = ((140, 256), (256, 256))  # the SHD model's first and second layer (700 channels grouped by 5)
DELAY_GOALS = {"dcls/spikelab": (">=", 1.0)}


def _dcls_layer(layer, version: str):
    """A ``DCLS.construct.modules.Dcls1d`` as the paper's SHD model builds it (``kernel_count=1``,
    ``dilated_kernel_size = max_delay + 1``, no bias), holding ``layer``'s weights and delays: DCLS position
    ``p = M//2 - d`` (its tap ``c = p + M//2`` with left padding ``M - 1`` is a delay of ``M - 1 - c`` steps) and
    ``SIG = sigma - 0.27``. ``version="max"`` with ``SIG = 0`` and rounded positions is its evaluation mode."""
    from DCLS.construct.modules import Dcls1d

    taps = layer.max_delay + 1
    dcls = Dcls1d(layer.in_features, layer.out_features, kernel_count=1, groups=1, dilated_kernel_size=taps,
                  bias=False, version=version)
    with torch.no_grad():
        dcls.weight.copy_(layer.weight.unsqueeze(-1))
        position = taps // 2 - layer.position.detach()
        dcls.P.copy_((position.round() if version == "max" else position).view_as(dcls.P))
        dcls.SIG.fill_(0.0 if version == "max" else layer.sigma.item() - SIGMA_OFFSET)   # sigma = |SIG| + 0.27 in both
    dcls.SIG.requires_grad_(False)
    return dcls


def _dcls_forward(dcls, max_delay: int, right: int = 0):
    """``(T, B, in) -> (T + right, B, out)`` as ``SnnDelays.forward`` calls Dcls1d: permute to ``(B, in, T)``, pad
    ``max_delay`` steps on the left (and ``right`` on the right), convolve, permute back."""

    def forward(x):
        padded = nn.functional.pad(x.permute(1, 2, 0), (max_delay, right))
        return dcls(padded).permute(2, 0, 1)

    return forward


def _delay_variants(layer, layer_eval, max_delay: int, missing: dict) -> dict:
    """name -> (module, forward(x) -> y, training): every variant computes the same ``(T, B, out)`` but ``dcls-paper``
    (``T + (max_delay + 1)//2`` steps: the paper's extra right padding)."""
    from spikelab.functional.delays import delayed_linear

    variants = {"spikelab": (layer, layer, True),
                "spikelab-conv": (layer, lambda x: delayed_linear(x, layer.kernel(), method="conv"), True)}
    if _version("dcls") is None:
        missing["dcls"] = "the DCLS package is not installed (pip install --no-deps dcls==0.1.1)"
    else:
        try:
            dcls = _dcls_layer(layer, "gauss")
            variants["dcls"] = (dcls, _dcls_forward(dcls, max_delay), True)
            paper = _dcls_layer(layer, "gauss")
            variants["dcls-paper"] = (paper, _dcls_forward(paper, max_delay, (max_delay + 1) // 2), True)
        except Exception as error:  # an incompatible DCLS version is reported, not fatal
            missing["dcls"] = f"{type(error).__name__}: {error}"
    variants["spikelab-eval"] = (layer_eval, layer_eval, False)
    if "dcls" in variants:
        dcls_eval = _dcls_layer(layer_eval, "max")
        variants["dcls-eval"] = (dcls_eval, _dcls_forward(dcls_eval, max_delay), False)
    return variants


def _delay_check(variants: dict, x: Tensor, grad_out: Tensor, max_delay: int) -> dict:
    """Same weights and delays: do spikelab and Dcls1d give the same output and gradients (train and eval)?"""
    result = {}
    pairs = [("spikelab", "dcls"), ("spikelab-eval", "dcls-eval")]
    for ours, theirs in pairs:
        if theirs not in variants:
            continue
        outputs, grads = {}, {}
        for name in (ours, theirs):
            module, forward, training = variants[name]
            module.zero_grad(set_to_none=True)
            x_in = x.detach().clone().requires_grad_(True)
            if training:
                y = forward(x_in)
                (y * grad_out).sum().backward()
                position = module.position if hasattr(module, "position") else module.P
                grads[name] = (module.weight.grad.reshape(grad_out.shape[-1], -1), position.grad.reshape(
                    grad_out.shape[-1], -1), x_in.grad)
            else:
                with torch.no_grad():
                    y = forward(x_in)
            outputs[name] = y.detach()
        scale = outputs[ours].abs().max().item()
        row = {"max_abs_diff_output": (outputs[ours] - outputs[theirs]).abs().max().item(), "output_scale": scale,
               "exactly_equal": torch.equal(outputs[ours], outputs[theirs])}
        if grads:
            (w1, p1, x1), (w2, p2, x2) = grads[ours], grads[theirs]
            row.update(max_abs_diff_weight_grad=(w1 - w2).abs().max().item(),
                       weight_grad_scale=w1.abs().max().item(),
                       # DCLS positions run the other way (p = M//2 - d): their gradient has the opposite sign
                       max_abs_diff_position_grad=(p1 + p2).abs().max().item(),
                       position_grad_scale=p1.abs().max().item(),
                       max_abs_diff_input_grad=(x1 - x2).abs().max().item())
        row["agree"] = all(row[f"max_abs_diff_{key}"] <= 1e-4 * max(1.0, row[f"{key}_scale"])
                           for key in ("output", "weight_grad", "position_grad") if f"max_abs_diff_{key}" in row)
        result[f"{ours} vs {theirs}"] = row
    return result


def _delay_step(module, forward, training: bool, x: Tensor, grad_out: Tensor):
    """The timed step of one variant: forward + loss ``sum(y[:T] * g)`` (backward follows), or a forward under
    ``no_grad`` for the eval variants."""
    if training:
        return _training_step(module, lambda: (forward(x)[:grad_out.shape[0]] * grad_out).sum())

    def evaluate():
        with torch.no_grad():
            forward(x)

    return evaluate


def _run_step(step) -> None:
    loss = step()
    if loss is not None:
        loss.backward()


def run_delays_benchmark(rounds: int = 30, warmup: int = 3, threads: int = 2, batch: int = 32, steps: int = 100,
                         max_delay: int = 24, layers=DELAY_LAYERS, input_rate: float = INPUT_RATE, seed: int = 0,
                         memory: bool = True) -> dict:
    """Time forward + backward of one delay layer, spikelab's :class:`~spikelab.delays.DelayedLinear` against
    the DCLS authors' ``Dcls1d`` (package ``dcls``, as ``Thvnvtos/SNN-delays`` uses it for SHD), per layer size.

    Every variant holds the same weights and delays (uniform in ``[0, max_delay]``) at the schedule's first and
    widest sigma (``(max_delay + 1)//2 + 0.27``; neither implementation's cost depends on sigma) and gets the same
    Bernoulli(``input_rate``) spike input ``(T, B, in)``; the loss is ``sum(y * g)`` for a fixed random ``g``. The
    first layer's input needs no gradient, every later layer's does (it comes from spiking neurons).

    ``spikelab``       DelayedLinear in training mode (Gaussian taps; ``method="auto"``: the DFT products)
    ``spikelab-conv``  the same kernel through ``conv1d`` (``method="conv"``, the pre-DFT implementation)
    ``dcls``           Dcls1d, ``version="gauss"``, input padded ``max_delay`` steps on the left: ``T`` outputs
    ``dcls-paper``     the same with the paper's extra ``(max_delay + 1)//2`` steps of right padding (more outputs)
    ``spikelab-eval``  eval mode, forward only under ``no_grad`` (rounded one-hot taps through ``conv1d``)
    ``dcls-eval``      Dcls1d as the paper evaluates: ``version="max"``, ``SIG = 0``, rounded positions

    Timing as :func:`run_lif_benchmark` (one process, interleaved rounds, medians); memory is the peak of what
    torch allocates during one forward + backward
    (:func:`spikelab.training.memory.peak_allocated_bytes`).
    Returns a JSON-serialisable dict (nothing is printed): ``config``, ``machine``, ``versions``, ``layers`` (per
    layer: ``variants`` with median / IQR / min ms, forward and backward medians, raw times and ``peak_mib``;
    ``check``: output and gradient differences between spikelab and Dcls1d; ``ratios``), ``missing``, ``goals``.
    """
    if rounds < 2:
        raise ValueError(f"rounds must be at least 2, got {rounds}")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_delays(rounds, warmup, threads, batch, steps, max_delay, tuple(map(tuple, layers)), input_rate,
                           seed, memory)
    finally:
        torch.set_num_threads(old_threads)


def _run_delays(rounds, warmup, threads, batch, steps, max_delay, layers, input_rate, seed, memory) -> dict:
    from spikelab.delays import DelayedLinear

    load_before = os.getloadavg()[0]
    missing, results = {}, []
    for index, (n_in, n_out) in enumerate(layers):
        with torch.random.fork_rng():
            torch.manual_seed(seed + index)
            layer = DelayedLinear(n_in, n_out, max_delay=max_delay)
            x = (torch.rand(steps, batch, n_in) < input_rate).float().requires_grad_(index > 0)
            grad_out = torch.randn(steps, batch, n_out)
        layer.set_epoch(0, 1)
        layer_eval = DelayedLinear(n_in, n_out, max_delay=max_delay).eval()
        layer_eval.load_state_dict(layer.state_dict())
        variants = _delay_variants(layer, layer_eval, max_delay, missing)
        check = _delay_check(variants, x, grad_out, max_delay)

        steps_of = {name: _delay_step(*variant, x, grad_out) for name, variant in variants.items()}
        times = _time_interleaved(steps_of, rounds, warmup)
        row = {}
        for name, (module, forward, training) in variants.items():
            fwd, bwd = times[name]["forward"], times[name]["backward"]
            total = [a + b for a, b in zip(fwd, bwd)]
            row[name] = {**_summary(total), "forward_median_ms": statistics.median(fwd),
                         "backward_median_ms": statistics.median(bwd), "times_ms": total, "training": training}
            if memory:
                row[name]["peak_mib"] = peak_allocated_bytes(lambda step=steps_of[name]: _run_step(step)) / 2**20
        results.append({"in": n_in, "out": n_out, "input_grad": index > 0, "variants": row, "check": check,
                        "ratios": {key: _ratio(row, *key.split("/")) for key in
                                   ("dcls/spikelab", "dcls-paper/spikelab", "spikelab-conv/spikelab",
                                    "dcls-eval/spikelab-eval")}})
    goals = {}
    for row in results:
        for key, (op, target) in DELAY_GOALS.items():
            ratio = row["ratios"][key]
            goals[f"{row['in']}->{row['out']} {key} {op} {target}"] = None if ratio is None else ratio >= target
    sigma = DelayedLinear(1, 1, max_delay=max_delay).sigma_init
    return {
        "config": {"rounds": rounds, "warmup": warmup, "threads": threads, "batch": batch, "steps": steps,
                   "max_delay": max_delay, "taps": max_delay + 1, "layers": [list(size) for size in layers],
                   "input_rate": input_rate, "seed": seed, "sigma": sigma},
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine(),
                    "load_average_1min": [load_before, os.getloadavg()[0]]},
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in ("torch", "dcls")}},
        "layers": results,
        "missing": missing,
        "goals": goals,
        "notes": [
            "times: wall-clock ms of one forward + backward (eval rows: forward only, no_grad), variants interleaved "
            "in one process; load_average_1min (before, after) shows how busy the machine was",
            "dcls/spikelab > 1 means spikelab is faster; peak_mib: peak of torch allocations during one step",
            "delay semantics: spikelab delay d = DCLS M//2 - p (DCLS positions run the other way); same kernel, "
            "spikelab's taps are DCLS's flipped in time; DCLS adds 1e-7 to the normaliser",
        ] + [f"{name} skipped: {why}" for name, why in missing.items()],
    }


def format_delays_table(result: dict) -> str:
    """A plain-text table of :func:`run_delays_benchmark`'s result."""
    cfg = result["config"]
    versions = result["versions"]
    load = result["machine"]["load_average_1min"]
    lines = [f"delay layers, batch {cfg['batch']}, T={cfg['steps']}, {cfg['taps']} taps (max_delay "
             f"{cfg['max_delay']}), sigma {cfg['sigma']:.3g}, {cfg['threads']} threads, {cfg['rounds']} rounds (torch "
             f"{versions['torch']}, dcls {versions['dcls']}, load average {load[0]:.2f} -> {load[1]:.2f})"]
    for layer in result["layers"]:
        rows = layer["variants"]
        base = rows["spikelab"]["median_ms"]
        needs = " (input needs its gradient)" if layer["input_grad"] else ""
        lines += ["", f"{layer['in']} -> {layer['out']}{needs}",
                  f"{'variant':<15}{'fwd ms':>8}{'bwd ms':>8}{'total ms':>10}{'IQR':>16}{'min':>8}{'x spikelab':>11}"
                  f"{'peak MiB':>10}"]
        for name, v in rows.items():
            q1, q3 = v["iqr_ms"]
            ratio = f"{v['median_ms'] / base:.2f}" if v["training"] else ""
            peak = f"{v['peak_mib']:.1f}" if "peak_mib" in v else ""
            lines.append(f"{name:<15}{v['forward_median_ms']:>8.1f}{v['backward_median_ms']:>8.1f}"
                         f"{v['median_ms']:>10.1f}{f'{q1:.1f}-{q3:.1f}':>16}{v['min_ms']:>8.1f}{ratio:>11}{peak:>10}")
        if layer["ratios"]["dcls-eval/spikelab-eval"] is not None:
            lines.append(f"eval: dcls-eval / spikelab-eval = {layer['ratios']['dcls-eval/spikelab-eval']:.2f}")
        for pair, check in layer["check"].items():
            diffs = ", ".join(f"{key[len('max_abs_diff_'):]} {value:.1e}" for key, value in check.items()
                              if key.startswith("max_abs_diff_"))
            lines.append(f"check {pair}: max |diff| {diffs} -> {'agree' if check['agree'] else 'DIFFER'}")
    for key, met in result["goals"].items():
        lines.append(f"goal {key}: " + ("n/a (dcls missing)" if met is None else ("met" if met else "NOT met")))
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)
