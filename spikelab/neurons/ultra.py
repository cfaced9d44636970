r"""Ultra neurons: fully differentiable spiking neurons by ultradiscretization (max-plus algebra).

``nn.Module`` wrappers over :mod:`spikelab.functional.ultralif` (equations there), drop-in for
:class:`spikelab.LIF`: input ``(T, B, ...features)`` -> soft spikes in (0, 1) of the same shape, ``step``,
``return_state``, and ``record`` / ``recorded`` (``{"spikes": ..., "v": ...}``, ``v`` before reset).

==================  ==========================================================================================
layer               membrane (per step; spike ``s = sigmoid((V' - theta)/eps)``, reset ``V = V'(1 - s)``)
==================  ==========================================================================================
:class:`UltraLIF`   ``V' = LSE_eps(V + log tau, I)``, fixed ``tau``
:class:`UltraPLIF`  the same with learnable ``tau = exp(log_tau)``
:class:`UltraDLIF`  ``V'_i = LSE_eps(V_{i-1}, V_i, V_{i+1}) + I_i`` (ring of neighbouring units, no leak)
:class:`UltraDPLIF` ``V'_i = LSE_eps(V_{i-1}, tau V_i, V_{i+1}) + I_i``, learnable ``tau`` (official code's
                    multiplicative centre term)
==================  ==========================================================================================

``forward`` runs the whole sequence as one fused scan (:func:`~spikelab.functional.ultralif.ultra_sequence`,
:func:`~spikelab.functional.ultralif.ultra_diffusive_sequence`: numba on CPU, Triton on CUDA, the step loop
elsewhere; ``layer.backend`` names one, default ``"auto"``); ``step`` is one step of ordinary autograd ops.

``eps`` is one scalar per layer, learnable as ``exp(log_eps)``; learnable ``tau`` is ``exp(log_tau)``. The
ranges ``eps in [0.1, 20]`` and ``log_tau in [-2.3, -0.01]`` are kept by :meth:`clamp_parameters`, which clamps the
*parameters* in place and must run after every optimiser step. The forward pass also clamps their values with a
straight-through clamp (value clamped, gradient passed unchanged), so gradients stay alive everywhere.

Spike mode: ``layer.spike_mode`` is ``"soft"`` (default; the smooth spike, as trained) or ``"hard"``: binary
``H(V' - theta)`` for deployment, the reset then uses the hard spike and the backward pass the soft spike's
derivative (straight-through). :func:`set_spike_mode` switches every Ultra layer of a model and returns the
previous modes, which it also accepts to restore them.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError, ExportError
from spikelab.neurons.base import LIFDescription, Neuron
from spikelab.spec import configurable
from spikelab.functional.ultralif import (UltraState, fire, ultra_diffusive_membrane, ultra_diffusive_sequence,
                                          ultra_membrane, ultra_sequence)

EPS_RANGE = (0.1, 20.0)
LOG_TAU_RANGE = (-2.3, -0.01)
SPIKE_MODES = ("soft", "hard")


def _straight_clamp(p: Tensor, lo: float, hi: float) -> Tensor:
    """``p`` clamped to ``[lo, hi]`` in value, with the identity as its gradient."""
    return p + (p.detach().clamp(lo, hi) - p.detach())


def _real(name: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise ConfigError(f"{name} must be a finite float{' > 0' if positive else ''}, got {value!r}")
    return float(value)


class _Ultra(Neuron):
    """Shared machinery: eps / tau parameters, the clamp, the sequence scan, recording and spike mode."""

    diffusive = False

    def __init__(self, tau: float | None, threshold: float, eps: float, learn_eps: bool, learn_tau: bool):
        super().__init__()
        self.spike_mode = "soft"
        self.backend = "auto"   # the sequence scan's implementation, see ultra_sequence (benchmarks set "torch")
        self.threshold = _real("threshold", threshold)
        eps = _real("eps", eps, positive=True)
        if not isinstance(learn_eps, bool):
            raise ConfigError(f"learn_eps must be True or False, got {learn_eps!r}")
        self.learn_eps = learn_eps
        if learn_eps:
            if not EPS_RANGE[0] <= eps <= EPS_RANGE[1]:
                raise ConfigError(f"a learnable eps must start inside {list(EPS_RANGE)}, got {eps!r}")
            self.log_eps = nn.Parameter(torch.tensor(math.log(eps)))
            self.eps_fixed = None
        else:
            self.eps_fixed = eps
        self.learn_tau = learn_tau
        self.tau_fixed = None
        if tau is not None:
            tau = _real("tau", tau, positive=True)
            if learn_tau:
                lo, hi = LOG_TAU_RANGE
                if not lo <= math.log(tau) <= hi:
                    raise ConfigError(f"a learnable tau must start inside [{math.exp(lo):.4g}, {math.exp(hi):.4g}] "
                                      f"(log_tau in {list(LOG_TAU_RANGE)}), got {tau!r}")
                self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))
            else:
                self.tau_fixed = tau

    # -- parameters --------------------------------------------------------------------------
    def _eps(self):
        """The effective eps: the fixed float, or ``exp(log_eps)`` clamped in value (straight-through)."""
        if not self.learn_eps:
            return self.eps_fixed
        return torch.exp(_straight_clamp(self.log_eps, *map(math.log, EPS_RANGE)))

    def _tau(self):
        """The effective tau: the fixed float, ``exp(log_tau)`` clamped in value, or None (UltraDLIF)."""
        if self.learn_tau:
            return torch.exp(_straight_clamp(self.log_tau, *LOG_TAU_RANGE))
        return self.tau_fixed

    @property
    def eps(self) -> Tensor:
        """The effective eps as a tensor."""
        eps = self._eps()
        return eps if isinstance(eps, Tensor) else torch.tensor(eps)

    @property
    def tau(self) -> Tensor | None:
        """The effective tau as a tensor (None for UltraDLIF, which has no leak)."""
        tau = self._tau()
        return tau if tau is None or isinstance(tau, Tensor) else torch.tensor(tau)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamp ``log_eps`` to ``log [0.1, 20]`` and ``log_tau`` to ``[-2.3, -0.01]`` in place (after each
        optimiser step)."""
        if self.learn_eps:
            self.log_eps.clamp_(*map(math.log, EPS_RANGE))
        if self.learn_tau:
            self.log_tau.clamp_(*LOG_TAU_RANGE)

    # -- dynamics ----------------------------------------------------------------------------
    def _membrane(self, x_t: Tensor, v_prev: Tensor | None, tau, eps) -> Tensor:
        raise NotImplementedError

    def _check_mode(self) -> bool:
        if self.spike_mode not in SPIKE_MODES:
            raise ConfigError(f"spike_mode must be one of {', '.join(SPIKE_MODES)}, got {self.spike_mode!r}")
        return self.spike_mode == "hard"

    def _advance(self, x_t: Tensor, state: UltraState | None, tau, eps, hard: bool):
        v_prev = None if state is None else state.v
        v = self._membrane(x_t, v_prev, tau, eps)
        s, v_reset = fire(v, eps, self.threshold, hard)
        return s, v, UltraState(v_reset)

    def forward(self, x: Tensor, state: UltraState | None = None, return_state: bool = False):
        """Run ``x`` ``(T, B, ...features)`` from ``state`` (None: rest); spikes ``(T, B, ...features)``."""
        if not isinstance(x, Tensor) or x.dim() < 2 + self.diffusive or not x.is_floating_point():
            raise ConfigError(f"{type(self).__name__} expects a floating-point tensor shaped "
                              f"(T, B, {'F, ...' if self.diffusive else '...features'}), got "
                              f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        hard, tau, eps = self._check_mode(), self._tau(), self._eps()
        backend = getattr(self, "backend", "auto")  # (layers pickled before the attribute existed lack it)
        if self.diffusive:
            spikes, v, state = ultra_diffusive_sequence(x, eps, self.threshold, tau, hard, state, backend=backend)
        else:
            spikes, v, state = ultra_sequence(x, tau, eps, self.threshold, hard, state, backend=backend)
        self._keep(spikes=spikes, v=v)
        return (spikes, state) if return_state else spikes

    def as_lif(self) -> LIFDescription:
        raise ExportError(f"{type(self).__name__}: an UltraLIF-family membrane is a max-plus log-sum-exp, not an LIF "
                          "membrane, so PyNN, SpiNNaker and NIR cannot run it; retrain with --neuron lif")

    def step(self, x_t: Tensor, state: UltraState | None = None) -> tuple[Tensor, UltraState]:
        """Advance one step ``(B, ...features)``: ``(s_t, UltraState(v after reset))``."""
        s, _, state = self._advance(x_t, state, self._tau(), self._eps(), self._check_mode())
        return s, state

    def extra_repr(self) -> str:
        parts = []
        tau = self.tau
        if tau is not None:
            parts.append(f"tau={tau.item():.4g}")
        parts += [f"threshold={self.threshold}", f"eps={self.eps.item():.4g}", f"learn_eps={self.learn_eps}"]
        if self.spike_mode != "soft":
            parts.append(f"spike_mode={self.spike_mode!r}")
        return ", ".join(parts)


_TABLE_NOTE = """
    Shapes:
        ``forward``: ``(T, B, ...features)`` -> soft spikes in (0, 1) of the same shape (``"hard"`` mode: 0/1);
        with ``return_state=True`` also the final :class:`~spikelab.functional.ultralif.UltraState`.
        ``step``: ``(B, ...features)`` -> ``(s_t, UltraState)``.
"""


@configurable
class UltraLIF(_Ultra):
    r"""Temporal Ultra neuron: the LIF ultradiscretised, with fixed decay ``tau``.

    Per step, from the membrane ``V`` left by the previous reset (rest: 0)::

        V' = LSE_eps(V + log tau, I) = eps * log(exp((V + log tau)/eps) + exp(I/eps))
        s  = sigmoid((V' - theta) / eps)         # soft spike, no surrogate
        V  = V' * (1 - s)                        # multiplicative soft reset

    At ``eps = 1`` this is the linear LIF in log coordinates, ``log(tau e^V + e^I)``; as ``eps -> 0`` it is the
    tropical LIF ``max(V + log tau, I)`` and ``s -> H(V' - theta)``.

    =============  ============  =======  ========================================================================
    parameter      unit          default  meaning
    =============  ============  =======  ========================================================================
    ``tau``        1 (per step)  0.9      decay in the linear domain (> 0); enters as ``log tau``
    ``threshold``  input units   1.0      firing threshold ``theta``
    ``eps``        input units   1.0      temperature (> 0): LSE softness, spike slope ``1/eps``, gradient scale
    ``learn_eps``  --            True     learn ``eps = exp(log_eps)`` (one per layer; must start in [0.1, 20],
                                          kept there by :meth:`clamp_parameters`); False: fixed, any eps > 0
    =============  ============  =======  ========================================================================
    """ + _TABLE_NOTE + r"""
    Example::

        >>> import torch, spikelab as sl
        >>> from spikelab.neurons.ultra import UltraLIF
        >>> spikes = UltraLIF()(torch.randn(10, 4, 64))      # (T, B, features), values in (0, 1)
    """

    def __init__(self, tau: float = 0.9, threshold: float = 1.0, eps: float = 1.0, learn_eps: bool = True):
        super().__init__(tau, threshold, eps, learn_eps, learn_tau=False)

    def _membrane(self, x_t, v_prev, tau, eps):
        return ultra_membrane(x_t, v_prev, tau, eps)


@configurable
class UltraPLIF(UltraLIF):
    r"""Temporal Ultra neuron with a learnable decay: :class:`UltraLIF` with ``tau = exp(log_tau)``.

    ``log_tau`` is one scalar per layer, initialised to ``log tau`` and kept in ``[-2.3, -0.01]``
    (``tau`` in about [0.1, 0.99]) by :meth:`clamp_parameters`.

    =============  ============  =======  ========================================================================
    parameter      unit          default  meaning
    =============  ============  =======  ========================================================================
    ``tau``        1 (per step)  0.9      initial decay, in [0.1003, 0.990]; learnable as ``exp(log_tau)``
    ``threshold``  input units   1.0      firing threshold ``theta``
    ``eps``        input units   1.0      temperature (> 0), as :class:`UltraLIF`
    ``learn_eps``  --            True     learn ``eps = exp(log_eps)``, in [0.1, 20]
    =============  ============  =======  ========================================================================
    """ + _TABLE_NOTE

    def __init__(self, tau: float = 0.9, threshold: float = 1.0, eps: float = 1.0, learn_eps: bool = True):
        _Ultra.__init__(self, tau, threshold, eps, learn_eps, learn_tau=True)


@configurable
class UltraDLIF(_Ultra):
    r"""Spatial (diffusive) Ultra neuron: neighbouring units exchange membrane through a max-plus stencil.

    Per step, on a ring of units ``i`` (``i -+ 1`` wrap around), from the membrane left by the last reset::

        V'_i = LSE_eps(V_{i-1}, V_i, V_{i+1}) + I_i       # ultradiscretised 3-point heat equation (gap junctions)
        s_i  = sigmoid((V'_i - theta) / eps);   V_i = V'_i (1 - s_i)

    There is no leak; the neighbour term is the memory. The ring runs along the **feature axis** of
    ``(T, B, F)`` input and along the **channel axis** (dim 2) of conv feature maps ``(T, B, C, H, W)`` (each
    pixel has its own ring of channels); in general, along the first axis after the batch.

    =============  ============  =======  ========================================================================
    parameter      unit          default  meaning
    =============  ============  =======  ========================================================================
    ``threshold``  input units   1.0      firing threshold ``theta``
    ``eps``        input units   1.0      temperature (> 0): LSE softness, spike slope ``1/eps``, gradient scale
    ``learn_eps``  --            True     learn ``eps = exp(log_eps)``, in [0.1, 20] (:meth:`clamp_parameters`)
    =============  ============  =======  ========================================================================
    """ + _TABLE_NOTE

    diffusive = True

    def __init__(self, threshold: float = 1.0, eps: float = 1.0, learn_eps: bool = True):
        super().__init__(None, threshold, eps, learn_eps, learn_tau=False)

    def _membrane(self, x_t, v_prev, tau, eps):
        if x_t.dim() < 2:
            raise ConfigError(f"{type(self).__name__}.step expects (B, F, ...) input, got {tuple(x_t.shape)}")
        return ultra_diffusive_membrane(x_t, v_prev, eps, 1, tau)


@configurable
class UltraDPLIF(UltraDLIF):
    r"""Diffusive Ultra neuron with a learnable decay on the centre term:
    ``V'_i = LSE_eps(V_{i-1}, tau * V_i, V_{i+1}) + I_i``.

    Note the official code's quirk, kept for parity: ``tau`` **multiplies** the centre membrane here, while the
    temporal :class:`UltraPLIF` **adds** ``log tau``. ``tau = exp(log_tau)``, ``log_tau`` in ``[-2.3, -0.01]``.
    Rings as :class:`UltraDLIF` (features of ``(T, B, F)``, channels of ``(T, B, C, H, W)``).

    =============  ============  =======  ========================================================================
    parameter      unit          default  meaning
    =============  ============  =======  ========================================================================
    ``tau``        1             0.9      initial centre factor, in [0.1003, 0.990]; learnable as ``exp(log_tau)``
    ``threshold``  input units   1.0      firing threshold ``theta``
    ``eps``        input units   1.0      temperature (> 0), as :class:`UltraDLIF`
    ``learn_eps``  --            True     learn ``eps = exp(log_eps)``, in [0.1, 20]
    =============  ============  =======  ========================================================================
    """ + _TABLE_NOTE

    def __init__(self, tau: float = 0.9, threshold: float = 1.0, eps: float = 1.0, learn_eps: bool = True):
        _Ultra.__init__(self, tau, threshold, eps, learn_eps, learn_tau=True)


ULTRA_NEURONS = {"ultralif": UltraLIF, "ultraplif": UltraPLIF, "ultradlif": UltraDLIF, "ultradplif": UltraDPLIF}


def set_spike_mode(model: nn.Module, mode) -> dict[str, str]:
    """Set ``spike_mode`` on every Ultra layer of ``model``; return the previous modes ``{name: mode}``.

    Args:
        model: any module (the Ultra layers are found among ``model.modules()``).
        mode: ``"soft"`` or ``"hard"`` for all of them, or a dict returned earlier, to restore those modes.

    Example::

        >>> previous = set_spike_mode(net, "hard")      # binary spikes for deployment / evaluation
        >>> ...
        >>> set_spike_mode(net, previous)               # back to what it was
    """
    if isinstance(mode, dict):
        bad = [m for m in mode.values() if m not in SPIKE_MODES]
    else:
        bad = [] if mode in SPIKE_MODES else [mode]
    if bad:
        raise ConfigError(f"spike mode must be one of {', '.join(SPIKE_MODES)}, got {bad[0]!r}")
    previous = {}
    for name, module in model.named_modules():
        if isinstance(module, _Ultra):
            previous[name] = module.spike_mode
            if isinstance(mode, dict):
                if name in mode:
                    module.spike_mode = mode[name]
            else:
                module.spike_mode = mode
    return previous


__all__ = ["UltraLIF", "UltraPLIF", "UltraDLIF", "UltraDPLIF", "ULTRA_NEURONS", "set_spike_mode", "UltraState"]
