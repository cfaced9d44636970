"""NIR export and import (spikelab.backends.nir): spike-for-spike round trips through a NIR file, folding
(BatchNorm, input gain, per-neuron thresholds), and every refusal."""
import math

import numpy as np
import pytest
import torch

import spikelab as sl
from spikelab.errors import ConfigError, CorruptFileError, ExportError

from parts import need

nir = need("nir")
from spikelab.backends.nir import from_nir, read_nir, time_step, to_nir, write_nir  # noqa: E402 - needs nir

pytestmark = pytest.mark.nir

T, B = 60, 6


@pytest.fixture(autouse=True)
def seeded():
    """Models start from torch's default initialisation: the same weights every run."""
    torch.manual_seed(0)


def _binary(shape, p=0.3, seed=0):
    """Random binary input spikes ``(T, B, ...)`` in float64."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, B, *shape), generator=g) < p).double()


def _scale_weights(model, factor):
    """Weights ``factor`` times torch's default scale, so that layers fire at moderate rates."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (sl.Linear, sl.Conv2d, torch.nn.Linear)):
                layer.weight.mul_(factor)
    return model


def _traces(model, x):
    """``[(spikes or None, membrane)]`` of every neuron layer of a spikelab model, in order."""
    with torch.no_grad(), sl.record(model) as rec:
        model(x)
    return [(r.get("spikes"), r["v"]) for r in rec.values()]


def _round_trip(model, tmp_path, dt, **kwargs):
    """spikelab -> NIR file -> spikelab (float64)."""
    path = tmp_path / "net.nir"
    write_nir(model, path, dt, **kwargs)
    return read_nir(path), from_nir(path, dtype=torch.float64)


def _assert_same_traces(original, imported, x):
    """Identical spikes, and membranes equal to float64 rounding (beta goes through tau = f(beta) and back)."""
    before, after = _traces(original, x), _traces(imported, x)
    assert len(before) == len(after)
    for (s0, v0), (s1, v1) in zip(before, after):
        if s0 is not None:
            assert torch.equal(s0, s1)
            assert 0.02 < s0.mean().item() < 0.6, "the test needs layers that fire, but not always"
        torch.testing.assert_close(v1, v0, rtol=1e-12, atol=1e-12)
    return before


def _spec_rebuilds(model):
    """The imported model is built from configurable layers: spec_of -> build -> load_state_dict runs."""
    rebuilt = sl.spec.build(sl.spec.spec_of(model)).double()
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt


# --------------------------------------------------------------------------------------------------------------
# spikelab -> NIR -> spikelab


@pytest.mark.parametrize("reset, refractory_steps, convention", [
    ("zero", 0, "exact"), ("zero", 1, "exact"), ("zero", 0, "euler"), ("zero", 1, "euler"), ("subtract", 0, "exact")])
def test_mlp_round_trip_keeps_spikes_membranes_and_settings(tmp_path, reset, refractory_steps, convention):
    dt, beta, beta_out = 1.0, 0.9, 0.85
    model = sl.Sequential(sl.Linear(30, 40), sl.LIF(beta=beta, threshold=0.8, reset=reset,
                                                     refractory_steps=refractory_steps, surrogate="triangle"),
                          sl.Dropout(0.3), sl.Linear(40, 10), sl.LeakyIntegrator(beta=beta_out))
    model = _scale_weights(model, 3.0).double().eval()
    graph, imported = _round_trip(model, tmp_path, dt, beta_convention=convention)

    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds == {"input": "Input", "0": "Affine", "1": "LIF", "3": "Affine", "4": "LI", "output": "Output"}
    assert sorted(graph.edges) == sorted([("input", "0"), ("0", "1"), ("1", "3"), ("3", "4"), ("4", "output")])
    lif, li = graph.nodes["1"], graph.nodes["4"]
    tau = (-dt / math.log(beta) if convention == "exact" else dt / (1 - beta)) * 1e-3  # seconds
    for name in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
        array = getattr(lif, name)
        assert array.dtype == np.float64 and array.shape == (40,), name
    np.testing.assert_allclose(lif.tau, tau, rtol=1e-14)
    np.testing.assert_allclose(lif.r * (1 - beta), 1.0, rtol=1e-14)       # input gain 1
    assert np.all(lif.v_threshold == 0.8) and not lif.v_leak.any() and not lif.v_reset.any()
    assert li.tau.shape == (10,) and li.tau.dtype == np.float64
    assert graph.metadata["dt"] == dt and graph.metadata["beta_convention"] == convention
    assert lif.metadata["reset"] == reset and lif.metadata["refractory_steps"] == refractory_steps
    assert time_step(graph) == dt

    traces = _assert_same_traces(model, imported, _binary((30,)))
    assert traces[0][0].sum() > 500
    assert [type(layer).__name__ for layer in imported] == ["Linear", "LIF", "Linear", "LeakyIntegrator"]
    config = _spec_rebuilds(imported)[1].config
    assert (config["reset"], config["refractory_steps"], config["threshold"], config["surrogate"]) == \
        (reset, refractory_steps, 0.8, "triangle")
    assert config["learn_beta"] is False and config["beta"] == pytest.approx(beta, abs=1e-15)


def test_conv_net_round_trip_with_batchnorm2d_folded(tmp_path):
    model = sl.Sequential(sl.Conv2d(2, 4, 3, padding=1), sl.BatchNorm2d(4), sl.LIF(beta=0.8), sl.AvgPool2d(2),
                          sl.Flatten(), sl.Linear(64, 5), sl.LeakyIntegrator(beta=0.9))
    model = _scale_weights(model, 5.0).double()
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    model.eval()
    graph, imported = _round_trip(model, tmp_path, 1.0, input_shape=(2, 8, 8))

    kinds = [type(graph.nodes[name]).__name__ for name in ("0", "2", "3", "4", "5", "6")]
    assert kinds == ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine", "LI"] and "1" not in graph.nodes
    assert graph.nodes["2"].tau.shape == (4, 8, 8)
    assert list(graph.nodes["output"].output_type["output"]) == [5]
    _assert_same_traces(model, imported, _binary((2, 8, 8), p=0.4))
    assert [type(layer).__name__ for layer in imported] == \
        ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Linear", "LeakyIntegrator"]
    _spec_rebuilds(imported)


@pytest.mark.parametrize("pool", [(2, None, 0), (3, 2, 1)], ids=["2x2", "3x3-stride2-padding1"])
def test_max_pooling_of_spikes_exports_as_a_conv_and_an_or_lif_spike_for_spike(pool, tmp_path):
    kernel, stride, padding = pool
    max_pool = sl.MaxPool2d(kernel, stride)
    max_pool.padding = padding
    model = sl.Sequential(sl.Conv2d(2, 4, 3), sl.LIF(beta=0.8), max_pool, sl.Dropout(0.3), sl.Flatten())
    features = model.eval()(torch.zeros(1, 1, 2, 8, 8)).shape[-1]
    model = _scale_weights(sl.Sequential(*model, sl.Linear(features, 5), sl.LIF(beta=0.9), sl.Linear(5, 3),
                                         sl.LeakyIntegrator(beta=0.9)), 5.0).double().eval()
    graph, imported = _round_trip(model, tmp_path, 1.0, input_shape=(2, 8, 8))
    window, lif = graph.nodes["2"], graph.nodes["2.or"]
    assert (type(window).__name__, type(lif).__name__) == ("Conv2d", "LIF")
    assert window.weight.shape == (4, 4, kernel, kernel) and set(np.unique(window.weight)) == {0.0, 2.0}
    assert np.all(lif.v_threshold == 1.0) and lif.tau.shape == tuple(graph.nodes["4"].input_type["input"])
    assert [type(layer).__name__ for layer in imported] == \
        ["Conv2d", "LIF", "Conv2d", "LIF", "Flatten", "Linear", "LIF", "Linear", "LeakyIntegrator"]
    x = _binary((2, 8, 8), p=0.4)
    with torch.no_grad(), sl.record(model) as before, sl.record(imported) as after:
        out, out_imported = model(x), imported(x)
        pooled = model[2](before["1"]["spikes"])
    assert 0 < pooled.sum() < pooled.numel()
    assert torch.equal(after["3"]["spikes"], pooled)               # the OR LIF fires as the max pooling
    assert torch.equal(after["6"]["spikes"], before["6"]["spikes"]) and before["6"]["spikes"].sum() > 20
    torch.testing.assert_close(out_imported, out, rtol=0, atol=1e-12)


def test_batchnorm1d_after_linear_is_folded_into_an_affine(tmp_path):
    model = sl.Sequential(sl.Linear(30, 40, bias=False), sl.BatchNorm1d(40), sl.LIF(beta=0.9),
                          sl.Linear(40, 10), sl.LeakyIntegrator(beta=0.8))
    model = _scale_weights(model, 2.0).double()
    g = torch.Generator().manual_seed(1)
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(40, generator=g) * 0.3)
        bn.running_var.copy_(torch.rand(40, generator=g) + 0.5)
        bn.weight.copy_(torch.rand(40, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(40, generator=g) * 0.2)
    model.eval()
    graph, imported = _round_trip(model, tmp_path, 1.0)

    assert type(graph.nodes["0"]).__name__ == "Affine" and "1" not in graph.nodes   # the BN's shift is a bias
    _assert_same_traces(model, imported, _binary((30,)))
    assert imported[0].bias is not None


def test_learned_per_neuron_beta_round_trip(tmp_path):
    model = sl.Sequential(sl.Linear(30, 32), sl.LIF(learn_beta="neuron", features=32, reset="subtract"),
                          sl.Linear(32, 16), sl.LIF(learn_beta="layer", beta=0.7),
                          sl.Linear(16, 5), sl.LeakyIntegrator(learn_beta="neuron", features=5))
    model = _scale_weights(model, 3.0).double()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        model[1].beta_logit.copy_(torch.randn(32, generator=g, dtype=torch.float64))
        model[5].beta_logit.copy_(torch.randn(5, generator=g, dtype=torch.float64))
    model.eval()
    graph, imported = _round_trip(model, tmp_path, 1.0, beta_convention="euler")

    assert graph.nodes["1"].tau.shape == (32,) and len(set(graph.nodes["1"].tau)) == 32
    _assert_same_traces(model, imported, _binary((30,)))
    for i in (1, 3, 5):
        assert imported[i].learn_beta == model[i].learn_beta
        torch.testing.assert_close(imported[i].beta, model[i].beta, rtol=0, atol=1e-12)
    assert imported[1].beta_logit.shape == (32,) and imported[3].beta_logit.shape == ()


def test_input_gain_and_per_neuron_thresholds_fold_into_the_affine():
    """A NIR LIF with r != tau/dt and unequal thresholds against NIR's own Euler step, written out in numpy."""
    rng = np.random.default_rng(8)
    n_in, n, dt = 10, 16, 1e-3                          # dt in seconds, passed as 1 ms
    weight, bias = rng.normal(0, 1, (n, n_in)), rng.normal(0, 0.1, n)
    tau, r, v_thr = rng.uniform(5e-3, 20e-3, n), rng.uniform(0.5, 30, n), rng.uniform(0.5, 2.0, n)
    graph = nir.NIRGraph.from_list(nir.Affine(weight=weight, bias=bias),
                                   nir.LIF(tau=tau, r=r, v_leak=np.zeros(n), v_threshold=v_thr, v_reset=np.zeros(n)))
    model = from_nir(graph, dt=1.0, dtype=torch.float64)

    gain = r * dt / tau                                 # Euler: v += dt/tau (-v + r I)
    np.testing.assert_allclose(model[0].weight.detach().numpy(), weight * (gain / v_thr)[:, None], rtol=1e-14)
    assert model[1].threshold == 1.0 and model[1].learn_beta == "neuron"
    x = _binary((n_in,), p=0.4, seed=9)
    v, expected = np.zeros((B, n)), []
    for x_t in x.numpy():                               # NIR LIF, forward Euler, reset to v_reset = 0
        v = v + dt / tau * (-v + r * (x_t @ weight.T + bias))
        expected.append(v > v_thr)
        v = np.where(v > v_thr, 0.0, v)
    expected = torch.from_numpy(np.stack(expected)).double()
    spikes = model(x)
    assert torch.equal(spikes, expected) and 0.05 < spikes.mean().item() < 0.6


# --------------------------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize("layer, words", [
    (sl.UltraLIF(), ["layer 1 (UltraLIF)", "not an LIF membrane", "--neuron lif"]),
    (sl.RecurrentLIF(8), ["layer 1 (RecurrentLIF)", "recurrent"]),
    (sl.LIF(reset="none"), ["layer 1 (LIF)", "reset='none'"]),
    (sl.BatchNorm2d(8), ["layer 1 (BatchNorm2d)", "Conv2d directly before"]),
    (torch.nn.ReLU(), ["layer 1 (ReLU)", "knows spikelab's"]),
])
def test_export_refuses_what_nir_cannot_represent(layer, words):
    with pytest.raises(ExportError) as caught:
        to_nir(sl.Sequential(sl.Linear(4, 8), layer, sl.Linear(8, 2)), dt=1.0)
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_export_refuses_delays_max_pooling_and_unknown_input_shape():
    with pytest.raises(ExportError, match=r"layer 0 \(DelayedLinear\).*one delay per synapse"):
        to_nir(sl.Sequential(sl.DelayedLinear(4, 8, max_delay=5), sl.LIF()), dt=1.0)
    with pytest.raises(ExportError, match="input_shape="):
        to_nir(sl.Sequential(sl.Conv2d(2, 4, 3), sl.LIF()), dt=1.0)
    with pytest.raises(ExportError, match=r"layer 1 \(MaxPool2d\).*pools membrane input currents, not spikes"):
        to_nir(sl.Sequential(sl.Conv2d(2, 4, 3), sl.MaxPool2d(2), sl.LIF()), dt=1.0, input_shape=(2, 8, 8))
    ceil = sl.MaxPool2d(2)
    ceil.ceil_mode = True
    with pytest.raises(ExportError, match=r"layer 2 \(MaxPool2d\).*ceil_mode"):
        to_nir(sl.Sequential(sl.Conv2d(2, 4, 3), sl.LIF(), ceil), dt=1.0, input_shape=(2, 8, 8))
    with pytest.raises(ConfigError, match="beta convention"):
        to_nir(sl.Sequential(sl.Linear(4, 2)), dt=1.0, beta_convention="rk4")
    with pytest.raises(ConfigError, match="dt must be"):
        to_nir(sl.Sequential(sl.Linear(4, 2)), dt=0)


def _lif(n, r=None, **fields):
    """A NIR LIF that spikelab can run at dt = 1 ms (beta 0.9, Euler), with ``fields`` replaced."""
    tau = np.full(n, 1e-3 / 0.1)
    params = {"tau": tau, "r": np.full(n, 10.0) if r is None else r, "v_leak": np.zeros(n),
              "v_threshold": np.ones(n), "v_reset": np.zeros(n), **fields}
    return nir.LIF(**params)


def _affine(n_in, n_out):
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


@pytest.mark.parametrize("node, words", [
    (nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
     ["'cubalif' (CubaLIF)", "synaptic current"]),
    (nir.IF(r=np.ones(3), v_threshold=np.ones(3)), ["'if' (IF)", "beta < 1"]),
    (nir.Delay(delay=np.ones(3)), ["'delay' (Delay)", "delay"]),
    (_lif(3, v_leak=np.full(3, 0.1)), ["'lif' (LIF)", "v_leak must be 0"]),
    (_lif(3, v_reset=np.full(3, -0.5)), ["'lif' (LIF)", "v_reset must be 0"]),
    (_lif(3, tau=np.full(3, 1e-5)), ["'lif' (LIF)", "beta in", "dt="]),
    (nir.Threshold(threshold=np.ones(3)), ["'threshold' (Threshold)", "no layer for it"]),
])
def test_import_refuses_nodes_spikelab_cannot_run(node, words):
    graph = nir.NIRGraph.from_list(_affine(4, 3), node)
    with pytest.raises(ConfigError) as caught:
        from_nir(graph, dt=1.0, beta_convention="euler")
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_import_refuses_branches_sub_graphs_and_unfoldable_gains(tmp_path):
    branching = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([4])), "a": _affine(4, 3), "b": _affine(4, 3),
               "out_a": nir.Output(np.array([3])), "out_b": nir.Output(np.array([3]))},
        edges=[("input", "a"), ("input", "b"), ("a", "out_a"), ("b", "out_b")])
    with pytest.raises(ConfigError, match=r"'input' \(Input\) has 0 inputs and 2 outputs.*chain"):
        from_nir(branching)
    nested = nir.NIRGraph.from_list(_affine(4, 3), nir.NIRGraph.from_list(_lif(3)))
    with pytest.raises(ConfigError, match=r"'nirgraph' \(NIRGraph\): a sub-graph"):
        from_nir(nested)
    gain_without_weights = nir.NIRGraph.from_list(_lif(3, r=np.full(3, 20.0)))     # gain 2, nothing to fold into
    with pytest.raises(ConfigError, match=r"'lif' \(LIF\).*input gain.*no Affine, Linear or Conv2d"):
        from_nir(gain_without_weights, dt=1.0, beta_convention="euler")
    with pytest.raises(ConfigError, match="no NIR file"):
        from_nir(tmp_path / "missing.nir")
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(CorruptFileError, match="junk.nir"):
        read_nir(tmp_path / "junk.nir")
