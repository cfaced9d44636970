r"""NIR export and import: spikelab models to and from the Neuromorphic Intermediate Representation.

NIR (``nir`` 1.0.8, https://neuroir.org) is the interchange format that snnTorch, Norse, Sinabs, Rockpool,
Lava-DL, Spyx, SpiNNaker2, BrainScaleS-2 and others read or write: a graph of continuous-time primitives
stored in HDF5. This module maps a spikelab :class:`~spikelab.layers.Sequential` to a chain of NIR nodes and
back, spike for spike:

=====================  ============================  ==========================================================
function               from -> to                    notes
=====================  ============================  ==========================================================
:func:`to_nir`         ``sl.Sequential`` -> graph    ``dt`` (ms) and the beta convention fix every ``tau``
:func:`write_nir`      ``sl.Sequential`` -> file     :func:`to_nir` then ``nir.write``
:func:`read_nir`       file -> graph                 ``nir.read`` with spikelab's errors
:func:`from_nir`       graph or file -> model        an ``sl.Sequential`` of spikelab layers (checkpointable)
:func:`time_step`      graph -> ``dt`` (ms)          the step :func:`from_nir` runs a graph at
=====================  ============================  ==========================================================

**From discrete to continuous time.** NIR's LIF and LI nodes are continuous-time, with ``tau`` in seconds::

    tau * dv/dt = (v_leak - v) + r * I                      (LIF: spike when v > v_threshold, then v = v_reset)

Integrated over one step ``dt`` with the input held constant, with ``v_leak = 0``, this is spikelab's update
``v[t] = beta * v[t-1] + g * I[t]`` with input gain ``g = r * (1 - beta)`` and, by convention:

=================  =====================  ======================  =================================================
beta convention    beta from tau          tau from beta           who integrates this way
=================  =====================  ======================  =================================================
``"exact"``        ``exp(-dt / tau)``     ``-dt / ln(beta)``      exact (zero-order-hold) integrators: NEST,
                                                                  sPyNNaker, any consumer using ``exp(-dt/tau)``
``"euler"``        ``1 - dt / tau``       ``dt / (1 - beta)``     forward Euler: snnTorch's ``export_to_nir`` /
                                                                  ``import_from_nir``, SpiNNaker2 ``FORWARD``
=================  =====================  ======================  =================================================

For ``beta = 0.9`` and ``dt = 1 ms`` the exact convention writes ``tau = 9.4912 ms`` and the Euler one
``tau = 10 ms``; read back with the other convention these give ``beta = 0.9000`` vs ``0.9048``, so the
convention must match the consumer. In both conventions the export writes ``r = 1 / (1 - beta)`` (gain
``g = 1``: the NIR membrane is spikelab's membrane, in input units), ``v_threshold = threshold``,
``v_leak = 0`` and ``v_reset = 0``. Every array is float64 and has the neuron layer's per-step feature
shape (``(n,)`` after a Linear, ``(C, H, W)`` after a Conv2d).

**What NIR cannot say.** NIR has no time step, no reset mode (its LIF resets to ``v_reset``, which is
spikelab's ``reset="zero"``) and no refractory period, so :func:`to_nir` writes them to ``metadata``:

* graph: ``{"source": "spikelab", "spikelab_version", "dt": <ms>, "dt_unit": "ms", "beta_convention"}``;
* LIF node: ``{"reset", "refractory_steps", "learn_beta", "surrogate", "slope", "detach_reset"}``;
* LI node: ``{"learn_beta"}``.

``learn_beta``, ``surrogate``, ``slope`` and ``detach_reset`` only matter for training; they make a round
trip give back a model that fine-tunes as the original did. A consumer that ignores the metadata runs
``reset="subtract"`` or ``refractory_steps=1`` layers as plain zero-reset neurons: export zero-reset,
non-refractory models for other frameworks. NIR fires on ``v > v_threshold`` and spikelab on ``v >= threshold``;
the two differ only on exact ties.

**Graphs without spikelab metadata** (snnTorch's ``export_to_nir``, say) are read with snnTorch's
conventions: ``dt = 1e-4 s`` (0.1 ms, fixed in ``snntorch/export_nir.py``), Euler ``beta = 1 - dt/tau``, and
``reset="zero"``, since snnTorch writes ``v_reset = 0`` for its subtract-reset neurons too (pass
``reset="subtract"`` if the network was trained with it). Arguments to :func:`from_nir` override the metadata
and these defaults (``tau`` is continuous time, so another ``dt`` re-discretises the network).

**What is folded.** Export: an eval-mode ``BatchNorm1d`` / ``BatchNorm2d`` directly after a ``Linear`` /
``Conv2d`` is folded into its weights (``W' = s W``, ``b' = s (b - mean) + shift``, ``s = gamma /
sqrt(var + eps)`` per output), ``Dropout`` is left out (the identity at inference), and a ``MaxPool2d`` of
spikes (NIR 1.0.8 has no max pooling) becomes a ``Conv2d`` node that sums each window and an ``LIF`` node that
fires when the sum is not 0: the OR of the window, the same spikes at the same step; read back, it is a Conv2d and
a LIF. Import: a neuron's input
gain ``g != 1`` and unequal per-neuron thresholds ``theta_i`` are folded into the Affine / Linear / Conv2d
node just before it: row ``i`` of its weights and bias is multiplied by ``g_i`` (and divided by ``theta_i``,
threshold 1). The sub-threshold dynamics are linear, so the spikes are the same for zero and subtract reset;
the membrane is then ``v_i / theta_i``. Gains within ``1e-6`` of 1 count as 1 (snnTorch writes
``r = tau / dt`` in float32). Per-neuron betas become ``LIF(learn_beta="neuron")`` (``beta_logit =
logit(beta)``), a uniform beta a fixed float (or ``learn_beta="layer"`` if the metadata says so).

Example::

    >>> import torch, spikelab as sl
    >>> from spikelab.backends.nir import to_nir, from_nir
    >>> net = sl.Sequential(sl.Linear(20, 16), sl.LIF(beta=0.9), sl.Linear(16, 3), sl.LeakyIntegrator(beta=0.8))
    >>> graph = to_nir(net.eval(), dt=1.0)                  # dt in ms; tau in the graph in seconds
    >>> round(float(graph.nodes["1"].tau[0]) * 1e3, 4)      # -dt / ln(0.9), ms
    9.4912
    >>> again = from_nir(graph)                             # reads dt, reset, beta convention from metadata
    >>> x = (torch.rand(50, 4, 20) < 0.3).float()           # binary input spikes (T, B, features)
    >>> torch.allclose(again(x), net(x))                    # the readout membranes
    True
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from spikelab.optional import require

nir = require("nir", "spikelab.backends.nir (NIR export and import)")

from spikelab import __version__
from spikelab.delays import DelayedLinear
from spikelab.errors import ConfigError, CorruptFileError, ExportError
from spikelab.graph import check_dt, infer_input_shape, max_pool_neuron
from spikelab.layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d,
                             Sequential)
from spikelab.functional.lif import BETA_CONVENTIONS, check_beta_convention, decay_per_step, time_constant
from spikelab.neurons.base import Neuron
from spikelab.neurons.lif import LIF, LeakyIntegrator, RecurrentLIF

SNNTORCH_DT_MS = 0.1      # snnTorch's export_to_nir writes tau for dt = 1e-4 s
GAIN_TOLERANCE = 1e-6     # |g - 1| below this is float rounding of r = tau / dt, not a gain

__all__ = ["to_nir", "write_nir", "read_nir", "from_nir", "time_step", "BETA_CONVENTIONS"]


# --------------------------------------------------------------------------------------------------------------
# conventions shared by export and import


def _tau_r(beta: np.ndarray, dt_ms: float, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """NIR ``tau`` (s) and ``r`` for per-step decay ``beta``: the NIR neuron integrated over ``dt`` is
    ``v[t] = beta v[t-1] + I[t]`` (gain ``r (1 - beta) = 1``)."""
    return time_constant(beta, dt_ms, convention) * 1e-3, 1.0 / (1.0 - beta)


def _beta(tau_s: np.ndarray, dt_ms: float, convention: str) -> np.ndarray:
    """Per-step decay for NIR ``tau`` (s) at ``dt`` (ms)."""
    return decay_per_step(np.asarray(tau_s) * 1e3, dt_ms, convention)


# --------------------------------------------------------------------------------------------------------------
# export


_EXPORTABLE = (Linear, Conv2d, AvgPool2d, MaxPool2d, Flatten, Dropout, BatchNorm1d, BatchNorm2d, LIF, LeakyIntegrator)


def _check_exportable(where: str, layer: nn.Module) -> None:
    """Raise ExportError for a layer NIR or spikelab's reader cannot represent."""
    if isinstance(layer, _EXPORTABLE) and not isinstance(layer, RecurrentLIF) \
            and getattr(layer, "reset", None) != "none":
        return
    if isinstance(layer, Neuron) and not isinstance(layer, (LIF, LeakyIntegrator)):
        reason = _not_lif_reason(layer) or f"spikelab's NIR export does not know {type(layer).__name__} yet"
    elif isinstance(layer, DelayedLinear):
        reason = ("it has one delay per synapse, and NIR's Delay node delays whole channels (one delay per "
                  "input), so per-synapse delays have no NIR form; train without delays (--no-delays) to export")
    elif isinstance(layer, RecurrentLIF):
        reason = "recurrent LIF layers are not exported (from_nir reads chains of nodes only); use LIF"
    elif isinstance(layer, LIF):
        reason = "reset='none' has no NIR equivalent (NIR's LIF always resets); use reset='zero'"
    else:
        reason = ("NIR export knows spikelab's Linear, Conv2d, AvgPool2d, MaxPool2d, Flatten, Dropout, "
                  "BatchNorm1d/2d, LIF and LeakyIntegrator only")
    raise ExportError(f"cannot export {where} to NIR: {reason}")


def _not_lif_reason(layer: Neuron) -> str | None:
    """Why a neuron layer has no LIF equivalent (its own words), or None when it has one."""
    try:
        layer.as_lif()
    except ExportError as error:
        return str(error)
    return None


def _layers(model: nn.Module, prefix: str = ""):
    """``(name, layer)`` of a Sequential in order, nested Sequentials flattened (names ``"2.0"``)."""
    for name, layer in model.named_children():
        if isinstance(layer, Sequential):
            yield from _layers(layer, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", layer


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def _pair(value) -> np.ndarray:
    return np.array([value, value] if isinstance(value, int) else list(value))


def _output_shape(layer: nn.Module, shape: tuple) -> tuple:
    """One step's feature shape after a stateless layer, from a zero probe of batch 1."""
    param = next(layer.parameters(), None)
    like = {} if param is None else {"dtype": param.dtype, "device": param.device}
    with torch.no_grad():
        return tuple(layer.step(torch.zeros((1, *shape), **like))[0].shape[1:])


def _weight_node(layer: nn.Module, weight: np.ndarray, bias: np.ndarray | None, in_shape: tuple) -> nir.NIRNode:
    if isinstance(layer, Linear):
        return nir.Linear(weight=weight) if bias is None else nir.Affine(weight=weight, bias=bias)
    return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=weight, stride=tuple(layer.stride),
                      padding=layer.padding if isinstance(layer.padding, str) else tuple(layer.padding),
                      dilation=tuple(layer.dilation), groups=layer.groups,
                      bias=np.zeros(weight.shape[0]) if bias is None else bias)


def _fold_batchnorm(bn: nn.Module, weight: np.ndarray, bias: np.ndarray | None):
    """Weights and bias of ``BN(W x + b)`` in eval mode: ``s W`` and ``s (b - mean) + shift``."""
    scale = _numpy(bn.weight) / np.sqrt(_numpy(bn.running_var) + bn.eps)
    shift = _numpy(bn.bias) - scale * _numpy(bn.running_mean)
    weight = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
    return weight, shift if bias is None else scale * bias + shift


def _neuron_node(layer: LIF | LeakyIntegrator, shape: tuple, dt: float, convention: str, where: str) -> nir.NIRNode:
    beta = np.float64(layer.beta_fixed) if layer.learn_beta is False else _numpy(layer.beta)  # no float32 detour
    try:
        beta = np.broadcast_to(beta, shape).copy()
    except ValueError:
        raise ExportError(f"cannot export {where} to NIR: its beta has shape {tuple(layer.beta.shape)}, which does "
                          f"not fit its input's feature shape {shape}") from None
    tau, r = _tau_r(beta, dt, convention)
    zeros = np.zeros(shape)
    learn = {"learn_beta": layer.learn_beta}
    if isinstance(layer, LeakyIntegrator):
        return nir.LI(tau=tau, r=r, v_leak=zeros, metadata=learn)
    return nir.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=np.full(shape, float(layer.threshold)), v_reset=zeros,
                   metadata={"reset": layer.reset, "refractory_steps": layer.refractory_steps, **learn,
                             "surrogate": layer.surrogate, "slope": float(layer.slope),
                             "detach_reset": layer.detach_reset})


def _max_pool_nodes(layer: MaxPool2d, shape: tuple, dt: float, convention: str,
                    where: str) -> tuple[nir.Conv2d, nir.LIF]:
    """A max pooling of spikes as NIR nodes (NIR 1.0.8 has no max pooling): a ``Conv2d`` that sums each channel's
    window with weight ``w`` and an ``LIF`` that fires when the sum is not 0, the OR population of
    :func:`spikelab.graph.from_torch.max_pool_neuron`, spike for spike."""
    if layer.ceil_mode or any(d != 1 for d in _pair(layer.dilation)) or layer.return_indices:
        raise ExportError(f"cannot export {where} to NIR: ceil_mode, dilation and return_indices have no Conv2d "
                          "equivalent that from_nir reads; use MaxPool2d(kernel_size, stride) and retrain")
    neuron, weight = max_pool_neuron()
    channels = shape[0]
    kernel = _pair(layer.kernel_size)
    window = np.zeros((channels, channels, *kernel))
    window[np.arange(channels), np.arange(channels)] = weight
    conv = nir.Conv2d(input_shape=tuple(shape[1:]), weight=window, stride=tuple(_pair(layer.stride)),
                      padding=tuple(_pair(layer.padding)), dilation=(1, 1), groups=1, bias=np.zeros(channels))
    out_shape = _output_shape(layer, shape)
    beta = np.full(out_shape, float(neuron.beta))
    tau, r = _tau_r(beta, dt, convention)
    zeros = np.zeros(out_shape)
    lif = nir.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=np.full(out_shape, neuron.threshold), v_reset=zeros,
                  metadata={"reset": neuron.reset, "refractory_steps": neuron.refractory_steps, "learn_beta": False,
                            "computes": f"spikelab {where}: max pooling of spikes (an OR of each window)"})
    return conv, lif


def to_nir(model: nn.Module, dt: float, beta_convention: str = "exact",
           input_shape: tuple[int, ...] | None = None) -> nir.NIRGraph:
    """Describe a spikelab ``Sequential`` as a NIR graph (a chain ``input -> layers -> output``).

    The graph describes the model as it runs in eval mode (BatchNorm running statistics, no dropout),
    whatever mode ``model`` is in; the model is not modified. Nodes are named after the layers' indices in the
    Sequential (``"0"``, ``"1"``, ...; ``"2.0"`` inside a nested one). The mapping and the metadata written are in
    the module docstring.

    ===========================  =========================  ==================================================
    spikelab layer               NIR node                   parameters
    ===========================  =========================  ==================================================
    ``Linear``                   ``Affine`` (``Linear``     ``weight (out, in)``, ``bias (out,)``
                                 without bias)
    ``Conv2d``                   ``Conv2d``                 ``weight (C_out, C_in, kh, kw)``, ``bias``, stride,
                                                            padding (zero bias if it has none)
    ``AvgPool2d``                ``AvgPool2d``              kernel, stride, padding 0
    ``MaxPool2d`` of spikes      ``Conv2d`` + ``LIF``       (node names ``"k"`` and ``"k.or"``) the OR of each
                                                            window: weight 2 from each input of its window (the
                                                            channel's own), ``v_threshold = 1``, ``beta = 0.5``
                                                            (:func:`spikelab.graph.from_torch.max_pool_neuron`);
                                                            only directly after a LIF or the input
    ``Flatten``                  ``Flatten``                ``start_dim = 0`` (NIR shapes have no batch)
    ``LIF``                      ``LIF``                    ``tau`` (s), ``r``, ``v_threshold``, ``v_leak = 0``,
                                                            ``v_reset = 0``, one value per neuron
    ``LeakyIntegrator``          ``LI``                     ``tau`` (s), ``r``, ``v_leak = 0``
    ``BatchNorm1d/2d``           folded into the ``Linear`` / ``Conv2d`` just before it
    ``Dropout``                  left out
    ===========================  =========================  ==================================================

    Args:
        model: a :class:`spikelab.layers.Sequential` of the layers above.
        dt: the model's time step in ms (the width of one input bin).
        beta_convention: ``"exact"`` (``tau = -dt / ln(beta)``, default) or ``"euler"`` (``tau = dt / (1 - beta)``,
            snnTorch's); pick the consumer's integrator.
        input_shape: one step's input shape without batch, e.g. ``(2, 34, 34)``; needed when the first layer
            is not a ``Linear`` (whose ``in_features`` give it).

    Returns:
        A type-checked ``nir.NIRGraph``.

    Raises:
        ExportError: a layer NIR or :func:`from_nir` cannot represent, named with the reason: Ultra neurons,
            ``DelayedLinear``, ``RecurrentLIF``, a ``MaxPool2d`` of anything but spikes (or with ceil_mode or
            dilation), ``LIF(reset="none")``, a BatchNorm not directly after a Linear / Conv2d, any other module.
    """
    dt, convention = check_dt(dt), check_beta_convention(beta_convention)
    if not isinstance(model, Sequential):
        raise ConfigError(f"to_nir takes a spikelab Sequential, got {type(model).__name__}")
    layers = list(_layers(model))
    for name, layer in layers:
        _check_exportable(f"layer {name} ({type(layer).__name__})", layer)
    if input_shape is None:
        input_shape = infer_input_shape([layer for _, layer in layers])
    shape = tuple(int(n) for n in input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(shape))}
    names = ["input"]
    last_weight = None  # (node name, layer, weight, bias, input shape) while the last node kept is a weight layer
    spikes = True       # the last node kept sends spikes (the input, a LIF)
    for name, layer in layers:
        where = f"layer {name} ({type(layer).__name__})"
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
            after = Linear if isinstance(layer, BatchNorm1d) else Conv2d
            if last_weight is None or not isinstance(last_weight[1], after):
                raise ExportError(f"cannot export {where} to NIR: NIR has no normalisation node, and a BatchNorm "
                                  f"is folded only into a {after.__name__} directly before it")
            node_name, weight_layer, weight, bias, in_shape = last_weight
            weight, bias = _fold_batchnorm(layer, weight, bias)
            nodes[node_name] = _weight_node(weight_layer, weight, bias, in_shape)
            last_weight = (node_name, weight_layer, weight, bias, in_shape)
            continue
        last_weight = None
        if isinstance(layer, MaxPool2d):
            if not spikes:
                raise ExportError(f"cannot export {where} to NIR: it pools membrane input currents, not spikes, and "
                                  "NIR has no max pooling node; put the MaxPool2d directly after the LIF (Conv2d, "
                                  "LIF, MaxPool2d) or use AvgPool2d, and retrain")
            nodes[name], nodes[f"{name}.or"] = _max_pool_nodes(layer, shape, dt, convention, where)
            names += [name, f"{name}.or"]
            shape = _output_shape(layer, shape)
            continue
        spikes = isinstance(layer, LIF)
        if isinstance(layer, (Linear, Conv2d)):
            weight = _numpy(layer.weight)
            bias = None if layer.bias is None else _numpy(layer.bias)
            nodes[name] = _weight_node(layer, weight, bias, shape)
            last_weight = (name, layer, weight, bias, shape)
        elif isinstance(layer, AvgPool2d):
            nodes[name] = nir.AvgPool2d(kernel_size=_pair(layer.kernel_size), stride=_pair(layer.stride),
                                        padding=_pair(layer.padding))
        elif isinstance(layer, Flatten):
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        else:
            nodes[name] = _neuron_node(layer, shape, dt, convention, where)
        if isinstance(layer, (Linear, Conv2d, AvgPool2d, Flatten)):
            shape = _output_shape(layer, shape)
        names.append(name)
    nodes["output"] = nir.Output(output_type=np.array(shape))
    names.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])),
                        metadata={"source": "spikelab", "spikelab_version": __version__, "dt": dt, "dt_unit": "ms",
                                  "beta_convention": convention})


def write_nir(model: nn.Module, path, dt: float, **kwargs) -> nir.NIRGraph:
    """Write ``model`` to a NIR (HDF5) file at ``path``; ``dt`` (ms) and ``kwargs`` as :func:`to_nir`.

    Returns the graph written.
    """
    graph = to_nir(model, dt, **kwargs)
    nir.write(str(path), graph)
    return graph


def read_nir(path) -> nir.NIRGraph:
    """Read a NIR file (any producer's) into a ``nir.NIRGraph``.

    Raises:
        ConfigError: no file at ``path``.
        CorruptFileError: the file is not a NIR graph ``nir`` can read.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no NIR file at {path}: check the path")
    try:
        return nir.read(str(path))
    except Exception as error:  # h5py and nir raise OSError, KeyError, ValueError, AssertionError ...
        raise CorruptFileError(f"{path} is not a NIR graph nir {nir.version} can read: "
                               f"{type(error).__name__}: {error}") from None


# --------------------------------------------------------------------------------------------------------------
# import


@dataclass
class _Pending:
    """A layer to build: its constructor, and float64 arrays to copy into its parameters (folds edit these)."""

    node: str
    make: Callable[[], nn.Module]
    arrays: dict[str, np.ndarray | None] = field(default_factory=dict)


_UNSUPPORTED = {
    nir.CubaLIF: "a current-based LIF has a synaptic current state, which spikelab's LIF has not",
    nir.CubaLI: "a current-based leaky integrator has a synaptic current state, which spikelab's readout has not",
    nir.IF: "a non-leaky integrate-and-fire neuron (beta = 1); spikelab's LIF needs beta < 1",
    nir.I: "a non-leaky integrator (beta = 1); spikelab's LeakyIntegrator needs beta < 1",
    nir.Delay: "spikelab has no per-channel delay layer (DelayedLinear delays each synapse)",
    nir.NIRGraph: "a sub-graph (how some exporters write recurrent layers); from_nir reads flat chains only",
}


def _describe(name: str, node: nir.NIRNode) -> str:
    return f"NIR node {name!r} ({type(node).__name__})"


def _chain(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """The graph's nodes in order from its Input to its Output; ConfigError unless it is one chain."""
    into, out_of = defaultdict(list), defaultdict(list)
    for source, target in graph.edges:
        out_of[source].append(target)
        into[target].append(source)
    for name, node in graph.nodes.items():
        if len(into[name]) > 1 or len(out_of[name]) > 1:
            raise ConfigError(
                f"{_describe(name, node)} has {len(into[name])} inputs and {len(out_of[name])} outputs: from_nir "
                "reads a chain of nodes (what an sl.Sequential runs), not branching or recurrent graphs")
    inputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise ConfigError(f"a NIR graph for from_nir has one Input node, this one has {len(inputs)}: {inputs}")
    order = [inputs[0]]
    while out_of[order[-1]]:
        order.append(out_of[order[-1]][0])
    missing = sorted(set(graph.nodes) - set(order))
    if missing:
        raise ConfigError(f"NIR nodes {missing} are not on the chain from the Input node: from_nir reads a chain "
                          "of nodes, not branching or disconnected graphs")
    return [(name, graph.nodes[name]) for name in order
            if not isinstance(graph.nodes[name], (nir.Input, nir.Output))]


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in np.atleast_1d(values))


def _fold_into_previous(layers: list[_Pending], factor: np.ndarray, where: str, what: str) -> None:
    """Multiply row ``i`` of the weights and bias just before a neuron by ``factor_i`` (one per neuron)."""
    previous = layers[-1] if layers and "weight" in layers[-1].arrays else None
    if previous is None:
        raise ConfigError(f"cannot read {where}: its {what} must be folded into the weights just before it, but "
                          "no Affine, Linear or Conv2d node comes directly before it")
    weight = previous.arrays["weight"]
    outputs = weight.shape[0]
    if factor.size == 1:
        per_output = np.full(outputs, float(factor.reshape(-1)[0]))
    elif weight.ndim == 2 and factor.size == outputs:
        per_output = factor.reshape(-1)
    else:  # a convolution shares its weights over positions: the factor must be one per channel
        per_channel = factor.reshape(outputs, -1) if factor.size % outputs == 0 else None
        if per_channel is None or not np.all(per_channel == per_channel[:, :1]):
            raise ConfigError(f"cannot read {where}: its {what} varies within a channel and cannot be folded into "
                              f"the convolution {previous.node!r} before it")
        per_output = per_channel[:, 0]
    previous.arrays["weight"] = weight * per_output.reshape(-1, *[1] * (weight.ndim - 1))
    if previous.arrays.get("bias") is not None:
        previous.arrays["bias"] = previous.arrays["bias"] * per_output


def _affine(name: str, node) -> _Pending:
    weight = np.asarray(node.weight, dtype=np.float64)
    if weight.ndim != 2:
        raise ConfigError(f"cannot read {_describe(name, node)}: spikelab's Linear needs a 2-D weight "
                          f"(out, in), got shape {weight.shape}")
    out_features, in_features = weight.shape
    bias = None
    if isinstance(node, nir.Affine):
        bias = np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (out_features,)).copy()
    return _Pending(name, lambda: Linear(in_features, out_features, bias=bias is not None),
                    {"weight": weight, "bias": bias})


def _conv(name: str, node: nir.Conv2d) -> _Pending:
    where = _describe(name, node)
    weight = np.asarray(node.weight, dtype=np.float64)
    if weight.ndim != 4 or int(node.groups) != 1 or any(d != 1 for d in _ints(node.dilation)):
        raise ConfigError(f"cannot read {where}: spikelab's Conv2d takes a 4-D weight with groups = 1 and "
                          f"dilation = 1, got weight {weight.shape}, groups {node.groups}, dilation "
                          f"{_ints(node.dilation)}")
    out_channels, in_channels, *kernel = weight.shape
    padding = node.padding if isinstance(node.padding, str) else list(_ints(node.padding))
    stride = list(_ints(node.stride))
    bias = np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (out_channels,)).copy()
    return _Pending(name, lambda: Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding),
                    {"weight": weight, "bias": bias})


def _avgpool(name: str, node: nir.AvgPool2d) -> _Pending:
    if any(p != 0 for p in _ints(node.padding)):
        raise ConfigError(f"cannot read {_describe(name, node)}: spikelab's AvgPool2d has no padding, "
                          f"got padding {_ints(node.padding)}")
    kernel, stride = list(_ints(node.kernel_size)), list(_ints(node.stride))
    return _Pending(name, lambda: AvgPool2d(kernel, stride=stride))


def _flatten(name: str, node: nir.Flatten) -> _Pending:
    shape = node.input_type.get("input")
    last = -1 if shape is None else len(np.atleast_1d(shape)) - 1
    if int(node.start_dim) != 0 or int(node.end_dim) not in (-1, last):
        raise ConfigError(f"cannot read {_describe(name, node)}: spikelab's Flatten flattens all feature "
                          f"dimensions (start_dim 0, end_dim -1), got start_dim {node.start_dim}, "
                          f"end_dim {node.end_dim}")
    return _Pending(name, Flatten)


def _neuron_settings(node, from_spikelab: bool, reset: str | None) -> dict:
    """Reset, refractory steps and training options of a neuron node: the argument, the spikelab metadata, or
    snnTorch's defaults (zero reset, no refractory step, spikelab's default surrogate, fixed beta)."""
    meta = dict(node.metadata) if from_spikelab else {}
    learn_beta = meta.get("learn_beta", False)
    settings = {"reset": reset if reset is not None else str(meta.get("reset", "zero")),
                "refractory_steps": int(meta.get("refractory_steps", 0)),
                "learn_beta": str(learn_beta) if isinstance(learn_beta, str) else False}
    for key, kind in (("surrogate", str), ("slope", float), ("detach_reset", bool)):
        if key in meta:
            settings[key] = kind(meta[key])
    return settings


def _leaky(name: str, node, layers: list[_Pending], dt: float, convention: str, settings: dict) -> _Pending:
    """An LIF or LI node as a pending spikelab layer; its input gain and unequal thresholds are folded into the
    weight layer at the end of ``layers``."""
    where = _describe(name, node)
    tau, r, v_leak = (np.asarray(a, dtype=np.float64) for a in (node.tau, node.r, node.v_leak))
    if np.any(v_leak != 0):
        raise ConfigError(f"cannot read {where}: v_leak must be 0 (spikelab's membrane rests at 0), "
                          f"got values in [{v_leak.min():g}, {v_leak.max():g}]")
    if np.any(tau < 0):
        raise ConfigError(f"cannot read {where}: tau must be >= 0 s, got a minimum of {tau.min():g}")
    with np.errstate(divide="ignore"):  # tau = 0 gives beta = 0 (no memory)
        beta = _beta(tau, dt, convention)
    if np.any(beta < 0) or np.any(beta >= 1):
        raise ConfigError(f"cannot read {where}: tau in [{tau.min():g}, {tau.max():g}] s gives beta in "
                          f"[{beta.min():.6g}, {beta.max():.6g}] at dt = {dt:g} ms with the {convention} "
                          "convention, and spikelab needs 0 <= beta < 1: pass the producer's dt= and beta_convention=")
    gain = np.broadcast_to(r * (1.0 - beta), beta.shape)
    factor = np.where(np.abs(gain - 1.0) <= GAIN_TOLERANCE, 1.0, gain)
    folded = ["input gain r (1 - beta)"] if np.any(factor != 1.0) else []
    threshold = 1.0
    if isinstance(node, nir.LIF):
        v_threshold = np.broadcast_to(np.asarray(node.v_threshold, dtype=np.float64), beta.shape)
        v_reset = np.asarray(node.v_reset, dtype=np.float64)
        if np.any(v_reset != 0):
            raise ConfigError(f"cannot read {where}: v_reset must be 0 (spikelab resets to 0 or subtracts the "
                              f"threshold), got values in [{v_reset.min():g}, {v_reset.max():g}]")
        if np.any(v_threshold <= 0):
            raise ConfigError(f"cannot read {where}: thresholds must be > 0, got a minimum of {v_threshold.min():g}")
        threshold = float(v_threshold.reshape(-1)[0])
        if np.any(v_threshold != threshold):
            factor, threshold = factor / v_threshold, 1.0
            folded.append("per-neuron thresholds")
    if folded:
        _fold_into_previous(layers, factor, where, " and ".join(folded))
    learn_beta = settings["learn_beta"]
    if np.any(beta != beta.reshape(-1)[0]):
        learn_beta = "neuron"          # spikelab keeps per-neuron betas only as learnable ones
    with np.errstate(divide="ignore"):  # beta = 0: logit -inf, and sigmoid(-inf) = 0
        logit = np.log(beta) - np.log1p(-beta)
    if learn_beta == "neuron":
        kwargs = {"beta": float(beta.mean()), "learn_beta": "neuron", "features": list(beta.shape)}
        arrays = {"beta_logit": logit}
    elif learn_beta == "layer":
        kwargs = {"beta": float(beta.reshape(-1)[0]), "learn_beta": "layer"}
        arrays = {"beta_logit": logit.reshape(-1)[0]}
    else:
        kwargs, arrays = {"beta": float(beta.reshape(-1)[0])}, {}
    if isinstance(node, nir.LI):
        return _Pending(name, lambda: LeakyIntegrator(**kwargs), arrays)
    kwargs["threshold"] = threshold
    kwargs.update({key: value for key, value in settings.items() if key != "learn_beta"})
    return _Pending(name, lambda: LIF(**kwargs), arrays)


def _build(pending: _Pending, dtype: torch.dtype) -> nn.Module:
    layer = pending.make().to(dtype)
    with torch.no_grad():
        for key, values in pending.arrays.items():
            if values is not None:
                getattr(layer, key).copy_(torch.from_numpy(np.array(values, dtype=np.float64)))
    return layer


def _from_spikelab(graph: nir.NIRGraph) -> bool:
    return str(graph.metadata.get("source", "")) == "spikelab"


def _graph(graph_or_path) -> nir.NIRGraph:
    return graph_or_path if isinstance(graph_or_path, nir.NIRGraph) else read_nir(graph_or_path)


def time_step(graph_or_path, dt: float | None = None) -> float:
    """The time step (ms) :func:`from_nir` runs a graph at: ``dt`` if given, else the ``dt`` spikelab wrote in
    the graph's metadata, else 0.1 ms (snnTorch's ``export_to_nir`` writes ``tau`` for ``dt = 1e-4 s``)."""
    if dt is not None:
        return check_dt(dt)
    graph = _graph(graph_or_path)
    return check_dt(float(graph.metadata["dt"])) if _from_spikelab(graph) else SNNTORCH_DT_MS


def from_nir(graph_or_path, dt: float | None = None, reset: str | None = None,
             beta_convention: str | None = None, dtype: torch.dtype | None = None) -> Sequential:
    """Build a spikelab ``Sequential`` that runs a NIR graph (a chain of nodes) with the same spikes.

    ========================  ===================================  ============================================
    NIR node                  spikelab layer                       notes
    ========================  ===================================  ============================================
    ``Affine`` / ``Linear``   ``Linear`` (``bias`` for Affine)     2-D weights
    ``Conv2d``                ``Conv2d``                           groups 1, dilation 1; always with a bias
    ``AvgPool2d``             ``AvgPool2d``                        padding 0
    ``Flatten``               ``Flatten``                          all feature dimensions
    ``LIF``                   ``LIF``                              ``v_leak = 0``, ``v_reset = 0``, thresholds > 0
    ``LI``                    ``LeakyIntegrator``                  ``v_leak = 0``
    ``Input`` / ``Output``    (none)
    ========================  ===================================  ============================================

    Per neuron, ``beta`` comes from ``tau`` by the beta convention (``exp(-dt/tau)`` or ``1 - dt/tau``); the
    input gain ``r (1 - beta)`` and unequal thresholds are folded into the weight node just before the neuron
    (module docstring). Settings come from, in order: the arguments, the metadata :func:`to_nir` writes, and
    snnTorch's conventions for other graphs (``dt = 0.1 ms``, ``"euler"``, ``reset="zero"``, no refractory step).

    Args:
        graph_or_path: a ``nir.NIRGraph``, or the path of a NIR file.
        dt: time step in ms to run the graph at (see :func:`time_step`).
        reset: ``"zero"`` or ``"subtract"`` for every LIF node (NIR has no reset mode).
        beta_convention: ``"exact"`` or ``"euler"`` (see the module docstring).
        dtype: the parameters' dtype (default: torch's default dtype, usually float32).

    Returns:
        An ``sl.Sequential`` of spikelab's configurable layers: ``spikelab.spec.spec_of`` describes it, so it
        can be saved as a checkpoint, fine-tuned and exported again.

    Raises:
        ConfigError: a node spikelab cannot run, named with the reason (CubaLIF, CubaLI, IF, I, Delay, sub-graphs,
            nonzero ``v_leak`` / ``v_reset``, a ``tau`` giving ``beta`` outside [0, 1), a gain that cannot be
            folded, ...), or a graph that is not a single chain.
        CorruptFileError: a path that holds no readable NIR graph.
    """
    graph = _graph(graph_or_path)
    from_spikelab = _from_spikelab(graph)
    dt = time_step(graph, dt)
    if beta_convention is None:
        beta_convention = str(graph.metadata["beta_convention"]) if from_spikelab else "euler"
    convention = check_beta_convention(beta_convention)
    if reset not in (None, "zero", "subtract"):
        raise ConfigError(f"reset must be 'zero' or 'subtract' (NIR neurons always reset), got {reset!r}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    layers: list[_Pending] = []
    for name, node in _chain(graph):
        if isinstance(node, (nir.Affine, nir.Linear)):
            layers.append(_affine(name, node))
        elif isinstance(node, nir.Conv2d):
            layers.append(_conv(name, node))
        elif isinstance(node, nir.AvgPool2d):
            layers.append(_avgpool(name, node))
        elif isinstance(node, nir.Flatten):
            layers.append(_flatten(name, node))
        elif isinstance(node, (nir.LIF, nir.LI)):
            layers.append(_leaky(name, node, layers, dt, convention, _neuron_settings(node, from_spikelab, reset)))
        else:
            reason = next((why for kind, why in _UNSUPPORTED.items() if isinstance(node, kind)),
                          "spikelab has no layer for it; from_nir reads Affine, Linear, Conv2d, AvgPool2d, Flatten, "
                          "LIF and LI nodes")
            raise ConfigError(f"cannot read {_describe(name, node)}: {reason}")
    return Sequential(*(_build(pending, dtype) for pending in layers))
