"""A learned liquid exported with static weights: exact where its approximations are off, identical spikes on NEST;
its STDP rule on PyNN where PyNN can express it."""
import numpy as np
import pytest
import torch

from spikelab.errors import ExportError
from spikelab.functional.liquid import AstroSTDPParameters, LiquidParameters
from spikelab.graph import simulate
from spikelab.liquid import LiquidStateMachine, grid_liquid
from spikelab.liquid.export import input_unit_spikes, liquid_to_network, stdp_mechanism


def learned_liquid(neuron=LiquidParameters(), seed=0):
    lsm = LiquidStateMachine(grid_liquid((3, 3, 3), n_input=30, input_density=0.4, seed=seed), neuron=neuron)
    g = torch.Generator().manual_seed(seed)
    lsm.learn((torch.rand(40, 4, 30, generator=g) < 0.1).float())
    assert not torch.equal(lsm.weight, torch.as_tensor(lsm.topology.weight))
    return lsm


def events(steps=60, batch=2, seed=1):
    return (torch.rand(steps, batch, 30, generator=torch.Generator().manual_seed(seed)) < 0.08).double()


def test_export_is_exact_without_its_approximations():
    # tau_u so short that a spike's current is gone after its own step, no refractory period: nothing to approximate
    lsm = learned_liquid(LiquidParameters(tau_u=0.01, refractory=0))
    network = liquid_to_network(lsm, taps=1)
    assert network.approximations == []
    x = events()
    expected = lsm(x, plastic=False).spikes.double()
    assert expected.sum() > 20
    got = simulate(network, input_unit_spikes(x, lsm).numpy())["liquid"]
    np.testing.assert_array_equal(got[:-1], expected[1:].numpy())   # the network's step t is the liquid's t + 1


def test_export_lists_what_it_approximates():
    network = liquid_to_network(learned_liquid(), taps=8)
    assert len(network.approximations) == 3
    liquid = network.population("liquid")
    assert liquid.refractory_steps == 2 and liquid.threshold[0] == 20.0 and liquid.beta[0] == 1 - 1 / 64
    recurrent = [p for p in network.projections if p.recurrent][0]
    assert set(np.unique(recurrent.delay)) == set(range(1, 9))


@pytest.mark.pynn
def test_nest_runs_the_exported_liquid_spike_for_spike():
    from parts import need

    need("pyNN.nest")
    from spikelab.backends.pynn import run_nest

    lsm = learned_liquid()
    network = liquid_to_network(lsm)
    spikes = input_unit_spikes(events(), lsm).numpy()
    reference = simulate(network, spikes)["liquid"]
    on_nest = run_nest(network, spikes)["liquid"]
    assert reference.sum() > 20
    assert int(np.abs(on_nest - reference).sum()) == 0


@pytest.mark.pynn
def test_stdp_mechanism_on_nest_and_its_refusals():
    from parts import need

    need("pyNN.nest")
    import pyNN.nest as sim

    with pytest.raises(ExportError, match="astrocyte"):
        stdp_mechanism(learned_liquid(), sim)
    lsm = learned_liquid()
    lsm.plasticity = AstroSTDPParameters(astrocyte=False, rate_decay=0.99)
    with pytest.raises(ExportError, match="decay"):
        stdp_mechanism(lsm, sim)
    lsm.plasticity = AstroSTDPParameters(astrocyte=False)
    mechanism = stdp_mechanism(lsm, sim)
    timing = mechanism.timing_dependence.parameter_space
    assert timing["tau_plus"].base_value == 10.0


def test_exported_liquid_maps_on_the_spinnaker_virtual_board_as_predicted(tmp_path, monkeypatch):
    from parts import need

    need("spynnaker")
    from spikelab.backends import spinnaker as sp

    network = liquid_to_network(learned_liquid())
    report = sp.check(network)
    assert report.ok, report.format()
    monkeypatch.setenv("HOME", str(tmp_path))
    result = sp.map_on_virtual_board(network, workdir=tmp_path / "work")
    assert result["cores"] == report.predicted_cores
    assert result["cores_by_population"] == {p.name: p.cores for p in report.populations}
    assert result["ring_buffer_shifts"] == {k: list(v) for k, v in report.shifts.items()}
