r"""Leaky integrate-and-fire (LIF) neuron as pure functions of (input, state, parameters).

Discrete-time LIF with time step ``dt`` (one step per input bin). For each step ``t``, with
``s' = s[t-1]`` the previous step's spikes (a constant for the gradient when ``detach_reset=True``):

.. code-block:: text

    keep[t] = 1 - s'   if reset == "zero"            else 1   # zero reset: the next step starts from 0
    mask[t] = 1 - s'   if refractory_steps == 1      else 1   # one refractory step: its input is dropped
    v[t]    = beta * keep[t] * v[t-1] + mask[t] * I[t] - (threshold * s' if reset == "subtract" else 0)
    s[t]    = H(v[t] - threshold)                             # fires on v >= threshold, as NEST / SpiNNaker

``v[t]`` is the membrane as reported, *before* its reset (snnTorch's ``reset_delay`` convention): the reset of
a spike at ``t`` shows in ``v[t+1]``. ``H`` is the Heaviside step in the forward pass and a surrogate derivative
(:mod:`spikelab.functional.surrogate`) in the backward pass. With ``reset="zero"`` or ``"subtract"`` and
``refractory_steps=0`` this is ``snntorch.Leaky(beta, reset_mechanism=...)`` (which fires on ``>`` instead of
``>=``; the two agree on float input). ``reset="zero"`` maps to PyNN ``IF_curr_delta`` with ``tau_refrac=0``,
``refractory_steps=1`` to ``tau_refrac=dt`` (see ``reference/backends.md`` section 3).

Parameters (:class:`LIFParameters`):

====================  ==============  ===========  ================================================================
name                  unit            default      meaning
====================  ==============  ===========  ================================================================
``beta``              1 (per step)    (required)   membrane decay per step, ``exp(-dt / tau_m)``; a float in [0, 1)
                                                   or a tensor broadcastable to one step's shape (per-layer scalar
                                                   or one value per feature), may require grad
``threshold``         input units     1.0          firing threshold ``theta`` (> 0); the membrane has the input's
                                                   unit
``reset``             --              ``"zero"``   ``"zero"``: next step starts from 0; ``"subtract"``: subtract
                                                   the threshold; ``"none"``: spikes do not act on ``v``
``refractory_steps``  steps           0            0 or 1: steps after a spike whose input is dropped
``surrogate``         --              ``"atan"``   surrogate derivative of ``H``: ``"atan"``, ``"fast_sigmoid"``
                                                   (or ``"fast-sigmoid"``), ``"triangle"``
``slope``             1 / input unit  None         the surrogate's sharpness (atan: snnTorch's ``alpha``, 2.0;
                                                   fast sigmoid 25.0; triangle 1.0); None for that default
``detach_reset``      --              True         treat ``s'`` in the reset and refractory terms as a constant in
                                                   the backward pass (snnTorch and SpikingJelly's usual choice)
====================  ==============  ===========  ================================================================

State (:class:`LIFState`): ``v`` the membrane of the last step (before its reset), ``s`` that step's spikes
(0.0 or 1.0), both of one step's shape ``(B, ...features)``. ``None`` means zeros (a neuron at rest).

Two ways to run it, with the same numbers:

* :func:`lif_step` advances one step with ordinary autograd ops (for online learning such as SLTT, which
  detaches the returned state between steps).
* :func:`lif_sequence` scans a whole ``(T, B, ...)`` sequence in one autograd node with a hand-written
  backward pass, by one of three implementations of the same numbers: compiled numba loops for CPU tensors
  (``_lif_kernels``), Triton kernels for CUDA tensors (``_lif_triton``, one launch per sequence and direction),
  and a loop of torch ops (the reference, and the fallback where Triton is not installed). float16 / bfloat16
  input is integrated in float32 by all three.

The backward pass of :func:`lif_sequence` runs the scan in reverse. With ``a[t] = dL/dv[t]`` in total,
``gs``, ``gv`` the gradients arriving at the spike and membrane outputs and ``sg`` the surrogate derivative:

.. code-block:: text

    a[t]     = gv[t] + beta * keep[t+1] * a[t+1] + sg(v[t] - threshold) * (gs[t] + a[t+1] * dv[t+1]/ds[t])
    dv[t+1]/ds[t] = -beta * v[t] [zero] - I[t+1] [refractory] - threshold [subtract]   (0 if detach_reset)
    dL/dI[t] = mask[t] * a[t]      dL/dbeta = sum_t keep[t] * v[t-1] * a[t]      dL/dv0 = beta * keep[0] * a[0]

It saves only the membrane trace ``v`` (an output anyway; spikes are recomputed as ``v >= threshold``), plus
the input when ``refractory_steps=1`` and ``detach_reset=False`` need ``I[t+1]``.

Example::

    >>> import torch
    >>> from spikelab.functional.lif import LIFParameters, lif_sequence, lif_step
    >>> p = LIFParameters(beta=0.9, threshold=1.0, reset="subtract")
    >>> x = torch.rand(50, 4, 64, requires_grad=True)       # (T, B, features) input currents
    >>> spikes, v = lif_sequence(x, p)                      # both (50, 4, 64)
    >>> spikes.sum().backward()                             # surrogate gradient reaches x.grad
    >>> s0, state = lif_step(x[0], None, p)                 # one step from rest; state.v is v[0]
"""
from __future__ import annotations

import functools
import importlib.util
import math
import numbers
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikelab.errors import ConfigError
from spikelab.functional.surrogate import resolve_slope, spike, surrogate_grad, surrogate_name
from spikelab.optional import require

RESETS = ("zero", "subtract", "none")
REFRACTORY_STEPS = (0, 1)
#: How a per-step decay ``beta`` relates to a membrane time constant ``tau``: ``exact`` ``beta = exp(-dt/tau)``
#: (what NEST and SpiNNaker integrate), ``euler`` ``beta = 1 - dt/tau`` (snnTorch's NIR reader).
BETA_CONVENTIONS = ("exact", "euler")
BACKENDS = ("auto", "numba", "triton", "torch")
#: surrogate codes of the compiled kernels (``_lif_kernels._surrogate_row``, ``_lif_triton._surrogate``)
SURROGATE_KIND = {"atan": 0, "fast_sigmoid": 1, "triangle": 2}


class LIFState(NamedTuple):
    """State of a LIF layer after a step: ``v`` membrane (before reset), ``s`` spikes (0/1); shape ``(B, ...)``."""

    v: Tensor
    s: Tensor


class LIFParameters(NamedTuple):
    """Parameters of the LIF neuron; units, meanings and defaults are tabulated in :mod:`spikelab.functional.lif`.

    Attributes:
        beta: membrane decay per step in [0, 1) (``exp(-dt/tau_m)``); float or tensor broadcastable to one step.
        threshold: firing threshold (input units), > 0.
        reset: ``"zero"``, ``"subtract"`` or ``"none"``.
        refractory_steps: 0 or 1 step after a spike whose input is dropped.
        surrogate: ``"atan"``, ``"fast_sigmoid"`` (``"fast-sigmoid"``) or ``"triangle"``.
        slope: surrogate sharpness; None for the surrogate's default (atan 2.0, fast_sigmoid 25.0, triangle 1.0).
        detach_reset: the previous spike in the reset / refractory terms carries no gradient.
    """

    beta: float | Tensor
    threshold: float = 1.0
    reset: str = "zero"
    refractory_steps: int = 0
    surrogate: str = "atan"
    slope: float | None = None
    detach_reset: bool = True


def check_beta_convention(convention) -> str:
    if convention not in BETA_CONVENTIONS:
        raise ConfigError(f"beta convention must be 'exact' (beta = exp(-dt/tau)) or 'euler' "
                          f"(beta = 1 - dt/tau, snnTorch's), got {convention!r}")
    return convention


def time_constant(beta, dt: float, convention: str = "exact") -> np.ndarray:
    """The membrane time constant (in the unit of ``dt``) of the per-step decay ``beta`` (array-like):
    ``-dt / ln(beta)`` (exact) or ``dt / (1 - beta)`` (euler); ``beta = 0`` (no memory) gives 0 (exact)."""
    beta = np.asarray(beta, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return -dt / np.log(beta) if check_beta_convention(convention) == "exact" else dt / (1.0 - beta)


def decay_per_step(tau, dt: float, convention: str = "exact") -> np.ndarray:
    """The per-step decay of a membrane time constant ``tau`` (array-like, the unit of ``dt``): ``exp(-dt/tau)``
    (exact) or ``1 - dt/tau`` (euler); the inverse of :func:`time_constant`."""
    ratio = dt / np.asarray(tau, dtype=np.float64)
    return np.exp(-ratio) if check_beta_convention(convention) == "exact" else 1.0 - ratio


def check_parameters(p: LIFParameters) -> LIFParameters:
    """``p`` validated (ConfigError naming the bad field), with a canonical surrogate name and the slope filled in."""
    if not isinstance(p, LIFParameters):
        raise ConfigError(f"expected LIFParameters, got {type(p).__name__}")
    beta = p.beta
    if isinstance(beta, Tensor):
        if not beta.is_floating_point():
            raise ConfigError(f"beta must be a floating-point tensor, got dtype {beta.dtype}")
    elif isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < 1:
        raise ConfigError(f"beta must be a float in [0, 1) or a tensor, got {beta!r}")
    thr = p.threshold
    if isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not math.isfinite(thr) or thr <= 0:
        raise ConfigError(f"threshold must be a finite float > 0, got {thr!r}")
    if p.reset not in RESETS:
        raise ConfigError(f"reset must be one of {', '.join(RESETS)}, got {p.reset!r}")
    if p.refractory_steps not in REFRACTORY_STEPS or isinstance(p.refractory_steps, bool):
        raise ConfigError(f"refractory_steps must be 0 or 1, got {p.refractory_steps!r}")
    if not isinstance(p.detach_reset, bool):
        raise ConfigError(f"detach_reset must be True or False, got {p.detach_reset!r}")
    name = surrogate_name(p.surrogate)
    beta = beta if isinstance(beta, Tensor) else float(beta)
    return p._replace(beta=beta, threshold=float(thr), surrogate=name, slope=resolve_slope(name, p.slope))


def _membrane(x_t: Tensor, v_prev: Tensor, s_prev: Tensor, beta, p: LIFParameters) -> Tensor:
    """``v[t]`` from ``I[t]`` and the previous state: the one definition of the update (autograd-compatible)."""
    a = beta * v_prev
    if p.reset == "zero":
        a = a * (1 - s_prev)
    i = x_t * (1 - s_prev) if p.refractory_steps == 1 else x_t
    v = a + i
    if p.reset == "subtract":
        v = v - p.threshold * s_prev
    return v


def lif_step(x_t: Tensor, state: LIFState | None, p: LIFParameters) -> tuple[Tensor, LIFState]:
    """Advance a LIF layer by one step with ordinary autograd ops.

    Args:
        x_t: input current of this step, ``(B, ...features)``.
        state: the previous step's :class:`LIFState`, or None for rest (``v = s = 0``).
        p: :class:`LIFParameters`.

    Returns:
        ``(s_t, LIFState(v_t, s_t))``: this step's spikes and the new state, shaped like ``x_t``.
        The state keeps its graph; detach it between steps to cut the temporal gradient (SLTT).
    """
    p = check_parameters(p)
    if state is None:
        v_prev = s_prev = torch.zeros_like(x_t)
    else:
        v_prev, s_prev = state
    if p.detach_reset:
        s_prev = s_prev.detach()
    v = _membrane(x_t, v_prev, s_prev, p.beta, p)
    s = spike(v - p.threshold, p.surrogate, p.slope)
    return s, LIFState(v, s)


class _LIFScan(torch.autograd.Function):
    """The whole LIF sequence as one autograd node.

    ``beta`` is a float or a tensor of one step's shape; ``v0``, ``s0`` are tensors of one step's shape or None
    (rest); all tensors but ``x`` are in the compute dtype (:func:`compute_dtype`). ``backend`` is ``"numba"``,
    ``"triton"`` or ``"torch"``. Outputs ``(s, v)`` in ``x``'s dtype; the membrane trace saved for the backward
    pass stays in the compute dtype.
    """

    @staticmethod
    def forward(ctx, x: Tensor, beta, v0: Tensor | None, s0: Tensor | None, p: LIFParameters, backend: str):
        ctx.set_materialize_grads(False)
        ctx.p, ctx.backend, ctx.x_dtype = p, backend, x.dtype
        beta_is_tensor = isinstance(beta, Tensor)
        if beta_is_tensor:
            beta = beta.contiguous()
        ctx.beta = None if beta_is_tensor else beta  # a float beta is not saved as a tensor
        if v0 is not None:
            v0, s0 = v0.contiguous(), s0.contiguous()
        if backend == "triton":  # widens float16 / bfloat16 as it loads
            from spikelab.functional._lif_triton import triton_forward
            v, s = triton_forward(x, beta, v0, s0, p)
        else:
            forward = _numba_forward if backend == "numba" else _torch_forward
            v, s = forward(x.to(compute_dtype(x.dtype)), beta, v0, s0, p)
        # backward reads x only where the next step's input depends on a spike that carries gradient
        x_saved = x if p.refractory_steps == 1 and not p.detach_reset else None
        ctx.save_for_backward(v, beta if beta_is_tensor else None, v0, s0, x_saved)
        return s.to(x.dtype), v.to(x.dtype)

    @staticmethod
    @once_differentiable  # the backward pass is itself not differentiable (numba, triton); double backward raises
    def backward(ctx, gs: Tensor | None, gv: Tensor | None):
        v, beta_t, v0, s0, x = ctx.saved_tensors
        p = ctx.p
        if gs is None and gv is None:
            return None, None, None, None, None, None
        beta = ctx.beta if beta_t is None else beta_t
        if ctx.backend == "triton":
            from spikelab.functional._lif_triton import triton_backward
            gx, gbeta, a0 = triton_backward(gs, gv, v, x, beta, v0, s0, p, ctx.x_dtype)
        else:
            backward = _numba_backward if ctx.backend == "numba" else _torch_backward
            widen = lambda t: None if t is None else t.to(v.dtype)  # noqa: E731
            gx, gbeta, a0 = backward(widen(gs), widen(gv), v, widen(x), beta, v0, s0, p)
            gx = gx.to(ctx.x_dtype)
        # step 0 read v0 and s0:  v[0] = beta * keep0 * v0 + mask0 * x[0] - thr * s0 * [subtract]
        zero_reset = p.reset == "zero"
        gv0 = gs0 = None
        if ctx.needs_input_grad[2]:
            gv0 = a0 * beta * (1 - s0) if zero_reset else a0 * beta
        if ctx.needs_input_grad[3] and not p.detach_reset:
            ds0 = torch.zeros_like(a0)
            if zero_reset:
                ds0 = ds0 - beta * v0
            if p.refractory_steps == 1:
                ds0 = ds0 - x[0].to(a0.dtype)
            if p.reset == "subtract":
                ds0 = ds0 - p.threshold
            gs0 = a0 * ds0
        return gx, gbeta if ctx.needs_input_grad[1] else None, gv0, gs0, None, None


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the scan accumulates the membrane in: float32 for float16 / bfloat16 input (autocast), else
    the input's own."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _flat(t: Tensor, time_first: bool = False) -> np.ndarray:
    """A numpy view of a CPU tensor, 1-D or ``(T, N)`` if ``time_first``; copies only if ``t`` is not contiguous."""
    a = (t if t.is_contiguous() else t.contiguous()).detach().numpy()
    return a.reshape(t.shape[0], math.prod(t.shape[1:])) if time_first else a.reshape(-1)


def _step_array(value, n: int, dtype) -> np.ndarray:
    """One step's values as a 1-D array for the kernels: a tensor's data, a float repeated, or zeros for None."""
    if value is None:
        return np.zeros(n, dtype)
    if isinstance(value, Tensor):
        return _flat(value)
    return np.full(n, value, dtype)


def surrogate_constants(p: LIFParameters) -> tuple[float, float]:
    """The compiled kernels' surrogate constants ``(c1, c2)``: atan ``(a/2, pi a/2)``, the others ``(k, 0)``."""
    if p.surrogate == "atan":
        return p.slope / 2, math.pi / 2 * p.slope
    return p.slope, 0.0


@functools.lru_cache(maxsize=64)
def _kernel_options(p: LIFParameters, dtype: torch.dtype) -> dict:
    """The kernels' scalar arguments, each in the arrays' dtype (see ``_lif_kernels``)."""
    cast = np.float32 if dtype == torch.float32 else np.float64
    c1, c2 = surrogate_constants(p)
    return dict(thr=cast(p.threshold), cz=cast(p.reset == "zero"), cs=cast(p.reset == "subtract"),
                cr=cast(p.refractory_steps == 1), cd=cast(not p.detach_reset), kind=SURROGATE_KIND[p.surrogate],
                c1=cast(c1), c2=cast(c2), one=cast(1), np_dtype=np.dtype(cast))


def _numba_forward(x: Tensor, beta, v0, s0, p: LIFParameters) -> tuple[Tensor, Tensor]:
    from spikelab.functional import _lif_kernels  # numba loads on the first CPU scan only

    o = _kernel_options(p, x.dtype)
    xa = _flat(x, True)
    # outputs come from torch's allocator (not numpy's) so memory profiling sees them
    v, s = torch.empty(x.shape, dtype=x.dtype), torch.empty(x.shape, dtype=x.dtype)
    n = xa.shape[1]
    _lif_kernels.lif_forward(xa, _step_array(beta, n, o["np_dtype"]), _step_array(v0, n, o["np_dtype"]),
                             _step_array(s0, n, o["np_dtype"]), o["thr"], o["cz"], o["cs"], o["cr"],
                             _flat(v, True), _flat(s, True))
    return v, s


def _numba_backward(gs, gv, v, x, beta, v0, s0, p: LIFParameters):
    from spikelab.functional import _lif_kernels

    o = _kernel_options(p, v.dtype)
    va = _flat(v, True)
    n = va.shape[1]
    dtype = o["np_dtype"]
    gx = torch.empty(v.shape, dtype=v.dtype)
    gbeta, a0 = torch.zeros(v.shape[1:], dtype=v.dtype), torch.zeros(v.shape[1:], dtype=v.dtype)
    if v.shape[0]:
        absent = np.zeros((1, n), dtype)  # stands for a missing gs, gv or x
        _lif_kernels.lif_backward(
            absent if gs is None else _flat(gs, True), absent if gv is None else _flat(gv, True), va,
            absent if x is None else _flat(x, True), _step_array(beta, n, dtype), _step_array(v0, n, dtype),
            _step_array(s0, n, dtype), o["thr"], o["cz"], o["cs"], o["cr"], o["cd"], o["kind"], o["c1"], o["c2"],
            o["one"], _flat(gx, True), _flat(gbeta), _flat(a0))
    return gx, gbeta, a0


def _torch_forward(x: Tensor, beta, v0, s0, p: LIFParameters) -> tuple[Tensor, Tensor]:
    """Forward scan with torch ops (``_membrane`` step by step): the reference of the compiled kernels."""
    v = torch.empty_like(x, memory_format=torch.contiguous_format)
    s = torch.empty_like(v)
    v_prev, s_prev = (v0, s0) if v0 is not None else (v.new_zeros(x.shape[1:]),) * 2
    for t in range(x.shape[0]):
        v_prev = v[t] = _membrane(x[t], v_prev, s_prev, beta, p)
        s_prev = s[t] = (v_prev >= p.threshold).to(x.dtype)
    return v, s


def _torch_backward(gs, gv, v, x, beta, v0, s0, p: LIFParameters):
    """Reverse scan with torch ops: the reference the numba kernel is tested against.

    Returns ``(dL/dx, dL/dbeta per neuron, dL/dv[0])``. ``a`` is dL/dv[t] in total. From step t+1 it receives
    ``a[t+1] * beta * keep[t+1]`` directly and, unless the reset is detached, ``a[t+1] * dv[t+1]/ds[t]``
    through the spike ``s[t]`` (times the surrogate).
    """
    T = v.shape[0]
    zero_reset, subtract, refractory = p.reset == "zero", p.reset == "subtract", p.refractory_steps == 1
    if v0 is None:
        v0 = s0 = v.new_zeros(v.shape[1:])
    gx = torch.empty_like(v)
    gbeta = torch.zeros_like(v0)
    a = torch.zeros_like(v0)
    for t in range(T - 1, -1, -1):
        u = v[t]
        g = gs[t] if gs is not None else torch.zeros_like(u)
        if not p.detach_reset and t + 1 < T:
            ds = torch.zeros_like(u)
            if zero_reset:
                ds = ds - beta * u
            if refractory:
                ds = ds - x[t + 1]
            if subtract:
                ds = ds - p.threshold
            g = g + a * ds
        direct = a * beta
        if zero_reset:
            direct = direct * (1 - (u >= p.threshold).to(u.dtype))
        a = surrogate_grad(u - p.threshold, p.surrogate, p.slope) * g + direct
        if gv is not None:
            a = a + gv[t]
        v_prev, s_prev = (v0, s0) if t == 0 else (v[t - 1], (v[t - 1] >= p.threshold).to(u.dtype))
        gx[t] = a * (1 - s_prev) if refractory else a
        gbeta += a * (1 - s_prev) * v_prev if zero_reset else a * v_prev
    return gx, gbeta, a


def _numba_ok(x: Tensor) -> bool:
    return x.device.type == "cpu"


def _triton_ok(x: Tensor) -> bool:
    """Triton is importable and runs ``x``: a CUDA tensor, or a CPU tensor under its interpreter."""
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16) or importlib.util.find_spec("triton") is None:
        return False
    from spikelab.functional._lif_triton import INTERPRETED

    return x.device.type == "cuda" or (INTERPRETED and x.device.type == "cpu")


def select_backend(x: Tensor, backend: str = "auto", scan: str = "the LIF scan") -> str:
    """The scan that runs ``x``: for ``"auto"``, numba on the CPU, Triton on CUDA where it is importable, torch ops
    otherwise; a named backend is checked (ConfigError when it cannot run ``x``). ``scan`` names the caller in
    the error of a missing Triton."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "numba" if _numba_ok(x) else "triton" if x.device.type == "cuda" and _triton_ok(x) else "torch"
    if backend == "numba" and not _numba_ok(x):
        raise ConfigError(f"the numba backend runs CPU tensors only, got {x.device}; use backend='auto' or 'torch'")
    if backend == "triton" and not _triton_ok(x):
        require("triton", f"{scan}'s triton backend")
        raise ConfigError(f"the triton backend runs float32/float16/bfloat16 CUDA tensors (or CPU tensors under "
                          f"TRITON_INTERPRET=1), got {x.device} {x.dtype}; use backend='auto' or 'torch'")
    return backend


def lif_sequence(x: Tensor, p: LIFParameters, state: LIFState | None = None, *,
                 backend: str = "auto") -> tuple[Tensor, Tensor]:
    """Run a LIF layer over a whole sequence in one autograd node with a hand-written backward pass.

    Args:
        x: input currents ``(T, B, ...features)``; any strides (non-contiguous input is copied once).
        p: :class:`LIFParameters`. A tensor ``beta`` (scalar or per feature, broadcastable to ``x[0]``)
            receives a gradient when it requires one.
        state: :class:`LIFState` before the first step (each field broadcastable to ``x[0]``), or None for rest.
            ``state.v`` receives a gradient; ``state.s`` too when ``detach_reset=False``.
        backend: ``"auto"`` (numba for CPU tensors, Triton for CUDA tensors where it is installed, torch ops
            otherwise), ``"numba"``, ``"triton"`` or ``"torch"``. All compute the same numbers.

    Returns:
        ``(spikes, v)``, both ``(T, B, ...features)`` with ``x``'s dtype: spikes 0.0/1.0 and the membrane
        before reset. Both are differentiable (spikes through the surrogate). The final state is
        ``LIFState(v[-1], spikes[-1])``. float16 / bfloat16 input (as under ``torch.autocast``) is integrated in
        float32 (:func:`compute_dtype`), with ``beta`` and the state in float32 too; only the outputs and
        ``dL/dx`` are rounded to the input's dtype.
    """
    p = check_parameters(p)
    if not isinstance(x, Tensor) or x.dim() < 1 or not x.is_floating_point():
        raise ConfigError("x must be a floating-point tensor shaped (T, B, ...features)")
    backend = select_backend(x, backend)
    shape, dtype = x.shape[1:], compute_dtype(x.dtype)
    beta = _broadcast("beta", p.beta, shape, x, dtype) if isinstance(p.beta, Tensor) else p.beta
    v0 = s0 = None
    if state is not None:
        v0 = _broadcast("state.v", state.v, shape, x, dtype)
        s0 = _broadcast("state.s", state.s, shape, x, dtype)
    # a tensor beta travels as an argument so autograd sees it; the config carries no tensor
    return _LIFScan.apply(x, beta, v0, s0, p._replace(beta=None), backend)


def _broadcast(name: str, value, shape: torch.Size, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``value`` as a tensor of one step's shape on ``x``'s device, in ``dtype`` (default ``x``'s) (an expanded view:
    its gradient is reduced by autograd)."""
    dtype = x.dtype if dtype is None else dtype
    t = value.to(dtype=dtype, device=x.device) if isinstance(value, Tensor) else torch.as_tensor(
        value, dtype=dtype, device=x.device)
    try:
        return t.expand(shape)
    except RuntimeError:
        raise ConfigError(f"{name} of shape {tuple(t.shape)} does not broadcast to one step of the input, "
                          f"{tuple(shape)}") from None


def leaky_integrate(x: Tensor, beta: float | Tensor, v0: Tensor | None = None) -> Tensor:
    """Non-spiking leaky integrator (a readout): ``v[t] = beta * v[t-1] + x[t]``, ``v[-1] = v0`` (default 0).

    Args:
        x: input ``(T, B, ...features)``.
        beta: decay per step, float in [0, 1) or a tensor broadcastable to ``x[0]`` (may require grad).
        v0: initial membrane, broadcastable to ``x[0]``, or None for zeros.

    Returns:
        The membrane ``v``, ``(T, B, ...features)``. Runs the LIF scan with ``reset="none"``.
    """
    state = None if v0 is None else LIFState(v0, torch.zeros((), dtype=x.dtype, device=x.device))
    return lif_sequence(x, LIFParameters(beta, reset="none"), state)[1]


def leaky_integrate_step(x_t: Tensor, v_prev: Tensor | None, beta: float | Tensor) -> Tensor:
    """One step of :func:`leaky_integrate`: ``beta * v_prev + x_t`` (``x_t`` when ``v_prev`` is None, at rest)."""
    return x_t if v_prev is None else beta * v_prev + x_t
