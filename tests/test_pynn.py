"""PyNN export, checked spike for spike on NEST (float64, on-grid spikes) against the torch model."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import spikelab as sl
from spikelab.cli import main
from spikelab.errors import ExportError
from spikelab.export import compare_on_nest
from spikelab.run import Binning, RunConfig, TrainedRun
from spikelab.graph import Network, Population, Projection, simulate

from parts import need
from test_graph import max_pool_net, mixed_net, torch_outputs

need("pyNN.nest")
from spikelab.backends.pynn import (cell_parameters, connection_lists, membrane_time_constant,  # noqa: E402
                                   run_nest)

pytestmark = pytest.mark.pynn


def random_lif_net(seed, depth, refractory_steps, sizes=(40, 60, 30, 10)):
    """Random LIF layers (zero reset) with weights strong enough to fire often, no bias."""
    torch.manual_seed(seed)
    layers = []
    for n_in, n_out in zip(sizes[:depth], sizes[1:depth + 1]):
        linear = sl.Linear(n_in, n_out, bias=False)
        linear.weight.data = torch.randn(n_out, n_in) * 0.5 + 0.25
        layers += [linear, sl.LIF(beta=0.9, refractory_steps=refractory_steps)]
    return sl.Sequential(*layers).double().eval()


def mismatches(network, recorded, got):
    counts = {}
    for population in network.populations[1:]:
        if population.kind == "lif":
            ours = recorded[str(population.layer)]["spikes"].flatten(2).numpy()
            counts[population.name] = (int(ours.sum()), int((ours != got[population.name]).sum()))
    return counts


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("refractory_steps", [0, 1])
def test_random_lif_networks_spike_for_spike_on_nest(seed, depth, refractory_steps):
    net = random_lif_net(seed, depth, refractory_steps)
    x = (torch.rand(80, 3, 40, generator=torch.Generator().manual_seed(seed)) < 0.15).double()
    recorded, _ = torch_outputs(net, x)
    network = Network.from_model(net, dt=1.0)
    counts = mismatches(network, recorded, run_nest(network, x.numpy()))
    assert len(counts) == depth
    for name, (spikes, wrong) in counts.items():
        assert spikes > 100, f"{name} hardly fires ({spikes} spikes): the comparison would prove little"
        assert wrong == 0, f"{name}: {wrong} of {spikes} spikes differ on NEST"


def test_bias_batch_norm_recurrence_delays_and_readout_on_nest():
    """Bias -> i_offset (switched on at each population's step 0), folded batch norm, recurrent weights, integer
    delays (hand-set), per-neuron beta and the readout membrane: all equal on NEST."""
    net = mixed_net(seed=3)
    with torch.no_grad():
        net[7].position.copy_(torch.randint(0, 6, net[7].position.shape).double())
    assert net[7].bias.abs().sum() > 0 and net[6].recurrent.bias.abs().sum() > 0
    x = (torch.rand(60, 4, 20) < 0.3).double()
    recorded, out = torch_outputs(net, x)
    network = Network.from_model(net, dt=1.0)
    assert all(np.any(p.bias) for p in network.populations[1:])
    got = run_nest(network, x.numpy())
    for name, (spikes, wrong) in mismatches(network, recorded, got).items():
        assert spikes > 30 and wrong == 0, (name, spikes, wrong)
    np.testing.assert_allclose(got["readout"], out.numpy(), rtol=0, atol=1e-9)


def test_bias_alone_drives_the_membrane_as_in_torch():
    net = sl.Sequential(sl.Linear(3, 4), sl.LIF(beta=0.5, threshold=1.5), sl.Linear(4, 2), sl.LeakyIntegrator(beta=0.8))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.zero_()
        net[0].bias.copy_(torch.tensor([0.2, 0.8, 1.0, 2.0]))
        net[2].bias.copy_(torch.tensor([1.0, -0.5]))
    net = net.double().eval()
    x = torch.zeros(12, 1, 3, dtype=torch.float64)
    recorded, out = torch_outputs(net, x)
    network = Network.from_model(net, dt=1.0)
    got = run_nest(network, x.numpy())
    np.testing.assert_array_equal(got["lif1"], recorded["1"]["spikes"].numpy())
    assert got["lif1"][:, 0, 3].sum() == 12 and got["lif1"][:, 0, 0].sum() == 0    # bias 2 fires every step
    np.testing.assert_allclose(got["readout"][:, 0, 0], 5 * (1 - 0.8 ** np.arange(1, 13)), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got["readout"], out.numpy())      # bit for bit: the bias is a synaptic input


def test_leak_equals_beta_to_the_last_bit_on_nest():
    """NEST's leak exp(-1 / tau_m) is beta itself where tau_m = -1 / ln(beta) misses it by an ulp: a readout
    driven by one spike of weight 1 at step 0 holds beta^t on NEST bit for bit as in the float64 reference."""
    rng = np.random.default_rng(0)
    betas = []
    while len(betas) < 8:        # about 2 % of betas in [0.3, 0.5) miss by an ulp and have a tau_m that hits
        beta = float(rng.uniform(0.3, 0.5))
        nudged = float(membrane_time_constant(np.array([beta]), 1.0)[0])
        if math.exp(-1.0 / (-1.0 / np.log(beta))) != beta and math.exp(-1.0 / nudged) == beta:
            betas.append(beta)
    betas = np.array(betas)
    n = len(betas)
    network = Network(1.0, [Population("input", "input", (1,)),
                            Population("readout", "readout", (n,), betas, np.full(n, np.inf), np.zeros(n), latency=1)],
                      [Projection("input", "readout", np.zeros(n, dtype=np.int64), np.arange(n), np.ones(n),
                                  np.zeros(n, dtype=np.int64))])
    x = np.zeros((8, 1, 1))
    x[0] = 1.0
    got, want = run_nest(network, x)["readout"], simulate(network, x)["readout"]
    np.testing.assert_array_equal(want[1, 0], betas)
    np.testing.assert_array_equal(got, want)


def test_membranes_exactly_on_the_threshold_fire_on_nest_as_in_torch():
    """Bias + weight = threshold exactly: spikelab fires (v >= threshold). NEST's i_offset would add bias * (1 +- an
    ulp) before the leak term and leave some of these membranes an ulp short; as a synaptic input it sums them
    as torch does and every one fires on both."""
    n = 200
    rng = np.random.default_rng(1)
    bias = rng.uniform(0.05, 0.95, n).astype(np.float32).astype(np.float64)
    net = sl.Sequential(sl.Linear(1, n), sl.LIF(beta=0.9, threshold=1.0), sl.Linear(n, 3), sl.LeakyIntegrator(beta=0.8))
    net = net.double().eval()
    with torch.no_grad():
        net[0].bias.copy_(torch.from_numpy(bias))
        net[0].weight.copy_(torch.from_numpy(1.0 - bias)[:, None])                 # exact: b has 24 bits
    x = (torch.rand(20, 2, 1, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    x[0] = 1.0
    recorded, out = torch_outputs(net, x)
    v, spikes = recorded["1"]["v"].numpy(), recorded["1"]["spikes"].numpy()
    assert (v[0] == 1.0).all() and (v == 1.0).sum() > 5 * n and (spikes[v == 1.0] == 1).all()   # ties fire
    network = Network.from_model(net, dt=1.0)
    got = run_nest(network, x.numpy())
    np.testing.assert_array_equal(got["lif1"], spikes)
    np.testing.assert_array_equal(got["readout"], out.numpy())


def test_a_tie_split_by_rounding_is_reported_with_its_margin():
    """A float64 weight that PyNN's unit round trip (* 1000 nA -> pA, * 0.001 for a delta synapse) raises by an
    ulp, and a threshold one ulp above the weight: NEST fires, spikelab does not. compare_on_nest lists the spike
    as a tie with its margin (-1 ulp), not as a mismatch."""
    rng = np.random.default_rng(2)
    weight = next(float(w) for w in rng.uniform(0.5, 2.0, 1000) if w * 1000.0 * 0.001 != w)
    threshold = weight * 1000.0 * 0.001
    net = sl.Sequential(sl.Linear(1, 1, bias=False), sl.LIF(beta=0.5, threshold=threshold), dt=1.0).double().eval()
    with torch.no_grad():
        net[0].weight.fill_(weight)
    x = torch.zeros(4, 1, 1, dtype=torch.float64)
    x[0] = 1.0
    run = TrainedRun(net, RunConfig(None, None, Binning(dt=1.0)), "a hand-built model")
    result = compare_on_nest(run, x, torch.zeros(1, dtype=torch.long))
    lif = result["populations"]["lif1"]
    assert lif["spikes"] == 0 and lif["mismatches"] == 0
    assert lif["ties"] == [{"sample": 0, "step": 0, "neuron": 0, "membrane": weight, "margin": weight - threshold}]
    assert -2 * np.spacing(weight) <= lif["ties"][0]["margin"] < 0


def test_max_pooling_of_spikes_runs_on_nest_spike_for_spike():
    """Conv, LIF, overlapping max pooling (3 x 3, stride 2, padding 1), conv, LIF, 2 x 2 max pooling, readout: the
    OR populations' spikes on NEST are the MaxPool2d outputs of the torch model, one step later, and nothing
    differs."""
    pool = sl.MaxPool2d(3, 2)
    pool.padding = 1
    net = max_pool_net(pool, seed=4)
    net.dt = 1.0
    x = (torch.rand(30, 3, 1, 10, 10, generator=torch.Generator().manual_seed(4)) < 0.3).double()
    run = TrainedRun(net, RunConfig(None, None, Binning(dt=1.0), input_shape=(1, 10, 10)), "a hand-built model")
    result = compare_on_nest(run, x, torch.zeros(3, dtype=torch.long))
    populations = result["populations"]
    assert list(populations) == ["lif1", "pool1", "lif2", "pool2", "readout"]
    for name in ("lif1", "pool1", "lif2", "pool2"):
        assert populations[name]["spikes"] > 20, f"{name} hardly fires: the comparison would prove little"
        assert populations[name]["mismatches"] == 0 and populations[name]["ties"] == [], (name, populations[name])
    assert populations["readout"]["max_membrane_difference"] < 1e-9
    assert result["same_predictions"] == 1.0


def test_parameter_mapping():
    net = sl.Sequential(sl.Linear(3, 2), sl.LIF(beta=0.9, threshold=0.7, refractory_steps=1), sl.Linear(2, 2),
                        sl.LeakyIntegrator(beta=0.5))
    network = Network.from_model(net, dt=2.0)
    lif = cell_parameters(network.populations[1], 2.0)
    np.testing.assert_allclose(np.exp(-2.0 / lif["tau_m"]), 0.9, rtol=1e-15)
    np.testing.assert_allclose(lif["cm"], 0.1 * lif["tau_m"] / 2.0)
    np.testing.assert_array_equal(lif["tau_refrac"], 2.0)
    np.testing.assert_array_equal(lif["v_thresh"], 0.7)
    np.testing.assert_allclose(lif["i_offset"], net[0].bias.detach().double().numpy() / 2.0)
    readout = cell_parameters(network.populations[2], 2.0)
    assert np.all(readout["v_thresh"] > 1e4) and np.all(readout["tau_refrac"] == 0)
    lists = connection_lists(network, network.projections[0])
    assert all(w > 0 for _, _, w, _ in lists.get("excitatory", []))
    assert all(w < 0 for _, _, w, _ in lists.get("inhibitory", []))       # PyNN wants them negative
    rows = np.concatenate([lists["excitatory"], lists["inhibitory"]])
    np.testing.assert_array_equal(rows[:, 3], 2.0)                          # (0 + 1) steps of 2 ms
    assert sum(len(v) for v in lists.values()) == 6


def test_counts_input_is_refused():
    network = Network.from_model(random_lif_net(0, 2, 0), dt=1.0)
    with pytest.raises(ExportError, match="binary"):
        run_nest(network, np.full((5, 1, 40), 2.0))


@pytest.mark.slow
def test_demo_network_predicts_the_same_on_nest_for_its_whole_test_split(demo_run):
    run = TrainedRun.load(demo_run)
    x, y = run.spikes()
    assert x.shape[1] == 359 and set(np.unique(x.numpy())) <= {0.0, 1.0}
    result = compare_on_nest(run, x, y)
    assert result["same_predictions"] == 1.0
    assert result["accuracy_nest"] == result["accuracy_spikelab"] > 0.7
    assert result["populations"]["lif1"]["spikes"] > 10_000
    assert result["populations"]["lif1"]["mismatches"] == 0 and result["populations"]["lif1"]["ties"] == []
    assert result["populations"]["readout"]["max_membrane_difference"] == 0.0


def test_export_nest_command(demo_run, capsys):
    assert main(["export", "nest", str(demo_run), "--limit", "8", "--no-progress", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert result["n"] == 8 and result["populations"]["lif1"]["mismatches"] == 0
    assert result["populations"]["lif1"]["ties"] == []
    assert result["populations"]["readout"]["max_membrane_difference"] == 0.0


@pytest.mark.parametrize("options", [
    ["--seed", "1", "--learn-beta", "neuron", "--refractory-steps", "1"],
    ["--seed", "2", "--model", "rsnn"],
    ["--seed", "3", "--dataset", "nmnist", "--model", "mlp"],
], ids=["learned-beta-refractory", "recurrent", "nmnist"])
def test_trained_runs_equal_nest_to_the_last_bit(options, nmnist_sample, tmp_path):
    """Real trained runs (float32 weights and biases): NEST computes every membrane as the torch model does, so
    no spike differs and the readout membranes are equal bit for bit, not only to rounding."""
    if "nmnist" in options:
        options = [*options, "--data-dir", str(nmnist_sample)]
    run_dir = tmp_path / "run"
    assert main(["train", "--hidden", "64", "--epochs", "1", "--no-progress", "--out", str(run_dir), *options]) == 0
    run = TrainedRun.load(run_dir)
    x, y = run.spikes(limit=12)
    result = compare_on_nest(run, x, y)
    populations = result["populations"]
    assert populations["lif1"]["spikes"] > 1000
    assert populations["lif1"]["mismatches"] == 0 and populations["lif1"]["ties"] == []
    assert populations["readout"]["max_membrane_difference"] == 0.0
    assert result["same_predictions"] == 1.0


def test_standalone_pynn_script_runs_on_nest_like_spikelab(demo_run, tmp_path):
    assert main(["export", "pynn-script", str(demo_run), str(tmp_path / "script"), "--samples", "3"]) == 0
    folder = tmp_path / "script"
    assert {p.name for p in folder.iterdir()} >= {"run_pynn.py", "network.npz", "inputs.npz"}
    result = subprocess.run([sys.executable, str(folder / "run_pynn.py"), "--simulator", "nest", "--out",
                             str(tmp_path / "results.npz")], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYNEST_QUIET": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = np.load(tmp_path / "results.npz")
    run = TrainedRun.load(demo_run)
    x, _ = run.spikes(limit=3)
    network = run.network()
    with torch.no_grad(), sl.record(run.model) as recorded:
        out = run.model(x)
    np.testing.assert_array_equal(results["lif1"].transpose(1, 0, 2), recorded["2"]["spikes"].numpy())
    np.testing.assert_allclose(results["readout"].transpose(1, 0, 2), out.numpy(), atol=1e-9)
    np.testing.assert_array_equal(results["predicted"], out.mean(0).argmax(-1).numpy())
    assert network.output.name == "readout"


def test_export_of_a_subtract_reset_run_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "subtract"
    assert main(["train", "--hidden", "16", "--epochs", "1", "--no-progress", "--reset", "subtract",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["export", "nest", str(run), "--limit", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "reset='subtract'" in err and "--reset zero" in err and "--approximate" in err and "Traceback" not in err
    assert main(["export", "nest", str(run), "--limit", "3", "--no-progress", "--json", "--approximate"]) == 0
    result = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert result["approximations"] == ["layer 2 (LIF): reset='subtract' runs as a zero reset (spikes will differ "
                                        "from the model's)"]
    assert result["populations"]["lif1"]["mismatches"] > 0       # what the approximation costs, measured


def test_standalone_script_maps_on_spinnakers_virtual_board(demo_run, tmp_path):
    from spikelab.backends.spinnaker import virtual_board_environment

    assert main(["export", "pynn-script", str(demo_run), str(tmp_path / "script"), "--samples", "1"]) == 0
    meta = json.loads(str(np.load(tmp_path / "script" / "network.npz")["meta"]))
    assert set(meta["max_expected_summed_weight"]) == {"lif1", "readout"}      # sPyNNaker gets the checked grid
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, str(tmp_path / "script" / "run_pynn.py"), "--simulator", "spiNNaker",
                             "--out", str(tmp_path / "results.npz")], capture_output=True, text=True, cwd=work,
                            env=virtual_board_environment(tmp_path / "home"), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Data from a virtual run will be empty" in result.stdout + result.stderr   # it mapped; nothing ran
    assert np.load(tmp_path / "results.npz")["predicted"].shape == (1,)
    assert (work / "reports").is_dir()


@pytest.mark.parametrize("dt", [0.1, 0.3])
def test_time_steps_that_are_not_binary_fractions_stay_exact_on_nest(dt):
    net = sl.Sequential(*random_lif_net(0, 2, 0), sl.Linear(30, 4), sl.LeakyIntegrator(beta=0.8)).double().eval()
    x = (torch.rand(40, 3, 40, generator=torch.Generator().manual_seed(0)) < 0.15).double()
    recorded, out = torch_outputs(net, x)
    network = Network.from_model(net, dt=dt)
    got = run_nest(network, x.numpy())
    for name, (spikes, wrong) in mismatches(network, recorded, got).items():
        assert spikes > 1000 and wrong == 0, (name, spikes, wrong)
    np.testing.assert_allclose(got["readout"], out.numpy(), atol=1e-9)
