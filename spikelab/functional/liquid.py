r"""NALSM's liquid: LIF neurons with a latest-spike exponential synapse, STDP whose depression rate is the state of
a global astrocyte (``reference/algorithms.md`` §3.2, §3.4, §3.5). Pure functions; the torch loop here
(:func:`liquid_reference`) is the reference that the compiled kernel (:mod:`._liquid_kernels`, used by
:func:`liquid_run`) is tested against.

**Neuron** (every unit, input and liquid; ``dt = 1`` ms, one step). In this order::

    s_i    = [V_i >= V_th] * [r_i <= 0]                          spikes
    V_i   <- V_i (1 - s_i)                                       reset to 0
    u_j   <- 1 / tau_u if s_j else u_j exp(-1 / tau_u)           u_j = k(dt_j), dt_j steps since j's latest spike
    V_i   <- V_i - V_i / tau_v + sum_j W_ij u_j + I_ext,i + b
    r_i   <- t_rfr if s_i else max(r_i - 1, 0)                   refractory counter

so the synaptic current is the kernel ``k(d) = exp(-d / tau_u) / tau_u`` of the **latest** presynaptic spike only
(no sum over older spikes; NALSM's per-synapse timer ``dt``, reset to 0 by a spike and advanced after the membrane
update). Input units receive no synapses: a spike of input channel ``c`` at step ``t`` adds
``I_ext = input_current * x[t, c]`` (100) to its unit, which then fires at ``t + 1`` unless refractory; the
membrane integrates during the refractory period, only firing is blocked (as NALSM does). NALSM caps ``dt`` at
100 ms and starts each sample with ``dt = 20`` (a current of ``k(20) = 2e-9`` per unit weight); here a unit that
has not spiked yet has ``u = 0`` and ``u`` keeps decaying (differences below 1e-7 of the threshold).

**STDP with astrocyte-controlled depression** (after the neuron step, on every input -> liquid and liquid ->
liquid synapse ``j -> i``, with ``x`` the traces *before* this step's update)::

    pre j excitatory or input:  W_ij <- W_ij + eta_+ x_j s_i - A x_i s_j
    pre j inhibitory:           W_ij <- W_ij - A x_j s_i + eta_+ x_i s_j
    W_ij <- clip(W_ij, w_min_j, w_max_j)                      bounds by presynaptic unit
    x_k  <- m (x_k + a s_k),   m = exp(-1 / trace_tau)         (spikelab.functional.plasticity.trace_step)

**Astrocyte** (one per liquid; its state ``A`` is the LTD rate; ``S_liquid``, ``S_input`` this step's spike
counts of liquid and input units)::

    A <- A + (w_A (S_liquid - S_input) + b_A - A) / tau_A

Without the astrocyte, ``A = eta_+`` (LSM + STDP). Then ``eta_+``, ``A``, ``w_A`` and ``b_A`` are multiplied by
``rate_decay`` (1 in NALSM's initialisation phase, 0.99 in its feature extraction). Each sample starts from rest:
``V = 0``, no spike, no refractory count, ``u = 0``, ``A = A_0``, rates at their initial values. The STDP traces
are the exception: NALSM resets every state above per sample but never its traces (``NALSM_CONSTRUCTOR_*.py``
has no reset op for ``STDP_TRACE``), so with ``carry_traces`` a sample of a sequential batch starts from the
traces the previous one ended with; the first sample of a run, and every sample of an independent batch, from 0.
(In NALSM's feature extraction a batch slot's traces carry over from the sample it ran before; an independent
batch here has no such predecessor.) With carried traces every synapse whose presynaptic unit still has a trace
is potentiated; the kernel keeps all synapses in place for the whole run then, so a sequential run of NALSM1000 on
200 x 20 ms of random input costs about what it costs without (1.77 against 1.71 ms per sample, kernel, 1 thread;
giving every unit's synapses their places again at each sample's start cost 10.4). The branching factor moved by
0.01-0.04 (``experiments/nalsm_branching.py``).

Neuron parameters (:class:`LiquidParameters`):

==================  ======  =======  ===================================================================
name                unit    default  meaning
==================  ======  =======  ===================================================================
``tau_v``           ms      64.0     membrane time constant (Euler step ``V / tau_v`` per ms)
``threshold``       --      20.0     firing threshold ``V_th`` (membrane units)
``refractory``      ms      2        steps after a spike in which the neuron cannot fire
``tau_u``           ms      1.0      synaptic time constant of ``k``
``bias``            --      0.0      current ``b`` added to every unit each step
``input_current``   --      100.0    what one input event adds to its input unit
==================  ======  =======  ===================================================================

Plasticity parameters (:class:`AstroSTDPParameters`):

===================  ======  =======  =================================================================
name                 unit    default  meaning
===================  ======  =======  =================================================================
``stdp``             --      True     False: weights fixed (the plain LSM)
``astrocyte``        --      True     False: ``A = eta_+`` (LSM + STDP without astrocyte)
``eta_plus``         weight  0.15     LTP rate ``eta_+``
``trace_increment``  --      0.1      ``a``: what a spike adds to its trace
``trace_tau``        ms      10.0     trace time constant (``m = exp(-1/10)``)
``astro_w``          1/spk   0.015    ``w_A`` (NALSM1000; 0.0075 for NALSM8000)
``astro_bias``       weight  0.15     ``b_A``
``astro_tau``        ms      100.0    ``tau_A``
``astro_initial``    weight  0.15     ``A_0``
``rate_decay``       --      1.0      factor on ``eta_+, A, w_A, b_A`` after each step
``carry_traces``     --      True     sequential batches: traces carry over between samples (NALSM)
===================  ======  =======  =================================================================

**Batches** (``batch_mode``): ``"independent"``: each sample starts from the given weights and learns alone
(NALSM's feature extraction, one liquid per sample); ``"sequential"``: the samples run one after the other and
each starts from the weights (and with ``carry_traces`` the STDP traces) the previous one left (NALSM's
initialisation). Both return the spikes and the
final weights: ``(B, n_synapses)`` independent (only with ``keep_weights``), ``(n_synapses,)`` sequential.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from spikelab.errors import ConfigError
from spikelab.functional.plasticity import trace_decay, trace_step

BATCH_MODES = ("independent", "sequential")
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


class LiquidParameters(NamedTuple):
    """The liquid neuron's parameters; units, meanings and defaults in :mod:`spikelab.functional.liquid`."""

    tau_v: float = 64.0
    threshold: float = 20.0
    refractory: int = 2
    tau_u: float = 1.0
    bias: float = 0.0
    input_current: float = 100.0


class AstroSTDPParameters(NamedTuple):
    """STDP and astrocyte parameters; units, meanings and defaults in :mod:`spikelab.functional.liquid`."""

    stdp: bool = True
    astrocyte: bool = True
    eta_plus: float = 0.15
    trace_increment: float = 0.1
    trace_tau: float = 10.0
    astro_w: float = 0.015
    astro_bias: float = 0.15
    astro_tau: float = 100.0
    astro_initial: float = 0.15
    rate_decay: float = 1.0
    carry_traces: bool = True


class LiquidOutput(NamedTuple):
    """What a run gives: liquid spikes ``(T, B, n_liquid)`` (uint8; None unless recorded), spike counts
    ``(B, n_liquid)``, the astrocyte state after each step ``(T, B)``, and the final weights (see the module
    docstring; None for a frozen liquid or an independent batch without ``keep_weights``)."""

    spikes: Tensor | None
    counts: Tensor
    astrocyte: Tensor
    weights: Tensor | None


def check_liquid_parameters(p: LiquidParameters) -> LiquidParameters:
    if not isinstance(p, LiquidParameters):
        raise ConfigError(f"expected LiquidParameters, got {type(p).__name__}")
    for name in ("tau_v", "tau_u"):
        if not getattr(p, name) > 0:
            raise ConfigError(f"{name} must be a positive time in ms, got {getattr(p, name)!r}")
    if isinstance(p.refractory, bool) or not isinstance(p.refractory, (int, np.integer)) or p.refractory < 0:
        raise ConfigError(f"refractory must be a whole number of ms (>= 0), got {p.refractory!r}")
    return p


def check_astro_parameters(p: AstroSTDPParameters) -> AstroSTDPParameters:
    if not isinstance(p, AstroSTDPParameters):
        raise ConfigError(f"expected AstroSTDPParameters, got {type(p).__name__}")
    for name in ("trace_tau", "astro_tau"):
        if not getattr(p, name) > 0:
            raise ConfigError(f"{name} must be a positive time in ms, got {getattr(p, name)!r}")
    if not 0 < p.rate_decay <= 1:
        raise ConfigError(f"rate_decay must be in (0, 1], got {p.rate_decay!r}")
    return p


def synaptic_decay(p: LiquidParameters) -> tuple[float, float]:
    """``(k0, r)``: a spike's current per unit weight in its own step, ``1 / tau_u``, and its decay per step,
    ``exp(-1 / tau_u)``."""
    return 1.0 / p.tau_u, math.exp(-1.0 / p.tau_u)


def astrocyte_step(a: Tensor, liquid_spikes: Tensor, input_spikes: Tensor, w: float, bias: float,
                   tau: float) -> Tensor:
    """One ms of the astrocyte: ``A + (w (S_liquid - S_input) + bias - A) / tau``.

    Args:
        a: the state ``A`` (the LTD rate), ``(B,)``.
        liquid_spikes, input_spikes: this step's spike counts of the liquid and of the input units, ``(B,)``.
        w: ``w_A`` (per spike), bias: ``b_A``, tau: ``tau_A`` in ms.

    Under a constant difference ``D = S_liquid - S_input``, ``A`` relaxes to ``w D + bias`` with time constant
    ``-1 / ln(1 - 1/tau)`` (about ``tau`` ms).
    """
    return a + (w * (liquid_spikes - input_spikes) + bias - a) / tau


def _check_run(x: Tensor, weights: Tensor, topology, batch_mode: str, plastic: bool) -> None:
    if batch_mode not in BATCH_MODES:
        raise ConfigError(f"batch_mode must be one of {', '.join(BATCH_MODES)}, got {batch_mode!r}")
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != topology.n_input:
        raise ConfigError(f"input spikes must be a (T, B, {topology.n_input}) tensor for this liquid, got "
                          f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if weights.shape != (topology.n_synapses,):
        raise ConfigError(f"weights must be ({topology.n_synapses},), one per synapse, got {tuple(weights.shape)}")
    if not plastic:   # the bounds belong to STDP: frozen weights (a programmed chip's, say) may lie anywhere
        return
    w = weights.detach().cpu().numpy()
    outside = (w < topology.w_min[topology.pre]) | (w > topology.w_max[topology.pre])
    if outside.any():
        raise ConfigError(f"{int(outside.sum())} weights lie outside their bounds (topology.w_min / w_max of their "
                          "presynaptic unit): clip them first")


def liquid_reference(x: Tensor, weights: Tensor, topology, neuron: LiquidParameters = LiquidParameters(),
                     plasticity: AstroSTDPParameters = AstroSTDPParameters(), batch_mode: str = "independent",
                     keep_weights: bool = False) -> LiquidOutput:
    """The liquid run as a plain torch loop over steps (slow; the reference of :func:`liquid_run`).

    Args:
        x: input events ``(T, B, n_input)`` (counts per ms; NALSM's are 0/1), float32 or float64: the dtype of
            the whole computation.
        weights: ``(n_synapses,)`` start weights (the topology's order).
        topology: a :class:`~spikelab.liquid.topology.LiquidTopology`.
        neuron, plasticity: parameters (module docstring).
        batch_mode: ``"independent"`` or ``"sequential"`` (module docstring).
        keep_weights: return each sample's final weights in independent mode.
    """
    check_liquid_parameters(neuron)
    check_astro_parameters(plasticity)
    _check_run(x, weights, topology, batch_mode, plasticity.stdp)
    w = weights.to(x.dtype)
    if batch_mode == "sequential":
        outs = []
        trace = torch.zeros(1, topology.n_total, dtype=x.dtype)
        for b in range(x.shape[1]):
            out, end_trace = _reference_batch(x[:, b:b + 1], w[None], topology, neuron, plasticity, trace)
            if plasticity.carry_traces:
                trace = end_trace
            w = out.weights[0]
            outs.append(out)
        return LiquidOutput(torch.cat([o.spikes for o in outs], 1), torch.cat([o.counts for o in outs], 0),
                            torch.cat([o.astrocyte for o in outs], 1), w if plasticity.stdp else None)
    out, _ = _reference_batch(x, w.expand(x.shape[1], -1).clone(), topology, neuron, plasticity,
                              torch.zeros(x.shape[1], topology.n_total, dtype=x.dtype))
    return out._replace(weights=out.weights if keep_weights and plasticity.stdp else None)


def _reference_batch(x: Tensor, w: Tensor, topology, neuron: LiquidParameters, plasticity: AstroSTDPParameters,
                     trace: Tensor) -> tuple[LiquidOutput, Tensor]:
    """Run ``B`` independent liquids, ``w`` ``(B, n_synapses)`` their weights, from the STDP traces ``trace``
    ``(B, n_total)``; returns the output and the traces at the end."""
    steps, batch, n_in = x.shape
    dtype = x.dtype
    n_total = topology.n_total
    pre = torch.as_tensor(topology.pre, dtype=torch.long)
    post = torch.as_tensor(topology.post, dtype=torch.long)
    kind = torch.as_tensor(topology.kind, dtype=torch.long)
    inhibitory_pre = kind[pre] == 2
    w_min = torch.as_tensor(topology.w_min, dtype=dtype)[pre]
    w_max = torch.as_tensor(topology.w_max, dtype=dtype)[pre]
    scalar = lambda value: torch.tensor(value, dtype=torch.float64).to(dtype)   # noqa: E731 (the kernel's rounding)
    tau_v, threshold, bias = scalar(neuron.tau_v), scalar(neuron.threshold), scalar(neuron.bias)
    current_in = scalar(neuron.input_current)
    k0, r = (scalar(value) for value in synaptic_decay(neuron))
    decay, increment = scalar(trace_decay(plasticity.trace_tau)), scalar(plasticity.trace_increment)
    rate_decay, astro_tau = scalar(plasticity.rate_decay), scalar(plasticity.astro_tau)

    v = torch.zeros(batch, n_total, dtype=dtype)
    refractory = torch.zeros(batch, n_total, dtype=torch.long)
    u = torch.zeros(batch, n_total, dtype=dtype)
    eta = scalar(plasticity.eta_plus).expand(batch).clone()
    a = scalar(plasticity.astro_initial).expand(batch).clone()
    w_a = scalar(plasticity.astro_w).expand(batch).clone()
    b_a = scalar(plasticity.astro_bias).expand(batch).clone()
    spikes = torch.zeros(steps, batch, topology.n_liquid, dtype=torch.uint8)
    astro = torch.zeros(steps, batch, dtype=torch.float64)
    for t in range(steps):
        s = (v >= threshold) & (refractory <= 0)
        sf = s.to(dtype)
        v = v * (1 - sf)
        u = torch.where(s, k0, r * u)
        current = torch.zeros(batch, topology.n_liquid, dtype=dtype).index_add_(1, post, w * u[:, pre])
        drive = torch.cat([current_in * x[t], current], 1)
        v = v - v / tau_v + drive + bias
        refractory = torch.where(s, neuron.refractory, (refractory - 1).clamp(min=0))
        spikes[t] = s[:, n_in:]
        if plasticity.stdp:
            if not plasticity.astrocyte:
                a = eta.clone()
            ltp_rate = torch.where(inhibitory_pre, -a[:, None], eta[:, None])
            ltd_rate = torch.where(inhibitory_pre, eta[:, None], -a[:, None])
            w = w + ltp_rate * (trace[:, pre] * sf[:, n_in + post])
            w = w + ltd_rate * (trace[:, n_in + post] * sf[:, pre])
            w = torch.minimum(torch.maximum(w, w_min), w_max)
            trace = trace_step(trace, sf, decay, increment)
            if plasticity.astrocyte:
                a = astrocyte_step(a, sf[:, n_in:].sum(1), sf[:, :n_in].sum(1), w_a, b_a, astro_tau)
            eta, a, w_a, b_a = eta * rate_decay, a * rate_decay, w_a * rate_decay, b_a * rate_decay
        astro[t] = a.double()
    return LiquidOutput(spikes, spikes.sum(0, dtype=torch.int32), astro, w), trace


def liquid_run(x: Tensor, weights: Tensor, topology, neuron: LiquidParameters = LiquidParameters(),
               plasticity: AstroSTDPParameters = AstroSTDPParameters(), batch_mode: str = "independent",
               keep_weights: bool = False, record: bool = True) -> LiquidOutput:
    """The liquid run of :func:`liquid_reference` as a compiled kernel over the sparse synapses (CPU; the same
    spikes in float64, the weights to float rounding; see :mod:`._liquid_kernels`). ``record=False`` skips the
    spike raster (counts only).

    An independent batch runs its samples in parallel on ``torch.get_num_threads()`` threads; a
    sequential batch, one sample after another.
    """
    from spikelab.functional import _liquid_kernels as kernels   # numba loads on first use only

    check_liquid_parameters(neuron)
    check_astro_parameters(plasticity)
    _check_run(x, weights, topology, batch_mode, plasticity.stdp)
    if x.dtype not in _NUMPY:
        x = x.float()
    dtype = _NUMPY[x.dtype]
    xs = np.ascontiguousarray(x.detach().cpu().numpy())
    steps, batch, _ = xs.shape
    w = np.ascontiguousarray(weights.detach().cpu().numpy().astype(dtype))
    sequential = batch_mode == "sequential"
    keep = keep_weights and plasticity.stdp and not sequential
    weights_out = np.empty((batch if keep else 0, topology.n_synapses), dtype)
    spikes = np.zeros((steps, batch, topology.n_liquid) if record else (0, batch, topology.n_liquid), np.uint8)
    counts = np.zeros((batch, topology.n_liquid), np.int32)
    astro = np.zeros((steps, batch), np.float64)
    params = np.array([neuron.tau_v, neuron.threshold, neuron.bias, neuron.input_current,
                       trace_decay(plasticity.trace_tau), plasticity.trace_increment, plasticity.eta_plus,
                       plasticity.astro_initial, plasticity.astro_w, plasticity.astro_bias, plasticity.astro_tau,
                       plasticity.rate_decay, *synaptic_decay(neuron)]).astype(dtype)
    index = topology.csr()
    carry = plasticity.carry_traces and sequential
    flags = np.array([neuron.refractory, int(plasticity.stdp), int(plasticity.astrocyte), int(record), int(keep),
                      int(carry), int(carry and plasticity.stdp)], np.int64)
    args = (xs, w, weights_out, spikes, counts, astro, index.out_post, index.pre_ptr, index.by_pre,
            index.post_ptr, topology.kind, topology.w_min.astype(dtype), topology.w_max.astype(dtype), params, flags)
    if sequential:
        kernels.run_sequential(*args)
        final = torch.from_numpy(w) if plasticity.stdp else None
    else:
        workers = max(1, min(batch, torch.get_num_threads()))
        # Python threads, not numba's parallel loop: its OpenMP pool would be one more OpenMP runtime in the
        # process beside torch's and NEST's, and NEST crashed in ResetKernel after it had run
        w_by_pre = w[index.by_pre]   # each unit's outgoing synapses side by side, shared by the workers
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda first: kernels.run_independent(*args, w_by_pre, first, workers), range(workers)))
        final = torch.from_numpy(weights_out) if keep else None
    return LiquidOutput(torch.from_numpy(spikes) if record else None, torch.from_numpy(counts),
                        torch.from_numpy(astro), final)
