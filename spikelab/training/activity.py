"""How much a network spikes while it runs: spike rates and synaptic operations.

A :class:`~spikelab.neurons.base.Neuron` whose class sets ``spiking = True`` counts as spiking; its output's mean is its spike
rate (for soft spikes in (0, 1), the mean soft spike). A synaptic operation is one nonzero input
reaching one target through a weight: a ``Linear`` layer costs ``nonzero inputs x out_features``, a
``Conv2d`` ``nonzero inputs x out_channels x kernel area / stride area`` (each input pixel feeds
about that many outputs). Event-driven hardware pays per synaptic operation, not per weight.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from ..neurons.base import Neuron


def _fan_out(layer: nn.Module) -> float:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    return layer.out_channels * math.prod(layer.kernel_size) / math.prod(layer.stride)


class Activity:
    """Spike outputs and synaptic-operation counts gathered by :func:`monitor_activity`."""

    def __init__(self):
        self.spike_rates: list[torch.Tensor] = []  # one mean per spiking layer call, graph kept if training
        self.synops = 0.0
        self.samples = 0

    def mean_spike_rate(self) -> torch.Tensor | None:
        """Mean over spiking layers of each layer's mean output; None if the model has no spiking layer."""
        return torch.stack(self.spike_rates).mean() if self.spike_rates else None


@contextmanager
def monitor_activity(model: nn.Module):
    """Within this block, every forward of ``model`` adds its spike rates and synaptic operations.

    Works on whole-sequence forwards ``(T, B, ...)`` (step-by-step calls are not seen). The spike
    rates keep their graph, so a loss can penalise them (the sparsity penalty).
    """
    activity, hooks = Activity(), []

    def count_spikes(module, args, output):
        activity.spike_rates.append(output.float().mean())

    def count_synops(module, args, output):
        (x,) = args
        activity.synops += torch.count_nonzero(x.detach()).item() * _fan_out(module)

    def count_samples(module, args, output):
        activity.samples += args[0].shape[1]

    for module in model.modules():
        if isinstance(module, Neuron) and module.spiking:
            hooks.append(module.register_forward_hook(count_spikes))
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            hooks.append(module.register_forward_hook(count_synops))
    hooks.append(model.register_forward_hook(count_samples))
    try:
        yield activity
    finally:
        for hook in hooks:
            hook.remove()
