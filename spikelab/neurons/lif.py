"""Neuron layers: thin ``nn.Module`` wrappers over :mod:`spikelab.functional.lif`.

Every layer maps a time-first sequence ``(T, B, ...features)`` to a sequence of the same shape
(``forward``), and advances one step ``(B, ...features)`` with ``step(x_t, state) -> (y_t, state)`` for
online training (SLTT) and local rules. Setting ``layer.record = True`` makes ``forward`` keep its last
output, detached, in ``layer.recorded`` (``{"spikes": ..., "v": ...}``; a readout has only ``"v"``).

=====================  ==========================================================================
layer                  what it computes
=====================  ==========================================================================
:class:`LIF`           leaky integrate-and-fire: input current -> spikes
:class:`RecurrentLIF`  LIF whose input adds all-to-all recurrent weights on the previous spikes
:class:`LeakyIntegrator`  non-spiking leaky membrane (the readout): input -> membrane
=====================  ==========================================================================
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError
from spikelab.layers import Linear
from spikelab.neurons.base import LIFDescription, Neuron
from spikelab.spec import configurable
from spikelab.functional.lif import (LIFParameters, LIFState, check_parameters, leaky_integrate,
                                     leaky_integrate_step, lif_sequence, lif_step)

LEARN_BETA = (False, "layer", "neuron")


def _feature_shape(features) -> tuple[int, ...]:
    if isinstance(features, int) and not isinstance(features, bool):
        features = (features,)
    if not isinstance(features, (tuple, list)) or not features or not all(
            isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in features):
        raise ConfigError(f"features must be a positive int or a tuple of them (one step's feature shape), "
                          f"got {features!r}")
    return tuple(features)


class _Leaky(Neuron):
    """The decay ``beta`` of a layer: a fixed float, or learnable as ``sigmoid(beta_logit)`` (per layer or neuron)."""

    def __init__(self, beta: float, learn_beta, features):
        super().__init__()
        if learn_beta not in LEARN_BETA or isinstance(learn_beta, (int, float)) and learn_beta is not False:
            raise ConfigError(f"learn_beta must be False, 'layer' or 'neuron', got {learn_beta!r}")
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < 1:
            raise ConfigError(f"beta must be a float in [0, 1), got {beta!r}")
        self.learn_beta = learn_beta
        self.beta_fixed = float(beta) if learn_beta is False else None
        if learn_beta is False:
            return
        if beta == 0:
            raise ConfigError("a learnable beta must start inside (0, 1), got 0; pass e.g. beta=0.5")
        if learn_beta == "neuron":
            if features is None:
                raise ConfigError("learn_beta='neuron' needs features= (one step's feature shape, e.g. 256)")
            shape = _feature_shape(features)
        else:
            shape = ()
        self.beta_logit = nn.Parameter(torch.full(shape, math.log(beta / (1 - beta))))

    @property
    def beta(self) -> Tensor:
        """The effective decay per step: the fixed value, or ``sigmoid(beta_logit)`` (always inside (0, 1))."""
        decay = self.decay()
        return decay if isinstance(decay, Tensor) else torch.tensor(decay)

    def decay(self) -> float | Tensor:
        """``beta`` as the functional API takes it: the exact fixed float (device-free; ``beta`` would round it to
        float32), or the learnable tensor."""
        return self.beta_fixed if self.learn_beta is False else torch.sigmoid(self.beta_logit)

    def _beta_repr(self) -> str:
        beta = self.beta
        return f"beta={beta.item():.4g}" if beta.dim() == 0 else f"beta=<{tuple(beta.shape)}>"


@configurable
class LIF(_Leaky):
    r"""Leaky integrate-and-fire neurons (one per input feature), run over a whole sequence.

    Per step ``t``, with ``s' = s[t-1]`` the previous spikes (no gradient when ``detach_reset``)::

        keep[t] = 1 - s'  if reset == "zero"          else 1
        mask[t] = 1 - s'  if refractory_steps == 1    else 1
        v[t]    = beta * keep[t] * v[t-1] + mask[t] * x[t] - (threshold * s' if reset == "subtract" else 0)
        s[t]    = H(v[t] - threshold)          # v >= threshold; surrogate derivative in backward

    ``v`` is reported before its reset. With ``reset="zero"`` / ``"subtract"`` this is ``snntorch.Leaky``
    spike for spike; ``reset="zero"`` with ``refractory_steps`` 0 or 1 is what PyNN / SpiNNaker run.

    ====================  ==============  ===========  =========================================================
    parameter             unit            default      meaning
    ====================  ==============  ===========  =========================================================
    ``beta``              1 (per step)    0.9          membrane decay per step ``exp(-dt / tau_m)``, in [0, 1)
    ``threshold``         input units     1.0          firing threshold (> 0)
    ``reset``             --              ``"zero"``   ``"zero"``, ``"subtract"`` (threshold) or ``"none"``
    ``refractory_steps``  steps           0            0, or 1: the step after a spike drops its input
    ``surrogate``         --              ``"atan"``   ``"atan"``, ``"fast_sigmoid"`` / ``"fast-sigmoid"``,
                                                       ``"triangle"`` (see :mod:`spikelab.functional.surrogate`)
    ``slope``             1/input unit    None         surrogate sharpness; None: atan 2.0 (snnTorch's alpha),
                                                       fast_sigmoid 25.0, triangle 1.0
    ``learn_beta``        --              False        False; ``"layer"``: one learnable beta; ``"neuron"``: one
                                                       per feature. Learnable beta is ``sigmoid(beta_logit)``
    ``features``          --              None         feature shape (int or tuple), needed for ``"neuron"``
    ``detach_reset``      --              True         the reset / refractory terms pass no gradient to ``s'``
    ====================  ==============  ===========  =========================================================

    Shapes:
        ``forward``: input ``(T, B, ...features)`` -> spikes ``(T, B, ...features)`` (0.0 / 1.0, input dtype);
        with ``return_state=True`` also the final :class:`~spikelab.functional.lif.LIFState` ``(B, ...)``.
        ``step``: ``(B, ...features)`` -> ``(s_t, LIFState)``.

    Example::

        >>> import torch, spikelab as sl
        >>> lif = sl.LIF(beta=0.9, reset="subtract", learn_beta="neuron", features=64)
        >>> x = torch.rand(50, 4, 64)               # (T, B, features) input currents
        >>> spikes, state = lif(x, return_state=True)
        >>> spikes.shape, state.v.shape
        (torch.Size([50, 4, 64]), torch.Size([4, 64]))
        >>> s_t, state = lif.step(x[0])             # one step from rest
    """

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, reset: str = "zero", refractory_steps: int = 0,
                 surrogate: str = "atan", slope: float | None = None, learn_beta=False, features=None,
                 detach_reset: bool = True):
        super().__init__(beta, learn_beta, features)
        p = check_parameters(LIFParameters(beta, threshold, reset, refractory_steps, surrogate, slope, detach_reset))
        self.threshold, self.reset, self.refractory_steps = p.threshold, p.reset, p.refractory_steps
        self.surrogate, self.slope, self.detach_reset = p.surrogate, p.slope, p.detach_reset

    def lif_parameters(self) -> LIFParameters:
        """This layer's :class:`LIFParameters` (``beta``: the fixed float, or the effective learnable tensor)."""
        return LIFParameters(self.decay(), self.threshold, self.reset, self.refractory_steps, self.surrogate,
                             self.slope, self.detach_reset)

    def as_lif(self) -> LIFDescription:
        return LIFDescription("lif", self.decay(), self.threshold, self.reset, self.refractory_steps)

    def forward(self, x: Tensor, state: LIFState | None = None, return_state: bool = False):
        spikes, v = lif_sequence(x, self.lif_parameters(), state)
        self._keep(spikes=spikes, v=v)
        return (spikes, LIFState(v[-1], spikes[-1])) if return_state else spikes

    def step(self, x_t: Tensor, state: LIFState | None = None) -> tuple[Tensor, LIFState]:
        return lif_step(x_t, state, self.lif_parameters())

    def extra_repr(self) -> str:
        return (f"{self._beta_repr()}, threshold={self.threshold}, reset={self.reset!r}, "
                f"refractory_steps={self.refractory_steps}, surrogate={self.surrogate!r}, slope={self.slope}, "
                f"learn_beta={self.learn_beta!r}, detach_reset={self.detach_reset}")


@configurable
class RecurrentLIF(LIF):
    r"""LIF layer with all-to-all recurrent weights: its input current adds the previous step's own spikes.

    ``I[t] = x[t] + V s[t-1] (+ b)``, then the :class:`LIF` update with ``I[t]`` as input (the recurrent
    term carries gradient to ``V`` and through ``s[t-1]``; ``detach_reset`` affects only the reset).

    ====================  ==========  ========  ==================================================================
    parameter             unit        default   meaning
    ====================  ==========  ========  ==================================================================
    ``features``          --          (req.)    number of neurons ``n`` (int)
    ``bias``              --          False     add a learnable bias ``b`` (n) to the recurrent input
    others                                      as :class:`LIF` (``beta`` 0.9, ``threshold`` 1.0, ``reset``
                                                ``"zero"``, ...); ``learn_beta="neuron"`` uses ``features``
    ====================  ==========  ========  ==================================================================

    ``recurrent`` is an :class:`spikelab.Linear` ``(n, n)``: ``V`` starts uniform in ``+-1/sqrt(n)`` (torch's
    default); a local rule can learn it (``sl.STDP(...).attach(layer)``).
    The sequence is run step by step with autograd (the recurrence needs a matrix product per step).

    Shapes: input ``(T, B, n)`` -> spikes ``(T, B, n)``; ``step``: ``(B, n)`` -> ``(s_t, LIFState)``.

    Example::

        >>> import torch, spikelab as sl
        >>> rlif = sl.RecurrentLIF(128, beta=0.95)
        >>> spikes = rlif(torch.rand(100, 8, 128))      # (T, B, 128)
    """

    def __init__(self, features: int, beta: float = 0.9, threshold: float = 1.0, reset: str = "zero",
                 refractory_steps: int = 0, surrogate: str = "atan", slope: float | None = None, learn_beta=False,
                 detach_reset: bool = True, bias: bool = False):
        shape = _feature_shape(features)
        if len(shape) != 1:
            raise ConfigError(f"RecurrentLIF needs an int number of features, got {features!r}")
        (n,) = shape
        super().__init__(beta, threshold, reset, refractory_steps, surrogate, slope, learn_beta, n, detach_reset)
        self.features = n
        self.recurrent = Linear(n, n, bias=bias)

    def forward(self, x: Tensor, state: LIFState | None = None, return_state: bool = False):
        p = self.lif_parameters()
        spikes, vs = [], []
        for x_t in x:
            s_t, state = lif_step(self._current(x_t, state), state, p)
            spikes.append(s_t)
            vs.append(state.v)
        spikes, v = torch.stack(spikes), torch.stack(vs)
        self._keep(spikes=spikes, v=v)
        return (spikes, state) if return_state else spikes

    def step(self, x_t: Tensor, state: LIFState | None = None) -> tuple[Tensor, LIFState]:
        return lif_step(self._current(x_t, state), state, self.lif_parameters())

    def _current(self, x_t: Tensor, state: LIFState | None) -> Tensor:
        s_prev = torch.zeros_like(x_t) if state is None else state.s
        return x_t + self.recurrent(s_prev)

    def extra_repr(self) -> str:
        return f"features={self.features}, bias={self.recurrent.bias is not None}, " + super().extra_repr()


@configurable
class LeakyIntegrator(_Leaky):
    r"""Non-spiking leaky integrator, the usual readout: ``v[t] = beta * v[t-1] + x[t]``, ``v[-1] = 0``.

    ==============  ============  =======  ===============================================================
    parameter       unit          default  meaning
    ==============  ============  =======  ===============================================================
    ``beta``        1 (per step)  0.9      decay per step ``exp(-dt / tau)``, in [0, 1)
    ``learn_beta``  --            False    False, ``"layer"`` or ``"neuron"`` (``sigmoid(beta_logit)``)
    ``features``    --            None     feature shape (int or tuple), needed for ``"neuron"``
    ==============  ============  =======  ===============================================================

    Shapes: ``forward``: ``(T, B, C)`` -> membrane ``(T, B, C)`` (``state``: initial membrane ``(B, C)``);
    ``step``: ``(B, C)`` -> ``(v_t, v_t)`` (the membrane is the state).

    Example::

        >>> import torch, spikelab as sl
        >>> readout = sl.LeakyIntegrator(beta=0.9)
        >>> v = readout(torch.rand(100, 8, 10))         # (T, B, classes)
    """

    spiking = False

    def __init__(self, beta: float = 0.9, learn_beta=False, features=None):
        super().__init__(beta, learn_beta, features)

    def as_lif(self) -> LIFDescription:
        return LIFDescription("readout", self.decay(), math.inf, "none", 0)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        v = leaky_integrate(x, self.decay(), state)
        self._keep(v=v)
        return v

    def step(self, x_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = leaky_integrate_step(x_t, state, self.decay())
        return v, v

    def extra_repr(self) -> str:
        return f"{self._beta_repr()}, learn_beta={self.learn_beta!r}"
