r"""Quantisation-aware fine-tuning: train with every weight on a hardware's weight grid.

A grid is one step size for positive weights and one for negative weights of a layer (SpiNNaker stores 16-bit
magnitudes, ``|w| = k * step`` with ``k`` in ``0 .. 65535``, the step set per population and receptor by its
ring-buffer shift; see :mod:`spikelab.backends.fixed_point`). :func:`put_on_grid` makes a layer's ``weight``
compute as its nearest grid point in the forward pass while the gradient passes straight through to the float
weight underneath (``w_q = w + stopgrad(round_grid(w) - w)``); train as usual, then :func:`bake` replaces each
float weight by its grid value, so the model holds exactly what the hardware stores.

Example::

    >>> put_on_grid(net, {1: (2 ** -11, 2 ** -11)})     # layer 1's weights on a step of 2^-11
    >>> sl.Trainer(net, lr=1e-4, epochs=3).fit(train, val)
    >>> bake(net)                                        # plain weights again, every one on the grid
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import ConfigError

#: Largest stored magnitude in steps (16-bit weights).
MAX_LEVEL = 0xFFFF


class OnGrid(nn.Module):
    """``w -> `` nearest grid point (steps ``positive`` / ``negative`` by sign, at most ``levels`` steps), with a
    straight-through gradient."""

    def __init__(self, positive: float, negative: float, levels: int = MAX_LEVEL):
        super().__init__()
        if not positive > 0 or not negative > 0:
            raise ConfigError(f"grid steps must be > 0, got {positive!r} and {negative!r}")
        self.positive, self.negative, self.levels = float(positive), float(negative), int(levels)

    def forward(self, weight: Tensor) -> Tensor:
        return weight + (round_to_grid(weight, self.positive, self.negative, self.levels) - weight).detach()


def round_to_grid(weight: Tensor, positive: float, negative: float, levels: int = MAX_LEVEL) -> Tensor:
    """The nearest grid point of every weight (magnitudes clipped at ``levels`` steps)."""
    up = torch.clamp(torch.round(weight / positive), 0, levels) * positive
    down = -torch.clamp(torch.round(-weight / negative), 0, levels) * negative
    return torch.where(weight >= 0, up, down)


def put_on_grid(model: nn.Module, grids: dict[int, tuple[float, float]]) -> nn.Module:
    """Put the ``weight`` of layer ``i`` of ``model`` (a Sequential) on the grid ``grids[i] = (positive step,
    negative step)``, in place, for training; returns ``model``."""
    for index, (positive, negative) in grids.items():
        parametrize.register_parametrization(model[index], "weight", OnGrid(positive, negative))
    return model


@torch.no_grad()
def bake(model: nn.Module) -> nn.Module:
    """Replace every on-grid weight by its grid value and remove the parametrisation; returns ``model``."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model
