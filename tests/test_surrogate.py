"""Surrogate spike function: Heaviside forward, the documented derivatives backward."""
import math

import pytest
import torch

from spikelab.errors import ConfigError
from spikelab.functional.surrogate import SURROGATES, default_slope, spike, surrogate_grad


def test_forward_is_heaviside_with_ties_firing():
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0])
    for name in SURROGATES:
        assert spike(x, name).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert spike(x.double()).dtype == torch.float64


@pytest.mark.parametrize("name, slope, formula", [
    ("atan", 2.0, lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)),
    ("atan", 5.0, lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)),
    ("fast_sigmoid", 25.0, lambda x, k: 1 / (k * x.abs() + 1) ** 2),
    ("fast_sigmoid", 3.0, lambda x, k: 1 / (k * x.abs() + 1) ** 2),
    ("triangle", 1.0, lambda x, k: k * (1 - k * x.abs()).clamp(min=0)),
    ("triangle", 4.0, lambda x, k: k * (1 - k * x.abs()).clamp(min=0)),
])
def test_backward_is_the_documented_derivative(name, slope, formula):
    x = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    w = torch.randn(401, dtype=torch.float64)
    (spike(x, name, slope) * w).sum().backward()
    expected = formula(x.detach(), slope) * w
    torch.testing.assert_close(x.grad, expected)
    torch.testing.assert_close(surrogate_grad(x.detach(), name, slope), formula(x.detach(), slope))


@pytest.mark.parametrize("name", ["atan", "triangle"])
def test_normalised_surrogates_integrate_to_one(name):
    x = torch.linspace(-2000, 2000, 4_000_001, dtype=torch.float64)
    area = torch.trapezoid(surrogate_grad(x, name), x).item()
    assert area == pytest.approx(1.0, abs=1e-3)


def test_defaults_and_alias():
    assert default_slope("atan") == 2.0
    assert default_slope("fast_sigmoid") == default_slope("fast-sigmoid") == 25.0
    assert default_slope("triangle") == 1.0
    x = torch.randn(50)
    torch.testing.assert_close(surrogate_grad(x, "fast-sigmoid"), surrogate_grad(x, "fast_sigmoid", 25.0))


@pytest.mark.parametrize("call", [
    lambda: spike(torch.zeros(3), "sigmoid"),
    lambda: surrogate_grad(torch.zeros(3), "atan", 0.0),
    lambda: surrogate_grad(torch.zeros(3), "triangle", -1.0),
    lambda: spike(torch.zeros(3), "atan", float("nan")),
    lambda: default_slope("relu"),
])
def test_bad_names_and_slopes_are_rejected(call):
    with pytest.raises(ConfigError):
        call()
