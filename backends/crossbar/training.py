r"""Noise-aware training: the device's programming noise in the forward pass, gradients unchanged.

:func:`add_training_noise` hooks every synapse layer (see :mod:`.convert`) of a float model. In training mode,
each forward call of the model draws, per synapse matrix ``W``, the error a programming of ``W`` would leave::

    dW = sqrt(sigma_p(G+)^2 + sigma_p(G-)^2) * w_max / (g_max - g_min) * N(0, 1)     (G± = the pairs of W, one tile)

and the layer computes ``f(x; W + dW) = f(x; W) + f(x; dW) - bias`` (synapse layers are linear in their weight).
``dW`` carries no gradient, so ``W`` gets the gradient of the noisy forward pass (straight through) and the
surrogate gradients of the neurons are untouched. One draw serves all samples and time steps of a forward call,
as one programmed chip would. Evaluation mode adds nothing. The hooks leave the parameters, the ``state_dict`` and
checkpoints as they are. Draws use torch's global generator, so a seeded, resumed run repeats them.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from spikelab.errors import ConfigError

from .device import Device
from .noise import programming_sigma
from .convert import synapse_layers


def weight_noise_std(weight: torch.Tensor, device: Device, scale: float = 1.0) -> torch.Tensor:
    """Std of the programming error of every weight (weight units), as one tile scaled to ``max |W|``."""
    w = weight.detach()
    w_max = w.abs().max().clamp(min=1e-12)
    span = device.g_max - device.g_min
    g_pos = device.g_min + span * w.clamp(min=0) / w_max
    g_neg = device.g_min + span * (-w).clamp(min=0) / w_max
    sigma = (programming_sigma(device.programming_noise, g_pos, device.g_max).square()
             + programming_sigma(device.programming_noise, g_neg, device.g_max).square()).sqrt()
    return scale * device.programming_scale * sigma * w_max / span


class TrainingNoise:
    """The hooks of :func:`add_training_noise`; ``remove()`` takes them off again."""

    def __init__(self, model: nn.Module, device: Device, scale: float):
        self.device, self.scale = device, scale
        self.layers = [layer for _, layer in synapse_layers(model)]
        self.noise: dict[int, torch.Tensor] = {}
        self._busy = False
        self.handles = [model.register_forward_pre_hook(self._draw)]
        self.handles += [layer.register_forward_hook(self._add) for layer in self.layers]

    def _draw(self, model, args):
        self.noise = {}
        if model.training:
            for layer in self.layers:
                std = weight_noise_std(layer.weight, self.device, self.scale)
                self.noise[id(layer)] = std * torch.randn_like(std)

    def _add(self, layer, args, output):
        noise = self.noise.get(id(layer))
        if noise is None or self._busy or not layer.training:
            return output
        replaced = {"weight": noise}
        if getattr(layer, "bias", None) is not None:
            replaced["bias"] = torch.zeros_like(layer.bias)
        self._busy = True              # the call below runs this layer again: no hook inside it
        try:
            return output + functional_call(layer, replaced, args)
        finally:
            self._busy = False

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def add_training_noise(model: nn.Module, device: Device, scale: float = 1.0) -> TrainingNoise:
    """Train ``model`` with ``device``'s programming noise in its forward pass (module docstring).

    Args:
        model: a float model; called as a whole per batch (``Trainer(mode="bptt")``, or a plain loop).
        device: a :class:`~.device.Device` with programming noise (``PCM()``, ``RRAM()``).
        scale: multiplies the noise (default 1).

    Returns:
        the hooks (``.remove()`` takes them off).

    Example::

        >>> import torch, spikelab as sl
        >>> from spikelab.backends import crossbar
        >>> net = sl.Sequential(sl.Linear(20, 16), sl.LIF(), sl.Linear(16, 3), sl.LeakyIntegrator())
        >>> hooks = crossbar.add_training_noise(net, crossbar.PCM())
        >>> net.train()(torch.rand(10, 4, 20)).sum().backward()    # noisy forward, gradients to the weights
    """
    if not device.programs_noisily:
        raise ConfigError("training noise needs a device with programming noise (e.g. crossbar.PCM() or RRAM())")
    if not synapse_layers(model):
        raise ConfigError(f"{type(model).__name__} has no synapse layer (Linear, Conv2d, DelayedLinear) to add noise to")
    return TrainingNoise(model, device, scale)
