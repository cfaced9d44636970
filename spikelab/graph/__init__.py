r"""Hardware-neutral description of a trained network: what the backends read.

:meth:`Network.from_model` turns a trained :class:`spikelab.Sequential` into populations of neurons and
projections between them, in the discrete time of the model (one step = ``dt`` ms):

* a **population** is a layer of neurons: the spike ``input``, a zero-reset ``lif`` layer, an ``or`` layer (the
  max pooling of spikes: below), or the non-spiking ``readout`` (a leaky integrator, i.e. a LIF that never
  fires). Each neuron has ``beta`` (decay per step), ``threshold``, ``refractory_steps`` (0 or 1) and a ``bias``
  added to its input every step. Neuron ``i`` of a
  population is feature ``i`` of the layer's output flattened in C order (``(C, H, W)`` -> ``c*H*W + h*W + w``).
* a **projection** is a list of synapses ``(pre, post, weight, delay)``, sorted by ``(pre, post)``. The post
  neuron's input at step ``t`` is ``sum weight * s_pre[t - delay]``: ``delay`` is 0 for an ordinary feed-forward
  weight, the rounded learned delay of a :class:`~spikelab.DelayedLinear` synapse, and 1 for a recurrent weight.

Everything linear between two neuron layers (``Linear``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, batch norm in
eval mode, ``Dropout`` which is the identity at inference) is folded into one effective weight matrix and bias,
found by probing the layers with unit inputs, so a ``Linear, BatchNorm1d`` pair exports as one projection.

A ``MaxPool2d`` directly after a neuron layer pools binary spikes, so it is an OR over each window: it becomes an
``or`` population, one zero-reset LIF neuron per pooled output with a synapse of weight 2 from each input of its
window and threshold 1 (:func:`~spikelab.graph.from_torch.max_pool_neuron` says why that is exact). A
``MaxPool2d`` after a weight layer pools currents, which no synapse computes, and is refused.

Each population also has a ``latency``: the number of steps by which an event-driven simulator with at least one
step of delay per projection (PyNN, SpiNNaker) runs it behind the torch model. A projection from a population of
latency ``a`` to one of latency ``b`` needs a simulator delay of ``delay + b - a`` steps, which is ``delay + 1``
for a feed-forward projection and ``delay`` (at least 1) for a recurrent one.

What spikelab trains but an LIF simulator cannot run is refused with :class:`~spikelab.errors.ExportError`:
subtractive or no reset, UltraLIF neurons, max pooling of anything but spikes, and layers with no equivalent. A
subtractive reset runs as a zero reset when asked for (``approximate=True``), listed in
``network.approximations``.

:func:`simulate` runs a :class:`Network` step by step in float64 numpy: the reference every backend is compared
with (it equals the torch model's spikes in float64).

=================  ==============================================================================================
module             what is there
=================  ==============================================================================================
``network``        the description: ``Population``, ``Projection``, ``Network``; ``delay_matrices``
``from_torch``     ``describe_model`` (what ``Network.from_model`` runs): folding, probing, refusals;
                   ``max_pool_neuron``
``simulate``       ``simulate``: the float64 reference run
=================  ==============================================================================================

Example::

    >>> import spikelab as sl
    >>> net = sl.Sequential(sl.Flatten(), sl.Linear(578, 256), sl.LIF(), sl.Linear(256, 10), sl.LeakyIntegrator())
    >>> network = sl.graph.Network.from_model(net, dt=10.0, input_shape=(2, 17, 17))
    >>> [(p.name, p.size, p.kind) for p in network.populations]
    [('input', 578, 'input'), ('lif1', 256, 'lif'), ('readout', 10, 'readout')]
"""
from .from_torch import check_dt, describe_model, infer_input_shape, max_pool_neuron
from .network import Network, Population, Projection, delay_matrices
from .simulate import simulate

__all__ = ["Network", "Population", "Projection", "simulate", "delay_matrices", "describe_model", "check_dt",
           "infer_input_shape", "max_pool_neuron"]
