"""Learnable delays: spikelab's DelayedLinear against the DCLS authors' ``Dcls1d`` (:func:`run_delays_benchmark`)."""
from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from spikelab.delays import SIGMA_OFFSET
from spikelab.training.memory import peak_allocated_bytes
from .lif import INPUT_RATE
from .timing import (check_rounds, machine_state, package_version, median_ratio, summarize_times, time_interleaved,
                     torch_threads, training_step, versions)

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
    if package_version("dcls") is None:
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
        return training_step(module, lambda: (forward(x)[:grad_out.shape[0]] * grad_out).sum())

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
    check_rounds(rounds)
    with torch_threads(threads):
        return _run_delays(rounds, warmup, threads, batch, steps, max_delay, tuple(map(tuple, layers)), input_rate,
                           seed, memory)


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
        times = time_interleaved(steps_of, rounds, warmup)
        row = {}
        for name, (module, forward, training) in variants.items():
            row[name] = {**summarize_times(times[name]["forward"], times[name]["backward"]), "training": training}
            if memory:
                row[name]["peak_mib"] = peak_allocated_bytes(lambda step=steps_of[name]: _run_step(step)) / 2**20
        results.append({"in": n_in, "out": n_out, "input_grad": index > 0, "variants": row, "check": check,
                        "ratios": {key: median_ratio(row, *key.split("/")) for key in
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
        "machine": machine_state(load_before),
        "versions": versions("torch", "dcls"),
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
