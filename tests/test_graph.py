"""spikelab.graph: a trained model as populations and projections, faithful to the torch model in float64."""
import numpy as np
import pytest
import torch

import spikelab as sl
from spikelab.errors import ExportError
from spikelab.graph import Network, simulate


def mixed_net(seed=0):
    """Every exportable feature at once: batch norm, refractory step, recurrence, delays, per-neuron beta, bias."""
    torch.manual_seed(seed)
    net = sl.Sequential(sl.Flatten(), sl.Linear(20, 30), sl.BatchNorm1d(30), sl.LIF(beta=0.8, refractory_steps=1),
                        sl.Dropout(0.3), sl.Linear(30, 20), sl.RecurrentLIF(20, beta=0.9, bias=True),
                        sl.DelayedLinear(20, 10, 5, bias=True), sl.BatchNorm1d(10),
                        sl.LIF(learn_beta="neuron", features=10), sl.Linear(10, 4), sl.LeakyIntegrator())
    net.train()
    net(torch.rand(10, 32, 20) * 2)                 # non-trivial batch-norm statistics
    for module in net.modules():
        if isinstance(module, (sl.Linear, sl.DelayedLinear)):
            module.weight.data *= 3
    return net.eval().double()


def torch_outputs(net, x):
    with torch.no_grad(), sl.record(net) as recorded:
        out = net(x)
    return recorded, out


def test_simulate_equals_the_torch_model_spike_for_spike():
    net = mixed_net()
    x = (torch.rand(60, 6, 20) < 0.3).double()
    recorded, out = torch_outputs(net, x)
    network = Network.from_model(net, dt=1.0)
    ref = simulate(network, x.numpy())
    lifs = [p for p in network.populations if p.kind == "lif"]
    assert [p.name for p in lifs] == ["lif1", "lif2", "lif3"]
    for population in lifs:
        spikes = recorded[str(population.layer)]["spikes"].numpy()
        assert spikes.sum() > 50
        np.testing.assert_array_equal(ref[population.name], spikes)
    np.testing.assert_allclose(ref["readout"], out.numpy(), rtol=0, atol=1e-12)


def test_structure_latencies_and_delays():
    net = mixed_net()
    network = Network.from_model(net, dt=0.5)
    assert [(p.name, p.size, p.latency) for p in network.populations] == [
        ("input", 20, 0), ("lif1", 30, 1), ("lif2", 20, 2), ("lif3", 10, 3), ("readout", 4, 4)]
    recurrent = [p for p in network.projections if p.recurrent]
    assert len(recurrent) == 1 and set(recurrent[0].delay) == {1}
    np.testing.assert_array_equal(network.simulator_delays(recurrent[0]), 1)      # same population: no shift
    delayed = network.projections[3]
    assert (delayed.pre, delayed.post) == ("lif2", "lif3")
    expected = net[7].position.detach().round().numpy().astype(int)[delayed.post_index, delayed.pre_index]
    np.testing.assert_array_equal(delayed.delay, expected)
    np.testing.assert_array_equal(network.simulator_delays(delayed), expected + 1)
    for projection in network.projections:          # sorted by (pre, post), as sPyNNaker needs
        keys = projection.pre_index * 10_000 + projection.post_index
        assert np.all(np.diff(keys) > 0)
    # batch norm folded: weights of lif1's projection are W * gamma / sqrt(var + eps)
    linear, norm = net[1], net[2]
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().numpy()
    first = network.projections[0]
    np.testing.assert_allclose(first.weight, (linear.weight.detach().numpy() * scale[:, None])[first.post_index,
                                                                                               first.pre_index])
    assert net.training is False


def test_conv_and_average_pooling_fold_into_one_projection():
    torch.manual_seed(1)
    net = sl.Sequential(sl.Conv2d(2, 4, 3), sl.LIF(beta=0.7), sl.AvgPool2d(2), sl.Flatten(), sl.Linear(4 * 3 * 3, 5),
                        sl.LIF(beta=0.9, threshold=0.5), sl.Linear(5, 3), sl.LeakyIntegrator()).double().eval()
    net[0].weight.data *= 4
    x = (torch.rand(40, 3, 2, 8, 8) < 0.3).double()
    recorded, out = torch_outputs(net, x)
    network = Network.from_model(net, dt=1.0, input_shape=(2, 8, 8))
    assert [p.size for p in network.populations] == [128, 144, 5, 3]
    assert network.projections[0].size == 4 * 6 * 6 * 2 * 9          # the conv's synapses, none more
    ref = simulate(network, x.flatten(2).numpy())
    np.testing.assert_array_equal(ref["lif1"], recorded["1"]["spikes"].flatten(2).numpy())
    np.testing.assert_array_equal(ref["lif2"], recorded["5"]["spikes"].numpy())
    assert ref["lif2"].sum() > 0
    np.testing.assert_allclose(ref["readout"], out.numpy(), atol=1e-12)


def max_pool_net(pool=None, seed=0):
    """Conv, LIF, max pooling (``pool``, default 2 x 2), Dropout, conv, LIF, max pooling, Linear, readout; weights
    scaled so that every layer spikes."""
    torch.manual_seed(seed)
    layers = [sl.Conv2d(1, 3, 3), sl.LIF(beta=0.7), pool or sl.MaxPool2d(2), sl.Dropout(0.2), sl.Conv2d(3, 4, 2),
              sl.LIF(beta=0.8, threshold=0.5), sl.MaxPool2d(2), sl.Flatten()]
    features = sl.Sequential(*layers).eval()(torch.zeros(1, 1, 1, 10, 10)).shape[-1]
    net = sl.Sequential(*layers, sl.Linear(features, 3), sl.LeakyIntegrator()).double().eval()
    net[0].weight.data *= 4
    net[4].weight.data *= 3
    return net


def pooled_spikes(net, recorded, x):
    """The torch model's max pooling outputs ``{layer index: (T, B, n)}``: the OR populations' spikes."""
    pools = [i for i, layer in enumerate(net) if isinstance(layer, sl.MaxPool2d)]
    with torch.no_grad():
        return {i: net[i](recorded[str(i - 1)]["spikes"] if i else x).flatten(2).numpy() for i in pools}


@pytest.mark.parametrize("options", [{}, {"kernel_size": 3, "stride": 2, "padding": 1}, {"kernel_size": 2, "stride": 1},
                                     {"kernel_size": 2, "dilation": 2}, {"kernel_size": 3, "ceil_mode": True}])
def test_max_pooling_of_spikes_runs_as_an_or_population_spike_for_spike(options):
    pool = sl.MaxPool2d(options.pop("kernel_size", 2), options.pop("stride", None))
    for key, value in options.items():       # torch's options that sl.MaxPool2d's signature leaves at their defaults
        setattr(pool, key, value)
    net = max_pool_net(pool)
    x = (torch.rand(30, 4, 1, 10, 10) < 0.3).double()
    recorded, out = torch_outputs(net, x)
    network = Network.from_model(net, dt=1.0, input_shape=(1, 10, 10))
    assert [(p.name, p.kind, p.latency, p.layer) for p in network.populations] == [
        ("input", "input", 0, None), ("lif1", "lif", 1, 1), ("pool1", "or", 2, 2), ("lif2", "lif", 3, 5),
        ("pool2", "or", 4, 6), ("readout", "readout", 5, 9)]
    first = network.projections[1]
    assert (first.pre, first.post, first.layers) == ("lif1", "pool1", (2,))
    assert set(first.weight) == {2.0} and set(first.delay) == {0}
    ref = simulate(network, x.flatten(2).numpy())
    pooled = pooled_spikes(net, recorded, x)
    for name, index in (("lif1", 1), ("lif2", 5)):
        np.testing.assert_array_equal(ref[name], recorded[str(index)]["spikes"].flatten(2).numpy())
    for name, index in (("pool1", 2), ("pool2", 6)):
        assert network.population(name).shape == net[index](recorded[str(index - 1)]["spikes"]).shape[2:]
        assert 0 < pooled[index].sum() < pooled[index].size
        np.testing.assert_array_equal(ref[name], pooled[index])
    np.testing.assert_allclose(ref["readout"], out.numpy(), rtol=0, atol=1e-12)


def test_max_pooling_of_the_input_spikes_is_an_or_population_too():
    torch.manual_seed(2)
    net = sl.Sequential(sl.MaxPool2d(2), sl.Flatten(), sl.Linear(2 * 4 * 4, 3), sl.LeakyIntegrator()).double()
    x = (torch.rand(20, 3, 2, 8, 8) < 0.2).double()
    network = Network.from_model(net, dt=1.0, input_shape=(2, 8, 8))
    assert [(p.name, p.size) for p in network.populations] == [("input", 128), ("pool1", 32), ("readout", 3)]
    ref = simulate(network, x.flatten(2).numpy())
    with torch.no_grad():
        np.testing.assert_array_equal(ref["pool1"], net[0](x).flatten(2).numpy())
        np.testing.assert_allclose(ref["readout"], net(x).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("net, message", [
    (sl.Sequential(sl.Linear(4, 3), sl.LIF(reset="subtract"), sl.Linear(3, 2), sl.LeakyIntegrator()),
     "reset='subtract'"),
    (sl.Sequential(sl.Linear(4, 3), sl.UltraLIF(), sl.Linear(3, 2), sl.LeakyIntegrator()), "retrain with --neuron lif"),
    (sl.Sequential(sl.Conv2d(1, 2, 3), sl.MaxPool2d(2), sl.LIF(), sl.Flatten(), sl.Linear(8, 2), sl.LeakyIntegrator()),
     "layer 1: MaxPool2d pools the output of layers 0: Conv2d (membrane input currents, not spikes)"),
    (sl.Sequential(sl.Linear(4, 3), sl.LIF(), sl.Linear(3, 2)), "ends with layer 2 (Linear)"),
    (sl.Sequential(sl.Linear(4, 3), sl.LIF(reset="none"), sl.Linear(3, 2), sl.LeakyIntegrator()), "reset='none'"),
    (sl.Sequential(sl.DelayedLinear(4, 3, 2, extend=True), sl.LIF(), sl.Linear(3, 2), sl.LeakyIntegrator()),
     "extend=True"),
    (sl.Sequential(sl.Linear(4, 4), sl.DelayedLinear(4, 3, 2), sl.LIF(), sl.Linear(3, 2), sl.LeakyIntegrator()),
     "only Flatten or Dropout may come before a DelayedLinear"),
    (sl.Sequential(sl.Linear(4, 3), sl.LeakyIntegrator(), sl.Linear(3, 2), sl.LeakyIntegrator()),
     "must be the last layer"),
])
def test_what_an_lif_simulator_cannot_run_is_refused_by_name(net, message):
    with pytest.raises(ExportError, match="layer") as error:
        Network.from_model(net, dt=1.0, input_shape=(1, 6, 6) if isinstance(net[0], sl.Conv2d) else None)
    assert message in str(error.value)


def test_conv_input_needs_its_shape():
    net = sl.Sequential(sl.Conv2d(1, 2, 3), sl.LIF(), sl.Flatten(), sl.Linear(8, 2), sl.LeakyIntegrator())
    with pytest.raises(ExportError, match="input_shape"):
        Network.from_model(net, dt=1.0)
