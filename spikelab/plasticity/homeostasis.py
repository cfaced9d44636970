"""Homeostasis: adaptive thresholds that hold each neuron's firing rate near a target."""
from __future__ import annotations

import numbers

import torch

from spikelab.errors import ConfigError
from spikelab.neurons.homeostatic import HomeostaticLIF
from spikelab.plasticity.base import LocalRule


class Homeostasis(LocalRule):
    r"""Move each neuron's threshold by its firing-rate error after every sequence (an integral controller).

    With ``r_i`` the spikes per step of neuron ``i`` over the sequence and batch, on a
    :class:`~spikelab.neurons.homeostatic.HomeostaticLIF`::

        shift_i <- max(shift_i + eta * (r_i - target_rate), min_threshold - threshold)

    A neuron firing above the target raises its threshold, one below lowers it; at a fixed point every neuron
    that can reach the target fires at it. The floor keeps every threshold at least ``min_threshold``.

    =================  ==============  =======  ==============================================================
    parameter          unit            default  meaning
    =================  ==============  =======  ==============================================================
    ``target_rate``    spikes / step   0.05     the firing rate each neuron is held at, in [0, 1]
    ``eta``            input units     0.1      threshold change per unit of rate error, per update
    ``min_threshold``  input units     1e-3     the lowest threshold a neuron can reach (> 0)
    =================  ==============  =======  ==============================================================

    Example::

        >>> layer = sl.HomeostaticLIF(64)
        >>> rule = sl.Homeostasis(target_rate=0.05, eta=0.5).attach(layer)
        >>> for _ in range(50):
        ...     layer(torch.rand(100, 8, 64)); rule.update()
    """

    def __init__(self, target_rate: float = 0.05, eta: float = 0.1, min_threshold: float = 1e-3):
        super().__init__()
        for name, value, low in (("target_rate", target_rate, 0.0), ("eta", eta, 0.0),
                                 ("min_threshold", min_threshold, 0.0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= low:
                raise ConfigError(f"{name} must be a number >= {low}, got {value!r}")
        if target_rate > 1:
            raise ConfigError(f"target_rate is spikes per step, at most 1; got {target_rate!r}")
        if min_threshold == 0:
            raise ConfigError("min_threshold must be > 0 (a neuron with threshold 0 fires at every step)")
        self.target_rate, self.eta, self.min_threshold = float(target_rate), float(eta), float(min_threshold)
        self.neuron: HomeostaticLIF | None = None

    def attach(self, neuron: HomeostaticLIF) -> Homeostasis:
        """Adapt ``neuron``'s thresholds from its own spikes; returns the rule."""
        if not isinstance(neuron, HomeostaticLIF):
            raise ConfigError(f"Homeostasis adapts the thresholds of an sl.HomeostaticLIF, not a "
                              f"{type(neuron).__name__}; build the layer as sl.HomeostaticLIF(features, ...)")
        self._register(neuron)
        self.neuron = neuron
        self._watch(neuron, "post", "output")
        return self

    def update(self) -> None:
        """Move the thresholds by the rate error of the spikes captured since the last update."""
        if self.neuron is None:
            raise ConfigError("attach the Homeostasis rule to an sl.HomeostaticLIF before update()")
        spikes = self.captured("post")
        self.clear()
        with torch.no_grad():
            rate = spikes.flatten(0, 1).mean(0).to(self.neuron.shift.dtype)
            shift = self.neuron.shift + self.eta * (rate - self.target_rate)
            self.neuron.shift.copy_(shift.clamp_min(self.min_threshold - self.neuron.threshold))

    def __repr__(self) -> str:
        return (f"Homeostasis(target_rate={self.target_rate}, eta={self.eta}, "
                f"min_threshold={self.min_threshold})")
