"""The functional LIF: numba kernel vs torch reference, scan vs step, gradcheck, options."""
import itertools

import pytest
import torch

from spikelab.errors import ConfigError
from spikelab.functional.lif import (LIFParameters, LIFState, leaky_integrate, leaky_integrate_step, lif_sequence,
                                     lif_step)

T, B, N = 50, 4, 64


def _input(seed=0, dtype=torch.float32, scale=0.6, shape=(T, B, N)):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def _weights(v, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(v.shape, generator=g, dtype=torch.float64).to(v.dtype)


def _loss(s, v):
    """Uses both outputs with random weights, so every gradient path is exercised."""
    return (s * _weights(s, 1)).sum() + (v * _weights(v, 2)).sum()


# -- numba kernel vs torch reference ---------------------------------------------------------------------------

CONFIGS = list(itertools.product(["zero", "subtract", "none"], [0, 1], ["atan", "fast_sigmoid", "triangle"],
                                 [True, False]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset, refractory, name, detach", CONFIGS)
def test_numba_equals_torch_reference(reset, refractory, name, detach, dtype):
    results = []
    for backend in ("numba", "torch"):
        x = _input(dtype=dtype, scale=0.8).requires_grad_()
        beta = torch.full((N,), 0.8, dtype=dtype).requires_grad_()   # per-feature beta
        g = torch.Generator().manual_seed(3)
        v0 = (torch.rand(B, N, generator=g, dtype=torch.float64) * 1.5).to(dtype).requires_grad_()
        s0 = (v0.detach() >= 1).to(dtype).requires_grad_()
        p = LIFParameters(beta, reset=reset, refractory_steps=refractory, surrogate=name, slope=None,
                          detach_reset=detach)
        s, v = lif_sequence(x, p, LIFState(v0, s0), backend=backend)
        _loss(s, v).backward()
        results.append((s, v, x.grad, beta.grad, v0.grad, s0.grad))
    (s1, v1, *grads1), (s2, v2, *grads2) = results
    assert torch.equal(s1, s2)
    assert torch.equal(v1, v2)
    assert s1.any() and not s1.all()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for g1, g2 in zip(grads1, grads2):
        assert (g1 is None) == (g2 is None)
        if g1 is not None:
            torch.testing.assert_close(g1, g2, **tol)
    assert (grads1[3] is None) == detach  # s0 gets a gradient exactly when the reset is not detached


@pytest.mark.parametrize("reset, refractory", [("zero", 1), ("subtract", 0)])
def test_numba_across_neuron_chunks(reset, refractory):
    """More neurons than one kernel chunk (plus a remainder): every chunk equals the torch reference."""
    from spikelab.functional._lif_kernels import CHUNK

    features = (2 * CHUNK + 37) // 3 + 1           # B * features spans two full chunks and a partial one
    out = []
    for backend in ("numba", "torch"):
        x = _input(shape=(6, 3, features), scale=1.2).requires_grad_()
        beta = torch.linspace(0.5, 0.95, features).requires_grad_()
        s, v = lif_sequence(x, LIFParameters(beta, reset=reset, refractory_steps=refractory, detach_reset=False),
                            backend=backend)
        _loss(s, v).backward()
        out.append((s, v, x.grad, beta.grad))
    assert 3 * features > 2 * CHUNK
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    for a, b in zip(out[0][2:], out[1][2:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_float32_kernel_matches_float32_reference_closely():
    """No silent float64 promotion in the kernel: float32 results equal the float32 torch path, not float64."""
    x = _input(scale=0.8).requires_grad_()
    out = {}
    for backend in ("numba", "torch"):
        xb = x.detach().clone().requires_grad_()
        s, v = lif_sequence(xb, LIFParameters(0.9, reset="subtract"), backend=backend)
        _loss(s, v).backward()
        out[backend] = (v, xb.grad)
    assert torch.equal(out["numba"][0], out["torch"][0])
    rel = (out["numba"][1] - out["torch"][1]).abs().max() / out["torch"][1].abs().max()
    assert rel < 1e-6


def test_non_contiguous_input_and_gradients():
    x_full = _input(shape=(T, N, B)).requires_grad_()
    x = x_full.transpose(1, 2)                       # (T, B, N) view, not contiguous
    assert not x.is_contiguous()
    s, v = lif_sequence(x, LIFParameters(0.85, reset="subtract"))
    s_ref, v_ref = lif_sequence(x.contiguous(), LIFParameters(0.85, reset="subtract"), backend="torch")
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    (s.sum() + v[::2].sum()).backward()              # expanded and strided output gradients
    x2 = x_full.detach().clone().requires_grad_()
    s2, v2 = lif_sequence(x2.transpose(1, 2), LIFParameters(0.85, reset="subtract"), backend="torch")
    (s2.sum() + v2[::2].sum()).backward()
    torch.testing.assert_close(x_full.grad, x2.grad)


def test_cpu_half_precision_runs_widened_to_float32():
    x = _input().to(torch.bfloat16).requires_grad_()
    s, v = lif_sequence(x, LIFParameters(0.9))
    assert s.dtype == torch.bfloat16 and s.any()
    v.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = _input(scale=0.8)
    p = LIFParameters(0.8, reset="subtract")
    s_cpu, v_cpu = lif_sequence(x, p)
    s_gpu, v_gpu = lif_sequence(x.cuda(), p)
    assert torch.equal(s_gpu.cpu(), s_cpu)
    torch.testing.assert_close(v_gpu.cpu(), v_cpu)


# -- scan vs step ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reset, refractory, detach", [("zero", 0, True), ("subtract", 1, False),
                                                       ("zero", 1, False), ("none", 0, True)])
def test_sequence_gradients_equal_autograd_step_loop(reset, refractory, detach):
    dtype = torch.float64
    x1 = _input(dtype=dtype, scale=0.8).requires_grad_()
    b1 = torch.full((N,), 0.85, dtype=dtype, requires_grad=True)
    p1 = LIFParameters(b1, reset=reset, refractory_steps=refractory, surrogate="fast_sigmoid", detach_reset=detach)
    s1, v1 = lif_sequence(x1, p1)
    _loss(s1, v1).backward()

    x2 = x1.detach().clone().requires_grad_()
    b2 = b1.detach().clone().requires_grad_()
    p2 = p1._replace(beta=b2)
    state, spikes, vs = None, [], []
    for x_t in x2:
        s_t, state = lif_step(x_t, state, p2)
        spikes.append(s_t)
        vs.append(state.v)
    s2, v2 = torch.stack(spikes), torch.stack(vs)
    assert torch.equal(s1, s2) and torch.equal(v1, v2)
    _loss(s2, v2).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(b1.grad, b2.grad)


def test_chunked_sequence_equals_whole_sequence():
    """Running T steps as two calls, passing the state along, gives the same spikes and gradients."""
    dtype = torch.float64
    p = LIFParameters(0.9, reset="zero", refractory_steps=1, detach_reset=False)
    x1 = _input(dtype=dtype).requires_grad_()
    s1, v1 = lif_sequence(x1, p)
    _loss(s1, v1).backward()
    x2 = x1.detach().clone().requires_grad_()
    sa, va = lif_sequence(x2[:20], p)
    sb, vb = lif_sequence(x2[20:], p, LIFState(va[-1], sa[-1]))
    s2, v2 = torch.cat([sa, sb]), torch.cat([va, vb])
    assert torch.equal(s1, s2)
    _loss(s2, v2).backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_step_from_rest_and_state_graph_for_sltt():
    x = _input(shape=(B, N)).requires_grad_()
    s, state = lif_step(x, None, LIFParameters(0.9, threshold=0.3))
    assert torch.equal(state.v, x) and torch.equal(s, (x >= 0.3).float())
    assert state.v.grad_fn is not None  # the trainer decides when to detach
    s.sum().backward()
    assert x.grad.abs().sum() > 0


# -- gradcheck --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("reset, refractory", [("none", 0), ("none", 1), ("subtract", 0), ("zero", 1)])
def test_gradcheck_membrane_output(backend, reset, refractory):
    """With the reset's spike detached, v is piecewise linear in (x, beta, v0): the hand-written backward is its
    true derivative, which gradcheck's finite differences see as long as no spike flips (eps is tiny)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(12, 2, 5, generator=g, dtype=torch.float64) * 0.7).requires_grad_()
    beta = torch.full((5,), 0.8, dtype=torch.float64, requires_grad=True)
    v0 = (torch.rand(2, 5, generator=g, dtype=torch.float64) * 0.5).requires_grad_()

    def membrane(x, beta, v0):
        p = LIFParameters(beta, reset=reset, refractory_steps=refractory)
        return lif_sequence(x, p, LIFState(v0, torch.zeros_like(v0)), backend=backend)[1]

    if reset != "none":
        assert lif_sequence(x, LIFParameters(0.8, reset=reset))[0].any()  # resets do happen
    assert torch.autograd.gradcheck(membrane, (x, beta, v0), eps=1e-7, atol=1e-6)


# -- behaviour --------------------------------------------------------------------------------------------------

def _drive(reset, refractory, current=0.6, steps=8):
    x = torch.full((steps, 1, 1), current)
    s, v = lif_sequence(x, LIFParameters(0.5, reset=reset, refractory_steps=refractory))
    return s.flatten().tolist(), [round(a, 4) for a in v.flatten().tolist()]


def test_zero_reset_keeps_next_input_and_refractory_drops_it():
    # v: 0.6, 0.9, 1.05 (spike) -> zero reset: next step starts from 0 and integrates 0.6
    s, v = _drive("zero", 0)
    assert v[:5] == [0.6, 0.9, 1.05, 0.6, 0.9]
    assert s[:5] == [0, 0, 1, 0, 0]
    # one refractory step: the step after a spike is frozen at 0, its input dropped
    s, v = _drive("zero", 1)
    assert v[:6] == [0.6, 0.9, 1.05, 0.0, 0.6, 0.9]
    assert s[:6] == [0, 0, 1, 0, 0, 0]


def test_subtract_and_none_resets():
    s, v = _drive("subtract", 0)
    assert v[:5] == [0.6, 0.9, 1.05, round(0.5 * 1.05 + 0.6 - 1, 4), round(0.5 * (0.5 * 1.05 - 0.4) + 0.6, 4)]
    s, v = _drive("none", 0)
    assert s[2:] == [1] * 6  # no reset: stays above threshold
    s, v = _drive("subtract", 1)
    assert v[3] == round(0.5 * 1.05 - 1, 4)  # input dropped, threshold subtracted


def test_fires_on_equality():
    x = torch.tensor([[[0.5]], [[0.75]]])
    s, v = lif_sequence(x, LIFParameters(0.5, threshold=1.0))
    assert v[1].item() == 1.0 and s[1].item() == 1.0


def test_threshold_scales():
    x = _input()
    s1, v1 = lif_sequence(x, LIFParameters(0.9, threshold=1.0, reset="subtract"))
    s2, v2 = lif_sequence(2 * x, LIFParameters(0.9, threshold=2.0, reset="subtract"))
    assert torch.equal(s1, s2)
    torch.testing.assert_close(2 * v1, v2)


def test_initial_state_is_used():
    x = torch.zeros(3, 1, 2)
    s, v = lif_sequence(x, LIFParameters(0.5, reset="zero"), LIFState(torch.tensor([[0.8, 1.2]]),
                                                                      torch.tensor([[0.0, 1.0]])))
    assert v[:, 0, 0].tolist() == pytest.approx([0.4, 0.2, 0.1])
    assert v[:, 0, 1].tolist() == [0.0, 0.0, 0.0]  # spiked before the sequence: starts from 0


def test_leaky_integrate_equals_closed_form_filter():
    x = _input(dtype=torch.float64, scale=1.0) - 0.5
    beta = torch.linspace(0.1, 0.95, N, dtype=torch.float64)
    v0 = torch.randn(B, N, dtype=torch.float64)
    v = leaky_integrate(x, beta, v0)
    # v[t] = sum_{k <= t} beta^(t-k) x[k] + beta^(t+1) v0
    t = torch.arange(T, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    kernel = beta ** lag.clamp(min=0)[..., None] * (lag >= 0)[..., None]          # (T, T, N)
    expected = torch.einsum("tkn,kbn->tbn", kernel, x) + (beta ** (t[:, None] + 1))[:, None, :] * v0
    torch.testing.assert_close(v, expected)
    state = v0
    for x_t in x:
        state = leaky_integrate_step(x_t, state, beta)
    torch.testing.assert_close(state, v[-1])
    assert torch.equal(leaky_integrate_step(x[0], None, beta), x[0])
    assert torch.equal(leaky_integrate(x, 0.9)[0], x[0])


def test_leaky_integrate_gradients():
    x = _input(dtype=torch.float64, shape=(10, 2, 3)).requires_grad_()
    beta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: leaky_integrate(x, b), (x, beta))


def test_empty_sequence():
    x = torch.zeros(0, 2, 3, requires_grad=True)
    s, v = lif_sequence(x, LIFParameters(0.9))
    assert s.shape == (0, 2, 3)
    (s.sum() + v.sum()).backward()
    assert x.grad.shape == (0, 2, 3)


# -- validation -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, match", [
    (LIFParameters(1.0), "beta"),
    (LIFParameters(-0.1), "beta"),
    (LIFParameters("0.9"), "beta"),
    (LIFParameters(0.9, threshold=0.0), "threshold"),
    (LIFParameters(0.9, threshold=float("inf")), "threshold"),
    (LIFParameters(0.9, reset="soft"), "reset"),
    (LIFParameters(0.9, refractory_steps=2), "refractory_steps"),
    (LIFParameters(0.9, surrogate="sigmoid"), "surrogate"),
    (LIFParameters(0.9, slope=0), "slope"),
    (LIFParameters(0.9, detach_reset="yes"), "detach_reset"),
    (LIFParameters(torch.tensor([1, 2])), "floating-point"),
])
def test_bad_parameters_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        lif_sequence(torch.zeros(3, 2, 4), params)
    with pytest.raises(ConfigError, match=match):
        lif_step(torch.zeros(2, 4), None, params)


def test_bad_shapes_and_backend():
    with pytest.raises(ConfigError, match="beta of shape"):
        lif_sequence(torch.zeros(3, 2, 4), LIFParameters(torch.full((5,), 0.9)))
    with pytest.raises(ConfigError, match="state.v"):
        lif_sequence(torch.zeros(3, 2, 4), LIFParameters(0.9), LIFState(torch.zeros(3), torch.zeros(3)))
    with pytest.raises(ConfigError, match="backend"):
        lif_sequence(torch.zeros(3, 2, 4), LIFParameters(0.9), backend="cuda")
    with pytest.raises(ConfigError, match="numba backend"):
        lif_sequence(torch.zeros(3, 2, 4, device="meta"), LIFParameters(0.9), backend="numba")
    with pytest.raises(ConfigError, match="floating-point"):
        lif_sequence(torch.zeros(3, 2, 4, dtype=torch.int64), LIFParameters(0.9))
