"""NALSM liquid: topology statistics, the neuron/STDP/astrocyte unit checks, kernel == torch reference, batch modes,
save/load."""
import math

import numpy as np
import pytest
import torch

from spikelab.errors import ConfigError
from spikelab.functional.liquid import (AstroSTDPParameters, LiquidParameters, astrocyte_step, liquid_reference,
                                        liquid_run)
from spikelab.functional.plasticity import trace_decay
from spikelab.liquid import LiquidStateMachine, LiquidTopology, grid_liquid
from spikelab.liquid.topology import EXCITATORY, INHIBITORY, INPUT, NALSM_CONNECTIVITY


def events(steps, batch, channels, p=0.1, seed=0, dtype=torch.float64):
    return (torch.rand(steps, batch, channels, generator=torch.Generator().manual_seed(seed)) < p).to(dtype)


# ---------------------------------------------------------------- topology

@pytest.fixture(scope="module")
def nalsm1000():
    return grid_liquid(1000, seed=3)


def test_topology_sizes_and_fractions(nalsm1000):
    topo = nalsm1000
    assert topo.shape == (10, 10, 10) and topo.n_liquid == 1000 and topo.n_input == 2312
    assert topo.excitatory.sum() == 800
    assert (topo.kind[:2312] == INPUT).all()
    recurrent = topo.recurrent()
    assert not np.any(topo.pre[recurrent] - topo.n_input == topo.post[recurrent]), "no self-connections"
    # input density 0.15 within 5 sigma of a binomial over 2312 x 1000 pairs
    n_in = (~recurrent).sum()
    pairs = 2312 * 1000
    assert abs(n_in / pairs - 0.15) < 5 * math.sqrt(0.15 * 0.85 / pairs)
    positive = (topo.weight[~recurrent] > 0).mean()
    assert abs(positive - 0.5) < 5 * math.sqrt(0.25 / n_in)
    # weights start at the largest magnitude with the presynaptic sign; bounds by presynaptic kind
    pre_kind = topo.kind[topo.pre]
    assert np.all(np.abs(topo.weight) == 3.0)
    assert np.all(topo.weight[pre_kind == EXCITATORY] == 3.0) and np.all(topo.weight[pre_kind == INHIBITORY] == -3.0)
    assert np.all((topo.w_min[topo.pre] <= topo.weight) & (topo.weight <= topo.w_max[topo.pre]))
    assert np.all(topo.w_max[topo.kind == INHIBITORY] == 0) and np.all(topo.w_min[topo.kind == EXCITATORY] == 0)
    assert np.all(topo.w_min[topo.kind == INPUT] == -3) and np.all(topo.w_max[topo.kind == INPUT] == 3)
    # sorted by (post, pre): the CSR pointers give each neuron's incoming and outgoing synapses
    assert np.all(np.diff(topo.post.astype(np.int64) * topo.n_total + topo.pre) > 0)
    index = topo.csr()
    i, j = 17, 2400
    assert np.all(topo.post[index.post_ptr[i]:index.post_ptr[i + 1]] == i)
    outgoing = index.by_pre[index.pre_ptr[j]:index.pre_ptr[j + 1]]
    assert len(outgoing) > 0 and np.all(topo.pre[outgoing] == j)
    assert np.array_equal(index.out_post[index.pre_ptr[j]:index.pre_ptr[j + 1]], topo.post[outgoing])


def test_connection_probability_follows_distance(nalsm1000):
    topo = nalsm1000
    pos, exc = topo.positions, topo.excitatory
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    connected = np.zeros((1000, 1000), dtype=bool)
    rec = topo.recurrent()
    connected[topo.pre[rec] - topo.n_input, topo.post[rec]] = True
    checked = 0
    for pair, c in NALSM_CONNECTIVITY.items():
        rows = exc if pair[0] == "E" else ~exc
        cols = exc if pair[1] == "E" else ~exc
        block_d2, block = d2[np.ix_(rows, cols)], connected[np.ix_(rows, cols)]
        for value in (1, 2, 3, 5, 9):          # squared grid distances with many pairs
            at = block_d2 == value
            if pair[0] == pair[1]:
                at &= ~np.eye(*at.shape, dtype=bool)
            n = at.sum()
            p = c * math.exp(-value / 9.0)
            assert abs(block[at].mean() - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12, (pair, value)
            checked += 1
    assert checked == 20


def test_topology_is_seeded():
    a, b, c = grid_liquid((6, 6, 6), n_input=30, seed=5), grid_liquid((6, 6, 6), n_input=30, seed=5), \
        grid_liquid((6, 6, 6), n_input=30, seed=6)
    for name in ("kind", "pre", "post", "weight"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not (len(a.pre) == len(c.pre) and np.array_equal(a.pre, c.pre))
    assert grid_liquid(8000, n_input=4, input_density=0.0, seed=0).shape == (20, 20, 20)


def test_topology_errors():
    with pytest.raises(ConfigError, match="cube"):
        grid_liquid(1001)
    with pytest.raises(ConfigError, match="input_density"):
        grid_liquid(27, n_input=3, input_density=1.5)


# ---------------------------------------------------------------- unit checks of STDP and astrocyte

def pair_topology(test_weight, pre_kind=EXCITATORY):
    """Inputs 0 and 1 drive liquid neurons 0 and 1 (weight 30: one input spike fires them); the synapse under test
    is liquid 0 -> liquid 1."""
    kind = np.array([INPUT, INPUT, pre_kind, EXCITATORY], dtype=np.int8)
    pre = np.array([0, 1, 2], dtype=np.int32)      # sorted by (post, pre)
    post = np.array([0, 1, 1], dtype=np.int32)
    weight = np.array([30.0, 30.0, test_weight], dtype=np.float32)
    w_min = np.array([-30, -30, 0 if pre_kind == EXCITATORY else -3, 0], dtype=np.float32)   # per unit
    w_max = np.array([30, 30, 3 if pre_kind == EXCITATORY else 0, 3], dtype=np.float32)
    return LiquidTopology(shape=(2, 1, 1), n_input=2, kind=kind, positions=np.zeros((2, 3)), pre=pre, post=post,
                          weight=weight, w_min=w_min, w_max=w_max)


def run_pair(first_event, second_event, pre_kind=EXCITATORY, test_weight=1.5, runner=liquid_run):
    topo = pair_topology(test_weight if pre_kind == EXCITATORY else -test_weight, pre_kind)
    x = torch.zeros(20, 1, 2, dtype=torch.float64)
    x[first_event, 0, 0] = 1      # liquid 0 (presynaptic) fires 2 steps after its input event
    x[second_event, 0, 1] = 1     # liquid 1 (postsynaptic)
    out = runner(x, torch.as_tensor(topo.weight), topo, batch_mode="sequential")
    spike_steps = [torch.nonzero(out.spikes[:, 0, i]).flatten().tolist() for i in range(2)]
    return out, spike_steps, topo


@pytest.mark.parametrize("runner", [liquid_run, liquid_reference])
def test_pre_before_post_potentiates_by_eta_a_m(runner):
    out, (pre_spikes, post_spikes), topo = run_pair(3, 4, runner=runner)
    assert pre_spikes == [5] and post_spikes == [6]
    p = AstroSTDPParameters()
    m = trace_decay(p.trace_tau)
    assert out.weights[2].item() == pytest.approx(1.5 + p.eta_plus * p.trace_increment * m, abs=1e-12)


@pytest.mark.parametrize("runner", [liquid_run, liquid_reference])
def test_post_before_pre_depresses_by_astrocyte_a_m(runner):
    out, (pre_spikes, post_spikes), topo = run_pair(4, 3, runner=runner)
    assert pre_spikes == [6] and post_spikes == [5]
    p = AstroSTDPParameters()
    a_before = out.astrocyte[5, 0].item()          # the state the step of the pre spike (6) reads
    assert a_before != p.astro_initial             # the astrocyte moved with the activity
    expected = 1.5 - a_before * p.trace_increment * trace_decay(p.trace_tau)
    assert out.weights[2].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("runner", [liquid_run, liquid_reference])
@pytest.mark.parametrize("carry", [True, False])
def test_sequential_samples_carry_the_stdp_traces(runner, carry):
    """NALSM resets V, spikes, refractory counts, synaptic timers and the astrocyte per sample but never the STDP
    traces: a postsynaptic spike late in one sample depresses a presynaptic spike early in the next."""
    topo = pair_topology(1.5)
    x = torch.zeros(20, 2, 2, dtype=torch.float64)
    x[15, 0, 1] = 1               # sample 0: liquid 1 (postsynaptic) fires at step 17
    x[0, 1, 0] = 1                # sample 1: liquid 0 (presynaptic) fires at step 2
    plasticity = AstroSTDPParameters(carry_traces=carry)
    out = runner(x, torch.as_tensor(topo.weight), topo, plasticity=plasticity, batch_mode="sequential")
    assert torch.nonzero(out.spikes[:, 0, 1]).flatten().tolist() == [17]
    assert torch.nonzero(out.spikes[:, 1, 0]).flatten().tolist() == [2]
    p = plasticity
    m = trace_decay(p.trace_tau)
    # the post trace a m^3 at the end of sample 0, two more steps of decay before the pre spike reads it
    depression = out.astrocyte[1, 1].item() * p.trace_increment * m ** 5 if carry else 0.0
    assert out.weights[2].item() == pytest.approx(1.5 - depression, abs=1e-12)
    assert carry == (out.weights[2].item() < 1.5)


def test_inhibitory_synapse_swaps_the_signs():
    p = AstroSTDPParameters()
    m = trace_decay(p.trace_tau)
    out, _, _ = run_pair(4, 3, pre_kind=INHIBITORY)        # post before pre: + eta a m
    assert out.weights[2].item() == pytest.approx(-1.5 + p.eta_plus * p.trace_increment * m, abs=1e-12)
    out, _, _ = run_pair(3, 4, pre_kind=INHIBITORY)        # pre before post: - A a m
    assert out.weights[2].item() == pytest.approx(-1.5 - out.astrocyte[5, 0].item() * p.trace_increment * m,
                                                  abs=1e-12)


def test_astrocyte_relaxes_to_w_d_plus_b_with_tau_100():
    w, b, tau = 0.015, 0.15, 100.0
    liquid, inputs = torch.full((1,), 40.0, dtype=torch.float64), torch.full((1,), 10.0, dtype=torch.float64)
    target = w * 30 + b
    a = torch.full((1,), 0.15, dtype=torch.float64)
    trajectory = []
    for _ in range(2000):
        a = astrocyte_step(a, liquid, inputs, w, b, tau)
        trajectory.append(a.item())
    for t in (1, 100, 300):
        assert trajectory[t - 1] == pytest.approx(target + (0.15 - target) * (1 - 1 / tau) ** t, rel=1e-12)
    # after tau steps the distance has fallen to about 1/e
    assert (target - trajectory[99]) / (target - 0.15) == pytest.approx(math.exp(-1), abs=0.01)
    assert trajectory[-1] == pytest.approx(target, abs=1e-5)


# ---------------------------------------------------------------- kernel against reference, batch modes

@pytest.fixture(scope="module")
def small():
    return grid_liquid((5, 5, 4), n_input=40, seed=1)


PLASTICITIES = [AstroSTDPParameters(), AstroSTDPParameters(stdp=False),
                AstroSTDPParameters(astrocyte=False, rate_decay=0.99), AstroSTDPParameters(rate_decay=0.99),
                AstroSTDPParameters(carry_traces=False)]   # sequential: synapses placed per sample, not once


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", ["independent", "sequential"])
@pytest.mark.parametrize("plasticity", PLASTICITIES)
def test_kernel_equals_torch_reference(small, dtype, mode, plasticity):
    x = events(50, 3, 40, seed=2, dtype=dtype)
    w = torch.as_tensor(small.weight)
    ref = liquid_reference(x, w, small, plasticity=plasticity, batch_mode=mode, keep_weights=True)
    out = liquid_run(x, w, small, plasticity=plasticity, batch_mode=mode, keep_weights=True)
    assert ref.counts.sum() > 100, "the liquid must be active for the comparison to mean something"
    if dtype == torch.float64:
        assert torch.equal(out.spikes, ref.spikes)
        assert torch.equal(out.counts, ref.counts)
    else:   # the kernel's running current rounds differently: a rare near-threshold spike may split
        assert (out.spikes != ref.spikes).float().mean() < 1e-3
    torch.testing.assert_close(out.astrocyte, ref.astrocyte, rtol=1e-6, atol=1e-9)
    if plasticity.stdp:
        assert not torch.equal(ref.weights.to(w.dtype).reshape(-1, w.numel())[0], w.to(dtype)), "weights learned"
        torch.testing.assert_close(out.weights, ref.weights, rtol=1e-6, atol=1e-6)
    else:
        assert out.weights is None and ref.weights is None


def test_independent_batch_equals_sequential_runs_from_the_same_weights(small):
    x = events(60, 4, 40, seed=4)
    w = torch.as_tensor(small.weight, dtype=torch.float64)
    batch = liquid_run(x, w, small, batch_mode="independent", keep_weights=True)
    for b in range(4):
        alone = liquid_run(x[:, b:b + 1], w, small, batch_mode="sequential")
        assert torch.equal(batch.spikes[:, b:b + 1], alone.spikes)
        assert torch.equal(batch.weights[b], alone.weights)
    # sequential carries the weights: the second sample then differs from its independent run
    carried = liquid_run(x, w, small, batch_mode="sequential")
    assert torch.equal(carried.spikes[:, :1], batch.spikes[:, :1])
    assert not torch.equal(carried.spikes[:, 1:], batch.spikes[:, 1:])


def test_no_plasticity_leaves_weights_and_counts_match_record(small):
    x = events(40, 2, 40, seed=5, dtype=torch.float32)
    w = torch.as_tensor(small.weight)
    full = liquid_run(x, w, small, plasticity=AstroSTDPParameters(stdp=False))
    counts_only = liquid_run(x, w, small, plasticity=AstroSTDPParameters(stdp=False), record=False)
    assert counts_only.spikes is None and torch.equal(counts_only.counts, full.counts)
    assert torch.equal(full.spikes.sum(0, dtype=torch.int32), full.counts)


def test_neuron_timing_and_refractory():
    """An input event at t fires its unit at t + 1 and the driven liquid neuron at t + 2; the refractory period
    (2 ms) holds back a membrane above threshold."""
    topo = pair_topology(0.0)
    x = torch.zeros(12, 1, 2, dtype=torch.float64)
    x[:, 0, 0] = 1.0           # an event every ms: the input unit fires at 1, then every 3 ms (refractory 2)
    out = liquid_run(x, torch.as_tensor(topo.weight), topo, plasticity=AstroSTDPParameters(stdp=False))
    assert torch.nonzero(out.spikes[:, 0, 0]).flatten().tolist() == [2, 5, 8, 11]
    assert out.counts[0, 1] == 0


# ---------------------------------------------------------------- module

def test_module_forward_learn_save_load(tmp_path, small):
    lsm = LiquidStateMachine(small)
    x = events(30, 3, 40, seed=6, dtype=torch.float32)
    start = lsm.weight.clone()
    out = lsm(x)
    assert out.spikes.shape == (30, 3, 100) and torch.equal(lsm.weight, start), "independent: weights kept"
    lsm.learn(x)
    assert not torch.equal(lsm.weight, start), "sequential: learned weights kept"
    lsm.save(tmp_path / "liquid.pt")
    again = LiquidStateMachine.load(tmp_path / "liquid.pt")
    assert torch.equal(again.weight, lsm.weight) and again.plasticity == lsm.plasticity
    assert np.array_equal(again.topology.pre, small.pre) and again.topology.shape == small.shape
    assert torch.equal(again(x).counts, lsm(x).counts)


def test_module_torch_backend_matches(small):
    x = events(30, 2, 40, seed=7, dtype=torch.float32)
    fast, slow = LiquidStateMachine(small), LiquidStateMachine(small, backend="torch")
    assert torch.equal(fast(x).spikes, slow(x).spikes)
    fast.learn(x)
    slow.learn(x)
    torch.testing.assert_close(fast.weight, slow.weight)


def test_module_defaults_follow_the_paper():
    lsm = LiquidStateMachine(size=1000, seed=0)
    assert lsm.plasticity.astro_w == 0.015 and lsm.n_input == 2312 and lsm.n_liquid == 1000
    assert lsm.neuron == LiquidParameters(tau_v=64.0, threshold=20.0, refractory=2, tau_u=1.0)
    with pytest.raises(ConfigError, match="batch_mode"):
        lsm(torch.zeros(2, 1, 2312), batch_mode="shared")
    with pytest.raises(ConfigError, match="2312"):
        lsm(torch.zeros(2, 1, 100))


def test_weights_outside_their_bounds_are_refused(small):
    w = torch.as_tensor(small.weight).clone()
    w[0] = 10.0
    with pytest.raises(ConfigError, match="outside their bounds"):
        liquid_run(events(5, 1, 40), w, small)
    frozen = AstroSTDPParameters(stdp=False)   # the bounds are STDP's: frozen weights (a chip's) may lie anywhere
    assert liquid_run(events(5, 1, 40), w, small, plasticity=frozen).counts.shape == (1, small.n_liquid)


def test_silent_input_channels_change_nothing(small):
    """The kernel skips synapses from channels without events; the reference walks them all."""
    x = events(50, 2, 40, seed=8)
    x[:, :, :25] = 0                      # most channels silent
    w = torch.as_tensor(small.weight, dtype=torch.float64)
    ref = liquid_reference(x, w, small, batch_mode="sequential")
    out = liquid_run(x, w, small, batch_mode="sequential")
    assert ref.counts.sum() > 50 and torch.equal(out.spikes, ref.spikes)
    torch.testing.assert_close(out.weights, ref.weights, rtol=1e-9, atol=1e-12)


def test_kernel_equals_reference_with_bias(small):
    """With a bias the input units leave rest without events: the kernel then visits them all every step."""
    x = events(50, 2, 40, p=0.005, seed=9)  # most channels without an event
    w = torch.as_tensor(small.weight, dtype=torch.float64)
    neuron = LiquidParameters(bias=1.0)     # V -> bias tau_v = 64: every unit fires on its own after 24 ms
    ref = liquid_reference(x, w, small, neuron, batch_mode="sequential")
    out = liquid_run(x, w, small, neuron, batch_mode="sequential")
    assert ref.counts.sum() > 100 and torch.equal(out.spikes, ref.spikes)
    torch.testing.assert_close(out.weights, ref.weights, rtol=1e-9, atol=1e-12)
