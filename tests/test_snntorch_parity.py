"""spikelab against snnTorch (the `test` extra installs it): LIF spike for spike, gradients with a learnable beta,
and the surrogate derivatives."""
import pytest
import torch

from spikelab.functional.lif import LIFParameters, lif_sequence
from spikelab.functional.surrogate import spike

from parts import need
from test_lif import _input, _loss

snn = need("snntorch")
from snntorch import surrogate as snn_surrogate  # noqa: E402 - after the optional import

pytestmark = pytest.mark.snntorch


def _snntorch_run(x, beta, reset, spike_grad, learn_beta):
    leaky = snn.Leaky(beta=torch.tensor(beta), learn_beta=learn_beta, reset_mechanism=reset, spike_grad=spike_grad)
    mem = leaky.init_leaky()
    spikes, mems = [], []
    for x_t in x:
        s, mem = leaky(x_t, mem)
        spikes.append(s)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems), leaky


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_spike_for_spike_with_snntorch_leaky(reset, backend):
    x = _input()
    s_ref, v_ref, _ = _snntorch_run(x, 0.8, reset, snn_surrogate.atan(), learn_beta=False)
    s, v = lif_sequence(x, LIFParameters(0.8, reset=reset), backend=backend)
    assert s.sum() > 100  # the input makes neurons fire (and reset) often
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(v, v_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("name, spike_grad", [("atan", snn_surrogate.atan(alpha=2.0)),
                                              ("fast_sigmoid", snn_surrogate.fast_sigmoid(slope=25))])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gradients_equal_snntorch_with_learnable_beta(reset, name, spike_grad, backend):
    x_ref = _input().requires_grad_()
    s_ref, v_ref, leaky = _snntorch_run(x_ref, 0.8, reset, spike_grad, learn_beta=True)
    _loss(s_ref, v_ref).backward()

    x = _input().requires_grad_()
    beta = torch.tensor(0.8, requires_grad=True)
    s, v = lif_sequence(x, LIFParameters(beta, reset=reset, surrogate=name), backend=backend)
    assert torch.equal(s, s_ref)
    _loss(s, v).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(beta.grad, leaky.beta.grad, rtol=1e-5, atol=1e-4)
    assert beta.grad.abs() > 1  # a real gradient, not a trivial zero


@pytest.mark.parametrize("ours, theirs", [
    (("atan", None), snn_surrogate.atan(alpha=2.0)),
    (("atan", 3.0), snn_surrogate.atan(alpha=3.0)),
    (("fast_sigmoid", None), snn_surrogate.fast_sigmoid(slope=25)),
    (("fast-sigmoid", 10.0), snn_surrogate.fast_sigmoid(slope=10)),
])
def test_matches_snntorch_gradients(ours, theirs):
    x1 = (torch.randn(1000) * 0.5).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    w = torch.randn(1000)
    (spike(x1, *ours) * w).sum().backward()
    (theirs(x2) * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-7)
