"""SpiNNaker backend: the constraint check, the fixed-point emulator, and sPyNNaker's virtual board."""
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import spikelab as sl
from spikelab.backends import fixed_point as fx
from spikelab.backends import spinnaker as sp
from spikelab.errors import ExportError
from spikelab.run import TrainedRun
from spikelab.graph import Network, Population, Projection, simulate

from parts import need


def dense_network(sizes, dt=1.0, delays=None, seed=0, beta=0.9, scale=1.0, positive=False, readout=True,
                  refractory=0, bias=0.0):
    """input -> LIF ... -> readout (or LIF) with dense random weights, built directly as a graph."""
    rng = np.random.default_rng(seed)
    populations = [Population("input", "input", (sizes[0],))]
    projections = []
    for i, (n_pre, n_post) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        kind = "readout" if last and readout else "lif"
        name = "readout" if kind == "readout" else f"lif{i + 1}"
        weight = rng.normal(0.0, scale / math.sqrt(n_pre), (n_post, n_pre))
        if positive:
            weight = np.abs(weight)
        post, pre = np.nonzero(weight)
        order = np.lexsort((post, pre))
        pre, post = pre[order], post[order]
        delay = np.full(len(pre), 0 if delays is None else delays[i], dtype=np.int64)
        projections.append(Projection(populations[-1].name, name, pre, post, weight[post, pre], delay))
        threshold = np.full(n_post, np.inf if kind == "readout" else 1.0)
        populations.append(Population(name, kind, (n_post,), np.full(n_post, beta), threshold,
                                      np.full(n_post, bias), refractory, i + 1))
    return Network(dt, populations, projections)


def bernoulli(steps, batch, n, rate, seed):
    return (np.random.default_rng(seed).random((steps, batch, n)) < rate).astype(np.float64)


# ------------------------------------------------------------------------------------------------ check


def test_ring_buffer_shift_follows_spynnaker():
    # population_vertex.get_ring_buffer_shifts: ceil(log2 w) clamped at 0, +1 on an exact power of two
    cases = {0.0: 0, 0.3: 0, 0.999: 0, 1.0: 1, 1.5: 1, 2.0: 2, 3.0: 2, 4.0: 3, 13.16: 4, 16.0: 5, 100.0: 7}
    assert {w: sp.ring_buffer_shift(w) for w in cases} == cases
    assert sp.weight_scale(4) == 2048.0 and sp.weight_scale(0) == 32768.0


def test_delay_limits_follow_ring_buffer_bits():
    assert sp.on_core_delay_steps(256) == 32 and sp.max_delay_steps(256) == 288      # 14 - 8 - 1 bits
    assert sp.on_core_delay_steps(1000) == 32                                          # slices of 256
    assert sp.max_delay_steps(10) == 4608                                              # 14 - 4 - 1 bits
    assert sp.max_delay_steps(1000, neurons_per_core=128) == 576


def test_core_counts_for_known_sizes():
    report = sp.check(dense_network([50, 1000, 10]))
    assert [p.cores for p in report.populations] == [1, 4, 1]
    assert report.predicted_cores == 6
    assert sp.check(dense_network([50, 1000, 10]), neurons_per_core=100).population("lif1").cores == 10
    split = sp.check(dense_network([50, 1000, 10], dt=0.5))
    assert split.split_cores
    assert [p.cores for p in split.populations] == [1, 8, 2]          # a neuron and a synapse core per slice
    assert split.predicted_cores == 11
    assert "split" in split.format()


def test_good_network_has_no_violations_and_a_readable_report():
    network = dense_network([100, 50, 10])
    report = sp.check(network)
    assert report.ok, report.format()
    text = report.format()
    assert "no SpiNNaker limit violated" in text
    assert "latency" in text and "lif1 1" in text and "readout 2" in text
    assert "predicted cores: 3" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["predicted_cores"] == 3
    assert data["shifts"]["lif1"] == list(report.shifts["lif1"])
    # the shift is the worst case: all synapses of one sign at once
    sums = np.zeros(50)
    proj = network.projections[0]
    np.add.at(sums, proj.post_index[proj.weight > 0], proj.weight[proj.weight > 0])
    assert report.max_expected_summed_weight["lif1"][0] == pytest.approx(sums.max())
    assert report.shifts["lif1"][0] == sp.ring_buffer_shift(sums.max())


def test_delays_needing_an_extension_and_beyond_it():
    fits = sp.check(dense_network([50, 300, 10], delays=[39, 0]))         # simulator delay 40 > 32 on-core
    assert fits.ok, fits.format()
    assert fits.population("lif1").delay_extension and fits.population("lif1").max_delay_steps == 40
    assert fits.delay_extension_cores == {"input": 1}
    assert fits.predicted_cores == 1 + 2 + 1 + 1

    too_long = sp.check(dense_network([50, 1000, 10], delays=[299, 0]))   # 300 > 288
    assert not too_long.ok
    (violation,) = [v for v in too_long.violations if v.limit == "delays"]
    assert "300 steps" in violation.message and "288" in violation.message
    assert "neurons_per_core to 128" in violation.fix
    assert sp.check(dense_network([50, 1000, 10], delays=[299, 0]), neurons_per_core=128).ok


def test_neurons_per_core_above_256_and_rows_longer_than_256():
    network = dense_network([10, 300, 10], positive=True)
    report = sp.check(network, neurons_per_core=512)
    limits = {v.limit for v in report.violations}
    assert {"neurons per core", "row length"} <= limits
    (row,) = [v for v in report.violations if v.limit == "row length"]
    assert "300 synapses" in row.message and "neurons_per_core" in row.fix
    ok = sp.check(network, neurons_per_core=256)
    assert ok.ok and ok.population("lif1").max_row_length == 256


def test_weights_that_quantise_to_zero_or_wrap_are_flagged():
    populations = [Population("input", "input", (101,)),
                   Population("readout", "readout", (1,), np.array([0.9]), np.array([np.inf]), np.zeros(1), 0, 1)]
    weight = np.r_[np.full(100, 1e-4), 10.0]                   # one large weight sets the grid: shift 4
    projection = Projection("input", "readout", np.arange(101), np.zeros(101, dtype=np.int64), weight,
                            np.zeros(101, dtype=np.int64))
    network = Network(1.0, populations, [projection])
    report = sp.check(network)
    exc = report.population("readout").receptors[0]
    assert exc.shift == 4 and exc.zeroed == 100
    (violation,) = report.violations
    assert violation.limit == "weight resolution" and "max_expected_summed_weight" in violation.fix

    finer = sp.check(network, max_expected_summed_weight={"readout": [0.5, 0.0]})   # shift 0: 1e-4 survives
    assert finer.population("readout").receptors[0].zeroed == 0
    assert [v.limit for v in finer.violations] == ["weight range"]     # but 10 > 2^(0+1) wraps
    assert sp.check(network, max_zeroed_fraction=1.0).ok


def test_membrane_arithmetic_beyond_s1615_is_flagged():
    network = dense_network([200, 20, 10], beta=0.999, scale=40.0)
    report = sp.check(network)
    assert any(v.limit == "s16.15 range" for v in report.violations)
    assert report.population("lif1").alpha_max > sp.S1615_LIMIT


def test_a_readout_without_leak_is_refused_and_the_report_stays_valid_json():
    network = dense_network([20, 10, 5])
    network.population("readout").beta = np.ones(5)             # a pure integrator: IF_curr_delta needs a leak
    report = sp.check(network)
    assert [v.limit for v in report.violations] == ["neuron"]
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["populations"][2]["alpha_max"] is None and data["ok"] is False


# ------------------------------------------------------------------------------------------------ fixed point


def test_quantized_weights_lie_on_the_grid():
    network = dense_network([100, 50, 10])
    shifts = sp.ring_buffer_shifts(network)
    quantised = fx.quantize_weights(network, shifts)
    for original, projection in zip(network.projections, quantised.projections):
        for index, sel in enumerate((original.weight > 0, original.weight < 0)):
            step = 2.0 ** (shifts[projection.post][index] - 15)
            units = projection.weight[sel] / step
            assert np.array_equal(units, np.round(units))
            assert np.all(np.abs(projection.weight[sel] - original.weight[sel]) <= step / 2)
            assert np.all(np.sign(projection.weight[sel][units != 0]) == np.sign(original.weight[sel][units != 0]))


def _hand_network(refractory):
    populations = [Population("input", "input", (2,)),
                   Population("lif1", "lif", (1,), np.array([0.5]), np.array([1.0]), np.zeros(1), refractory, 1),
                   Population("readout", "readout", (1,), np.array([0.5]), np.array([np.inf]), np.array([0.125]),
                              0, 2)]
    projections = [Projection("input", "lif1", np.array([0, 1]), np.array([0, 0]), np.array([0.625, -0.25]),
                              np.zeros(2, dtype=np.int64)),
                   Projection("lif1", "readout", np.array([0]), np.array([0]), np.array([0.75]),
                              np.zeros(1, dtype=np.int64))]
    return Network(1.0, populations, projections)


@pytest.mark.parametrize("refractory", [0, 1])
def test_fixed_point_equals_float_on_a_hand_checked_case(refractory):
    # beta 0.5 and weights on a 2^-4 grid: every value is exact in s16.15, so the chip's arithmetic is exact
    network = _hand_network(refractory)
    spikes = np.zeros((8, 1, 2))
    spikes[:, 0, 0] = 1
    spikes[7, 0, 1] = 1
    # lif1: 0.625, 0.9375, 1.09375 -> spike; then from 0 with the input kept (0) or dropped for a step (1)
    want_spikes = {0: [0, 0, 1, 0, 0, 1, 0, 0], 1: [0, 0, 1, 0, 0, 0, 1, 0]}[refractory]
    fixed = fx.simulate_fixed_point(network, spikes)
    reference = simulate(network, spikes)
    assert fixed["lif1"][:, 0, 0].tolist() == want_spikes == reference["lif1"][:, 0, 0].tolist()
    readout = [0.125]
    for s in want_spikes[1:]:
        readout.append(0.5 * readout[-1] + 0.75 * s + 0.125)
    assert fixed["readout"][:, 0, 0].tolist() == readout == reference["readout"][:, 0, 0].tolist()
    params = fx.fixed_point_parameters(network.population("lif1"), 1.0)
    assert params["e"][0] == 2 ** 14 and params["R"][0] == 2 ** 16      # beta 0.5, R = dt / (1 - beta) = 2


def test_fixed_point_stays_close_to_float_on_the_worst_case_grid():
    network = dense_network([100, 200, 20], seed=1, scale=2.0, readout=False)
    spikes = bernoulli(200, 4, 100, 0.2, seed=1)
    reference = simulate(network, spikes)
    fixed, stats = fx.simulate_fixed_point(network, spikes, return_stats=True)
    mismatch = fx.spike_mismatch(reference, fixed, network)
    assert mismatch["lif1"]["reference_spikes"] > 10_000
    assert mismatch["lif1"]["rate"] < 0.01
    assert mismatch["lif2"]["rate"] < 0.1
    assert all(s["ring_buffer_saturations"] == 0 for s in stats.values())   # the worst case never saturates


def test_mismatch_grows_as_the_weight_grid_coarsens():
    network = dense_network([100, 200, 20], seed=0, scale=2.0, readout=False)
    spikes = bernoulli(200, 4, 100, 0.2, seed=0)
    reference = simulate(network, spikes)
    totals = []
    for shift in (4, 6, 8, 10):
        fixed = fx.simulate_fixed_point(network, spikes, {"lif1": (shift, shift), "lif2": (shift, shift)})
        totals.append(sum(m["mismatched"] for m in fx.spike_mismatch(reference, fixed, network).values()))
    assert totals == sorted(totals) and totals[-1] > 5 * totals[0], totals


def test_ring_buffer_saturates_when_the_grid_is_too_fine():
    network = dense_network([100, 10], seed=3, scale=3.0, positive=True)     # input -> readout
    spikes = bernoulli(50, 2, 100, 0.5, seed=3)
    reference = simulate(network, spikes)["readout"]
    fixed, stats = fx.simulate_fixed_point(network, spikes, {"readout": (0, 0)}, return_stats=True)
    assert stats["readout"]["ring_buffer_saturations"] > 0     # summed input ~15 per step > 0xFFFF / 2^15 ~ 2
    ceiling = (0xFFFF / 2 ** 15) / (1 - 0.9)                  # a saturated input held forever
    assert fixed["readout"].max() <= ceiling + 1e-3 < reference.max()
    worst = fx.simulate_fixed_point(network, spikes)["readout"]            # the worst-case grid does not saturate
    assert np.abs(worst - reference).max() < 0.05


def test_observed_summed_weights_lie_below_the_worst_case():
    network = dense_network([100, 50, 10], seed=5, scale=2.0)
    worst = sp.max_expected_summed_weights(network)
    observed = sp.observed_summed_weights(network, bernoulli(30, 4, 100, 0.1, seed=5))
    for name in worst:
        assert all(0 < o < w for o, w in zip(observed[name], worst[name])), (observed, worst)
    everything = sp.observed_summed_weights(network, np.ones((1, 1, 100)))      # every input spikes at once
    assert everything["lif1"] == pytest.approx(worst["lif1"])


def test_fixed_point_refuses_non_binary_input():
    with pytest.raises(ExportError, match="binary"):
        fx.simulate_fixed_point(dense_network([4, 3, 2]), np.full((5, 1, 4), 2.0))


def test_evaluate_fixed_point_reports_both_accuracies():
    network = dense_network([60, 40, 5], seed=4, scale=2.0)
    spikes = bernoulli(40, 32, 60, 0.2, seed=4)
    targets = simulate(network, spikes)["readout"].sum(axis=0).argmax(axis=-1)
    result = fx.evaluate_fixed_point(network, spikes, targets)
    assert result["float_accuracy"] == 1.0
    assert result["fixed_accuracy"] >= 0.9 and result["agreement"] == result["fixed_accuracy"]
    assert 0.0 <= result["quantized_weights_accuracy"] <= 1.0 and result["samples"] == 32
    assert set(result["mismatch"]) == {"lif1", "readout"}


def test_a_conv_net_with_max_pooling_fits_and_its_or_populations_are_exact_in_fixed_point():
    from test_graph import max_pool_net

    pool = sl.MaxPool2d(3, 2)
    pool.padding = 1                                  # overlapping windows: 1 to 4 per input
    net = max_pool_net(pool, seed=5)
    network = Network.from_model(net, dt=1.0, input_shape=(1, 10, 10))
    report = sp.check(network)
    assert report.ok, report.format()
    pool1 = report.population("pool1")
    assert (pool1.kind, pool1.size, pool1.latency, pool1.cores) == ("or", 3 * 4 * 4, 2, 1)
    assert report.predicted_cores == 6              # the input and five populations, one core each
    assert "pool1" in report.format() and "or" in report.format()
    assert report.max_expected_summed_weight["pool1"] == [2.0 * 9, 0.0]   # 3 x 3 windows of weight 2
    assert fx.weight_grids(network, net, report.shifts).keys() == {0, 4, 8}   # the pooling has no weight layer
    spikes = bernoulli(30, 4, 100, 0.3, seed=5)
    fixed = fx.simulate_fixed_point(network, spikes, report.shifts)
    for name, pre in (("pool1", "lif1"), ("pool2", "lif2")):
        index = network.population(name).layer
        pre_spikes = torch.from_numpy(fixed[pre]).reshape(30, 4, *network.population(pre).shape)
        with torch.no_grad():
            pooled = net[index](pre_spikes).flatten(2).numpy()
        assert 0 < pooled.sum() < pooled.size
        np.testing.assert_array_equal(fixed[name], pooled)       # the OR of the chip's own spikes, exactly


def test_virtual_board_maps_2312_500_10_as_predicted(tmp_path, monkeypatch):
    need("spynnaker")
    torch.manual_seed(0)
    model = sl.Sequential(sl.Linear(2312, 500), sl.LIF(), sl.Linear(500, 10), sl.LeakyIntegrator())
    network = Network.from_model(model, dt=1.0)
    report = sp.check(network)
    assert report.ok, report.format()
    real_cfg = Path.home() / ".spynnaker.cfg"
    existed = real_cfg.exists()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    start = time.perf_counter()
    result = sp.map_on_virtual_board(network, workdir=tmp_path / "work")
    seconds = time.perf_counter() - start
    assert result["cores"] == report.predicted_cores == 4
    assert result["cores_by_population"] == {p.name: p.cores for p in report.populations}
    assert result["delay_extension_cores"] == {}
    assert result["ring_buffer_shifts"] == {k: list(v) for k, v in report.shifts.items()}
    assert result["weight_scales"]["lif1"] == [sp.weight_scale(s) for s in report.shifts["lif1"]]
    assert result["machine"]["chips"] == 48
    assert (tmp_path / "work" / "reports").is_dir()                 # sPyNNaker wrote into the working folder
    assert not (home / ".spynnaker.cfg").exists()                   # the caller's HOME is untouched ...
    assert real_cfg.exists() == existed                             # ... and so is the real one
    assert seconds < 300


def test_virtual_board_delay_extension_and_split_cores_as_predicted():
    need("spynnaker")
    network = dense_network([50, 300, 10], dt=0.1, delays=[99, 0])      # 100 steps: on-core 32, extension
    report = sp.check(network)
    assert report.ok and report.split_cores and report.delay_extension_cores == {"input": 1}
    result = sp.map_on_virtual_board(network)
    assert result["delay_extension_cores"] == {"input": 1}
    assert result["cores_by_population"] == {p.name: p.cores for p in report.populations}
    assert result["cores"] == report.predicted_cores
    assert result["ring_buffer_shifts"] == {k: list(v) for k, v in report.shifts.items()}


def test_virtual_board_errors_become_export_errors():
    need("spynnaker")
    network = dense_network([4, 20, 3], delays=[2399, 0])      # 2400 steps > 9 x 256 on-core for 20 neurons
    assert any(v.limit == "delays" for v in sp.check(network).violations)
    with pytest.raises(ExportError, match="DelayExtensionException") as error:
        sp.map_on_virtual_board(network)
    assert "fix:" in str(error.value)


def test_export_spinnaker_command_reports_fixed_point_accuracy_and_virtual_board(demo_run, capsys):
    need("spynnaker")
    from spikelab.cli import main

    assert main(["export", "spinnaker", str(demo_run), "--fixed-point", "--virtual-board", "--limit", "60",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    check, fixed, board = result["check"], result["fixed_point"], result["virtual_board"]
    assert check["violations"] == [] and board["cores"] == check["predicted_cores"] == 3
    assert fixed["samples"] == 60 and abs(fixed["fixed_accuracy"] - fixed["float_accuracy"]) <= 0.05
    assert 0 < fixed["mismatch"]["lif1"]["rate"] < 0.1
    assert board["ring_buffer_shifts"]["lif1"] == [r["shift"] for r in check["populations"][1]["receptors"]]


def test_export_spinnaker_exits_1_and_names_the_fix_when_a_limit_is_violated(demo_run, capsys):
    from spikelab.cli import main

    assert main(["export", "spinnaker", str(demo_run), "--neurons-per-core", "512"]) == 1
    out = capsys.readouterr().out
    assert "512" in out and "256" in out and "fix" in out.lower()


def test_finetuning_on_the_weight_grid_leaves_every_weight_on_it(demo_run, tmp_path, capsys):
    from spikelab.cli import main

    out = tmp_path / "on-grid"
    assert main(["export", "spinnaker", str(demo_run), "--finetune", "1", "--out", str(out), "--no-progress",
                 "--json"]) == 0
    capsys.readouterr()
    tuned = TrainedRun.load(out, dtype=torch.float32)
    recorded = tuned.config.notes["spinnaker"]["max_expected_summed_weight"]
    tuned = tuned.model
    shifts = {name: [sp.ring_buffer_shift(w) for w in sums] for name, sums in recorded.items()}
    original = sl.load(demo_run)
    assert not torch.equal(tuned[1].weight, original[1].weight)           # it trained
    for layer, population in ((1, "lif1"), (3, "readout")):
        w = tuned[layer].weight.detach().double()
        exc, inh = (sp.weight_scale(s) for s in shifts[population])
        steps = torch.where(w >= 0, w * exc, w * inh)
        assert torch.equal(steps, steps.round()), f"layer {layer} has weights off its grid"
    assert main(["export", "spinnaker", str(out), "--fixed-point", "--limit", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["check"]["shifts"] == {k: list(v) for k, v in shifts.items()}     # the grid it was tuned on
    fixed = result["fixed_point"]
    assert fixed["quantized_weights_accuracy"] == fixed["float_accuracy"]          # nothing left to quantise


def test_on_grid_parametrisation_rounds_forward_and_passes_gradients_straight_through():
    from spikelab.training.weight_grid import bake, put_on_grid, round_to_grid

    net = sl.Sequential(sl.Linear(4, 3, bias=False), sl.LIF())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.30, -0.30, 0.01, -0.01], [1.0, -1.0, 0.26, -0.26], [0, 9, -9, 0.5]]))
    put_on_grid(net, {0: (0.25, 0.5)})
    expected = torch.tensor([[0.25, -0.5, 0.0, 0.0], [1.0, -1.0, 0.25, -0.5], [0.0, 9.0, -9.0, 0.5]])
    assert torch.equal(net[0].weight, expected)
    x = torch.ones(2, 1, 4)
    net[0](x).sum().backward()
    assert torch.equal(net[0].parametrizations.weight.original.grad, torch.full((3, 4), 2.0))
    bake(net)
    assert torch.equal(net[0].weight, expected) and "weight" in dict(net[0].named_parameters())
    assert torch.equal(round_to_grid(torch.tensor([1e9, -1e9]), 1.0, 1.0), torch.tensor([65535.0, -65535.0]))
