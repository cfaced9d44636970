"""From a trained torch model to a :class:`~spikelab.graph.network.Network`: :func:`describe_model`.

Everything linear between two neuron layers (``Linear``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, batch norm in eval
mode, ``Dropout``) is folded into one effective weight matrix and bias by probing the layers with unit inputs in
float64; a :class:`~spikelab.delays.DelayedLinear` keeps one integer delay per synapse; every neuron layer is asked
for its LIF description (:meth:`spikelab.neurons.Neuron.as_lif`); a ``MaxPool2d`` of spikes becomes one more
population of OR neurons (:func:`max_pool_neuron`), and what an LIF simulator cannot run is refused with
:class:`~spikelab.errors.ExportError`.
"""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import torch
from torch import nn

from spikelab.delays import DelayedLinear
from spikelab.errors import ConfigError, ExportError
from spikelab.layers import AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d
from spikelab.neurons import RecurrentLIF
from spikelab.neurons.base import LIFDescription, Neuron

from .network import Network, Population, Projection

#: Layers whose per-step map is affine: folded into the projection that ends at the next neuron layer.
AFFINE_LAYERS = (Linear, Conv2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Flatten, Dropout)
#: Rows of the identity pushed through the affine layers at once when probing their weight matrix.
PROBE_CHUNK = 512


def max_pool_neuron() -> tuple[LIFDescription, float]:
    r"""The neuron and synapse weight that compute a max pooling of spikes exactly: ``(neuron, weight)``.

    The input of a ``MaxPool2d`` that follows a neuron layer is binary spikes, so its output is an OR over each
    window. One zero-reset LIF neuron per pooled output, with a synapse of weight ``w = 2`` from every input of its
    window, threshold 1, no bias and no refractory step, computes it::

        v[t] = beta (1 - s[t-1]) v[t-1] + w n[t],   s[t] = v[t] >= 1,   n[t] = spikes in the window at step t

    ``v[t-1]`` is 0 whenever ``s[t-1]`` is 0 (any input would have made it fire), and the reset zeroes it
    otherwise, so ``v[t] = w n[t]`` and ``s[t] = (n[t] >= 1) = max(window)``, whatever ``beta``. The membrane is
    0 or at least twice the threshold, so no rounding decides a spike: 2 and 1 are exact in float64, on
    SpiNNaker's 16-bit weight grid (a power of two) and in its s16.15 state. ``beta = 0.5`` (exact in binary)
    only gives simulators a valid ``tau_m`` (PyNN refuses ``beta = 0``). On a simulator with at least one step per
    projection the OR population adds one step of latency.
    """
    return LIFDescription(kind="lif", beta=0.5, threshold=1.0, reset="zero", refractory_steps=0), 2.0


def describe_model(model: nn.Module, dt: float | None = None, input_shape=None, approximate: bool = False) -> Network:
    """The :class:`Network` of a trained Sequential, read in eval mode (the model is left as it was); the
    arguments are :meth:`Network.from_model`'s."""
    if dt is None:
        dt = getattr(model, "dt", None)
        if dt is None:
            raise ConfigError("the model has no time step: pass dt= (ms, the bin width of its input data), or build "
                              "it as sl.Sequential(..., dt=...)")
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
        if isinstance(layer, (Conv2d, AvgPool2d, MaxPool2d)):
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
    n_lif = n_pool = 0
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
            n_pool += 1
            population, projection = _spike_max_pool(index, layer, pending, populations[-1], f"pool{n_pool}")
            populations.append(population)
            projections.append(projection)
            pending = []
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


def _spike_max_pool(index: int, layer: MaxPool2d, pending, pre: Population, name: str):
    """The OR population (:func:`max_pool_neuron`) and its projection from ``pre`` for a max pooling of spikes:
    refused unless only Dropout (the identity at inference) lies between ``pre``'s neuron layer and the pooling."""
    where = f"{index}: MaxPool2d"
    if any(not isinstance(module, Dropout) for _, module in pending):
        between = ", ".join(f"{i}: {type(module).__name__}" for i, module in pending)
        raise ExportError(f"layer {where} pools the output of layers {between} (membrane input currents, not spikes), "
                          "which no synapse computes; put the MaxPool2d directly after the neuron layer (Conv2d, LIF, "
                          "MaxPool2d) or use AvgPool2d, and retrain")
    if layer.return_indices:
        raise ExportError(f"layer {where}: return_indices=True gives the pooling positions as well, which no "
                          "population sends; build it with return_indices=False")
    neuron, weight = max_pool_neuron()
    # Probing with one-hot spikes gives 1 for every window that holds the input (padding pools -inf, never a
    # maximum), which is the synapse list of the OR, for any kernel, stride, padding, dilation and ceil_mode.
    windows, _, shape = _affine([module for _, module in pending] + [layer], pre.shape)
    post_index, pre_index = np.nonzero(windows)
    source = ", ".join([*(f"{i}: Dropout" for i, _ in pending), where])
    projection = _sorted_projection(pre.name, name, pre_index, post_index, np.full(len(pre_index), weight),
                                    np.zeros(len(pre_index)), source)
    projection.layers = (*(i for i, _ in pending), index)
    size = math.prod(shape)
    beta, threshold, refractory = _neuron_arrays(neuron, size)
    population = Population(name, "or", shape, beta, threshold, np.zeros(size), refractory, pre.latency + 1, where,
                            index)
    return population, projection


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


