import pytest
import torch

import spikelab as sl
from spikelab.errors import ConfigError


def test_linear_applies_same_weights_to_every_step():
    torch.manual_seed(0)
    layer = sl.Linear(5, 3)
    x = torch.randn(7, 4, 5)
    y = layer(x)
    assert y.shape == (7, 4, 3)
    for t in range(7):
        step_out, _ = layer.step(x[t])
        torch.testing.assert_close(y[t], step_out)


def test_conv_pool_flatten_sequence_equals_steps():
    torch.manual_seed(0)
    net = sl.Sequential(sl.Conv2d(2, 4, 3), sl.LIF(beta=0.5), sl.MaxPool2d(2), sl.Flatten(), sl.Linear(4 * 3 * 3, 5),
                        sl.LeakyIntegrator(beta=0.8))
    x = (torch.rand(6, 3, 2, 8, 8) < 0.3).float()
    whole = net(x)
    state, steps = None, []
    for t in range(6):
        out, state = net.step(x[t], state)
        steps.append(out)
    assert whole.shape == (6, 3, 5)
    torch.testing.assert_close(whole, torch.stack(steps))


def test_batchnorm_over_time_normalises_per_channel():
    bn = sl.BatchNorm2d(3)
    x = torch.randn(5, 4, 3, 6, 6) * 4 + 2
    y = bn(x)
    per_channel = y.transpose(0, 2).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)


def test_dropout_one_mask_per_sequence():
    torch.manual_seed(0)
    drop = sl.Dropout(0.5)
    y = drop(torch.ones(10, 4, 50))
    kept = y[0] > 0
    assert 0.3 < kept.float().mean() < 0.7
    assert torch.equal((y > 0), kept.expand_as(y)), "a unit must be dropped at every step or none"
    torch.testing.assert_close(y[y > 0], torch.full_like(y[y > 0], 2.0))
    state, outs = None, []
    for t in range(10):
        out, state = drop.step(torch.ones(4, 50), state)
        outs.append(out)
    outs = torch.stack(outs)
    assert torch.equal(outs > 0, (outs[0] > 0).expand_as(outs))
    drop.eval()
    assert torch.equal(drop(torch.ones(3, 2, 5)), torch.ones(3, 2, 5))


def test_dropout_rejects_bad_probability():
    with pytest.raises(ConfigError, match="Dropout p"):
        sl.Dropout(1.0)


def test_sequential_runs_plain_torch_modules_in_step_mode():
    net = sl.Sequential(sl.Linear(3, 3), torch.nn.ReLU(), sl.LIF())
    x = torch.randn(4, 2, 3)
    state, steps = None, []
    for t in range(4):
        out, state = net.step(x[t], state)
        steps.append(out)
    torch.testing.assert_close(net(x), torch.stack(steps))
