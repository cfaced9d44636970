"""Layers over time-first sequences, and the container that runs them whole or step by step.

Every layer maps a sequence ``(T, B, ...)`` to a sequence, and also has
``step(x_t, state) -> (y_t, state)`` for one time step ``(B, ...)``, which online training (SLTT)
and local rules use. Stateless layers (weights, pooling, normalisation) fold time into the batch,
so the input currents of all time steps come from one matrix multiply; only neurons are sequential.

=================  ==========================================================================
layer              what it does over time
=================  ==========================================================================
``Linear``         ``y[t] = W x[t] + b`` for all t in one matmul
``Conv2d``         2-D convolution of every frame ``(C, H, W)``
``MaxPool2d``      max pooling of every frame
``AvgPool2d``      average pooling of every frame
``BatchNorm1d``    normalisation per feature, statistics over time and batch
``BatchNorm2d``    normalisation per channel, statistics over time, batch and pixels
``Dropout``        one dropout mask per sequence, the same at every time step
``Flatten``        ``(T, B, C, H, W) -> (T, B, C*H*W)``
``Sequential``     runs layers in order over a sequence (``forward``) or one step (``step``)
=================  ==========================================================================
"""
from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .spec import configurable


class _EveryStep:
    """Mixin for stateless torch layers: apply to all T frames at once by folding time into batch."""

    def forward(self, x: Tensor) -> Tensor:
        steps, batch = x.shape[:2]
        y = super().forward(x.reshape(steps * batch, *x.shape[2:]))
        return y.reshape(steps, batch, *y.shape[1:])

    def step(self, x_t: Tensor, state=None):
        return super().forward(x_t), state


@configurable
class Linear(nn.Linear):
    """Dense weights ``y[t] = W x[t] + b``, all time steps in one matrix multiply.

    Shapes: input ``(T, B, in_features)``, output ``(T, B, out_features)``; ``step`` takes ``(B, in_features)``.

    While ``sample_weight`` holds a tensor ``(B, out_features, in_features)``, sample ``b`` runs with its own
    matrix, ``y[t, b] = sample_weight[b] x[t, b] + b``: independent networks in one batch, as a local rule with
    per-sample weights keeps them (:class:`spikelab.STDP` with ``batch="independent"``). It is None by default.

    Args:
        in_features: input size.
        out_features: output size.
        bias: learn an additive bias (default True).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.sample_weight: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.sample_weight is None:
            return super().forward(x)
        weight = self.sample_weight
        batch_axis = x.dim() - 2             # (B, in) or (T, B, in)
        if x.dim() not in (2, 3) or x.shape[batch_axis] != weight.shape[0]:
            raise ConfigError(f"this Linear holds {weight.shape[0]} per-sample weight matrices but got input "
                              f"{tuple(x.shape)}; give batches of exactly {weight.shape[0]} samples, or drop the "
                              "per-sample weights (the rule's reset_samples())")
        sequences = x.unsqueeze(1) if x.dim() == 2 else x.transpose(0, 1)         # (B, T, in)
        y = torch.bmm(sequences, weight.transpose(1, 2))                           # (B, T, out)
        y = y[:, 0] if x.dim() == 2 else y.transpose(0, 1)
        return y if self.bias is None else y + self.bias

    def step(self, x_t: Tensor, state=None):
        return self(x_t), state


@configurable
class Conv2d(_EveryStep, nn.Conv2d):
    """2-D convolution applied to every frame: ``(T, B, C_in, H, W) -> (T, B, C_out, H', W')``.

    Arguments as :class:`torch.nn.Conv2d` (in_channels, out_channels, kernel_size, stride=1,
    padding=0, bias=True).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)


@configurable
class MaxPool2d(_EveryStep, nn.MaxPool2d):
    """Max pooling of every frame: ``(T, B, C, H, W) -> (T, B, C, H/k, W/k)``. Pooling spikes gives spikes: the
    exporters run it as a population of OR neurons (:func:`spikelab.graph.max_pool_neuron`)."""

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride=stride)


@configurable
class AvgPool2d(_EveryStep, nn.AvgPool2d):
    """Average pooling of every frame: ``(T, B, C, H, W) -> (T, B, C, H/k, W/k)``."""

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride=stride)


@configurable
class BatchNorm1d(_EveryStep, nn.BatchNorm1d):
    """Batch normalisation per feature of ``(T, B, F)``; statistics over time and batch together.

    In step mode each step is normalised on its own (running statistics updated every step), as
    online training (SLTT) does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)


@configurable
class BatchNorm2d(_EveryStep, nn.BatchNorm2d):
    """Batch normalisation per channel of ``(T, B, C, H, W)``; statistics over time, batch and pixels."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)


_SHARD: ContextVar[tuple[int, int] | None] = ContextVar("sharded_batch", default=None)


@contextlib.contextmanager
def sharded_batch(offset: int, total: int):
    """Within this block the batch is rows ``offset...`` of a global batch of ``total`` samples split over processes
    (:mod:`spikelab.training.distributed`): random masks are drawn for the whole global batch and cut to these
    rows, so every sample gets the mask it would get in one process."""
    token = _SHARD.set((offset, total))
    try:
        yield
    finally:
        _SHARD.reset(token)


@configurable
class Dropout(nn.Module):
    """Dropout with one mask per sequence: a dropped unit stays silent for all T steps.

    A fresh mask per step would let every unit through some of the time, which is no dropout for
    a spiking neuron that integrates over steps. Shapes: ``(T, B, ...) -> (T, B, ...)``; in step
    mode the mask is the layer's state, drawn at the first step.

    Args:
        p: probability of dropping a unit (default 0.5).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigError(f"Dropout p must be a probability in [0, 1), got {p!r}")
        self.p = p

    def _mask(self, like: Tensor) -> Tensor:
        """A scaled Bernoulli mask shaped like one step ``(B, ...)``; rows of the global batch's mask inside
        :func:`sharded_batch`."""
        shard = _SHARD.get()
        if shard is None:
            return torch.empty_like(like).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        offset, total = shard
        full = like.new_empty((total, *like.shape[1:])).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return full[offset:offset + like.shape[0]]

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self._mask(x[0])

    def step(self, x_t: Tensor, state=None):
        if not self.training or self.p == 0.0:
            return x_t, None
        mask = self._mask(x_t) if state is None else state
        return x_t * mask, mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


@configurable
class Flatten(nn.Module):
    """Flatten the features of each step: ``(T, B, C, H, W) -> (T, B, C*H*W)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2)

    def step(self, x_t: Tensor, state=None):
        return x_t.flatten(1), state


class Sequential(nn.Sequential):
    """Layers run in order, over a whole sequence or one time step.

    ``dt`` (ms, optional) is the time step the model runs at: the bin width of its input data. It travels with the
    model (checkpoints, ``Network.from_model``, NIR) so that a trained network has one physical time step.

    ``forward(x)`` maps ``(T, B, ...)`` through every layer. ``step(x_t, states)`` advances every
    layer by one step, with ``states`` the list :meth:`step` returned last time (``None`` at the
    first step); a plain torch module without ``step`` (an activation, say) is applied as is.

    Example:
        >>> import torch, spikelab as sl
        >>> net = sl.Sequential(sl.Linear(10, 32), sl.LIF(), sl.Linear(32, 3), sl.LeakyIntegrator())
        >>> net(torch.rand(25, 8, 10)).shape
        torch.Size([25, 8, 3])
    """

    def __init__(self, *layers: nn.Module, dt: float | None = None):
        super().__init__(*layers)
        self.dt = dt

    @property
    def dt(self) -> float | None:
        """The model's time step in ms, or None when it was not given."""
        return self._dt

    @dt.setter
    def dt(self, value: float | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ConfigError(f"dt must be the time step in ms (a float > 0) or None, got {value!r}")
        self._dt = None if value is None else float(value)

    def extra_repr(self) -> str:
        return "" if self.dt is None else f"dt={self.dt:g} ms"

    def step(self, x_t: Tensor, states: list | None = None):
        states = [None] * len(self) if states is None else states
        new_states = []
        for layer, state in zip(self, states):
            if hasattr(layer, "step"):
                x_t, state = layer.step(x_t, state)
            else:
                x_t = layer(x_t)
            new_states.append(state)
        return x_t, new_states
