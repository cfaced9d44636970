"""snnTorch -> NIR -> spikelab: snnTorch's own export read spike for spike, through the CLI to NEST and SpiNNaker's
check, and the graphs spikelab refuses (the `test` extra installs snnTorch, NIR and PyNN)."""
import json

import numpy as np
import pytest
import torch

from spikelab.errors import ConfigError

from parts import need
from test_nir import _binary, _scale_weights, _spec_rebuilds, _traces, seeded  # noqa: F401 - seeded: autouse

nir = need("nir")
snn = need("snntorch")
from snntorch import utils as snn_utils  # noqa: E402 - after the optional imports
from snntorch.export_nir import export_to_nir  # noqa: E402

from spikelab.backends.nir import from_nir, read_nir, time_step  # noqa: E402

# snnTorch 1.0.0's export_to_nir calls nirtorch.extract_nir_graph, which nirtorch 2.6 marks as deprecated
pytestmark = [pytest.mark.nir, pytest.mark.snntorch,
              pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")]


def _snntorch_net(n_in, hidden, out, threshold_out, reset, seed):
    """nn.Linear / snn.Leaky net with per-neuron beta tensors (snnTorch's export needs them); weights x3."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lif1 = snn.Leaky(beta=torch.rand(hidden, generator=g) * 0.5 + 0.45, threshold=torch.ones(hidden),
                     init_hidden=True, reset_mechanism=reset)
    lif2 = snn.Leaky(beta=torch.full((out,), 0.85), threshold=threshold_out, init_hidden=True, reset_mechanism=reset)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), lif1, torch.nn.Linear(hidden, out), lif2)
    return _scale_weights(net, 3.0)


def _snntorch_run(net, x):
    """Spikes and membranes of both snn.Leaky layers, stepped over T in float64."""
    net = net.double()
    snn_utils.reset(net)
    spikes, membranes = [[], []], [[], []]
    with torch.no_grad():
        for x_t in x:
            for k, (linear, lif) in enumerate(((net[0], net[1]), (net[2], net[3]))):
                x_t = lif(linear(x_t)).double()
                spikes[k].append(x_t)
                membranes[k].append(lif.mem.clone())
    return [(torch.stack(s), torch.stack(v)) for s, v in zip(spikes, membranes)]


def _export_snntorch(net, n_in, tmp_path):
    graph = export_to_nir(net, torch.randn(1, n_in), ignore_dims=[0])   # snnTorch 1.0.0's exporter
    path = tmp_path / "snntorch.nir"
    nir.write(path, graph)
    return path


def test_snntorch_export_runs_spike_for_spike_in_spikelab(tmp_path):
    n_in, hidden, out = 12, 24, 6
    net = _snntorch_net(n_in, hidden, out, torch.ones(out), "zero", seed=3)
    path = _export_snntorch(net, n_in, tmp_path)
    graph = read_nir(path)
    assert graph.nodes["1"].tau.dtype == np.float32 and time_step(graph) == pytest.approx(0.1)

    model = from_nir(path, dtype=torch.float64)
    assert [type(layer).__name__ for layer in model] == ["Linear", "LIF", "Linear", "LIF"]
    assert model[1].learn_beta == "neuron" and model[3].learn_beta is False     # per-neuron vs uniform beta
    assert model[1].reset == "zero" and model[3].config["beta"] == pytest.approx(0.85, abs=1e-6)
    x = _binary((n_in,), p=0.3, seed=4)
    reference = _snntorch_run(net, x)
    for (s_ref, v_ref), (s, v) in zip(reference, _traces(model, x)):
        assert torch.equal(s, s_ref) and 0.02 < s.mean().item() < 0.6
        torch.testing.assert_close(v, v_ref, rtol=0, atol=1e-5)     # betas went through float32 tau = dt/(1-beta)
    torch.testing.assert_close(model[1].beta, net[1].beta, rtol=0, atol=1e-6)
    _spec_rebuilds(model)


def test_snntorch_per_neuron_thresholds_and_subtract_reset(tmp_path):
    n_in, hidden, out = 12, 24, 8
    threshold = torch.rand(out, generator=torch.Generator().manual_seed(5)) + 0.5    # in [0.5, 1.5)
    net = _snntorch_net(n_in, hidden, out, threshold, "subtract", seed=6)
    path = _export_snntorch(net, n_in, tmp_path)

    model = from_nir(path, reset="subtract", dtype=torch.float64)   # snnTorch writes v_reset = 0 for subtract too
    assert model[3].threshold == 1.0 and model[3].reset == "subtract"
    x = _binary((n_in,), p=0.3, seed=7)
    reference = _snntorch_run(net, x)
    traces = _traces(model, x)
    for (s_ref, _), (s, _) in zip(reference, traces):
        assert torch.equal(s, s_ref) and 0.05 < s.mean().item() < 0.6
    # thresholds were folded into the Linear before: spikelab's membrane is snnTorch's divided by theta_i
    torch.testing.assert_close(traces[1][1], reference[1][1] / threshold.double(), rtol=0, atol=1e-5)
    assert from_nir(path)[3].reset == "zero"          # without reset=, snnTorch graphs read as zero reset


def test_import_refuses_a_recurrent_snntorch_graph():
    recurrent = snn.RLeaky(beta=0.9, linear_features=3, init_hidden=True)        # a LIF <-> Linear cycle
    graph = export_to_nir(torch.nn.Sequential(torch.nn.Linear(4, 3), recurrent), torch.randn(1, 4), ignore_dims=[0])
    with pytest.raises(ConfigError, match=r"'1.lif' \(LIF\) has 2 inputs and 2 outputs.*recurrent"):
        from_nir(graph)


def test_snntorch_network_through_the_cli_to_nest_and_spinnaker(tmp_path, capsys):
    """snnTorch -> NIR -> `spikelab import nir` -> `spikelab export nest` (0 differing spikes) and `--check`."""
    from spikelab.cli import main

    need("pyNN.nest")

    net = _snntorch_net(2 * 17 * 17, 32, 10, torch.ones(10), "zero", seed=9)     # the demo set's input size
    path = _export_snntorch(net, 2 * 17 * 17, tmp_path)
    run = tmp_path / "imported"
    assert main(["import", "nir", str(path), str(run), "--dt", "10", "--dataset", "demo", "--loss", "spike_count"]) == 0
    capsys.readouterr()
    assert main(["export", "nest", str(run), "--limit", "6", "--no-progress", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert result["populations"]["lif1"]["spikes"] > 0
    assert all(counts.get("mismatches", 0) == 0 for counts in result["populations"].values())
    assert result["same_predictions"] == 1.0
    assert main(["export", "spinnaker", str(run)]) == 0
    assert "no SpiNNaker limit violated" in capsys.readouterr().out
    assert main(["export", "nir", str(run), str(tmp_path / "again.nir")]) == 0
    np.testing.assert_allclose(read_nir(tmp_path / "again.nir").nodes["0"].weight,
                               read_nir(path).nodes["0"].weight, rtol=1e-6)
