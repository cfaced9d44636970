"""Record the spikes and membranes of every neuron layer while a model runs."""
from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from .neurons.base import Neuron


@contextmanager
def record(model: nn.Module):
    """Within this block, every neuron layer keeps what its last forward produced.

    Yields a dict that fills, after each forward, with ``{layer name: {"spikes": ..., "v": ...}}``
    (``(T, B, ...)`` tensors, detached; a non-spiking readout has only ``"v"``).

    Example:
        >>> with sl.record(net) as rec:
        ...     net(x)
        >>> rec["1"]["spikes"].shape        # layer "1" of a Sequential
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Neuron)}
    recordings: dict = {}
    previous = {name: layer.record for name, layer in layers.items()}
    hooks = []
    for name, layer in layers.items():
        layer.record = True
        hooks.append(layer.register_forward_hook(
            lambda module, args, output, name=name: recordings.__setitem__(name, module.recorded)))
    try:
        yield recordings
    finally:
        for hook in hooks:
            hook.remove()
        for name, layer in layers.items():
            layer.record = previous[name]
