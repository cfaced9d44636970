"""LIF neurons with one adaptive threshold per neuron: the state a homeostasis rule adapts."""
from __future__ import annotations

import torch
from torch import Tensor

from spikelab.errors import ExportError
from spikelab.functional.lif import LIFState, lif_sequence, lif_step
from spikelab.neurons.base import LIFDescription
from spikelab.neurons.lif import LIF, _feature_shape
from spikelab.spec import configurable


@configurable
class HomeostaticLIF(LIF):
    r"""LIF neurons whose thresholds adapt, one per neuron, so each neuron's firing rate stays near a target.

    Per step, as :class:`LIF` but with neuron ``i``'s own threshold ``theta_i = threshold + shift_i``::

        v[t] = beta * keep[t] * v[t-1] + mask[t] * x[t] - (theta * s' if reset == "subtract" else 0)
        s[t] = H(v[t] - theta)

    ``shift`` (a buffer, one value per neuron, 0 at the start, saved with the weights) stays fixed during a
    sequence; a local rule changes it between sequences, :class:`spikelab.Homeostasis`::

        shift_i <- shift_i + eta * (r_i - target_rate)        r_i: spikes per step of neuron i, over time and batch

    so a neuron that fires too often raises its threshold and a silent one lowers it. The layer runs the
    compiled LIF scan on ``x * threshold / theta`` with the base threshold (the same spikes, since every term of
    the update scales with ``theta``) and reports ``v`` in input units; the surrogate derivative is taken of
    ``threshold * (v / theta - 1)``.

    ====================  ============  ========  ============================================================
    parameter             unit          default   meaning
    ====================  ============  ========  ============================================================
    ``features``          --            (req.)    feature shape of one step (int or tuple): one threshold each
    ``threshold``         input units   1.0       base threshold, the threshold before any adaptation
    others                                        as :class:`LIF` (``beta`` 0.9, ``reset`` ``"zero"``, ...)
    ====================  ============  ========  ============================================================

    Shapes: as :class:`LIF`, ``(T, B, ...features)`` -> spikes of the same shape.

    Example::

        >>> import torch, spikelab as sl
        >>> layer = sl.HomeostaticLIF(64, beta=0.9)
        >>> rule = sl.Homeostasis(target_rate=0.05, eta=0.5).attach(layer)
        >>> spikes = layer(torch.rand(100, 8, 64))     # (T, B, 64)
        >>> rule.update()                              # thresholds move toward 5 % firing
    """

    def __init__(self, features, beta: float = 0.9, threshold: float = 1.0, reset: str = "zero",
                 refractory_steps: int = 0, surrogate: str = "atan", slope: float | None = None, learn_beta=False,
                 detach_reset: bool = True):
        shape = _feature_shape(features)
        super().__init__(beta, threshold, reset, refractory_steps, surrogate, slope, learn_beta, shape, detach_reset)
        self.features = shape
        self.register_buffer("shift", torch.zeros(shape))

    def thresholds(self) -> Tensor:
        """Every neuron's threshold ``threshold + shift``, of the feature shape."""
        return self.threshold + self.shift

    def _scale(self, like: Tensor) -> Tensor:
        return (self.threshold / self.thresholds()).to(like.dtype)

    def as_lif(self) -> LIFDescription:
        thresholds = self.thresholds()
        if not torch.all(thresholds == thresholds.flatten()[0]):
            raise ExportError("HomeostaticLIF has one threshold per neuron after adaptation; the LIF description "
                              "(and so PyNN, SpiNNaker and NIR export) holds one threshold per layer")
        return LIFDescription("lif", self.decay(), thresholds.flatten()[0].item(), self.reset, self.refractory_steps)

    def forward(self, x: Tensor, state: LIFState | None = None, return_state: bool = False):
        scale = self._scale(x)
        scaled_state = None if state is None else LIFState(state.v * scale, state.s)
        spikes, v = lif_sequence(x * scale, self.lif_parameters(), scaled_state)
        v = v / scale
        self._keep(spikes=spikes, v=v)
        return (spikes, LIFState(v[-1], spikes[-1])) if return_state else spikes

    def step(self, x_t: Tensor, state: LIFState | None = None) -> tuple[Tensor, LIFState]:
        scale = self._scale(x_t)
        scaled_state = None if state is None else LIFState(state.v * scale, state.s)
        s, new_state = lif_step(x_t * scale, scaled_state, self.lif_parameters())
        return s, LIFState(new_state.v / scale, new_state.s)

    def extra_repr(self) -> str:
        return f"features={self.features}, " + super().extra_repr()
