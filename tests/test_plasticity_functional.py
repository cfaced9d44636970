"""The functional STDP layer: the analytic pair curve, traces, the matrix-product pair sums, the online form."""
import math

import pytest
import torch

import spikelab.functional.plasticity as plasticity
from spikelab.errors import ConfigError
from spikelab.functional.plasticity import (STDPParameters, apply_stdp, bounds_by_type, discounted_reward,
                                            spike_outer_sum, stdp_online, stdp_step, stdp_terms, trace_scan,
                                            trace_step)


def _pair(steps: int, t_pre: int, t_post: int, n_pre: int = 1, n_post: int = 1):
    pre, post = torch.zeros(steps, 1, n_pre, dtype=torch.float64), torch.zeros(steps, 1, n_post, dtype=torch.float64)
    pre[t_pre], post[t_post] = 1.0, 1.0
    return pre, post


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_pair_curve_is_the_analytic_exponential(pairing):
    """dw(dt) = A+ exp(-dt/tau+) for dt > 0, -A- exp(dt/tau-) for dt < 0, 0 at dt = 0, to 1e-6 in float64,
    by the whole-sequence matrix products and by the per-step online form (one sample per dt in [-50, 50])."""
    p = STDPParameters(tau_plus=17.0, tau_minus=23.0, a_plus=0.7, a_minus=0.4, pairing=pairing, w_min=-10, w_max=10)
    dts = torch.arange(-50, 51)
    pre, post = torch.zeros(121, len(dts), 1, dtype=torch.float64), torch.zeros(121, len(dts), 1, dtype=torch.float64)
    pre[60, :, 0] = 1.0
    post[60 + dts, torch.arange(len(dts)), 0] = 1.0
    expected = torch.tensor([0.7 * math.exp(-dt / 17.0) if dt > 0 else -0.4 * math.exp(dt / 23.0) if dt < 0 else 0.0
                             for dt in dts.tolist()], dtype=torch.float64)
    ltp, ltd, _ = stdp_terms(pre, post, p, reduce="none")
    online, _, _ = stdp_online(torch.zeros(len(dts), 1, 1, dtype=torch.float64), pre, post, p, reduce="none")
    assert (ltp - ltd).flatten().sub(expected).abs().max() < 1e-6
    assert online.flatten().sub(expected).abs().max() < 1e-6


def test_nearest_pairs_only_the_latest_spike():
    """Two pre spikes before one post spike: all-to-all sums both pairs, nearest keeps the later one."""
    pre, post = _pair(40, 10, 20)
    pre[15] = 1.0
    p = STDPParameters(tau_plus=10.0, a_plus=1.0, a_minus=0.0)
    both = stdp_terms(pre, post, p)[0].item()
    nearest = stdp_terms(pre, post, p._replace(pairing="nearest"))[0].item()
    assert both == pytest.approx(math.exp(-1.0) + math.exp(-0.5), abs=1e-12)
    assert nearest == pytest.approx(math.exp(-0.5), abs=1e-12)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_trace_scan_equals_the_step_loop(pairing):
    """The loop-free scan (compiled leaky integrator / closed form) equals trace_step applied step by step,
    with per-neuron decays, an increment (NALSM's x <- m (x + a s)) and a carried initial trace."""
    g = torch.Generator().manual_seed(1)
    spikes = (torch.rand(80, 3, 7, generator=g) < 0.2).double()
    initial = torch.rand(3, 7, generator=g, dtype=torch.float64)
    decay = torch.linspace(0.8, 0.95, 7, dtype=torch.float64)
    scanned = trace_scan(spikes, decay, 0.1, pairing, initial)
    trace, stepped = initial, []
    for s_t in spikes:
        trace = trace_step(trace, s_t, decay, 0.1, pairing)
        stepped.append(trace)
    torch.testing.assert_close(scanned, torch.stack(stepped), rtol=0, atol=1e-14)


def test_nalsm_unit_pairs():
    """algorithms.md 3.9: a pre->post pair at +1 step raises a weight by eta+ a m; post->pre lowers it by A a m
    (trace x <- m (x + a s), a = 0.1, m = e^(-1/10)), here with the rates as per-step tensors."""
    a, m, eta, astro = 0.1, math.exp(-0.1), 0.15, 0.2
    pre, post = _pair(10, 3, 4)
    traces = [trace_scan(s, m, a) for s in (pre, post)]
    before = [plasticity.trace_before(x) for x in traces]
    ltp = spike_outer_sum(post, torch.full((10, 1, 1), eta, dtype=torch.float64) * before[0])
    assert ltp.item() == pytest.approx(eta * a * m, abs=1e-15)
    pre, post = _pair(10, 4, 3)
    post_before = plasticity.trace_before(trace_scan(post, m, a))
    ltd = spike_outer_sum(torch.full((10, 1, 1), astro, dtype=torch.float64) * pre, post_before)
    assert ltd.item() == pytest.approx(astro * a * m, abs=1e-15)


@pytest.mark.parametrize("reduce", ["sum", "mean", "none"])
def test_sparse_kernel_equals_the_dense_product(reduce, monkeypatch):
    g = torch.Generator().manual_seed(2)
    spikes = (torch.rand(50, 4, 30, generator=g) < 0.1).double() * torch.rand(50, 4, 30, generator=g)
    dense = torch.rand(50, 4, 20, generator=g, dtype=torch.float64)
    kernel = spike_outer_sum(spikes, dense, reduce)
    monkeypatch.setattr(plasticity, "SPARSE_DENSITY", 0.0)
    matmul = spike_outer_sum(spikes, dense, reduce)
    reference = torch.einsum("tbi,tbj->bij", spikes, dense)
    reference = reference if reduce == "none" else reference.sum(0) / (4 if reduce == "mean" else 1)
    torch.testing.assert_close(kernel, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(matmul, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_whole_sequence_equals_online_for_additive_rule_inside_bounds(pairing):
    """With additive dependence and bounds never reached, the matrix-product update equals the per-step online
    update (rates per step and sample included), summed and per sample."""
    g = torch.Generator().manual_seed(3)
    pre = (torch.rand(60, 4, 9, generator=g) < 0.2).double()
    post = (torch.rand(60, 4, 5, generator=g) < 0.2).double()
    rate = torch.rand(60, 4, 1, generator=g, dtype=torch.float64)
    p = STDPParameters(a_plus=0.01 * rate, a_minus=0.012 * rate, pairing=pairing, w_min=-100.0, w_max=100.0)
    for reduce, w0 in (("sum", torch.zeros(5, 9, dtype=torch.float64)),
                       ("none", torch.zeros(4, 5, 9, dtype=torch.float64))):
        ltp, ltd, state = stdp_terms(pre, post, p, reduce=reduce)
        online, online_state, _ = stdp_online(w0, pre, post, p, reduce=reduce)
        torch.testing.assert_close(apply_stdp(w0, ltp, ltd, p), online, rtol=0, atol=1e-12)
        torch.testing.assert_close(state.pre_trace, online_state.pre_trace, rtol=0, atol=1e-12)


def test_carried_state_splits_a_sequence():
    """Two halves with the traces carried equal the whole sequence."""
    g = torch.Generator().manual_seed(4)
    pre = (torch.rand(40, 2, 6, generator=g) < 0.3).double()
    post = (torch.rand(40, 2, 3, generator=g) < 0.3).double()
    p = STDPParameters(a_plus=0.02, a_minus=0.01)
    ltp, ltd, _ = stdp_terms(pre, post, p)
    ltp1, ltd1, state = stdp_terms(pre[:17], post[:17], p)
    ltp2, ltd2, _ = stdp_terms(pre[17:], post[17:], p, state)
    torch.testing.assert_close(ltp1 + ltp2, ltp, rtol=0, atol=1e-14)
    torch.testing.assert_close(ltd1 + ltd2, ltd, rtol=0, atol=1e-14)


def test_weight_dependence_and_bounds_per_type():
    w = torch.tensor([[0.2, -0.5, 2.9]])
    w_min, w_max = bounds_by_type(torch.tensor([0, 1, 2]), lows=[0.0, -3.0, -3.0], highs=[3.0, 0.0, 3.0])
    p = STDPParameters(weight_dependence="multiplicative", w_min=w_min, w_max=w_max)
    ltp, ltd = torch.tensor([[0.5, 0.0, 0.0]]), torch.tensor([[0.0, 0.5, 0.0]])
    # soft bounds: LTP scales with w_max - w, LTD with w - w_min
    torch.testing.assert_close(apply_stdp(w, ltp, ltd, p), torch.tensor([[0.2 + 0.5 * 2.8, -0.5 - 0.5 * 2.5, 2.9]]))
    additive = apply_stdp(w, torch.full_like(w, 5.0), torch.zeros_like(w), p._replace(weight_dependence="additive"))
    torch.testing.assert_close(additive, torch.tensor([[3.0, 0.0, 3.0]]))   # clamped to each type's bound


def test_discounted_reward_is_the_eligibility_trace_sum():
    """sum_t r[t] e[t] with e[t] = d e[t-1] + dw[t] equals sum_t R[t] dw[t] (reward-to-go weights)."""
    g = torch.Generator().manual_seed(5)
    reward = torch.randn(30, 2, generator=g, dtype=torch.float64)
    dw = torch.randn(30, 2, generator=g, dtype=torch.float64)
    e, total = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for t in range(30):
        e = 0.8 * e + dw[t]
        total += reward[t] * e
    torch.testing.assert_close((discounted_reward(reward, 0.8) * dw).sum(0), total)
    torch.testing.assert_close(discounted_reward(reward, 0.0), reward)


def test_step_equals_one_step_sequence():
    g = torch.Generator().manual_seed(6)
    pre, post = (torch.rand(1, 3, 4, generator=g) < 0.5).float(), (torch.rand(1, 3, 2, generator=g) < 0.5).float()
    p = STDPParameters()
    state = plasticity.STDPState(torch.rand(3, 4, generator=g), torch.rand(3, 2, generator=g))
    for reduce in ("sum", "none"):
        a = stdp_step(pre[0], post[0], p, state, reduce)
        b = stdp_terms(pre, post, p, state, reduce)
        for x, y in zip(a[:2], b[:2]):
            torch.testing.assert_close(x, y)


def test_bad_parameters_raise_config_errors():
    pre = torch.zeros(5, 1, 2)
    with pytest.raises(ConfigError, match="pairing"):
        stdp_terms(pre, pre, STDPParameters(pairing="triplet"))
    with pytest.raises(ConfigError, match="tau_plus"):
        stdp_terms(pre, pre, STDPParameters(tau_plus=0.0))
    with pytest.raises(ConfigError, match="weight_dependence"):
        stdp_terms(pre, pre, STDPParameters(weight_dependence="gutig"))
    with pytest.raises(ConfigError, match="same T and B"):
        stdp_terms(pre, torch.zeros(4, 1, 2), STDPParameters())
    with pytest.raises(ConfigError, match="w_min"):
        stdp_terms(pre, pre, STDPParameters(w_min=1.0, w_max=0.0))
    with pytest.raises(ConfigError, match="types"):
        bounds_by_type(torch.tensor([0, 3]), [0.0], [1.0])


@pytest.mark.parametrize("reduce", ["sum", "none"])
def test_regrouped_all_to_all_terms_equal_the_direct_pairing(reduce):
    """All-to-all terms summed over presynaptic spikes (reversed post trace) equal the direct pair sums (which a
    rate varying by presynaptic neuron forces), carried traces included; stdp_update's one-pass additive change
    equals apply_stdp of the two terms."""
    g = torch.Generator().manual_seed(7)
    pre = (torch.rand(50, 3, 8, generator=g) < 0.2).double()
    post = (torch.rand(50, 3, 5, generator=g) < 0.2).double()
    state = plasticity.STDPState(torch.rand(3, 8, generator=g, dtype=torch.float64),
                                 torch.rand(3, 5, generator=g, dtype=torch.float64))
    rate = torch.rand(50, 3, 1, generator=g, dtype=torch.float64)
    p = STDPParameters(a_plus=0.02 * rate, a_minus=0.01 * rate, w_min=-9.0, w_max=9.0)
    direct = p._replace(a_plus=p.a_plus.expand(50, 3, 8), a_minus=p.a_minus.expand(50, 3, 8))
    regrouped, reference = stdp_terms(pre, post, p, state, reduce), stdp_terms(pre, post, direct, state, reduce)
    for mine, theirs in zip(regrouped[:2] + regrouped[2], reference[:2] + reference[2]):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-13)
    w = torch.zeros_like(regrouped[0])
    updated, _ = plasticity.stdp_update(w, pre, post, p, state, reduce)
    torch.testing.assert_close(updated, apply_stdp(w, *reference[:2], p), rtol=0, atol=1e-13)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_torch_path_equals_the_kernels(pairing, monkeypatch):
    """The torch code (GPU tensors take it) and the numba kernels give the same terms and traces."""
    g = torch.Generator().manual_seed(8)
    pre = (torch.rand(40, 3, 8, generator=g) < 0.2).double()
    post = (torch.rand(40, 3, 5, generator=g) < 0.2).double()
    state = plasticity.STDPState(torch.rand(3, 8, generator=g, dtype=torch.float64),
                                 torch.rand(3, 5, generator=g, dtype=torch.float64))
    p = STDPParameters(a_plus=0.02, a_minus=0.01, pairing=pairing)
    kernels = stdp_terms(pre, post, p, state, "none")
    monkeypatch.setattr(plasticity, "_kernel_ok", lambda t: False)
    torch_ops = stdp_terms(pre, post, p, state, "none")
    for mine, theirs in zip(kernels[:2] + kernels[2], torch_ops[:2] + torch_ops[2]):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-13)
