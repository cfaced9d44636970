"""Surrogate-gradient spike function.

The forward pass is the Heaviside step ``H(x) = 1 if x >= 0 else 0`` (``x`` is the membrane minus the
threshold, so a neuron fires on ``v >= threshold`` as in NEST and SpiNNaker). Its true derivative is zero
almost everywhere, so the backward pass uses the derivative of a smooth stand-in instead:

==================  ==========================================  ==============  ==========================
name                dH/dx used in backward                      default slope   origin
==================  ==========================================  ==============  ==========================
``"atan"``          ``(a/2) / (1 + (pi/2 * a * x)**2)``          ``a = 2.0``     snnTorch ``surrogate.atan``
                                                                                (``slope`` is its ``alpha``)
``"fast_sigmoid"``  ``1 / (k * |x| + 1)**2``                     ``k = 25.0``    snnTorch ``fast_sigmoid``,
                                                                                SuperSpike
``"triangle"``      ``k * max(0, 1 - k * |x|)``                  ``k = 1.0``     a triangle of width
                                                                                ``2/k`` and area 1
==================  ==========================================  ==============  ==========================

``"fast-sigmoid"`` is accepted as a spelling of ``"fast_sigmoid"``. ``atan`` and ``triangle`` integrate
to 1 over the real line (they are derivatives of functions going from 0 to 1); ``fast_sigmoid``
integrates to ``2/k``, as in snnTorch.

Example::

    >>> import torch
    >>> from spikelab.functional.surrogate import spike
    >>> u = torch.tensor([-0.5, 0.0, 0.3], requires_grad=True)
    >>> s = spike(u, "atan")            # tensor([0., 1., 1.])
    >>> s.sum().backward()
    >>> u.grad                          # 1 / (1 + (pi * u)**2)
    tensor([0.2884, 1.0000, 0.5296])
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from spikelab.errors import ConfigError

#: The surrogate gradients and their default slopes (see the module docstring for their formulas).
DEFAULT_SLOPES = {"atan": 2.0, "fast_sigmoid": 25.0, "triangle": 1.0}
SURROGATES = tuple(DEFAULT_SLOPES)
_ALIASES = {"fast-sigmoid": "fast_sigmoid"}


def surrogate_name(name: str) -> str:
    """The canonical name of a surrogate (``"fast-sigmoid"`` -> ``"fast_sigmoid"``); ConfigError if unknown."""
    canonical = _ALIASES.get(name, name)
    if canonical not in DEFAULT_SLOPES:
        raise ConfigError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)} (or 'fast-sigmoid')")
    return canonical


def default_slope(name: str) -> float:
    """The slope a surrogate uses when none is given: atan 2.0 (snnTorch's alpha), fast_sigmoid 25.0, triangle 1.0."""
    return DEFAULT_SLOPES[surrogate_name(name)]


def resolve_slope(name: str, slope: float | None) -> float:
    """``slope``, or the surrogate's default when it is None; ConfigError unless it is a finite number > 0."""
    if slope is None:
        return default_slope(name)
    if isinstance(slope, bool) or not isinstance(slope, numbers.Real) or not math.isfinite(slope) or slope <= 0:
        raise ConfigError(f"surrogate slope must be a finite number > 0, got {slope!r}")
    return float(slope)


def surrogate_grad(x: Tensor, surrogate: str = "atan", slope: float | None = None) -> Tensor:
    """The surrogate derivative ``dH/dx`` evaluated at ``x`` (same shape and dtype as ``x``).

    Args:
        x: membrane minus threshold, any shape.
        surrogate: ``"atan"``, ``"fast_sigmoid"`` (or ``"fast-sigmoid"``) or ``"triangle"``.
        slope: the surrogate's sharpness (atan: snnTorch's ``alpha``); None for its default.
    """
    name = surrogate_name(surrogate)
    k = resolve_slope(name, slope)
    if name == "atan":
        return (k / 2) / ((math.pi / 2 * k) * x).square_().add_(1)
    if name == "fast_sigmoid":
        return (k * x.abs()).add_(1).square_().reciprocal_()
    return (1 - k * x.abs()).clamp_(min=0).mul_(k)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, surrogate: str, slope: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.slope = surrogate, slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(x, ctx.surrogate, ctx.slope), None, None


def spike(x: Tensor, surrogate: str = "atan", slope: float | None = None) -> Tensor:
    """Heaviside spike ``(x >= 0)`` in the forward pass, surrogate derivative in the backward pass.

    Args:
        x: membrane minus threshold, any shape (floating point).
        surrogate: name of the surrogate derivative, one of :data:`SURROGATES` (``"fast-sigmoid"`` accepted).
        slope: its slope (atan: snnTorch's ``alpha``); None for :func:`default_slope`.

    Returns:
        Spikes (0.0 or 1.0) of the same shape and dtype as ``x``.
    """
    name = surrogate_name(surrogate)
    return _Spike.apply(x, name, resolve_slope(name, slope))
