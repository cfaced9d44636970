r"""A trained spikelab model with its synapses on simulated crossbars: :func:`convert`, the clock, saving.

The crossbar replaces the synapses, never the neurons: every *synapse layer* of the model becomes a layer that
reads a :class:`~.array.CrossbarArray`, and neurons, normalisation, pooling and biases stay digital.

**The synapse protocol.** A synapse layer is a module that owns one weight matrix and applies it linearly. The
converters below know four:

=========================  ===================================  =================================================
layer                      matrix on the crossbar               rows presented at each time step
=========================  ===================================  =================================================
``nn.Linear`` (any, also   ``weight`` (out, in)                 the input spikes
``sl.Linear`` and the
``recurrent`` weights of
``RecurrentLIF``)
``nn.Conv2d``              ``weight`` as (out, in * kh * kw)    every image patch (im2col), one read per position
``DelayedLinear``          the integer-delay kernel             the last ``max_delay + 1`` input steps
                           (out, in * (max_delay + 1)):
                           one row per input and delay tap
=========================  ===================================  =================================================

Modules nested anywhere (a liquid's input and recurrent ``nn.Linear``, say) are found by walking the model, so a
new layer type needs nothing when it applies its matrices through ``nn.Linear`` children; otherwise it registers
a converter: ``register_synapse(MyLayer, lambda layer, make_array, dt: MyCrossbarLayer(...))``, where
``make_array(matrix, part="", cells=None)`` returns a programmed :class:`~.array.CrossbarArray` for an
``(out, rows)`` matrix (``part`` names each of a layer's matrices, giving each its own random streams; ``cells``
marks the entries of a sparse matrix that have a cell pair). :mod:`.nalsm` registers NALSM's
``LiquidStateMachine`` this way.

The simulated clock: ``set_time(model, seconds)`` sets the time since programming of every array; with a time step
``dt`` (the model's own, or given to :func:`convert`), each forward call of ``T`` steps moves it on by ``T * dt``, so
drift and retention follow simulated time.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikelab.delays import DelayedLinear
from spikelab.errors import CheckpointError, ExportError

from .array import CrossbarArray
from .device import RRAM, Device, Periphery


class _Synapse(nn.Module):
    """Shared by the crossbar layers: the array, a digital bias, and the clock that follows simulated time."""

    def __init__(self, array: CrossbarArray, bias: Tensor | None, dt: float | None):
        super().__init__()
        self.array = array
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.dt = dt

    def _tick(self, steps: int) -> None:
        if self.dt is not None and self.array.time_dependent:
            self.array.advance(steps * self.dt / 1000.0)


class CrossbarLinear(_Synapse):
    """``nn.Linear`` on a crossbar: ``y = array(x) + bias``; input ``(..., in)`` (a sequence ``(T, B, in)`` or one
    step ``(B, in)``), output ``(..., out)``."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:      # one step of a batch: no reshaping
            y = self.array(x)
        else:
            y = self.array(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], self.array.out_features)
        self._tick(x.shape[0] if x.dim() >= 3 else 1)
        return y if self.bias is None else y + self.bias

    def step(self, x_t: Tensor, state=None):
        return self(x_t), state


class CrossbarConv2d(_Synapse):
    """``nn.Conv2d`` on a crossbar: every patch of every frame is one read of the ``(out, in * kh * kw)`` array.
    Input ``(T, B, C, H, W)`` or ``(N, C, H, W)``."""

    def __init__(self, array, bias, dt, conv: nn.Conv2d):
        super().__init__(array, bias, dt)
        self.kernel_size, self.stride, self.padding, self.dilation = (conv.kernel_size, conv.stride, conv.padding,
                                                                      conv.dilation)

    def _frames(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        patches = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        y = self.array(patches.transpose(1, 2).reshape(-1, patches.shape[1]))
        out_h = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        y = y.reshape(n, out_h * out_w, -1).transpose(1, 2).reshape(n, -1, out_h, out_w)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            self._tick(1)
            return self._frames(x)
        steps, batch = x.shape[:2]
        y = self._frames(x.reshape(steps * batch, *x.shape[2:]))
        self._tick(steps)
        return y.reshape(steps, batch, *y.shape[1:])

    def step(self, x_t: Tensor, state=None):
        return self(x_t), state


class CrossbarDelayedLinear(_Synapse):
    """``DelayedLinear`` (integer delays, as evaluated) on a crossbar: one row per input and delay tap, so each
    step reads ``x[t], x[t-1], ..., x[t-D]`` at once. Input ``(T, B, in)``; output ``(T, B, out)`` (``T + D``
    steps with ``extend``); ``step`` keeps the last ``D`` inputs like ``DelayedLinear.step``."""

    def __init__(self, array, bias, dt, layer: DelayedLinear):
        super().__init__(array, bias, dt)
        self.in_features, self.max_delay, self.extend = layer.in_features, layer.max_delay, layer.extend

    def _read(self, taps: Tensor) -> Tensor:
        """``taps`` ``(N, in, D + 1)`` with tap ``k`` the input ``k`` steps ago -> ``(N, out)``."""
        y = self.array(taps.reshape(taps.shape[0], -1))
        return y if self.bias is None else y + self.bias

    def forward(self, x: Tensor) -> Tensor:
        steps, batch = x.shape[:2]
        d = self.max_delay
        padded = F.pad(x, (0, 0, 0, 0, d, d if self.extend else 0))
        windows = padded.unfold(0, d + 1, 1).flip(-1)               # (T', B, in, D + 1): tap k = k steps ago
        y = self._read(windows.reshape(-1, self.in_features, d + 1))
        self._tick(steps)
        return y.reshape(windows.shape[0], batch, -1)

    def step(self, x_t: Tensor, state: Tensor | None = None):
        d = self.max_delay
        history = torch.zeros(d, *x_t.shape, dtype=x_t.dtype, device=x_t.device) if state is None else state
        taps = torch.cat([x_t[None], history], 0)                  # (D + 1, B, in), newest first
        self._tick(1)
        return self._read(taps.permute(1, 2, 0)), taps[:d]


def _linear(layer: nn.Linear, make_array, dt):
    return CrossbarLinear(make_array(layer.weight), layer.bias, dt)


def _conv2d(layer: nn.Conv2d, make_array, dt):
    if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        raise ExportError(f"{layer}: only convolutions with groups=1, zero padding and numeric padding map onto a "
                          "crossbar here; rebuild the layer without groups or string padding")
    return CrossbarConv2d(make_array(layer.weight.reshape(layer.out_channels, -1)), layer.bias, dt, layer)


def _delayed(layer: DelayedLinear, make_array, dt):
    kernel = layer.kernel() if not layer.training else copy.deepcopy(layer).eval().kernel()
    return CrossbarDelayedLinear(make_array(kernel.detach().reshape(layer.out_features, -1)), layer.bias, dt, layer)


#: synapse layer type -> converter(layer, make_array, dt) -> crossbar layer; most specific types first
SYNAPSES: dict[type, Callable] = {DelayedLinear: _delayed, nn.Conv2d: _conv2d, nn.Linear: _linear}


def register_synapse(layer_type: type, converter: Callable) -> None:
    """Teach :func:`convert` a new synapse layer: ``converter(layer, make_array, dt) -> nn.Module``."""
    global SYNAPSES
    SYNAPSES = {layer_type: converter, **SYNAPSES}


def synapse_converter(module: nn.Module) -> Callable | None:
    """The converter of ``module`` if it is a synapse layer (most specific registered type), else None."""
    for layer_type, converter in SYNAPSES.items():
        if isinstance(module, layer_type):
            return converter
    return None


def synapse_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every synapse layer in ``model`` (outermost first; none nested inside another); the
    model itself is ``("", model)`` when it is one."""
    if synapse_converter(model) is not None:
        return [("", model)]
    found = []

    def walk(module, prefix):
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if synapse_converter(child) is not None:
                found.append((path, child))
            else:
                walk(child, path)

    walk(model, "")
    return found


def convert(model: nn.Module, device: Device | None = None, periphery: Periphery | None = None, seed: int = 0,
            dt: float | None = None, backend: str = "auto") -> nn.Module:
    r"""A copy of ``model`` with every synapse layer programmed onto simulated crossbar tiles.

    Args:
        model: a trained model (neurons of any kind: LIF, UltraLIF, delays, recurrent, liquids).
        device: the cell, e.g. ``RRAM()``, ``PCM(levels=16)`` or ``Device.ideal()`` (default ``RRAM()``).
        periphery: tiles, ADC, output noise, IR drop (default ``Periphery()``, aihwkit's periphery).
        seed: seeds programming, faults, drift exponents and the read noise; the same seed gives the same chip
            and the same outputs.
        dt: time step in ms; each forward call of ``T`` steps then moves the crossbar clock on by ``T * dt``
            (default: the model's own ``dt``, as ``sl.Sequential`` carries it; a model without one moves the
            clock only by :func:`set_time`).
        backend: how the arrays compute their reads: ``"auto"`` (compiled on the CPU, tensor operations
            elsewhere), ``"numba"`` or ``"torch"`` (:class:`~.array.CrossbarArray`).

    Returns:
        The converted model, in eval mode, with ``crossbar`` (device, periphery, seed, dt, backend as plain data)
        set on it.

    Example::

        >>> import torch, spikelab as sl
        >>> from spikelab.backends import crossbar
        >>> net = sl.Sequential(sl.Linear(100, 32), sl.LIF(), sl.Linear(32, 3), sl.LeakyIntegrator())
        >>> chip = crossbar.convert(net, crossbar.RRAM(), seed=1)
        >>> crossbar.set_time(chip, 86400.0)                  # one day after programming
        >>> chip((torch.rand(20, 4, 100) < 0.2).float()).shape
        torch.Size([20, 4, 3])
    """
    device = device if device is not None else RRAM()
    periphery = periphery if periphery is not None else Periphery()
    if not isinstance(device, Device) or not isinstance(periphery, Periphery):
        raise ExportError("convert needs device=a crossbar Device (e.g. crossbar.RRAM()) and periphery=a Periphery")
    dt = getattr(model, "dt", None) if dt is None else dt
    if dt is not None and not dt > 0:
        raise ExportError(f"dt must be a positive number of ms, got {dt!r}")
    converted = copy.deepcopy(model).eval()
    layers = synapse_layers(converted)
    if not layers:
        raise ExportError(f"{type(model).__name__} has no synapse layer (Linear, Conv2d, DelayedLinear) to put on a "
                          "crossbar")
    for path, layer in layers:
        def make_array(matrix, part="", cells=None, _key=path):
            key = f"{_key}.{part}" if _key and part else (part or _key)   # one random stream per array
            return CrossbarArray(matrix.detach(), device, periphery, seed=seed, key=key, backend=backend, cells=cells)

        replacement = synapse_converter(layer)(layer, make_array, dt)
        if not path:                                   # the model is one synapse layer
            converted = replacement.eval()
            break
        parent, name = _parent(converted, path)
        setattr(parent, name, replacement)
    converted.crossbar = {"device": device.to_dict(), "periphery": periphery.to_dict(), "seed": int(seed),
                          "dt": dt, "backend": backend}
    return converted


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, name = path.split(".")
    module = model
    for part in parents:
        module = getattr(module, part)
    return module, name


def arrays(model: nn.Module) -> list[CrossbarArray]:
    """Every crossbar array of a converted model."""
    return [m for m in model.modules() if isinstance(m, CrossbarArray)]


def _arrays_or_refuse(model: nn.Module) -> list[CrossbarArray]:
    found = arrays(model)
    if not found:
        raise ExportError("this model has no crossbar arrays: convert it first with crossbar.convert(model, ...)")
    return found


def set_time(model: nn.Module, seconds: float) -> nn.Module:
    """Set the time since programming of every array (drift and retention follow it); returns ``model``."""
    for array in _arrays_or_refuse(model):
        array.set_time(seconds)
    return model


def reseed(model: nn.Module, seed: int | None = None) -> nn.Module:
    """Restart the read-noise streams of every array (from ``seed``, or the conversion seed); returns ``model``."""
    for array in _arrays_or_refuse(model):
        array.reseed(seed)
    return model


def save(model: nn.Module, path, source_spec: dict | None = None, config: dict | None = None) -> None:
    """Write a converted model as a spikelab checkpoint (atomically): its architecture, crossbar settings and
    every programmed conductance. ``source_spec`` is the architecture of the model before conversion
    (``sl.spec.spec_of(model)``; a converted model that describes itself, a liquid's, has a ``source_spec()``
    used when none is given); ``config`` any plain data to keep beside it."""
    from spikelab.training import save_checkpoint

    info = getattr(model, "crossbar", None)
    if info is None:
        raise ExportError("save needs a model from crossbar.convert()")
    if source_spec is None and callable(getattr(model, "source_spec", None)):
        source_spec = model.source_spec()
    if source_spec is None:
        raise ExportError("save needs source_spec=sl.spec.spec_of(float_model) so that load can rebuild it")
    save_checkpoint(path, {"epoch": 0, "model_name": "crossbar", "model_spec": source_spec,
                           "model_state": model.state_dict(), "optimizer_state": None, "scheduler_state": None,
                           "rng_state": None, "config": {"crossbar": info, **(config or {})}, "metrics": []})


def load(path) -> nn.Module:
    """A converted model back from :func:`save`'s checkpoint, with the programmed conductances it had."""
    from spikelab.spec import build
    from spikelab.training import load_checkpoint

    checkpoint = load_checkpoint(path)
    info = checkpoint["config"].get("crossbar")
    if info is None or checkpoint["model_spec"] is None:
        raise CheckpointError(f"{path} is a spikelab checkpoint but not a crossbar one (write it with crossbar.save)")
    model = convert(build(checkpoint["model_spec"]), Device.from_dict(info["device"]),
                    Periphery.from_dict(info["periphery"]), seed=info["seed"], dt=info["dt"],
                    backend=info.get("backend", "auto"))
    try:
        model.load_state_dict(checkpoint["model_state"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the crossbar state does not fit ({str(error).splitlines()[0]})") from None
    return model
