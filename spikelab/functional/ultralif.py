r"""UltraLIF neurons (ultradiscretised LIF, max-plus algebra) as pure functions of (input, state, parameters).

Ultradiscretization maps a recurrence on positive variables ``x`` to one on real ``X`` through
``x = exp(X / eps)``; a sum becomes a log-sum-exp, the one primitive of this module:

.. code-block:: text

    LSE_eps(X_1, ..., X_n) = eps * log( sum_k exp(X_k / eps) )                       (max_plus_lse)
    max_k X_k  <=  LSE_eps(X_1, ..., X_n)  <=  max_k X_k + eps * log n
    LSE_eps -> max  as eps -> 0        (the max-plus / tropical semiring: (+) = max, (x) = +)

Temporal neuron (UltraLIF / UltraPLIF), the Euler LIF ``v' = tau v + i`` in log coordinates:

.. code-block:: text

    V'[t] = LSE_eps( V[t-1] + log tau ,  I[t] )       # eps = 1: exactly log(tau e^V + e^I); eps -> 0: max(V + log tau, I)
    s[t]  = sigmoid( (V'[t] - theta) / eps )          # soft spike in (0, 1); -> H(V' - theta) as eps -> 0
    V[t]  = V'[t] * (1 - s[t])                        # multiplicative soft reset towards 0

Spatial neuron (UltraDLIF / UltraDPLIF), the ultradiscretised 3-point heat equation (gap junctions) on a ring
of units along one axis (``i -+ 1`` wrap around):

.. code-block:: text

    V'_i[t] = LSE_eps( V_{i-1}[t-1],  c * V_i[t-1],  V_{i+1}[t-1] ) + I_i[t]      # c = 1, or tau (UltraDPLIF)
    s_i[t]  = sigmoid( (V'_i[t] - theta) / eps );   V_i[t] = V'_i[t] (1 - s_i[t])

The heat equation would subtract ``eps * log 3``; like the official code we drop the constant (a bias absorbs it).
UltraDPLIF *multiplies* the centre term by ``tau`` (the official code's choice, kept for parity), whereas the
temporal neuron *adds* ``log tau``; the two are not the same leak.

The same smooth function runs forward and backward (no surrogate): ``ds/dV' = s (1 - s) / eps <= 1 / (4 eps)``.
With ``hard=True`` the spike is ``H(V' - theta)`` (binary, fires on ``V' >= theta``, as :mod:`.lif`) in the
forward pass, and the reset uses that hard spike; the backward pass then takes the soft spike's derivative
(a straight-through estimator), so a hard-spiking network still trains.

Membrane updates are built only on :func:`max_plus_lse`. The rest state is ``V = 0`` (as the official code).

Two ways to run it, with the same numbers:

* :func:`ultra_step` / :func:`ultra_diffusive_step` advance one step with ordinary autograd ops; a loop of them
  is the reference (``backend="torch"``, and the fallback where neither kernel runs the input).
* :func:`ultra_sequence` / :func:`ultra_diffusive_sequence` scan a whole ``(T, B, ...)`` sequence in one autograd
  node with a hand-written backward pass: compiled numba loops for CPU tensors (``_ultralif_kernels``), Triton
  kernels for CUDA tensors (``_ultralif_triton``, one launch per sequence and direction). float16 / bfloat16
  input is integrated in float32. ``eps`` and ``tau`` are one value per layer there (a float or a one-element
  tensor, as the layers have them); per-unit tensors run on the step functions.

The backward pass runs the scan in reverse. With ``c[t] = dL/dV[t]`` (the reset membrane) in total, ``gs``,
``gu`` the gradients arriving at the spikes and at ``V'``, ``sig = sigmoid(z)``, ``z = (V'[t] - theta) / eps``,
``ds = sig (1 - sig) / eps`` and ``w_k = exp((X_k - LSE) / eps)`` the softmax weights of the log-sum-exp's terms:

.. code-block:: text

    g[t]     = dL/dV'[t] = gu[t] + gs[t] ds + c[t] ((1 - s[t]) - V'[t] ds)       # s[t] hard or soft
    dL/deps += (gs[t] - c[t] V'[t]) (-ds z) + g[t] (LSE - sum_k w_k X_k) / eps
    temporal:  dL/dI[t] = g[t] w_I,   c[t-1] = g[t] w_V,   dL/dlog tau += g[t] w_V
    diffusive: dL/dI_i[t] = g_i[t],   c_j[t-1] = g_{j+1} w_L,{j+1} + tau g_j w_C,j + g_{j-1} w_R,{j-1},
               dL/dtau += g_i[t] w_C,i V_i[t-1]

It saves the input and the membrane trace ``V'`` (an output anyway); each step's reset membrane is recomputed
from ``V'``.

Parameters:

=============  ==============  =========  ==================================================================
name           unit            default    meaning
=============  ==============  =========  ==================================================================
``tau``        1 (per step)    0.9        decay in the linear domain, > 0 (float or tensor); enters as
                                          ``log tau`` (temporal) or as a factor on the centre (UltraDPLIF)
``eps``        input units     1.0        ultradiscretization temperature, > 0 (float or tensor): LSE
                                          softness, spike slope ``1/eps`` and gradient scale at once
``threshold``  input units     1.0        firing threshold ``theta``
``dim``        --              1          (diffusive) the ring axis of one step ``(B, ...features)``
=============  ==============  =========  ==================================================================
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikelab.errors import ConfigError
from spikelab.functional.lif import compute_dtype, select_backend


class UltraState(NamedTuple):
    """State of an Ultra layer between steps: the membrane after its reset, ``(B, ...features)``."""

    v: Tensor


def max_plus_lse(stack: Tensor, eps, dim: int = 0) -> Tensor:
    """``eps * log(sum(exp(stack / eps), dim))``, computed stably as ``m + eps * logsumexp((stack - m) / eps)``.

    Args:
        stack: the terms, stacked along ``dim``.
        eps: temperature > 0, a float or a tensor broadcastable to the result (may require grad).
        dim: the axis summed over (removed from the result).

    Returns:
        The soft maximum, in ``[max, max + eps * log n]`` for ``n`` terms. ``m = max(stack)`` is treated as a
        constant (the value does not depend on it, so the gradient is exact); non-finite maxima are shifted by 0.
    """
    m = stack.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return (m + eps * torch.logsumexp((stack - m) / eps, dim=dim, keepdim=True)).squeeze(dim)


def fire(v: Tensor, eps, threshold: float, hard: bool = False) -> tuple[Tensor, Tensor]:
    """Spike and multiplicative reset of a membrane ``v`` (before reset).

    ``s = sigmoid((v - threshold) / eps)`` (or, if ``hard``, ``H(v - threshold)`` forward with the soft spike's
    gradient), and the reset membrane ``v * (1 - s)``. Returns ``(s, v_reset)``.
    """
    s = torch.sigmoid((v - threshold) / eps)
    if hard:
        s = s + ((v >= threshold).to(s.dtype) - s).detach()
    return s, v * (1 - s)


def _log(tau):
    if isinstance(tau, Tensor):
        return torch.log(tau)
    if isinstance(tau, bool) or not tau > 0:
        raise ConfigError(f"tau must be > 0, got {tau!r}")
    return math.log(tau)


def ultra_membrane(x_t: Tensor, v_prev: Tensor | None, tau, eps) -> Tensor:
    """Temporal membrane before reset: ``LSE_eps(v_prev + log tau, x_t)`` (``v_prev`` None: rest, 0)."""
    if v_prev is None:
        v_prev = torch.zeros_like(x_t)
    a, b = torch.broadcast_tensors(v_prev + _log(tau), x_t)
    return max_plus_lse(torch.stack((a, b)), eps, 0)


def ultra_step(x_t: Tensor, v_prev: Tensor | None, tau, eps, threshold: float = 1.0,
               hard: bool = False) -> tuple[Tensor, Tensor]:
    """One step of the temporal Ultra neuron (UltraLIF / UltraPLIF).

    Args:
        x_t: input current ``I[t]`` (a log-domain quantity, may be negative), ``(B, ...features)``.
        v_prev: membrane after the previous step's reset, or None for rest (0).
        tau: decay, float or tensor > 0. eps: temperature, float or tensor > 0. threshold: ``theta``.
        hard: binary spikes forward (straight-through gradient), see the module docstring.

    Returns:
        ``(s_t, v_t)``: spikes and the membrane after reset (the next step's ``v_prev``).
    """
    return fire(ultra_membrane(x_t, v_prev, tau, eps), eps, threshold, hard)


def ultra_diffusive_membrane(x_t: Tensor, v_prev: Tensor | None, eps, dim: int = 1, tau=None) -> Tensor:
    """Diffusive membrane before reset: ``LSE_eps(V_{i-1}, c V_i, V_{i+1}) + I_i`` on a ring along ``dim``."""
    if v_prev is None:
        v_prev = torch.zeros_like(x_t)
    centre = v_prev if tau is None else v_prev * tau
    left = torch.roll(v_prev, 1, dims=dim)     # left[i] = V[i-1]
    right = torch.roll(v_prev, -1, dims=dim)   # right[i] = V[i+1]
    stack = torch.stack(torch.broadcast_tensors(left, centre, right))
    return max_plus_lse(stack, eps, 0) + x_t


def ultra_diffusive_step(x_t: Tensor, v_prev: Tensor | None, eps, threshold: float = 1.0, dim: int = 1,
                         tau=None, hard: bool = False) -> tuple[Tensor, Tensor]:
    """One step of the spatial Ultra neuron (UltraDLIF; UltraDPLIF when ``tau`` is given).

    Args:
        x_t: input current, ``(B, ...features)``.
        v_prev: membrane after the previous reset, or None for rest (0).
        eps: temperature > 0. threshold: ``theta``.
        dim: the axis of ``x_t`` whose units form the ring (1: the features of ``(B, F)``, the channels of
            ``(B, C, H, W)``).
        tau: None (UltraDLIF), or a factor on the centre term ``V_i * tau`` (UltraDPLIF; the official code
            multiplies, it does not add ``log tau``).
        hard: binary spikes forward (straight-through gradient).

    Returns:
        ``(s_t, v_t)``: spikes and the membrane after reset.
    """
    return fire(ultra_diffusive_membrane(x_t, v_prev, eps, dim, tau), eps, threshold, hard)


def ultra_sequence(x: Tensor, tau=0.9, eps=1.0, threshold: float = 1.0, hard: bool = False,
                   state: UltraState | None = None, *, backend: str = "auto") -> tuple[Tensor, Tensor, UltraState]:
    """Run the temporal Ultra neuron over a whole sequence in one autograd node (:func:`ultra_step` per step).

    Args:
        x: input currents ``(T, B, ...features)``.
        tau: decay > 0, a float or a one-element tensor (may require grad: UltraPLIF's ``exp(log_tau)``).
        eps: temperature > 0, a float or a one-element tensor (may require grad).
        threshold: ``theta``. hard: binary spikes forward (straight-through gradient).
        state: the membrane before the first step (broadcastable to ``x[0]``, receives a gradient), None: rest.
        backend: ``"auto"`` (numba for CPU tensors, Triton for CUDA tensors where it is installed, the torch loop
            otherwise), ``"numba"``, ``"triton"`` or ``"torch"``. All compute the same numbers.

    Returns:
        ``(spikes, v, UltraState(v after the last reset))``; ``spikes`` and ``v`` (the membrane before reset)
        are ``(T, B, ...features)`` in ``x``'s dtype. Every output is differentiable.
    """
    _check_input(x, 1)
    backend = select_backend(x, backend, "the UltraLIF scan")
    if backend == "torch":
        return _torch_scan(x, state, lambda x_t, v: ultra_membrane(x_t, v, tau, eps), eps, threshold, hard)
    eps, shift = _layer_value("eps", eps), _log(_layer_value("tau", tau))
    return _fused(x, state, eps, shift, False, threshold, hard, backend)


def ultra_diffusive_sequence(x: Tensor, eps=1.0, threshold: float = 1.0, tau=None, hard: bool = False,
                             state: UltraState | None = None, *,
                             backend: str = "auto") -> tuple[Tensor, Tensor, UltraState]:
    """Run the spatial Ultra neuron over a whole sequence in one autograd node (:func:`ultra_diffusive_step` per
    step, rings along axis 2 of ``x``: the features of ``(T, B, F)``, the channels of ``(T, B, C, H, W)``).

    Args:
        x: input currents ``(T, B, F, ...)``.
        eps: temperature > 0, a float or a one-element tensor (may require grad).
        threshold: ``theta``.
        tau: None (UltraDLIF), or the centre factor of UltraDPLIF, a float or a one-element tensor.
        hard: binary spikes forward (straight-through gradient).
        state: the membrane before the first step (broadcastable to ``x[0]``), None: rest.
        backend: as :func:`ultra_sequence`.

    Returns:
        ``(spikes, v, UltraState(v after the last reset))``, as :func:`ultra_sequence`.
    """
    _check_input(x, 3)
    backend = select_backend(x, backend, "the UltraLIF scan")
    if backend == "torch":
        return _torch_scan(x, state, lambda x_t, v: ultra_diffusive_membrane(x_t, v, eps, 1, tau), eps, threshold,
                           hard)
    eps, tau = _layer_value("eps", eps), None if tau is None else _layer_value("tau", tau)
    return _fused(x, state, eps, 1.0 if tau is None else tau, True, threshold, hard, backend)


def _check_input(x, dims: int) -> None:
    if not isinstance(x, Tensor) or x.dim() < dims or not x.is_floating_point():
        raise ConfigError(f"x must be a floating-point tensor shaped (T, B, {'F, ...' if dims == 3 else '...'}), "
                          f"got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")


def _layer_value(name: str, value):
    """``value`` checked to be one value per layer: a float > 0 or a one-element floating-point tensor."""
    if isinstance(value, Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ConfigError(f"the sequence scans take one {name} per layer (a float or a one-element tensor), got "
                              f"a {value.dtype} tensor of shape {tuple(value.shape)}; run per-unit values with the "
                              f"step functions (ultra_step, ultra_diffusive_step)")
        return value.reshape(())
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite float > 0, got {value!r}")
    return float(value)


def _torch_scan(x, state, membrane, eps, threshold, hard):
    """The reference: the step functions in a loop, under autograd."""
    v = None if state is None else state.v
    spikes, trace = [], []
    for x_t in x:
        u = membrane(x_t, v)
        s, v = fire(u, eps, threshold, hard)
        spikes.append(s)
        trace.append(u)
    if not spikes:
        return x.new_empty(x.shape), x.new_empty(x.shape), UltraState(_rest(x, state))
    return torch.stack(spikes), torch.stack(trace), UltraState(v)


def _rest(x: Tensor, state: UltraState | None) -> Tensor:
    if state is None:
        return x.new_zeros(x.shape[1:])
    return state.v.to(x.dtype).expand(x.shape[1:])


def _fused(x, state, eps, param, diffusive, threshold, hard, backend):
    dtype = compute_dtype(x.dtype)
    v0 = None
    if state is not None:
        try:
            v0 = state.v.to(dtype=dtype, device=x.device).expand(x.shape[1:])
        except RuntimeError:
            raise ConfigError(f"state.v of shape {tuple(state.v.shape)} does not broadcast to one step of the input, "
                              f"{tuple(x.shape[1:])}") from None
    as_tensor = lambda value: value.to(dtype=dtype, device=x.device) if isinstance(value, Tensor) else value  # noqa: E731
    s, u, v_last = _UltraScan.apply(x, v0, as_tensor(eps), as_tensor(param), diffusive, float(threshold), bool(hard),
                                    backend)
    return s, u, UltraState(v_last)


class _UltraScan(torch.autograd.Function):
    """A whole Ultra sequence as one autograd node.

    ``param`` is ``log tau`` (temporal) or the centre factor (diffusive, 1.0 for UltraDLIF); it and ``eps`` are
    floats or 0-dim tensors in the compute dtype (:func:`~spikelab.functional.lif.compute_dtype`); ``v0`` is None
    (rest) or a tensor of one step's shape. Outputs ``(spikes, v before reset, v after the last reset)`` in ``x``'s
    dtype.
    """

    @staticmethod
    def forward(ctx, x, v0, eps, param, diffusive: bool, threshold: float, hard: bool, backend: str):
        ctx.set_materialize_grads(False)
        xc = x.to(compute_dtype(x.dtype)).contiguous()
        v0 = xc.new_zeros(x.shape[1:]) if v0 is None else v0.contiguous()
        ctx.config = diffusive, threshold, hard, backend, x.dtype
        ctx.floats = [None if isinstance(value, Tensor) else value for value in (eps, param)]
        if backend == "triton":
            from spikelab.functional._ultralif_triton import triton_forward
            s, u, v_last = triton_forward(xc, v0, eps, param, diffusive, threshold, hard)
        else:
            s, u, v_last = _numba_forward(xc, v0, _float(eps), _float(param), diffusive, threshold, hard)
        ctx.save_for_backward(xc, u, v0, *(value if isinstance(value, Tensor) else None for value in (eps, param)))
        return s.to(x.dtype), u.to(x.dtype), v_last.to(x.dtype)

    @staticmethod
    @once_differentiable  # the backward pass is itself not differentiable (numba, triton)
    def backward(ctx, gs, gu, gv_last):
        xc, u, v0, eps_t, param_t = ctx.saved_tensors
        diffusive, threshold, hard, backend, x_dtype = ctx.config
        eps = ctx.floats[0] if eps_t is None else eps_t
        param = ctx.floats[1] if param_t is None else param_t
        if gs is None and gu is None and gv_last is None:
            return (None,) * 8
        widen = lambda g: None if g is None else g.to(u.dtype).contiguous()  # noqa: E731
        if backend == "triton":
            from spikelab.functional._ultralif_triton import triton_backward
            gx, geps, gparam, gv0 = triton_backward(widen(gs), widen(gu), widen(gv_last), u, xc, v0, eps, param,
                                                    diffusive, threshold, hard)
        else:
            gx, geps, gparam, gv0 = _numba_backward(widen(gs), widen(gu), widen(gv_last), u, xc, v0, _float(eps),
                                                    _float(param), diffusive, threshold, hard)
        needs = ctx.needs_input_grad
        return (gx.to(x_dtype), gv0 if needs[1] else None, geps.sum().to(eps_t.dtype) if needs[2] else None,
                gparam.sum().to(param_t.dtype) if needs[3] else None, None, None, None, None)


def _float(value) -> float:
    """A CPU scalar as a float (the numba kernels' scalar arguments)."""
    return float(value) if isinstance(value, Tensor) else value


def _kernel_shape(shape: torch.Size, diffusive: bool) -> tuple[int, ...]:
    """``(T, N)`` for the temporal kernels, ``(T, B, F, R)`` for the diffusive (rings along F)."""
    if diffusive:
        return (shape[0], shape[1], shape[2], math.prod(shape[3:]))
    return (shape[0], math.prod(shape[1:]))


def _numba_forward(x, v0, eps, param, diffusive, threshold, hard):
    from spikelab.functional import _ultralif_kernels  # numba loads on the first CPU scan only

    cast = (np.float32 if x.dtype == torch.float32 else np.float64)
    shape = _kernel_shape(x.shape, diffusive)
    s, u = torch.empty(x.shape, dtype=x.dtype), torch.empty(x.shape, dtype=x.dtype)
    v_last = torch.empty(x.shape[1:], dtype=x.dtype)
    kernel = _ultralif_kernels.ultra_diffusive_forward if diffusive else _ultralif_kernels.ultra_forward
    view = lambda t, step=False: t.detach().numpy().reshape(shape[1:] if step else shape)  # noqa: E731
    kernel(view(x), view(v0, True), cast(param), cast(eps), cast(threshold), hard, cast(1), view(s), view(u),
           view(v_last, True))
    return s, u, v_last


def _numba_backward(gs, gu, gv_last, u, x, v0, eps, param, diffusive, threshold, hard):
    from spikelab.functional import _ultralif_kernels

    cast = (np.float32 if u.dtype == torch.float32 else np.float64)
    shape = _kernel_shape(u.shape, diffusive)
    gx = torch.empty(u.shape, dtype=u.dtype)
    geps, gparam, gv0 = (torch.zeros(u.shape[1:], dtype=u.dtype) for _ in range(3))
    view = lambda t, step=False: t.detach().numpy().reshape(shape[1:] if step else shape)  # noqa: E731
    absent = np.zeros((1,) + shape[1:], cast)  # stands for a missing gs or gu
    kernel = _ultralif_kernels.ultra_diffusive_backward if diffusive else _ultralif_kernels.ultra_backward
    kernel(absent if gs is None else view(gs), absent if gu is None else view(gu),
           np.zeros(shape[1:], cast) if gv_last is None else view(gv_last, True), view(u), view(x), view(v0, True),
           cast(param), cast(eps), cast(threshold), hard, cast(1), view(gx), view(geps, True), view(gparam, True),
           view(gv0, True))
    return gx, geps, gparam, gv0
