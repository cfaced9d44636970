"""Neuron modules: LIF (fixed / learnable beta, record, step), RecurrentLIF, LeakyIntegrator."""
import math

import pytest
import torch

from spikelab.errors import ConfigError
from spikelab.functional.lif import LIFParameters, LIFState, lif_sequence
from spikelab.neurons import LIF, LeakyIntegrator, RecurrentLIF

T, B, N = 30, 4, 16


def _input(shape=(T, B, N), scale=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * scale


def test_lif_forward_equals_functional_and_returns_final_state():
    lif = LIF(beta=0.8, threshold=0.9, reset="subtract", refractory_steps=1, surrogate="triangle", slope=2.0)
    x = _input()
    spikes, state = lif(x, return_state=True)
    s_ref, v_ref = lif_sequence(x, LIFParameters(0.8, 0.9, "subtract", 1, "triangle", 2.0))
    assert torch.equal(spikes, s_ref) and spikes.any()
    assert isinstance(state, LIFState)
    assert torch.equal(state.v, v_ref[-1]) and torch.equal(state.s, s_ref[-1])
    assert torch.equal(lif(x), spikes)


def test_lif_step_loop_equals_forward():
    lif = LIF(beta=0.85, reset="zero")
    x = _input()
    state, out = None, []
    for x_t in x:
        s_t, state = lif.step(x_t, state)
        out.append(s_t)
    spikes, final = lif(x, return_state=True)
    assert torch.equal(torch.stack(out), spikes)
    assert torch.equal(state.v, final.v)


def test_forward_continues_from_a_state():
    lif = LIF(beta=0.9)
    x = _input()
    whole = lif(x)
    first, state = lif(x[:10], return_state=True)
    second = lif(x[10:], state)
    assert torch.equal(torch.cat([first, second]), whole)


@pytest.mark.parametrize("learn", ["layer", "neuron"])
def test_learnable_beta_stays_in_unit_interval_and_learns(learn):
    lif = LIF(beta=0.9, learn_beta=learn, features=N, reset="subtract")
    assert lif.beta.shape == (() if learn == "layer" else (N,))
    torch.testing.assert_close(lif.beta, torch.full_like(lif.beta, 0.9))
    optimizer = torch.optim.SGD(lif.parameters(), lr=20.0)
    for sign in (1, -1, -1, -1):                             # fewer spikes, then more, with large steps
        before = lif.beta.detach().clone()
        optimizer.zero_grad()
        (sign * lif(_input())).mean().backward()
        assert lif.beta_logit.grad is not None and lif.beta_logit.grad.abs().sum() > 0
        optimizer.step()
        assert ((lif.beta > 0) & (lif.beta < 1)).all()
        assert (lif.beta != before).all()
    # the gradient reaching beta_logit is d loss / d beta times sigmoid'
    beta = lif.beta.detach().requires_grad_()
    x = _input()
    lif_sequence(x, LIFParameters(beta, reset="subtract"))[0].sum().backward()
    lif.zero_grad()
    lif(x).sum().backward()
    torch.testing.assert_close(lif.beta_logit.grad, beta.grad * beta.detach() * (1 - beta.detach()))
    assert [name for name, _ in lif.named_parameters()] == ["beta_logit"]


def test_per_neuron_beta_acts_per_feature():
    lif = LIF(beta=0.5, learn_beta="neuron", features=(2, 3))
    with torch.no_grad():
        lif.beta_logit.copy_(torch.tensor([[-2.0, 0.0, 2.0], [1.0, -1.0, 3.0]]))
    x = _input((T, B, 2, 3))
    s, state = lif(x, return_state=True)
    s_ref, v_ref = lif_sequence(x, LIFParameters(torch.sigmoid(lif.beta_logit).detach()))
    assert torch.equal(s, s_ref)
    # each neuron decays with its own beta: a lone input decays as beta^t
    probe = torch.zeros(5, 1, 2, 3)
    probe[0] = 0.5
    lif(probe)
    lif.record = True
    lif(probe)
    decay = lif.recorded["v"][1:, 0] / lif.recorded["v"][:-1, 0]
    torch.testing.assert_close(decay, lif.beta.detach().expand(4, 2, 3))


def test_fixed_beta_is_configuration_not_a_parameter():
    lif = LIF(beta=0.7)
    assert list(lif.parameters()) == []
    assert lif.beta.item() == pytest.approx(0.7)
    assert lif.state_dict() == {}  # it is configuration, not learned state
    assert lif.lif_parameters().beta == 0.7
    lif64 = LIF(beta=0.7).double()
    assert lif64(_input().double()).dtype == torch.float64


def test_record_keeps_detached_outputs():
    lif = LIF(beta=0.9)
    x = _input().requires_grad_()
    lif(x)
    assert lif.recorded is None
    lif.record = True
    spikes = lif(x)
    assert set(lif.recorded) == {"spikes", "v"}
    assert torch.equal(lif.recorded["spikes"], spikes.detach())
    assert not lif.recorded["v"].requires_grad and lif.recorded["v"].shape == x.shape


def test_extra_repr_lists_options():
    text = repr(LIF(beta=0.8, reset="subtract", surrogate="fast-sigmoid"))
    for part in ("beta=0.8", "threshold=1.0", "reset='subtract'", "surrogate='fast_sigmoid'", "slope=25.0",
                 "learn_beta=False", "detach_reset=True"):
        assert part in text
    assert "beta=<(16,)>" in repr(LIF(learn_beta="neuron", features=16))
    assert "features=8" in repr(RecurrentLIF(8))
    assert "beta=0.5" in repr(LeakyIntegrator(beta=0.5))


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=1.0), "beta"),
    (dict(beta=0.0, learn_beta="layer"), "learnable beta"),
    (dict(learn_beta=True), "learn_beta"),
    (dict(learn_beta="all"), "learn_beta"),
    (dict(learn_beta="neuron"), "features"),
    (dict(learn_beta="neuron", features=0), "features"),
    (dict(reset="hard"), "reset"),
    (dict(refractory_steps=3), "refractory"),
    (dict(surrogate="relu"), "surrogate"),
    (dict(threshold=-1.0), "threshold"),
    (dict(slope=-2.0), "slope"),
])
def test_lif_rejects_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LIF(**kwargs)


# -- RecurrentLIF -----------------------------------------------------------------------------------------------

def test_recurrent_lif_step_equals_forward_and_uses_recurrence():
    torch.manual_seed(0)
    rlif = RecurrentLIF(N, beta=0.9, bias=True, reset="subtract")
    with torch.no_grad():
        rlif.recurrent.weight.mul_(3)
    x = _input()
    spikes, final = rlif(x, return_state=True)
    state, out = None, []
    for x_t in x:
        s_t, state = rlif.step(x_t, state)
        out.append(s_t)
    assert torch.equal(torch.stack(out), spikes)
    assert torch.equal(state.v, final.v)
    # the recurrent weights change the result
    plain = LIF(beta=0.9, reset="subtract")(x + rlif.recurrent.bias.detach())
    assert not torch.equal(plain, spikes)
    bound = 1 / math.sqrt(N)
    assert rlif.recurrent.weight.abs().max() <= 3 * bound


def test_recurrent_lif_gradient_reaches_weights_and_beta():
    rlif = RecurrentLIF(N, beta=0.9, learn_beta="neuron")
    x = _input().requires_grad_()
    rlif.record = True
    spikes = rlif(x)
    assert torch.equal(rlif.recorded["spikes"], spikes.detach())
    spikes.sum().backward()
    assert rlif.recurrent.weight.grad.abs().sum() > 0
    assert rlif.beta_logit.grad.shape == (N,) and rlif.beta_logit.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_recurrent_lif_needs_int_features():
    with pytest.raises(ConfigError, match="features"):
        RecurrentLIF((4, 4))


# -- LeakyIntegrator --------------------------------------------------------------------------------------------

def test_leaky_integrator_is_a_first_order_filter():
    li = LeakyIntegrator(beta=0.5)
    x = torch.zeros(6, 1, 2)
    x[0] = torch.tensor([1.0, -2.0])
    x[3] = torch.tensor([1.0, 0.0])
    v = li(x)
    assert v[:, 0, 0].tolist() == [1.0, 0.5, 0.25, 1.125, 0.5625, 0.28125]
    assert v[:, 0, 1].tolist() == [-2.0, -1.0, -0.5, -0.25, -0.125, -0.0625]
    state, out = None, []
    for x_t in x:
        v_t, state = li.step(x_t, state)
        out.append(v_t)
    assert torch.equal(torch.stack(out), v)
    li.record = True
    li(x)
    assert set(li.recorded) == {"v"} and torch.equal(li.recorded["v"], v)


def test_leaky_integrator_learnable_beta():
    li = LeakyIntegrator(beta=0.8, learn_beta="neuron", features=3)
    x = _input((10, 2, 3)).requires_grad_()
    li(x).sum().backward()
    assert li.beta_logit.grad.shape == (3,) and (li.beta_logit.grad > 0).all()
    assert x.grad is not None
    with pytest.raises(ConfigError):
        LeakyIntegrator(beta=1.5)
