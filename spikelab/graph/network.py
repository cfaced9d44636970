"""The description itself: populations of neurons and projections of synapses between them, in steps of ``dt``.

Backends read only these dataclasses; :mod:`spikelab.graph.from_torch` builds them from a trained model and
:mod:`spikelab.graph.simulate` runs them in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from spikelab.errors import ConfigError


@dataclass
class Population:
    """One layer of neurons.

    ==================  ============  =====================================================================
    field               unit          meaning
    ==================  ============  =====================================================================
    ``name``            --            ``"input"``, ``"lif1"``, ``"lif2"``..., ``"pool1"``..., ``"readout"``
    ``kind``            --            ``"input"`` (spike source), ``"lif"`` (zero reset), ``"or"`` (zero-reset
                                      LIF neurons that fire when any input spiked this step: a max pooling of
                                      spikes, :func:`~spikelab.graph.from_torch.max_pool_neuron`; simulators run
                                      it as ``"lif"``) or ``"readout"`` (leaky integrator: never fires, its
                                      membrane is the output)
    ``shape``           --            one step's feature shape in the torch model, e.g. ``(2, 34, 34)``
    ``beta``            1 per step    membrane decay per step ``exp(-dt / tau_m)``, one per neuron
    ``threshold``       input units   firing threshold per neuron (``inf`` for the readout)
    ``bias``            input units   current added to the membrane every step, one per neuron
    ``refractory_steps`` steps        0: the step after a spike integrates its input; k: the k steps after
                                      it drop it (the membrane stays at the reset, as NEST's ``t_ref``)
    ``latency``         steps         how far a simulator with >= 1 step per projection runs it behind torch
    ``source``          --            the spikelab layer it came from, e.g. ``"2: LIF"``
    ``layer``           --            that layer's index in the Sequential (None for the input)
    ==================  ============  =====================================================================
    """

    name: str
    kind: str
    shape: tuple
    beta: np.ndarray | None = None
    threshold: np.ndarray | None = None
    bias: np.ndarray | None = None
    refractory_steps: int = 0
    latency: int = 0
    source: str = ""
    layer: int | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Projection:
    """Synapses from population ``pre`` to population ``post``, sorted by ``(pre_index, post_index)``.

    ``weight`` is in the post membrane's units (a spike adds ``weight`` to the membrane), ``delay`` in whole steps
    (``>= 0``; the post input at step ``t`` reads ``s_pre[t - delay]``). ``layers`` are the indices of the model's
    layers folded into it (for a recurrent projection, its RecurrentLIF).
    """

    pre: str
    post: str
    pre_index: np.ndarray
    post_index: np.ndarray
    weight: np.ndarray
    delay: np.ndarray
    source: str = ""
    layers: tuple = ()

    @property
    def size(self) -> int:
        return len(self.weight)

    @property
    def recurrent(self) -> bool:
        return self.pre == self.post

    def receptor_masks(self) -> dict[str, np.ndarray]:
        """Which synapses a PyNN projection of each receptor carries: positive weights ``"excitatory"``, negative
        ``"inhibitory"`` (PyNN and sPyNNaker need one sign per projection)."""
        return {"excitatory": self.weight > 0, "inhibitory": self.weight < 0}


@dataclass
class Network:
    """Populations (in order, the input first and the output last) and the projections between them."""

    dt: float
    populations: list[Population]
    projections: list[Projection] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)   # what from_model(approximate=True) changed

    def population(self, name: str) -> Population:
        for population in self.populations:
            if population.name == name:
                return population
        raise ConfigError(f"no population {name!r}; this network has {', '.join(p.name for p in self.populations)}")

    @property
    def input(self) -> Population:
        return self.populations[0]

    @property
    def output(self) -> Population:
        return self.populations[-1]

    def incoming(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.post == name]

    def simulator_delays(self, projection: Projection) -> np.ndarray:
        """Delays in steps for a simulator that runs population ``p`` ``p.latency`` steps behind torch (>= 1)."""
        shift = self.population(projection.post).latency - self.population(projection.pre).latency
        return projection.delay + shift

    @classmethod
    def from_model(cls, model: nn.Module, dt: float | None = None, input_shape=None,
                   approximate: bool = False) -> "Network":
        """Describe a trained :class:`spikelab.Sequential` (read in eval mode; the model is left as it was).

        Args:
            model: a Sequential of spikelab layers ending in a neuron layer (``LIF`` or ``LeakyIntegrator``).
            dt: the model's time step in ms (the data's bin width); default the model's own ``dt``.
            input_shape: one step's input shape, e.g. ``(2, 34, 34)``; needed when the first weight layer is a
                convolution, else taken from its ``in_features``.
            approximate: run a subtractive reset as a zero reset instead of refusing it (the spikes will differ
                from the model's); each such change is listed in ``network.approximations``.
        """
        from .from_torch import describe_model

        return describe_model(model, dt, input_shape, approximate)


def delay_matrices(projection: Projection, n_pre: int, n_post: int, weight=None,
                   select=None) -> list[tuple[int, np.ndarray]]:
    """The projection as dense ``(n_post, n_pre)`` weight matrices, one per distinct delay: of ``weight`` (default
    the projection's, one value per synapse) over the synapses in the mask ``select`` (default all)."""
    weight = projection.weight if weight is None else weight
    select = np.ones(projection.size, dtype=bool) if select is None else select
    matrices = []
    for d in np.unique(projection.delay[select]):
        at = select & (projection.delay == d)
        matrix = np.zeros((n_post, n_pre))
        np.add.at(matrix, (projection.post_index[at], projection.pre_index[at]), weight[at])
        matrices.append((int(d), matrix))
    return matrices
