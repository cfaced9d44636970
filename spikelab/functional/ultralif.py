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
from typing import NamedTuple

import torch
from torch import Tensor

from spikelab.errors import ConfigError


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
