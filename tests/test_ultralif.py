"""UltraLIF family: the max-plus primitive, limit identities, exact gradients, clamps, shapes, coupling, spec."""
import math

import pytest
import torch
from torch.func import functional_call

import spikelab.spec
from spikelab.errors import ConfigError
from spikelab.functional.ultralif import (UltraState, fire, max_plus_lse, ultra_diffusive_step, ultra_membrane,
                                          ultra_step)
from spikelab.layers import Linear, Sequential
from spikelab.neurons.ultra import (ULTRA_NEURONS, UltraDLIF, UltraDPLIF, UltraLIF, UltraPLIF,
                                    set_spike_mode)
from spikelab.training import clamp_parameters

VARIANTS = list(ULTRA_NEURONS.values())
DIFFUSIVE = (UltraDLIF, UltraDPLIF)


def _params(module):
    return {name: p for name, p in module.named_parameters()}


# -- the primitive ---------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [20.0, 2.0, 1.0, 0.5, 0.1, 0.01, 1e-3])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e8])
def test_lse_bound_two_terms(eps, scale):
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(10_000, generator=g, dtype=torch.float64) * scale for _ in range(2))
    b[:100] = a[:100]  # ties: the upper bound eps*log 2 is reached
    lse = max_plus_lse(torch.stack((a, b)), eps, 0)
    gap = lse - torch.maximum(a, b)
    assert torch.isfinite(lse).all()
    assert gap.min() >= 0
    assert gap.max() <= eps * math.log(2) * (1 + 1e-12) + 1e-12 * scale
    assert torch.allclose(gap[:100], torch.full((100,), eps * math.log(2), dtype=torch.float64),
                          rtol=1e-9, atol=1e-9 * scale)


def test_lse_stable_in_float32_and_n_terms():
    x = torch.tensor([[1e30, -1e30, 3.0], [1e30, 1e30, 3.0], [0.0, -1e30, 3.0]], dtype=torch.float32)
    lse = max_plus_lse(x, 0.1, 0)
    assert torch.isfinite(lse).all()
    assert lse[0] == 1e30 and lse[1] == 1e30
    assert lse[2].item() == pytest.approx(3.0 + 0.1 * math.log(3), rel=1e-6)
    stack = torch.randn(5, 1000, dtype=torch.float64) * 50
    out = max_plus_lse(stack, 0.3, 0)
    gap = out - stack.amax(0)
    assert gap.min() >= 0 and gap.max() <= 0.3 * math.log(5) + 1e-12
    # eps as a tensor, and against the naive formula where it does not overflow
    eps = torch.tensor(0.7, dtype=torch.float64)
    small = torch.randn(3, 50, dtype=torch.float64)
    assert torch.allclose(max_plus_lse(small, eps, 0), eps * torch.log(torch.exp(small / eps).sum(0)))
    assert max_plus_lse(torch.full((2, 3), -math.inf), 1.0, 0).eq(-math.inf).all()


# -- limits ----------------------------------------------------------------------------------------
def test_eps_one_is_linear_lif_in_log_coordinates():
    tau = 0.7
    m = UltraLIF(tau=tau, threshold=1e9, eps=1.0, learn_eps=False).double()  # threshold huge: s == 0
    m.record = True
    x = torch.randn(20, 4, 6, dtype=torch.float64) * 2
    spikes = m(x)
    assert spikes.max() < 1e-300
    v = torch.zeros(4, 6, dtype=torch.float64)
    for t in range(x.shape[0]):
        v = torch.log(tau * torch.exp(v) + torch.exp(x[t]))
        assert torch.allclose(m.recorded["v"][t], v, rtol=0, atol=1e-6)
    assert (m.recorded["v"][-1] - v).abs().max() < 1e-12


def test_eps_to_zero_is_tropical_lif_and_heaviside_spike():
    eps, tau = 1e-3, 0.8
    m = UltraLIF(tau=tau, threshold=1e9, eps=eps, learn_eps=False).double()
    m.record = True
    x = torch.randn(15, 3, 10, dtype=torch.float64)
    m(x)
    v = torch.zeros(3, 10, dtype=torch.float64)
    for t in range(x.shape[0]):
        v = torch.maximum(v + math.log(tau), x[t])
        gap = m.recorded["v"][t] - v
        assert gap.min() >= -1e-9 and gap.max() <= eps * math.log(2) * (t + 1) + 1e-9
    # the spike tends to H(V - theta) away from threshold, and is 1/2 at threshold
    vgrid = torch.linspace(-3, 5, 801, dtype=torch.float64)
    s, _ = fire(vgrid, eps, 1.0)
    far = (vgrid - 1.0).abs() > 0.05
    assert torch.allclose(s[far], (vgrid[far] >= 1.0).double(), atol=1e-12)
    assert s[(vgrid - 1.0).abs() < 1e-9].item() == pytest.approx(0.5)
    # and the full neuron with spikes on: binary to within 1e-6 for states not within 0.05 of threshold
    m2 = UltraLIF(tau=tau, threshold=0.5, eps=eps, learn_eps=False).double()
    m2.record = True
    s2 = m2(x)
    clear = (m2.recorded["v"] - 0.5).abs() > 0.05
    assert torch.allclose(s2[clear], (m2.recorded["v"][clear] >= 0.5).double(), atol=1e-6)


# -- exact gradients -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
def test_gradcheck_module(cls):
    torch.manual_seed(1)
    m = cls(eps=0.7, threshold=0.5).double()
    x = (torch.randn(3, 2, 5, dtype=torch.float64) * 0.8).requires_grad_()
    names = list(_params(m))
    assert "log_eps" in names and (("log_tau" in names) == (cls in (UltraPLIF, UltraDPLIF)))
    values = tuple(p.detach().clone().requires_grad_() for p in _params(m).values())

    def f(x, *ps):
        return functional_call(m, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *values))


def test_gradcheck_functional_steps():
    torch.manual_seed(2)
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    eps = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: ultra_step(a[0], a[1], a[3], a[2], 0.3), (x, v, eps, tau))
    assert torch.autograd.gradcheck(lambda *a: ultra_diffusive_step(a[0], a[1], a[2], 0.3, 1, a[3]),
                                    (x, v, eps, tau))
    assert torch.autograd.gradcheck(lambda *a: ultra_diffusive_step(a[0], a[1], a[2], 0.3, 1), (x, v, eps))


@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0, 3.0])
def test_spike_gradient_bounded_and_alive_near_threshold(eps):
    theta = 1.0
    v = torch.linspace(-20, 20, 40_001, dtype=torch.float64, requires_grad=True)
    s, _ = fire(v, eps, theta)
    (ds,) = torch.autograd.grad(s.sum(), v)
    assert ds.max() <= 1 / (4 * eps) * (1 + 1e-12)
    assert ds.max() >= 1 / (4 * eps) * 0.999  # reached at threshold
    band = (v.detach() - theta).abs() <= 3 * eps
    assert ds[band].min() > 0.04 / eps  # s(1-s)/eps at 3 eps is 0.045/eps


# -- eps / tau parameters and their clamps ----------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_clamps_hold_in_training_and_gradients_live(cls, sign):
    torch.manual_seed(3)
    net = Sequential(Linear(6, 8), cls())
    layer = net[1]
    opt = torch.optim.SGD(net.parameters(), lr=200.0)
    x = torch.randn(4, 5, 6)
    lo_e, hi_e = math.log(0.1), math.log(20.0)
    moved = False
    for _ in range(15):
        opt.zero_grad()
        out = net(x)
        loss = sign * (out.mean() + 0.1 * layer.eps)
        loss.backward()
        assert layer.log_eps.grad is not None and layer.log_eps.grad.abs() > 0
        if hasattr(layer, "log_tau"):
            assert layer.log_tau.grad.abs() > 0
        opt.step()
        clamp_parameters(net)
        assert lo_e - 1e-6 <= layer.log_eps.item() <= hi_e + 1e-6  # float32 rounding of the bound
        assert 0.1 - 1e-6 <= layer.eps.item() <= 20 + 1e-5
        if hasattr(layer, "log_tau"):
            assert -2.3 - 1e-6 <= layer.log_tau.item() <= -0.01 + 1e-6
        moved |= abs(layer.log_eps.item()) > 1e-3
    assert moved


@pytest.mark.parametrize("cls", [UltraPLIF, UltraDPLIF])
def test_forward_clamps_value_but_passes_gradient(cls):
    m = cls()
    x = torch.randn(3, 2, 4)
    with torch.no_grad():
        m.log_eps.fill_(math.log(100.0))
        m.log_tau.fill_(0.5)
    assert m.eps.item() == pytest.approx(20.0) and m.tau.item() == pytest.approx(math.exp(-0.01))
    m(x).sum().backward()
    assert m.log_eps.grad.abs() > 0 and m.log_tau.grad.abs() > 0  # straight-through: not cut at the clamp
    m.clamp_parameters()
    assert m.log_eps.item() == pytest.approx(math.log(20.0)) and m.log_tau.item() == pytest.approx(-0.01)


def test_fixed_eps_has_no_parameter_and_bad_arguments_raise():
    m = UltraLIF(eps=1e-3, learn_eps=False)
    assert list(m.parameters()) == [] and m.eps.item() == pytest.approx(1e-3)
    m.clamp_parameters()  # no-op
    assert len(list(UltraDLIF().parameters())) == 1
    for bad in (lambda: UltraLIF(eps=50.0), lambda: UltraLIF(eps=0.0, learn_eps=False),
                lambda: UltraPLIF(tau=0.995), lambda: UltraDPLIF(tau=0.05), lambda: UltraLIF(tau=0.0),
                lambda: UltraLIF(threshold=float("nan")), lambda: UltraDLIF(learn_eps="yes")):
        with pytest.raises(ConfigError):
            bad()
    with pytest.raises(ConfigError):
        UltraDLIF()(torch.randn(3, 4))  # needs a feature axis


# -- shapes, step, state, record ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
@pytest.mark.parametrize("shape", [(7, 3, 10), (4, 2, 5, 3, 3)])
def test_shapes_and_step_matches_forward(cls, shape):
    torch.manual_seed(4)
    m = cls(eps=0.5)
    assert cls.spiking is True and m.spiking is True
    x = torch.randn(*shape)
    spikes, state = m(x, return_state=True)
    assert spikes.shape == x.shape and isinstance(state, UltraState) and state.v.shape == x.shape[1:]
    assert ((spikes > 0) & (spikes < 1)).all()
    st, outs = None, []
    for t in range(x.shape[0]):
        s_t, st = m.step(x[t], st)
        outs.append(s_t)
    assert torch.allclose(torch.stack(outs), spikes, atol=1e-6)
    assert torch.allclose(st.v, state.v, atol=1e-6)
    # continuing from a state equals one long run
    half = x.shape[0] // 2
    _, s1 = m(x[:half], return_state=True)
    assert torch.allclose(m(x[half:], s1), spikes[half:], atol=1e-6)


def test_record_like_lif():
    m = UltraLIF()
    x = torch.randn(5, 2, 3, requires_grad=True)
    m(x)
    assert m.recorded is None
    m.record = True
    spikes = m(x)
    assert set(m.recorded) == {"spikes", "v"}
    assert m.recorded["spikes"].shape == m.recorded["v"].shape == x.shape
    assert not m.recorded["spikes"].requires_grad and torch.equal(m.recorded["spikes"], spikes.detach())
    # v is the membrane before reset: the spike is its sigmoid
    assert torch.allclose(torch.sigmoid((m.recorded["v"] - 1.0) / m.eps), spikes.detach(), atol=1e-6)


# -- diffusive coupling ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", DIFFUSIVE)
def test_diffusion_couples_ring_neighbours(cls):
    F = 7
    m = cls(eps=0.5, learn_eps=False).double()
    m.record = True
    x = torch.zeros(2, 1, F, dtype=torch.float64)
    m(x)
    base = m.recorded["v"][1, 0].clone()
    for i, neighbours in ((3, {2, 3, 4}), (F - 1, {F - 2, F - 1, 0}), (0, {F - 1, 0, 1})):  # incl. wrap-around
        xp = x.clone()
        xp[0, 0, i] = 2.0
        m(xp)
        changed = {j for j in range(F) if abs(m.recorded["v"][1, 0, j] - base[j]) > 1e-9}
        assert changed == neighbours
    # temporal neurons do not couple
    t = UltraLIF(learn_eps=False).double()
    t.record = True
    t(x)
    b = t.recorded["v"][1, 0].clone()
    xp = x.clone()
    xp[0, 0, 3] = 2.0
    t(xp)
    assert {j for j in range(F) if abs(t.recorded["v"][1, 0, j] - b[j]) > 1e-9} == {3}


def test_diffusion_runs_along_channels_of_conv_maps():
    m = UltraDLIF(learn_eps=False).double()
    m.record = True
    x = torch.zeros(2, 1, 4, 3, 3, dtype=torch.float64)
    m(x)
    base = m.recorded["v"][1].clone()
    xp = x.clone()
    xp[0, 0, 1, 2, 0] = 2.0  # channel 1, pixel (2, 0)
    m(xp)
    diff = (m.recorded["v"][1] - base).abs()[0] > 1e-9  # (C, H, W)
    assert diff.nonzero().tolist() == [[0, 2, 0], [1, 2, 0], [2, 2, 0]]


def test_dplif_multiplies_the_centre_by_tau():
    v = torch.tensor([[0.0, 2.0, -1.0, 0.5]], dtype=torch.float64)
    x = torch.zeros_like(v)
    expect = 1.0 * torch.log(torch.exp(torch.roll(v, 1, 1)) + torch.exp(0.6 * v) + torch.exp(torch.roll(v, -1, 1)))
    s, v_new = ultra_diffusive_step(x, v, 1.0, 1e9, 1, tau=0.6)
    assert torch.allclose(v_new, expect, atol=1e-12)
    assert torch.allclose(ultra_membrane(x, v, 0.6, 1.0), torch.log(0.6 * torch.exp(v) + 1), atol=1e-12)


# -- spike mode ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
def test_hard_spike_mode_is_binary_and_restorable(cls):
    torch.manual_seed(5)
    net = Sequential(Linear(4, 6), cls(eps=0.5), Linear(6, 6), cls())
    x = torch.randn(6, 3, 4) * 3
    soft = net(x)
    previous = set_spike_mode(net, "hard")
    assert previous == {"1": "soft", "3": "soft"}
    net[1].record = True
    hard = net(x)
    s1 = net[1].recorded["spikes"]
    assert set(torch.unique(hard).tolist()) <= {0.0, 1.0} and set(torch.unique(s1).tolist()) == {0.0, 1.0}
    assert torch.equal(s1, (net[1].recorded["v"] >= 1.0).float())
    assert "spike_mode='hard'" in repr(net[1])
    # straight-through: the hard network still has a gradient
    loss = (net(x) * torch.randn(6, 3, 6)).sum() + net[1](x[:, :, :1].expand(6, 3, 6) + 0).sum()
    loss.backward()
    assert net[0].weight.grad.abs().sum() > 0
    assert set_spike_mode(net, previous) == {"1": "hard", "3": "hard"}
    assert torch.allclose(net(x), soft)
    with pytest.raises(ConfigError):
        set_spike_mode(net, "binary")


# -- spec ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
def test_spec_round_trip(cls):
    kwargs = dict(threshold=0.7, eps=0.5, learn_eps=False)
    if cls is not UltraDLIF:
        kwargs["tau"] = 0.8
    net = Sequential(Linear(4, 3), cls(**kwargs))
    spec = spikelab.spec.spec_of(net)
    assert spec["layers"][1] == {"type": cls.__name__, "args": kwargs}
    rebuilt = spikelab.spec.build(spec)
    assert type(rebuilt[1]) is cls and rebuilt[1].config == net[1].config
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(3, 2, 4)
    assert torch.allclose(rebuilt(x), net(x))


def test_spec_round_trip_default_udlif():
    net = Sequential(Linear(4, 3), UltraDLIF())
    rebuilt = spikelab.spec.build(spikelab.spec.spec_of(net))
    assert isinstance(rebuilt[1], UltraDLIF)
    rebuilt.load_state_dict(net.state_dict())
    assert set(net.state_dict()) == {"0.weight", "0.bias", "1.log_eps"}
    assert ULTRA_NEURONS == {"ultralif": UltraLIF, "ultraplif": UltraPLIF, "ultradlif": UltraDLIF,
                             "ultradplif": UltraDPLIF}
