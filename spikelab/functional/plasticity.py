r"""Spike-timing-dependent plasticity (STDP) as pure functions of (spikes, state, parameters).

Tensors are time-first: spikes ``(T, B, N)`` (0/1, or weighted), one step ``(B, N)``; weights ``(N_post, N_pre)``
as in ``nn.Linear`` (or ``(B, N_post, N_pre)``, one matrix per sample). Times are in steps.

**Traces.** Each neuron keeps a trace of its spikes. After step ``t`` (with ``s[t]`` its spikes)::

    all-to-all:  x[t] = decay * (x[t-1] + increment * s[t])
    nearest:     x[t] = decay * (x[t-1] * (1 - [s[t] > 0]) + increment * [s[t] > 0])

so ``x[t-1]``, the trace *before* step ``t``, is the sum over earlier spikes ``t' < t`` of
``increment * decay**(t - t')`` (all-to-all: every earlier spike; nearest: only the latest one).
``decay = exp(-1 / tau)`` for a time constant ``tau`` in steps. This is NALSM's trace ``x <- m * (x + a * s)``
(``decay = m``, ``increment = a``; ``reference/algorithms.md`` section 3.4).

**Pair rule.** A spike pairs with the trace of the other side *before* its own step, so spikes of the same step
do not pair, and a pre spike at ``t0`` and a post spike at ``t0 + dt`` (increment 1) give::

    dt > 0 (pre before post):  LTP = a_plus  * exp(-dt / tau_plus)
    dt < 0 (post before pre):  LTD = a_minus * exp(-|dt| / tau_minus)

For a whole sequence (weights frozen during it) both terms are sums of products over all steps and samples at
once (:func:`stdp_terms`), not a loop over steps and synapses::

    LTP[i, j] = sum_{t, b} s_post[t, b, i] * a_plus[t, b, j]  * x_pre[t-1, b, j]
    LTD[i, j] = sum_{t, b} x_post[t-1, b, i] * a_minus[t, b, j] * s_pre[t, b, j]

Each is a spike-weighted outer sum (:func:`spike_outer_sum`; on the CPU a compiled kernel that visits only the
nonzero spikes). With all-to-all pairing and rates that do not vary by presynaptic neuron, LTP is regrouped by
presynaptic spike (``x_pre`` is never formed: a reversed scan of the post spikes gives, for each step, the later
post spikes it pairs with), and :func:`stdp_update` adds an additive rule's ``LTP - LTD`` in one pass.

``a_plus`` / ``a_minus`` are floats or tensors broadcastable to ``(T, B, N_pre)``: a rate per step (a decaying
learning rate, an astrocyte's state), per sample and step (a reward), or per presynaptic neuron (NALSM swaps the
signs for inhibitory presynaptic neurons). ``reduce`` sets the batch semantics: ``"sum"`` / ``"mean"`` over the
batch (one weight matrix shared by all samples), ``"none"`` (one term per sample, for independent weights).

**Weight dependence and bounds.** ``w_new = clamp(w + f_plus(w) * LTP - f_minus(w) * LTD, w_min, w_max)``::

    additive:        f_plus = 1,              f_minus = 1
    multiplicative:  f_plus = w_max - w,      f_minus = w - w_min      (soft bounds)

``w_min`` / ``w_max`` are floats or tensors broadcastable to the weights, e.g. one bound per presynaptic type
(:func:`bounds_by_type`). :func:`apply_stdp` evaluates ``f`` once per sequence (the weights the sequence ran
with); :func:`stdp_online` changes the weights every step, LTP then LTD, clamped after each, as NEST's
``stdp_synapse`` and NALSM do.

Parameters (:class:`STDPParameters`):

=====================  ===========  ==============  ==============================================================
name                   unit         default         meaning
=====================  ===========  ==============  ==============================================================
``tau_plus``           steps        20.0            decay time of the presynaptic trace (LTP window)
``tau_minus``          steps        20.0            decay time of the postsynaptic trace (LTD window)
``a_plus``             weight       0.01            LTP per pairing at ``dt -> 0+`` (multiplicative: fraction of
                                                    ``w_max - w``); float or tensor (see above)
``a_minus``            weight       0.01            LTD per pairing at ``dt -> 0-`` (multiplicative: fraction of
                                                    ``w - w_min``); float or tensor
``pairing``            --           ``"all"``       ``"all"`` (all-to-all) or ``"nearest"`` (nearest neighbour)
``weight_dependence``  --           ``"additive"``  ``"additive"`` or ``"multiplicative"``
``w_min``              weight       0.0             lower hard bound (float or tensor broadcastable to ``w``)
``w_max``              weight       1.0             upper hard bound (float or tensor broadcastable to ``w``)
=====================  ===========  ==============  ==============================================================

Example::

    >>> import torch
    >>> from spikelab.functional.plasticity import STDPParameters, apply_stdp, stdp_terms
    >>> pre = (torch.rand(100, 8, 50) < 0.05).float()      # (T, B, N_pre) input spikes
    >>> post = (torch.rand(100, 8, 20) < 0.05).float()     # (T, B, N_post) output spikes
    >>> p = STDPParameters(tau_plus=20.0, tau_minus=20.0, a_plus=0.01, a_minus=0.012)
    >>> ltp, ltd, state = stdp_terms(pre, post, p)           # both (20, 50), summed over time and batch
    >>> w = apply_stdp(torch.full((20, 50), 0.5), ltp, ltd, p)
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from spikelab.errors import ConfigError
from spikelab.functional.lif import _broadcast, _flat, leaky_integrate

PAIRINGS = ("all", "nearest")
WEIGHT_DEPENDENCES = ("additive", "multiplicative")
REDUCTIONS = ("sum", "mean", "none")
SPARSE_DENSITY = 0.25  # below this fraction of nonzero spikes the CPU kernel beats a dense matrix product
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


class STDPParameters(NamedTuple):
    """Parameters of the pair rule; units, meanings and defaults are tabulated in
    :mod:`spikelab.functional.plasticity`."""

    tau_plus: float = 20.0
    tau_minus: float = 20.0
    a_plus: float | Tensor = 0.01
    a_minus: float | Tensor = 0.01
    pairing: str = "all"
    weight_dependence: str = "additive"
    w_min: float | Tensor = 0.0
    w_max: float | Tensor = 1.0


class STDPState(NamedTuple):
    """Traces after the last step, ``(B, N_pre)`` and ``(B, N_post)``: what the next step's spikes pair with."""

    pre_trace: Tensor
    post_trace: Tensor


def _real(name: str, value, low: float = -math.inf, strict_low: bool = False) -> None:
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise ConfigError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ConfigError(f"{name} must be a number or a tensor, got {value!r}")
    if value < low or (strict_low and value == low):
        raise ConfigError(f"{name} must be {'>' if strict_low else '>='} {low}, got {value!r}")


def check_stdp_parameters(p: STDPParameters) -> STDPParameters:
    """``p`` validated: a ConfigError that names the bad field and its allowed values."""
    if not isinstance(p, STDPParameters):
        raise ConfigError(f"expected STDPParameters, got {type(p).__name__}")
    for name in ("tau_plus", "tau_minus"):
        value = getattr(p, name)
        _real(name, value, 0.0, strict_low=True)
        if isinstance(value, Tensor):
            raise ConfigError(f"{name} must be a number of steps (a float > 0), got a tensor")
    _real("a_plus", p.a_plus)
    _real("a_minus", p.a_minus)
    if p.pairing not in PAIRINGS:
        raise ConfigError(f"pairing must be one of {', '.join(PAIRINGS)}, got {p.pairing!r}")
    if p.weight_dependence not in WEIGHT_DEPENDENCES:
        raise ConfigError(f"weight_dependence must be one of {', '.join(WEIGHT_DEPENDENCES)}, "
                          f"got {p.weight_dependence!r}")
    _real("w_min", p.w_min)
    _real("w_max", p.w_max)
    if not isinstance(p.w_min, Tensor) and not isinstance(p.w_max, Tensor) and p.w_min > p.w_max:
        raise ConfigError(f"w_min ({p.w_min}) must not exceed w_max ({p.w_max})")
    return p


def trace_decay(tau: float) -> float:
    """The per-step trace decay ``exp(-1 / tau)`` of a finite time constant ``tau`` > 0 in steps."""
    _real("tau", tau, 0.0, strict_low=True)
    if not math.isfinite(tau):
        raise ConfigError(f"tau must be a finite number of steps, got {tau!r}")
    return math.exp(-1.0 / tau)


def _check_pairing(pairing: str) -> None:
    if pairing not in PAIRINGS:
        raise ConfigError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")


def trace_step(trace: Tensor | None, spikes_t: Tensor, decay: float | Tensor, increment: float | Tensor = 1.0,
               pairing: str = "all") -> Tensor:
    """One step of the trace: ``decay * (x + increment * s)`` (all-to-all) or, where ``s > 0``,
    ``decay * increment`` (nearest).

    Args:
        trace: the trace after the previous step ``(B, N)``, or None for zeros.
        spikes_t: this step's spikes ``(B, N)``.
        decay: per-step decay in (0, 1), float or tensor broadcastable to ``(B, N)`` (one per neuron, say).
        increment: what one spike adds (all-to-all) or sets (nearest), before the decay; float or tensor.
        pairing: ``"all"`` or ``"nearest"``.

    Returns:
        The trace after this step, ``(B, N)``: what the next step's spikes pair with.
    """
    _check_pairing(pairing)
    trace = torch.zeros_like(spikes_t) if trace is None else trace
    if pairing == "all":
        return decay * (trace + increment * spikes_t)
    fired = spikes_t > 0
    return decay * torch.where(fired, increment * torch.ones_like(trace), trace)


def trace_scan(spikes: Tensor, decay: float | Tensor, increment: float | Tensor = 1.0, pairing: str = "all",
               initial: Tensor | None = None) -> Tensor:
    """The trace after every step of a whole sequence, in one compiled scan on the CPU (a loop of
    :func:`trace_step` elsewhere, the reference).

    Args:
        spikes: ``(T, B, N)`` spikes (nearest pairing counts any nonzero value as one spike).
        decay, increment, pairing: as :func:`trace_step` (tensors broadcastable to one step, ``(B, N)``).
        initial: the trace before the first step ``(B, N)`` (carried from an earlier sequence), or None for zeros.

    Returns:
        ``x`` ``(T, B, N)``, ``x[t]`` the trace after step ``t`` (what step ``t + 1`` pairs with).
    """
    _check_pairing(pairing)
    if not isinstance(spikes, Tensor) or spikes.dim() < 2:
        raise ConfigError("spikes must be a tensor shaped (T, B, ...neurons)")
    return _scan(spikes if spikes.is_floating_point() else spikes.float(), decay, increment, pairing, initial)


def _scan(spikes: Tensor, decay, increment, pairing: str, initial: Tensor | None = None, reverse: bool = False,
          exclusive: bool = False) -> Tensor:
    """:func:`trace_scan`, optionally from the last step back (``reverse``) and giving each step's trace before
    its own spike (``exclusive``: what the step pairs with)."""
    if not _kernel_ok(spikes):
        ordered = spikes.flip(0) if reverse else spikes
        traces, trace = [], initial
        for spikes_t in ordered:
            before = torch.zeros_like(spikes_t) if trace is None else trace
            trace = trace_step(trace, spikes_t, decay, increment, pairing)
            traces.append(before if exclusive else trace)
        out = torch.stack(traces) if traces else torch.zeros_like(spikes)
        return out.flip(0) if reverse else out
    from spikelab.functional import _plasticity_kernels  # numba loads on first use only

    nearest = pairing == "nearest"
    step_shape = spikes.shape[1:]
    per_neuron = [_flat(_broadcast(name, value, step_shape, spikes)) for name, value in
                  (("decay", decay), ("increment", increment), ("initial", 0.0 if initial is None else initial))]
    out = torch.empty_like(spikes)
    _plasticity_kernels.trace_scan(_flat((spikes != 0).to(spikes.dtype) if nearest else spikes, True), *per_neuron,
                                   _NUMPY[spikes.dtype](nearest), reverse, exclusive, _flat(out, True))
    return out


def _kernel_ok(t: Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def trace_before(traces: Tensor, initial: Tensor | None = None) -> Tensor:
    """``x[t-1]`` for every step (``x[-1] = initial``, zeros when None): the trace each step's spikes pair with."""
    first = torch.zeros_like(traces[:1]) if initial is None else initial.expand_as(traces[0]).unsqueeze(0)
    return torch.cat([first, traces[:-1]])


def _check_reduce(reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise ConfigError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")


def _use_kernel(spikes: Tensor, reduce: str) -> bool:
    if not _kernel_ok(spikes):
        return False
    if reduce == "none":   # per sample: one path whatever the other samples hold (a sample's result stays bitwise)
        return True
    sample = spikes.reshape(-1)[::97]   # the density, estimated from every 97th entry
    return sample.numel() > 0 and torch.count_nonzero(sample).item() < SPARSE_DENSITY * sample.numel()


def spike_outer_sum(spikes: Tensor, dense: Tensor, reduce: str = "sum") -> Tensor:
    """``sum_{t, b} spikes[t, b, :]^T (outer) dense[t, b, :]``: the matrix product every pair term reduces to.

    On the CPU a compiled kernel visits only the nonzero entries of ``spikes``, summing over time in order; it
    runs when under 25 % of them are nonzero, and always for ``reduce="none"`` (so each sample's result is the
    same, bit for bit, whatever the rest of the batch holds). Elsewhere, one matrix product (``bmm`` per sample).

    Args:
        spikes: ``(T, B, n)``, mostly zeros (spikes, possibly weighted).
        dense: ``(T, B, m)`` (traces).
        reduce: ``"sum"`` or ``"mean"`` over the batch -> ``(n, m)``; ``"none"`` -> ``(B, n, m)``.
    """
    _check_reduce(reduce)
    if spikes.shape[:2] != dense.shape[:2] or spikes.dim() != 3 or dense.dim() != 3:
        raise ConfigError(f"spikes {tuple(spikes.shape)} and traces {tuple(dense.shape)} must both be (T, B, N) "
                          "with the same T and B")
    steps, batch, n = spikes.shape
    m = dense.shape[2]
    dtype = torch.promote_types(spikes.dtype, dense.dtype)
    spikes, dense = spikes.to(dtype), dense.to(dtype)
    if _use_kernel(spikes, reduce):
        from spikelab.functional import _plasticity_kernels  # numba loads on first use only

        out = torch.zeros(batch if reduce == "none" else 1, n, m, dtype=dtype)
        _plasticity_kernels.spike_outer_sum(_rows(spikes), _rows(dense), batch, out.numpy())
        out = out if reduce == "none" else out[0]
    elif reduce == "none":
        out = torch.bmm(spikes.permute(1, 2, 0), dense.transpose(0, 1))
    else:
        out = spikes.reshape(steps * batch, n).T @ dense.reshape(steps * batch, m)
    return out / batch if reduce == "mean" else out


def _rows(t: Tensor) -> np.ndarray:
    """A ``(T * B, N)`` numpy view of a CPU tensor (copied only when not contiguous)."""
    return t.detach().contiguous().numpy().reshape(-1, t.shape[-1])


def _scaled(rate, tensor: Tensor) -> Tensor:
    """``tensor`` times a tensor rate (broadcast to it), or unchanged for a float rate (applied after the sum)."""
    if not isinstance(rate, Tensor):
        return tensor
    try:
        return tensor * rate.to(tensor.dtype)
    except RuntimeError:
        raise ConfigError(f"a rate of shape {tuple(rate.shape)} does not broadcast to (T, B, N_pre) "
                          f"= {tuple(tensor.shape)}") from None


def _after_sum(rate, total: Tensor) -> Tensor:
    return total if isinstance(rate, Tensor) else rate * total


def _check_sequences(pre_spikes: Tensor, post_spikes: Tensor) -> None:
    if pre_spikes.dim() != 3 or post_spikes.dim() != 3 or pre_spikes.shape[:2] != post_spikes.shape[:2]:
        raise ConfigError(f"pre spikes {tuple(pre_spikes.shape)} and post spikes {tuple(post_spikes.shape)} must "
                          "be (T, B, N_pre) and (T, B, N_post) with the same T and B")


def _per_step(rate) -> bool:
    """A rate that may vary by step and sample but not by presynaptic neuron (it can move to the post side)."""
    return not isinstance(rate, Tensor) or rate.dim() == 0 or rate.shape[-1] == 1


def stdp_terms(pre_spikes: Tensor, post_spikes: Tensor, p: STDPParameters, state: STDPState | None = None,
               reduce: str = "sum") -> tuple[Tensor, Tensor, STDPState]:
    """LTP and LTD of a whole sequence (weights frozen during it): trace scans and spike-weighted outer sums.

    All-to-all pairing with rates that do not vary by presynaptic neuron regroups LTP by presynaptic spike
    (``sum_t s_post[t] x_pre[t-1] = sum_t s_pre[t] y_post[t]``, ``y`` the trace of the *later* post spikes, a
    reversed scan), so both terms are sums over the presynaptic spikes and no presynaptic trace is formed.

    Args:
        pre_spikes: ``(T, B, N_pre)`` presynaptic spikes, as they arrive at the synapses.
        post_spikes: ``(T, B, N_post)`` postsynaptic spikes.
        p: :class:`STDPParameters`; ``a_plus`` / ``a_minus`` floats or tensors broadcastable to ``(T, B, N_pre)``.
        state: :class:`STDPState` before the first step (traces carried from an earlier sequence), or None.
        reduce: ``"sum"``, ``"mean"`` (over the batch) or ``"none"`` (per sample).

    Returns:
        ``(ltp, ltd, state)``: ``(N_post, N_pre)`` each (``(B, N_post, N_pre)`` for ``"none"``), non-negative for
        positive rates (:func:`apply_stdp` adds ``ltp`` and subtracts ``ltd``), and the traces after the last step.
    """
    p = check_stdp_parameters(p)
    _check_sequences(pre_spikes, post_spikes)
    _check_reduce(reduce)
    if p.pairing == "all" and _per_step(p.a_plus) and _per_step(p.a_minus):
        return _all_to_all_terms(pre_spikes, post_spikes, p, state, reduce, combine=False)
    pre_initial, post_initial = (None, None) if state is None else state
    pre_traces = trace_scan(pre_spikes, trace_decay(p.tau_plus), 1.0, p.pairing, pre_initial)
    post_traces = trace_scan(post_spikes, trace_decay(p.tau_minus), 1.0, p.pairing, post_initial)
    ltp = spike_outer_sum(post_spikes, _scaled(p.a_plus, trace_before(pre_traces, pre_initial)), reduce)
    ltd = spike_outer_sum(_scaled(p.a_minus, pre_spikes), trace_before(post_traces, post_initial), reduce)
    return _after_sum(p.a_plus, ltp), _after_sum(p.a_minus, ltd.transpose(-1, -2)), STDPState(pre_traces[-1],
                                                                                              post_traces[-1])


def _all_to_all_terms(pre_spikes: Tensor, post_spikes: Tensor, p: STDPParameters, state: STDPState | None,
                      reduce: str, combine: bool) -> tuple[Tensor, Tensor | None, STDPState]:
    """All-to-all terms as sums over presynaptic spikes (see :func:`stdp_terms`); ``combine``: one sum,
    ``ltp - ltd``, returned as ``(change, None, state)``. Float rates ride in the scans as increments."""
    d_plus, d_minus = trace_decay(p.tau_plus), trace_decay(p.tau_minus)
    pre_initial, post_initial = (None, None) if state is None else state
    tensor_plus, tensor_minus = isinstance(p.a_plus, Tensor), isinstance(p.a_minus, Tensor)
    weighted_post = post_spikes * p.a_plus if tensor_plus else post_spikes        # rate of each LTP pair's post step
    # sum_{t' > t} d^(t'-t) a+ s_post[t']: the later post spikes a pre spike at t pairs with
    later = _scan(weighted_post, d_plus, 1.0 if tensor_plus else p.a_plus, "all", reverse=True, exclusive=True)
    scale = 1.0 if tensor_minus else p.a_minus
    initial = None if post_initial is None else post_initial.to(post_spikes) * scale
    earlier = _scan(post_spikes, d_minus, scale, "all", initial, exclusive=True)  # a- x_post[t-1]
    if tensor_minus:
        earlier = earlier * p.a_minus
    if combine:
        terms = [spike_outer_sum(pre_spikes, later - earlier, reduce).transpose(-1, -2)]
    else:
        terms = [spike_outer_sum(pre_spikes, dense, reduce).transpose(-1, -2) for dense in (later, earlier)]
    steps = torch.arange(pre_spikes.shape[0], dtype=pre_spikes.dtype, device=pre_spikes.device)
    carried = torch.zeros_like(pre_spikes[0]) if pre_initial is None else pre_initial.to(pre_spikes)
    if pre_initial is not None:   # this sequence's post spikes pair with the carried presynaptic trace d^t x[-1]
        reach = torch.tensordot(d_plus ** steps, weighted_post, dims=1) * (1.0 if tensor_plus else p.a_plus)
        pairs = reach.unsqueeze(2) * carried.unsqueeze(1)
        terms[0] = terms[0] + (pairs if reduce == "none" else pairs.sum(0) / (len(carried) if reduce == "mean" else 1))
    last = len(steps)   # the traces after the last step: x[T-1] = d^T x[-1] + sum_t d^(T-t) s[t]
    traces = [d ** last * (torch.zeros_like(spikes[0]) if start is None else start.to(spikes))
              + torch.tensordot(d ** (last - steps), spikes, dims=1)
              for d, spikes, start in ((d_plus, pre_spikes, pre_initial), (d_minus, post_spikes, post_initial))]
    new_state = STDPState(*traces)
    return (terms[0], None, new_state) if combine else (terms[0], terms[1], new_state)


def stdp_update(w: Tensor, pre_spikes: Tensor, post_spikes: Tensor, p: STDPParameters,
                state: STDPState | None = None, reduce: str = "sum") -> tuple[Tensor, STDPState]:
    """The weights after one sequence that ran with ``w``: ``apply_stdp(w, *stdp_terms(...))``.

    Additive all-to-all STDP with rates per step and sample takes the fastest exact route: ``LTP - LTD`` as one
    sum over the presynaptic spikes. Arguments as :func:`stdp_terms` and :func:`apply_stdp`; returns
    ``(w_new, state)``.
    """
    p = check_stdp_parameters(p)
    if p.weight_dependence == "additive" and p.pairing == "all" and _per_step(p.a_plus) and _per_step(p.a_minus):
        _check_sequences(pre_spikes, post_spikes)
        _check_reduce(reduce)
        change, _, state = _all_to_all_terms(pre_spikes, post_spikes, p, state, reduce, combine=True)
        return clip_weights(w + change.to(w.dtype), p.w_min, p.w_max), state
    ltp, ltd, state = stdp_terms(pre_spikes, post_spikes, p, state, reduce)
    return apply_stdp(w, ltp.to(w.dtype), ltd.to(w.dtype), p), state


def stdp_step(pre_t: Tensor, post_t: Tensor, p: STDPParameters, state: STDPState | None = None,
              reduce: str = "sum") -> tuple[Tensor, Tensor, STDPState]:
    """LTP and LTD of one step ``(B, N_pre)``, ``(B, N_post)``, and the traces after it.

    ``a_plus`` / ``a_minus`` may be tensors broadcastable to ``(B, N_pre)`` (this step's rates). The result
    equals :func:`stdp_terms` of a one-step sequence; summed over steps it equals :func:`stdp_terms` of the whole
    sequence (up to rounding).
    """
    p = check_stdp_parameters(p)
    _check_reduce(reduce)
    pre_trace, post_trace = (torch.zeros_like(pre_t), torch.zeros_like(post_t)) if state is None else state
    if reduce == "none":
        ltp = post_t.unsqueeze(2) * (p.a_plus * pre_trace).unsqueeze(1)
        ltd = post_trace.unsqueeze(2) * (p.a_minus * pre_t).unsqueeze(1)
    else:
        ltp = post_t.T @ (p.a_plus * pre_trace)
        ltd = post_trace.T @ (p.a_minus * pre_t)
        if reduce == "mean":
            ltp, ltd = ltp / pre_t.shape[0], ltd / pre_t.shape[0]
    new_state = STDPState(trace_step(pre_trace, pre_t, trace_decay(p.tau_plus), 1.0, p.pairing),
                          trace_step(post_trace, post_t, trace_decay(p.tau_minus), 1.0, p.pairing))
    return ltp, ltd, new_state


def weight_factors(w: Tensor, p: STDPParameters) -> tuple[Tensor | float, Tensor | float]:
    """``(f_plus(w), f_minus(w))``: 1 and 1 (additive) or ``w_max - w`` and ``w - w_min`` (multiplicative)."""
    if p.weight_dependence == "additive":
        return 1.0, 1.0
    return p.w_max - w, w - p.w_min


def clip_weights(w: Tensor, w_min: float | Tensor, w_max: float | Tensor) -> Tensor:
    """``w`` clamped to its hard bounds (floats or tensors broadcastable to ``w``: bounds per synapse type)."""
    if isinstance(w_min, Tensor) or isinstance(w_max, Tensor):
        return torch.clamp(w, torch.as_tensor(w_min, dtype=w.dtype, device=w.device),
                           torch.as_tensor(w_max, dtype=w.dtype, device=w.device))
    return w.clamp(w_min, w_max)


def apply_stdp(w: Tensor, ltp: Tensor, ltd: Tensor, p: STDPParameters) -> Tensor:
    """``clamp(w + f_plus(w) * ltp - f_minus(w) * ltd, w_min, w_max)`` (see the module docstring).

    ``w`` ``(N_post, N_pre)`` with summed terms, or ``(B, N_post, N_pre)`` with per-sample terms; the weight
    dependence is evaluated at ``w``, the weights the sequence ran with.
    """
    f_plus, f_minus = weight_factors(w, p)
    return clip_weights(w + f_plus * ltp - f_minus * ltd, p.w_min, p.w_max)


def stdp_online(w: Tensor, pre_spikes: Tensor, post_spikes: Tensor, p: STDPParameters,
                state: STDPState | None = None, reduce: str = "sum",
                record: bool = False) -> tuple[Tensor, STDPState, Tensor | None]:
    """Change the weights every step: LTP of the step's post spikes, clamp, LTD of its pre spikes, clamp.

    The event-driven semantics of NEST's ``stdp_synapse`` (each facilitation and depression sees the weight the
    previous one left, and is clipped) and of NALSM. Loops over steps (vectorised over synapses); use
    :func:`stdp_terms` with :func:`apply_stdp` when the weights may stay frozen during a sequence.

    Args:
        w: ``(N_post, N_pre)`` (``reduce`` ``"sum"`` / ``"mean"``) or ``(B, N_post, N_pre)`` (``"none"``).
        pre_spikes, post_spikes, p, state, reduce: as :func:`stdp_terms` (rates broadcast to ``(T, B, N_pre)``).
        record: also return the weights after every step, ``(T, *w.shape)``.

    Returns:
        ``(w, state, trajectory)``: the final weights, the traces after the last step, the per-step weights or None.
    """
    p = check_stdp_parameters(p)
    trajectory = []
    for t in range(pre_spikes.shape[0]):
        step_p = p._replace(a_plus=_rate_at(p.a_plus, t), a_minus=_rate_at(p.a_minus, t))
        ltp, ltd, state = stdp_step(pre_spikes[t], post_spikes[t], step_p, state, reduce)
        f_plus, _ = weight_factors(w, p)
        w = clip_weights(w + f_plus * ltp, p.w_min, p.w_max)
        _, f_minus = weight_factors(w, p)
        w = clip_weights(w - f_minus * ltd, p.w_min, p.w_max)
        if record:
            trajectory.append(w)
    return w, state, torch.stack(trajectory) if record else None


def _rate_at(rate, t: int):
    """Step ``t`` of a rate broadcastable to ``(T, B, N_pre)``: a tensor with a time axis is indexed, the rest
    (floats, tensors without one) hold for every step."""
    if isinstance(rate, Tensor) and rate.dim() == 3:
        return rate[t if rate.shape[0] > 1 else 0]
    return rate


def discounted_reward(reward: Tensor, decay: float) -> Tensor:
    """``R[t] = sum_{t' >= t} decay**(t' - t) * r[t']``: each step's reward-to-go, ``(T, B)`` from ``(T, B)``.

    Weighting each step's pair terms by ``R[t]`` (``a_plus * R``, ``a_minus * R``) gives exactly
    ``sum_t r[t] * e[t]`` with the eligibility trace ``e[t] = decay * e[t-1] + dw[t]`` (Florian 2007's MSTDPET;
    ``decay = 0`` is MSTDP) without keeping a ``(B, N_post, N_pre)`` eligibility trace.
    """
    if not 0 <= decay <= 1:
        raise ConfigError(f"the eligibility decay must be in [0, 1], got {decay!r}")
    if decay == 0:
        return reward
    if decay == 1:      # no discount: the total reward from t on
        return reward.flip(0).cumsum(0).flip(0)
    return leaky_integrate(reward.flip(0), decay).flip(0)


def bounds_by_type(types: Tensor, lows, highs) -> tuple[Tensor, Tensor]:
    """Hard bounds per presynaptic type: ``(w_min, w_max)``, each ``(1, N_pre)``, broadcastable to the weights.

    Args:
        types: ``(N_pre,)`` integer type of each presynaptic neuron (e.g. 0 excitatory, 1 inhibitory, 2 input).
        lows, highs: one bound per type (sequences or tensors).

    Example (NALSM's bounds)::

        >>> w_min, w_max = bounds_by_type(types, lows=[0.0, -3.0, -3.0], highs=[3.0, 0.0, 3.0])
    """
    lows, highs = torch.as_tensor(lows, dtype=torch.float32), torch.as_tensor(highs, dtype=torch.float32)
    if types.dtype.is_floating_point or lows.shape != highs.shape or lows.dim() != 1:
        raise ConfigError("bounds_by_type takes integer types (N_pre,) and one low and one high bound per type")
    if types.numel() and (types.min() < 0 or types.max() >= len(lows)):
        raise ConfigError(f"types must be in 0..{len(lows) - 1} (one bound per type), got "
                          f"{types.min().item()}..{types.max().item()}")
    if (lows > highs).any():
        raise ConfigError(f"every low bound must not exceed its high bound, got lows {lows.tolist()}, "
                          f"highs {highs.tolist()}")
    return lows[types].unsqueeze(0), highs[types].unsqueeze(0)
