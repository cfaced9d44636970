"""DelayedLinear's DFT path: the same numbers as conv1d (values and gradients), exact integer delays in eval mode,
memory-saving chunks, the kernel cache."""
import pytest
import torch

import spikelab.functional.delays as fd
from spikelab.delays import DelayedLinear
from spikelab.errors import ConfigError
from spikelab.functional.delays import delay_kernel, delayed_linear, delayed_linear_cost


@pytest.mark.parametrize("steps,max_delay", [(1, 1), (7, 1), (12, 5), (13, 6), (30, 24), (5, 24)])
@pytest.mark.parametrize("extend", [False, True])
def test_dft_equals_conv(steps, max_delay, extend):
    torch.manual_seed(steps + max_delay)
    x = torch.randn(steps, 3, 4, dtype=torch.float64)
    weight = torch.randn(5, 4, dtype=torch.float64)
    position = torch.rand(5, 4, dtype=torch.float64) * max_delay
    bias = torch.randn(5, dtype=torch.float64)
    for sigma in (0.0, 0.4, 3.0):
        kernel = delay_kernel(weight, position, sigma, max_delay)
        conv = delayed_linear(x, kernel, bias, extend=extend, method="conv")
        dft = delayed_linear(x, kernel, bias, extend=extend, method="dft")
        assert dft.shape == conv.shape == (steps + (max_delay if extend else 0), 3, 5)
        torch.testing.assert_close(dft, conv, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("chunk_bytes", [64, fd.DFT_CHUNK_BYTES])
def test_dft_gradients_match_finite_differences(monkeypatch, chunk_bytes):
    monkeypatch.setattr(fd, "DFT_CHUNK_BYTES", chunk_bytes)  # 64 bytes: one frequency per chunk
    torch.manual_seed(5)
    x = torch.randn(9, 2, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    position = (torch.rand(4, 3, dtype=torch.float64) * 5).requires_grad_()

    def layer(x, weight, position):
        return delayed_linear(x, delay_kernel(weight, position, 1.1, 6), extend=True, method="dft")

    assert torch.autograd.gradcheck(layer, (x, weight, position))
    # the first layer's input needs no gradient: the forward pass then transforms the kernel in chunks
    assert torch.autograd.gradcheck(lambda w, p: layer(x.detach(), w, p), (weight, position))


def test_dft_float32_agrees_with_conv_in_the_shd_setting():
    """140 inputs, 25 taps, T = 60: values and all three gradients agree to float32 rounding."""
    torch.manual_seed(6)
    layer = DelayedLinear(140, 32, max_delay=24)
    layer.set_epoch(3, 10)
    x = (torch.rand(60, 8, 140) < 0.1).float().requires_grad_()
    target = torch.randn(60, 8, 32)
    results = {}
    for method in ("conv", "dft"):
        layer.zero_grad()
        x.grad = None
        y = delayed_linear(x, layer.kernel(), method=method)
        (y * target).sum().backward()
        results[method] = (y.detach(), layer.weight.grad.clone(), layer.position.grad.clone(), x.grad.clone())
    for a, b in zip(results["conv"], results["dft"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * a.abs().max().item())
    # and the module picks the DFT here (5x fewer multiply-adds)
    cost = delayed_linear_cost(60, 8, 140, 32, 24)
    assert cost["conv"] > 2 * cost["dft"]
    torch.testing.assert_close(layer(x), results["dft"][0])


def test_auto_picks_conv_for_small_problems_and_dft_for_long_kernels():
    small = delayed_linear_cost(15, 3, 1, 1, 6)
    assert small["conv"] < 2 * small["dft"]
    shd = delayed_linear_cost(100, 32, 256, 256, 24)
    assert shd["conv"] > 5 * shd["dft"]
    with pytest.raises(ConfigError, match="method"):
        delayed_linear(torch.zeros(3, 1, 2), torch.zeros(1, 2, 3), method="fft")


def test_eval_mode_stays_exact_where_training_uses_the_dft():
    """At sizes where training takes the DFT path, eval mode's integer delays are still exact shifts."""
    layer = DelayedLinear(64, 64, max_delay=24).eval()
    x = torch.randn(80, 16, 64)
    cost = delayed_linear_cost(80, 16, 64, 64, 24)
    assert cost["conv"] > 2 * cost["dft"]
    for d in (0, 1, 13, 24):
        with torch.no_grad():
            layer.weight.zero_()
            layer.weight[3, 40] = 1.0
            layer.position[3, 40] = d - 0.2
            y = layer(x)
        assert torch.equal(y[:, :, 3], torch.cat([torch.zeros(d, 16), x[:80 - d, :, 40]])), d
        assert torch.equal(y[:, :, 0], torch.zeros(80, 16))


def test_second_backward_through_a_retained_graph():
    torch.manual_seed(7)
    layer = DelayedLinear(40, 24, max_delay=24)
    x = torch.rand(50, 8, 40, requires_grad=True)
    y = layer(x)
    y.square().sum().backward(retain_graph=True)
    first = [t.grad.clone() for t in (x, layer.weight, layer.position)]
    for t in (x, layer.weight, layer.position):
        t.grad = None
    y.square().sum().backward()  # the transformed kernel was dropped after the first pass: rebuilt
    for a, t in zip(first, (x, layer.weight, layer.position)):
        torch.testing.assert_close(t.grad, a)


def test_kernel_is_cached_only_without_autograd():
    torch.manual_seed(8)
    layer = DelayedLinear(6, 4, max_delay=5)
    x = torch.rand(10, 2, 6)
    with torch.no_grad():
        first = layer._kernel()
        assert layer._kernel() is first                  # unchanged parameters: reused
        layer.set_epoch(5, 10)                           # sigma changed
        second = layer._kernel()
        assert second is not first
        layer.weight.mul_(2.0)                           # an optimiser step changes weights in place
        assert layer._kernel() is not second
        layer.eval()
        onehot = layer._kernel()
        assert ((onehot != 0).sum(-1) <= 1).all() and layer._kernel() is onehot
        y = layer(x)
        layer.position.add_(1.0)
        assert not torch.equal(layer(x), y)              # moved delays are seen
    layer.train()
    built = layer._kernel()
    assert built.requires_grad and layer._kernel() is not built   # with autograd: rebuilt every call
    # step() under no_grad reuses one kernel across steps and matches forward
    with torch.no_grad():
        state, outs = None, []
        for t in range(10):
            y_t, state = layer.step(x[t], state)
            outs.append(y_t)
        torch.testing.assert_close(torch.stack(outs), layer(x), rtol=1e-5, atol=1e-6)


def test_kernel_cache_sees_edits_made_through_data():
    """Edits through ``.data`` bypass autograd's version counters; the cache compares values, so eval sees them."""
    layer = DelayedLinear(4, 3, 5).eval()
    x = torch.rand(10, 2, 4)
    with torch.no_grad():
        before = layer(x)
        layer.weight.data.mul_(2)
        assert torch.allclose(layer(x), 2 * before)
        layer.position.data.fill_(0.0)
        assert torch.allclose(layer(x), torch.einsum("tbi,oi->tbo", x, layer.weight))
