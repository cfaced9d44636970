"""A learned liquid exported with static weights: exact where its approximations are off, identical spikes on NEST;
its STDP rule on PyNN where PyNN can express it."""
import numpy as np
import pytest
import torch

from spikelab.errors import ExportError
from spikelab.functional.liquid import AstroSTDPParameters, LiquidParameters
from spikelab.graph import simulate
from spikelab.liquid import LiquidStateMachine, grid_liquid
from spikelab.functional.plasticity import stdp_step
from spikelab.liquid.export import (input_unit_spikes, liquid_stdp_rule, liquid_to_network,
                                   stdp_mechanism)
from spikelab.liquid.topology import EXCITATORY, INHIBITORY


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


@pytest.mark.parametrize("synapses, kind", [("excitatory", EXCITATORY), ("inhibitory", INHIBITORY)])
def test_exported_rule_is_the_liquids_own(synapses, kind):
    """The liquid learns without its astrocyte (float64); the exported sl.STDP, stepped on the same unit spikes
    with NALSM's one clip per step, ends at the liquid's weights for every synapse of that presynaptic type."""
    lsm = learned_liquid()
    lsm.plasticity = AstroSTDPParameters(astrocyte=False)
    x = events(steps=80, batch=1)
    out = lsm(x, keep_weights=True)
    units = torch.cat([input_unit_spikes(x, lsm), out.spikes.double()], dim=2)[:, 0]     # (T, n_total)
    topology, rule = lsm.topology, liquid_stdp_rule(lsm, synapses)
    mine = torch.as_tensor(topology.kind[topology.pre] == kind)
    pre, post = torch.as_tensor(topology.pre[mine.numpy()]).long(), torch.as_tensor(topology.post[mine.numpy()]).long()
    w = lsm.weight.double()[mine]
    state = None
    for t in range(units.shape[0]):
        ltp, ltd, state = stdp_step(units[t:t + 1], units[t:t + 1, topology.n_input:], rule.params, state)
        w = (w + ltp[post, pre] - ltd[post, pre]).clamp(rule.params.w_min, rule.params.w_max)
    learned = out.weights[0][mine]
    assert (learned - lsm.weight.double()[mine]).abs().max() > 1e-3        # the liquid's weights moved
    assert (w - learned).abs().max() < 1e-12


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
    with pytest.raises(ExportError, match="cannot change sign"):
        stdp_mechanism(lsm, sim, synapses="input")
    excitatory = stdp_mechanism(lsm, sim)
    assert excitatory.timing_dependence.parameter_space["tau_plus"].base_value == 10.0
    assert excitatory.weight_dependence.parameter_space["w_max"].base_value > 0
    inhibitory = stdp_mechanism(lsm, sim, synapses="inhibitory", weight=-1.0)
    rate = lsm.plasticity.eta_plus * lsm.plasticity.trace_increment
    assert inhibitory.timing_dependence.parameter_space["A_plus"].base_value == pytest.approx(rate / 3.0)
    assert inhibitory.weight_dependence.parameter_space["w_max"].base_value == -3.0   # NEST: negative Wmax


def test_inhibitory_stdp_maps_on_the_spinnaker_virtual_board(tmp_path):
    """sPyNNaker takes the liquid's inhibitory rule on an inhibitory projection of magnitudes and maps it."""
    import json
    import subprocess
    import sys

    from parts import need

    need("spynnaker")
    from spikelab.backends.spinnaker import virtual_board_environment

    script = tmp_path / "job.py"
    script.write_text("""
import json, logging, warnings
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
import pyNN.spiNNaker as sim
from spikelab.functional.liquid import AstroSTDPParameters
from spikelab.liquid import LiquidStateMachine, grid_liquid
from spikelab.liquid.export import stdp_mechanism
lsm = LiquidStateMachine(grid_liquid((3, 3, 3), n_input=30, seed=0), plasticity=AstroSTDPParameters(astrocyte=False))
sim.setup(timestep=1.0)
mechanism = stdp_mechanism(lsm, sim, synapses="inhibitory", weight=-2.0, delay=1.0)
pre = sim.Population(3, sim.SpikeSourceArray(spike_times=[[1.0]] * 3))
post = sim.Population(2, sim.IF_curr_delta())
sim.Projection(pre, post, sim.AllToAllConnector(), mechanism, receptor_type="inhibitory")
sim.run(5)
sim.end()
timing, bounds = mechanism.timing_dependence, mechanism.weight_dependence
print(json.dumps(dict(a_plus=timing.A_plus, a_minus=timing.A_minus, w_min=bounds.w_min, w_max=bounds.w_max,
                      weight=mechanism.weight)))
""")
    (tmp_path / "work").mkdir()
    env = virtual_board_environment(tmp_path / "home")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path / "work", env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mapped = json.loads(proc.stdout.strip().splitlines()[-1])
    rate = AstroSTDPParameters().eta_plus * AstroSTDPParameters().trace_increment
    assert mapped == pytest.approx(dict(a_plus=rate, a_minus=rate, w_min=0.0, w_max=3.0, weight=2.0))


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
