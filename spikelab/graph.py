r"""Hardware-neutral description of a trained network: what the backends read.

:meth:`Network.from_model` turns a trained :class:`spikelab.Sequential` into populations of neurons and
projections between them, in the discrete time of the model (one step = ``dt`` ms):

* a **population** is a layer of neurons: the spike ``input``, a zero-reset ``lif`` layer, or the non-spiking
  ``readout`` (a leaky integrator, i.e. a LIF that never fires). Each neuron has ``beta`` (decay per step),
  ``threshold``, ``refractory_steps`` (0 or 1) and a ``bias`` added to its input every step. Neuron ``i`` of a
  population is feature ``i`` of the layer's output flattened in C order (``(C, H, W)`` -> ``c*H*W + h*W + w``).
* a **projection** is a list of synapses ``(pre, post, weight, delay)``, sorted by ``(pre, post)``. The post
  neuron's input at step ``t`` is ``sum weight * s_pre[t - delay]``: ``delay`` is 0 for an ordinary feed-forward
  weight, the rounded learned delay of a :class:`~spikelab.DelayedLinear` synapse, and 1 for a recurrent weight.

Everything linear between two neuron layers (``Linear``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, batch norm in
eval mode, ``Dropout`` which is the identity at inference) is folded into one effective weight matrix and bias,
found by probing the layers with unit inputs, so a ``Linear, BatchNorm1d`` pair exports as one projection.

Each population also has a ``latency``: the number of steps by which an event-driven simulator with at least one
step of delay per projection (PyNN, SpiNNaker) runs it behind the torch model. A projection from a population of
latency ``a`` to one of latency ``b`` needs a simulator delay of ``delay + b - a`` steps, which is ``delay + 1``
for a feed-forward projection and ``delay`` (at least 1) for a recurrent one.

What spikelab trains but an LIF simulator cannot run is refused with :class:`~spikelab.errors.ExportError`:
subtractive or no reset, UltraLIF neurons, max pooling, and layers with no equivalent. A subtractive reset runs
as a zero reset when asked for (``approximate=True``), listed in ``network.approximations``.

:func:`simulate` runs a :class:`Network` step by step in float64 numpy: the reference every backend is compared
with (it equals the torch model's spikes in float64).

Example::

    >>> import spikelab as sl
    >>> net = sl.Sequential(sl.Flatten(), sl.Linear(578, 256), sl.LIF(), sl.Linear(256, 10), sl.LeakyIntegrator())
    >>> network = sl.graph.Network.from_model(net, dt=10.0, input_shape=(2, 17, 17))
    >>> [(p.name, p.size, p.kind) for p in network.populations]
    [('input', 578, 'input'), ('lif1', 256, 'lif'), ('readout', 10, 'readout')]
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .delays import DelayedLinear
from .errors import ConfigError, ExportError
from .layers import AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d
from .neurons import RecurrentLIF
from .neurons.base import LIFDescription, Neuron

#: Layers whose per-step map is affine: folded into the projection that ends at the next neuron layer.
AFFINE_LAYERS = (Linear, Conv2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Flatten, Dropout)
#: Rows of the identity pushed through the affine layers at once when probing their weight matrix.
PROBE_CHUNK = 512


@dataclass
class Population:
    """One layer of neurons.

    ==================  ============  =====================================================================
    field               unit          meaning
    ==================  ============  =====================================================================
    ``name``            --            ``"input"``, ``"lif1"``, ``"lif2"``..., ``"readout"``
    ``kind``            --            ``"input"`` (spike source), ``"lif"`` (zero reset) or ``"readout"``
                                      (leaky integrator: never fires, its membrane is the output)
    ``shape``           --            one step's feature shape in the torch model, e.g. ``(2, 34, 34)``
    ``beta``            1 per step    membrane decay per step ``exp(-dt / tau_m)``, one per neuron
    ``threshold``       input units   firing threshold per neuron (``inf`` for the readout)
    ``bias``            input units   current added to the membrane every step, one per neuron
    ``refractory_steps`` steps        0: the step after a spike integrates its input; 1: it drops it
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
        raise KeyError(name)

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
    def from_model(cls, model: nn.Module, dt: float, input_shape=None, approximate: bool = False) -> "Network":
        """Describe a trained :class:`spikelab.Sequential` (read in eval mode; the model is left as it was).

        Args:
            model: a Sequential of spikelab layers ending in a neuron layer (``LIF`` or ``LeakyIntegrator``).
            dt: the model's time step in ms (the data's bin width).
            input_shape: one step's input shape, e.g. ``(2, 34, 34)``; needed when the first weight layer is a
                convolution, else taken from its ``in_features``.
            approximate: run a subtractive reset as a zero reset instead of refusing it (the spikes will differ
                from the model's); each such change is listed in ``network.approximations``.
        """
        dt = check_dt(dt)
        layers = list(model) if isinstance(model, nn.Sequential) else [model]
        shape = tuple(input_shape) if input_shape is not None else infer_input_shape(layers)
        was_training = model.training
        model.eval()
        try:
            return _describe(layers, dt, shape, approximate)
        finally:
            model.train(was_training)


def check_dt(dt) -> float:
    """``dt`` as a float, or a ConfigError unless it is a finite number of ms > 0."""
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not math.isfinite(dt) or not dt > 0:
        raise ConfigError(f"dt must be the model's time step in ms (a float > 0), got {dt!r}")
    return float(dt)


def infer_input_shape(layers) -> tuple:
    """One step's input shape, from the first weight layer's ``in_features`` (Flatten and Dropout may precede it);
    an ExportError when the model starts with a convolution or pooling, whose input shape it cannot tell."""
    for layer in layers:
        if isinstance(layer, (Linear, DelayedLinear)):
            return (layer.in_features,)
        if isinstance(layer, (Conv2d, AvgPool2d)):
            break
    raise ExportError("cannot tell the input shape of this model (it starts with a convolution or pooling): "
                      "pass input_shape=(C, H, W) (runs trained by `spikelab train` record it)")


def _lif_description(index: int, layer: Neuron, approximate: bool) -> tuple[LIFDescription, str | None]:
    """The layer as an LIF simulator runs it, or an ExportError; returns the approximation made, if any."""
    name = f"layer {index} ({type(layer).__name__})"
    try:
        lif = layer.as_lif()
    except ExportError as error:
        raise ExportError(f"{name}: {error}") from None
    if lif.reset == "subtract" and approximate:
        return lif._replace(reset="zero"), f"{name}: reset='subtract' runs as a zero reset (spikes will differ from the model's)"
    if lif.kind == "lif" and lif.reset != "zero":
        fix = " (or ask for an approximation: approximate=True, CLI --approximate)" if lif.reset == "subtract" else ""
        raise ExportError(f"{name}: reset={lif.reset!r} has no PyNN / SpiNNaker equivalent (their neurons reset "
                          f"to a value); retrain with --reset zero{fix}")
    return lif, None


def _neuron_arrays(lif: LIFDescription, size: int):
    decay = lif.beta
    decay = decay.detach().double().cpu().numpy() if isinstance(decay, torch.Tensor) else decay
    beta = np.broadcast_to(np.asarray(decay, dtype=np.float64), (size,)).copy()
    return beta, np.full(size, float(lif.threshold)), lif.refractory_steps


def _describe(layers, dt: float, input_shape: tuple, approximate: bool = False) -> Network:
    populations = [Population("input", "input", input_shape, source="input spikes")]
    projections: list[Projection] = []
    approximations: list[str] = []
    pending: list[tuple[int, nn.Module]] = []   # the affine layers since the last neuron layer
    n_lif = 0
    for index, layer in enumerate(layers):
        where = f"{index}: {type(layer).__name__}"
        if isinstance(layer, Neuron):
            lif, approximation = _lif_description(index, layer, approximate)
            if approximation:
                approximations.append(approximation)
            if not pending:
                raise ExportError(f"layer {where} has no weight layer before it; put a Linear or Conv2d between "
                                  "neuron layers")
            pre = populations[-1]
            weights, bias, shape = _fold(pending, pre.shape)
            weights.layers = tuple(i for i, _ in pending)
            is_readout = lif.kind == "readout"
            if is_readout and index != len(layers) - 1:
                raise ExportError(f"layer {where} must be the last layer: a leaky integrator's output is a membrane, "
                                  "which PyNN / SpiNNaker cannot send on; use LIF for hidden layers")
            if not is_readout:
                n_lif += 1
            name = "readout" if is_readout else f"lif{n_lif}"
            size = math.prod(shape)
            beta, threshold, refractory = _neuron_arrays(lif, size)
            post = Population(name, "readout" if is_readout else "lif", shape, beta, threshold, bias,
                              refractory, pre.latency + 1, where, index)
            weights.pre, weights.post = pre.name, name
            projections.append(weights)
            if isinstance(layer, RecurrentLIF):
                projections.append(_recurrent(layer, index, name, where))
                if layer.recurrent.bias is not None:
                    post.bias = post.bias + layer.recurrent.bias.detach().double().cpu().numpy()
            populations.append(post)
            pending = []
        elif isinstance(layer, (*AFFINE_LAYERS, DelayedLinear)):
            pending.append((index, layer))
        elif isinstance(layer, MaxPool2d):
            raise ExportError(f"layer {where}: max pooling has no synapse equivalent on PyNN / SpiNNaker; use "
                              "AvgPool2d or a strided Conv2d and retrain")
        else:
            raise ExportError(f"layer {where} has no equivalent in an exported network (supported: Linear, "
                              "Conv2d, AvgPool2d, BatchNorm, Flatten, Dropout, DelayedLinear, LIF, RecurrentLIF, "
                              "LeakyIntegrator)")
    if pending:
        raise ExportError(f"the model ends with layer {pending[-1][0]} ({type(pending[-1][1]).__name__}), not a "
                          "neuron layer: end it with a LeakyIntegrator readout or a LIF layer")
    if len(populations) < 2:
        raise ExportError("the model has no neuron layer to export")
    return Network(dt, populations, projections, approximations)


def _recurrent(layer: RecurrentLIF, index: int, name: str, where: str) -> Projection:
    weight = layer.recurrent.weight.detach().double().cpu().numpy()      # (post, pre)
    post, pre = np.nonzero(weight)
    projection = _sorted_projection(name, name, pre, post, weight[post, pre], np.ones(len(pre), dtype=np.int64),
                                    f"{where} (recurrent)")
    projection.layers = (index,)
    return projection


def _sorted_projection(pre_name, post_name, pre, post, weight, delay, source) -> Projection:
    order = np.lexsort((post, pre))
    return Projection(pre_name, post_name, pre[order].astype(np.int64), post[order].astype(np.int64),
                      np.asarray(weight, dtype=np.float64)[order], np.asarray(delay, dtype=np.int64)[order], source)


@torch.no_grad()
def _probe(layers, shape: tuple, basis: torch.Tensor) -> torch.Tensor:
    """Push a batch of one-step inputs ``(n, *shape)`` through ``layers`` as a sequence of length 1."""
    x = basis.reshape(1, basis.shape[0], *shape)
    for layer in layers:
        x = layer(x)
    return x[0]


def _affine(layers, shape: tuple):
    """The matrix ``(n_out, n_in)``, bias and output shape of a chain of per-step affine layers, in float64."""
    layers = [_float64_copy(layer) for layer in layers]
    n_in = math.prod(shape)
    bias = _probe(layers, shape, torch.zeros(1, n_in, dtype=torch.float64))
    out_shape = tuple(bias.shape[1:])
    bias = bias.reshape(-1)
    columns = []
    for start in range(0, n_in, PROBE_CHUNK):
        count = min(PROBE_CHUNK, n_in - start)
        rows = torch.zeros(count, n_in, dtype=torch.float64)
        rows[torch.arange(count), start + torch.arange(count)] = 1.0
        columns.append((_probe(layers, shape, rows).reshape(len(rows), -1) - bias).T)
    return torch.cat(columns, dim=1).numpy(), bias.numpy(), out_shape


def _float64_copy(layer: nn.Module) -> nn.Module:
    return copy.deepcopy(layer).double().eval()


def _fold(pending, pre_shape: tuple):
    """One projection (pre, post names filled in by the caller), the post bias and the post shape."""
    where = ", ".join(f"{i}: {type(layer).__name__}" for i, layer in pending)
    delayed = [i for i, (_, layer) in enumerate(pending) if isinstance(layer, DelayedLinear)]
    if not delayed:
        matrix, bias, shape = _affine([layer for _, layer in pending], pre_shape)
        post, pre = np.nonzero(matrix)
        projection = _sorted_projection("", "", pre, post, matrix[post, pre], np.zeros(len(pre)), where)
        return projection, bias, shape
    if len(delayed) > 1:
        raise ExportError(f"layers {where}: two DelayedLinear layers with no neuron layer between them make "
                          "several delays per synapse; put a neuron layer between them")
    (k,) = delayed
    before, layer, after = pending[:k], pending[k][1], pending[k + 1:]
    if any(not isinstance(b, (Flatten, Dropout)) for _, b in before):
        raise ExportError(f"layers {where}: only Flatten or Dropout may come before a DelayedLinear in an "
                          "exported network (a weight layer before it would give one synapse several delays)")
    if layer.extend:
        raise ExportError(f"layer {pending[k][0]} (DelayedLinear): extend=True lengthens the output sequence, "
                          "which the exporters do not model yet; train with extend=False")
    scale, shift, shape = _per_feature_affine(after, layer.out_features, where)
    weight = layer.weight.detach().double().cpu().numpy() * scale[:, None]
    delays = layer.integer_delays().cpu().numpy()
    bias = shift + (scale * layer.bias.detach().double().cpu().numpy() if layer.bias is not None else 0.0)
    post, pre = np.nonzero(weight)
    return _sorted_projection("", "", pre, post, weight[post, pre], delays[post, pre], where), bias, shape


def _per_feature_affine(layers, features: int, where: str):
    """Scale and shift per feature of the affine layers after a DelayedLinear (batch norm); refuse mixing."""
    if not layers:
        return np.ones(features), np.zeros(features), (features,)
    matrix, bias, shape = _affine([layer for _, layer in layers], (features,))
    scale = np.diag(matrix).copy() if matrix.shape[0] == matrix.shape[1] else None
    if scale is None or np.any(matrix - np.diag(scale)):
        raise ExportError(f"layers {where}: only per-feature layers (batch norm, dropout) may follow a "
                          "DelayedLinear before its neuron layer in an exported network")
    return scale, bias, shape


def simulate(network: Network, spikes) -> dict[str, np.ndarray]:
    """Run ``network`` on input spikes ``(T, B, n_input)`` in float64; returns ``{population name: (T, B, n)}``.

    LIF populations give their spikes, the readout its membrane, the input its spikes. Same update as
    :mod:`spikelab.functional.lif` with zero reset: ``v[t] = beta * (1 - s[t-1]) * v[t-1] + mask[t] * I[t]``,
    ``s[t] = v[t] >= threshold``, ``I[t] = bias + sum_synapses weight * s_pre[t - delay]``.
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    steps, batch = spikes.shape[:2]
    out = {network.input.name: spikes.reshape(steps, batch, -1)}
    for population in network.populations[1:]:
        n = population.size
        feed = np.broadcast_to(population.bias, (steps, batch, n)).copy()
        recurrent = []
        for projection in network.incoming(population.name):
            if projection.recurrent:
                recurrent += delay_matrices(projection, n, n)
                continue
            for d, matrix in delay_matrices(projection, out[projection.pre].shape[-1], n):
                if d < steps:
                    feed[d:] += out[projection.pre][:steps - d] @ matrix.T
        v, s = np.zeros((batch, n)), np.zeros((batch, n))
        vs, ss = np.empty((steps, batch, n)), np.empty((steps, batch, n))
        for t in range(steps):
            current = feed[t] + sum(ss[t - d] @ matrix.T for d, matrix in recurrent if t - d >= 0)
            mask = 1.0 - s if population.refractory_steps == 1 else 1.0
            v = population.beta * (1.0 - s) * v + mask * current
            s = (v >= population.threshold).astype(np.float64)
            vs[t], ss[t] = v, s
        out[population.name] = vs if population.kind == "readout" else ss
    return out


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
