"""Calls a training loop owes the layers that ask for them (the Trainer makes them; a plain loop can too).

A layer may define ``set_epoch(epoch, epochs)`` (a schedule over epochs, such as a delay kernel's width)
and ``clamp_parameters()`` (keep learnable parameters in their range, such as UltraLIF's temperature or
the delays of :class:`spikelab.DelayedLinear`, clamping the parameter itself so its gradient stays alive).
"""
from __future__ import annotations

from torch import nn


def set_epoch(model: nn.Module, epoch: int, epochs: int) -> None:
    """Call ``set_epoch(epoch, epochs)`` on every submodule that has it; do it at the start of each epoch."""
    for module in model.modules():
        if hasattr(module, "set_epoch"):
            module.set_epoch(epoch, epochs)


def clamp_parameters(model: nn.Module) -> None:
    """Call ``clamp_parameters()`` on every submodule that has it; do it after every optimiser step."""
    for module in model.modules():
        if hasattr(module, "clamp_parameters"):
            module.clamp_parameters()
