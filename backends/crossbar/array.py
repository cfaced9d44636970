r"""One weight matrix on simulated crossbar tiles: :class:`CrossbarArray` holds its programmed conductances and
reads them (arithmetic in :mod:`.tile`).

The array keeps what a chip keeps: the conductance of every cell as programmed, each cell's drift exponent and
fixed noise draws, stuck cells, each tile's digital scale, and a clock (seconds since programming). All are
buffers, so ``state_dict`` / ``load_state_dict`` and spikelab checkpoints carry the programmed chip, not the
weights it was programmed from. The conductances seen at the clock's time (drift, retention, IR drop, drift
compensation) are derived from them and refreshed whenever the clock has moved by more than 0.1 % in
``log(t + t0)``: a change of at most 1e-4 in any conductance.

Reads draw fresh read noise and output noise for every sample and every call (every time step of a spiking
network) from the array's own random stream, seeded from the conversion seed (``reseed`` restarts it). A read is
one matrix product per row tile, then the read-noise variances, the noise, the ADC and the digital sum of the
tiles; on the CPU the latter run as one compiled pass (:mod:`._kernels`: the variances accumulated from the rows
that spiked, one normal per tile, sample and column drawn by a vectorised ziggurat), elsewhere as tensor operations
(:func:`.tile.noisy_adc_sum` after a second matrix product for the variances: the reference). Without a DAC the inputs must be spikes; the first read of an array checks them (a layer that gets
non-spikes gets them from its first call on, and checking every read would cost a pass over the input each time).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError, ExportError

from . import tile
from .device import Device, Periphery
from .noise import PCM_T0

CLOCK_TOLERANCE = 1e-3   # relative change of (t + t0) below which the derived conductances are reused
BACKENDS = ("auto", "numba", "torch")
_noisy_adc_sum = None   # the compiled read (:mod:`._kernels`), imported on first use


def _kernels_fit(x: Tensor) -> bool:
    """Whether the compiled read can take ``x``: CPU float32 / float64, no gradient to carry."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not (
        x.requires_grad and torch.is_grad_enabled())


class CrossbarArray(nn.Module):
    r"""A weight matrix ``W`` (out, rows) programmed into differential pairs of ``device`` cells on tiles.

    ``forward(x)`` maps inputs ``(N, rows)`` (spikes, 0 / 1, unless the periphery has a DAC) to ``(N, out)``
    ``~= x @ W^T``, with every non-ideality of ``device`` and ``periphery``.

    Args:
        weight: the matrix to program ``(out, rows)``, or None with ``random_fraction`` set (random array).
        device: the cell (:class:`~.device.Device`).
        periphery: tiles and converters (:class:`~.device.Periphery`).
        seed: seeds every draw (programming, faults, drift exponents, reads).
        key: tells the arrays of one model apart (one random stream each).
        shape: ``(out, rows)`` of a random array.
        random_fraction: a random array: cells are not programmed but formed, each with probability
            ``random_fraction``, at a conductance ``N(forming_mean, forming_std)`` (µS, >= g_min); unformed cells
            stay at g_min. The weight is ``(G+ - G-) * gain``.
        gain: weight units per µS of a random array.
        backend: how reads are computed: ``"numba"`` (one compiled pass for the noise, the ADC and the sum of the
            tiles, with its own counter-based random stream; CPU float32 / float64 inference), ``"torch"``
            (tensor operations and torch's generator: any device, differentiable without ADC) or ``"auto"``
            (numba where it fits, the default). Both draw the same distribution, not the same numbers.
        cells: ``(out, rows)`` bool, where ``weight`` has a cell pair (a sparse matrix: its absent entries have no
            cells, hold 0 µS at every time and read exactly 0; :func:`.tile.remove_cells`); None: everywhere.

    Example::

        >>> import torch
        >>> from spikelab.backends.crossbar import CrossbarArray, RRAM, Periphery
        >>> array = CrossbarArray(torch.randn(64, 700) * 0.05, RRAM(), Periphery(), seed=0)
        >>> array((torch.rand(32, 700) < 0.1).float()).shape
        torch.Size([32, 64])
    """

    def __init__(self, weight: Tensor | None, device: Device, periphery: Periphery, seed: int = 0, key: str = "",
                 shape: tuple[int, int] | None = None, random_fraction: float | None = None, gain: float = 1.0,
                 backend: str = "auto", cells: Tensor | None = None):
        super().__init__()
        if backend not in BACKENDS:
            raise ConfigError(f"unknown crossbar backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.device_model, self.periphery, self.seed, self.key = device, periphery, int(seed), key
        out, rows = tuple(weight.shape) if weight is not None else tuple(shape)
        self.out_features, self.in_features = out, rows
        self.row_edges = tile.tile_edges(rows, periphery.tile_rows)
        self.column_edges = tile.tile_edges(out, periphery.tile_columns)
        if weight is not None:
            scale = tile.tile_maxima(weight, self.row_edges, self.column_edges)
            g_target = tile.target_pairs(weight, tile.expand_tiles(scale, self.row_edges, self.column_edges),
                                         device.g_min, device.g_max, device.levels)
            state = tile.program(g_target, device, self.seed, key)
            if cells is not None:
                if tuple(cells.shape) != (out, rows):
                    raise ExportError(f"cells must be ({out}, {rows}) like the weight, got {tuple(cells.shape)}")
                state = tile.remove_cells(state, cells)
        else:
            state = self._form(out, rows, random_fraction)
            scale = torch.full((len(self.row_edges), len(self.column_edges)), gain * (device.g_max - device.g_min),
                               dtype=torch.float64)
        self.register_buffer("tile_scale", scale)
        for name in ("target", "programmed", "nu", "retention", "stuck"):
            self.register_buffer(name, state.get(name, torch.zeros(0, dtype=torch.float64)))
        self.register_buffer("clock", torch.zeros((), dtype=torch.float64))
        self.register_buffer("reference", torch.zeros((), dtype=torch.float64))
        self._derived = None
        self._rng = None
        self._stream = None            # the numba reads' random stream: uint64 [key, next word]
        self._inputs_checked = False   # the first read checks that the inputs are spikes (a later one costs a pass)
        self.reference.fill_(self._difference(self._conductances(0.0)).abs().sum())

    def _form(self, out: int, rows: int, fraction: float) -> dict:
        d = self.device_model
        shape = (2, out, rows)
        formed = torch.rand(shape, generator=tile.generator(self.seed, self.key, "formed"), dtype=torch.float64)
        level = d.forming_mean + d.forming_std * tile.normal(shape, self.seed, self.key, "forming")
        target = torch.where(formed < fraction, level.clamp(min=d.g_min), torch.full(shape, d.g_min, dtype=torch.float64))
        state = tile.program(target, d.replace(programming_noise=None, gmax_spread=0.0), self.seed, self.key)
        return state

    # -- time ------------------------------------------------------------------------------------------------
    @property
    def time_dependent(self) -> bool:
        return self.device_model.drift is not None or self.device_model.retention is not None

    def set_time(self, seconds: float) -> None:
        """Set the clock: ``seconds`` since programming (drift and retention follow it)."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ExportError(f"crossbar time must be a number of seconds >= 0, got {seconds!r}")
        self.clock.fill_(float(seconds))

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` of simulated time."""
        self.clock.add_(float(seconds))

    def reseed(self, seed: int | None = None) -> None:
        """Restart the read-noise stream (from ``seed``, or the conversion seed)."""
        if seed is not None:
            self.seed = int(seed)
        self._rng = None
        self._stream = None

    # -- what the cells hold now -----------------------------------------------------------------------------
    def _conductances(self, t: float) -> Tensor:
        state = {name: getattr(self, name) for name in ("target", "programmed", "nu", "retention", "stuck")
                 if getattr(self, name).numel()}
        g = tile.conductances_at(state, self.device_model, t)
        return tile.ir_drop(g, self.row_edges, self.periphery.wire_resistance)

    def _difference(self, g: Tensor) -> Tensor:
        return (g[0] - g[1]) / (self.device_model.g_max - self.device_model.g_min)

    def conductances(self) -> Tensor:
        """The conductances ``(2, out, rows)`` (µS, G+ then G-) the cells have at the clock's time."""
        return self._conductances(self.clock.item())

    def effective_weight(self) -> Tensor:
        """The weights ``(out, rows)`` a noise-free read without ADC computes at the clock's time (float64)."""
        return self._derive(torch.float64, self.tile_scale.device)["weight"]

    def _load_from_state_dict(self, *args, **kwargs):
        self._derived = None
        super()._load_from_state_dict(*args, **kwargs)

    def _derive(self, dtype: torch.dtype, where: torch.device) -> dict:
        """Everything a read needs at the clock's time, computed once per (time, dtype, device): the programmed
        matrix with its noise, levels, drift and IR drop folded in, cut into the blocks each read multiplies."""
        cached = self._derived
        clock = self.clock
        if cached is not None and cached["dtype"] == dtype and cached["device"] == where:
            if cached["clock_version"] == clock._version:   # the clock has not moved (no .item() per read)
                return cached
            t = clock.item()
            if cached["t"] == t or self.time_dependent is False or \
                    abs(math.log((t + PCM_T0) / (cached["t"] + PCM_T0))) <= CLOCK_TOLERANCE:
                return cached
        t = clock.item()
        d, p = self.device_model, self.periphery
        with torch.no_grad():
            g = self._conductances(t)
            diff = self._difference(g)
            compensation = 1.0
            if p.drift_compensation and self.time_dependent:
                compensation = self.reference / diff.abs().sum().clamp(min=1e-30)
            diff = diff * compensation
            variance = None
            if d.read_noise > 0:
                variance = (d.read_noise / (d.g_max - d.g_min)) ** 2 * (g[0].square() + g[1].square()) \
                    * compensation ** 2
            scale = tile.expand_tiles(self.tile_scale, self.row_edges, self.column_edges)
            widths = torch.tensor([b - a for a, b in self.column_edges])
            per_row_tile = self.tile_scale.repeat_interleave(widths, 1)            # (row tiles, out)
            derived = {"t": t, "clock_version": clock._version, "dtype": dtype, "device": where,
                       "weight": (diff * scale).to(where, dtype)}
            if p.adc_bits is None:   # the row tiles add up before any rounding: one block, noise in quadrature
                derived.update(edges=[(0, self.in_features)], blocks=[derived["weight"]], step=None, top=0,
                               scale=torch.ones(1, self.out_features, dtype=dtype, device=where),
                               variance=None if variance is None else [(variance * scale.square()).to(where, dtype)],
                               out_std=None if p.out_noise == 0 else
                               (p.out_noise * per_row_tile.square().sum(0, keepdim=True).sqrt()).to(where, dtype))
            else:
                bounds = (tile.adc_max_bounds(diff, self.row_edges, self.column_edges) if p.adc_bound == "max"
                          else torch.full_like(self.tile_scale, float(p.adc_bound)))
                step, top = tile.adc_grid(p.adc_bits, bounds.repeat_interleave(widths, 1))

                def blocks(matrix):     # contiguous row tiles: each read multiplies whole blocks
                    return [matrix[:, r0:r1].contiguous().to(where, dtype) for r0, r1 in self.row_edges]

                derived.update(edges=self.row_edges, blocks=blocks(diff), step=step.to(where, dtype), top=top,
                               scale=per_row_tile.to(where, dtype),
                               variance=None if variance is None else blocks(variance),
                               out_std=None if p.out_noise == 0 else
                               torch.full_like(per_row_tile, p.out_noise).to(where, dtype))
            derived["noisy"] = derived["out_std"] is not None or derived["variance"] is not None
            if derived["noisy"] and derived["out_std"] is None:   # the kernel's noise needs an output std, 0 here
                derived["out_std"] = torch.zeros_like(derived["scale"])
        self._derived = derived
        return derived

    # -- reading ---------------------------------------------------------------------------------------------
    def _generator(self, where: torch.device) -> torch.Generator:
        if self._rng is None or self._rng.device != where:
            self._rng = tile.generator(self.seed, self.key, "read", device=where)
        return self._rng

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ExportError(f"a crossbar array of {self.in_features} rows reads (N, {self.in_features}) inputs, "
                              f"got {tuple(x.shape)}")
        p = self.periphery
        scale_in = None
        if p.dac_bits is None:
            if not self._inputs_checked:
                if bool(((x != 0) & (x != 1)).any()):
                    raise ExportError(
                        "a crossbar without DAC reads spikes (0 or 1) only, and this layer's input has other values "
                        "(event counts, soft spikes of Ultra neurons, pooled or normalised activity): switch Ultra "
                        "neurons to hard spikes (sl.set_spike_mode(model, 'hard')), train on binary spikes, or give "
                        "the periphery a DAC (Periphery(dac_bits=8))")
                self._inputs_checked = True
            squared = x
        else:
            x, scale_in = tile.dac(x, p.dac_bits)
            squared = x * x
        derived = self._derive(x.dtype, x.device)
        if not derived["noisy"] and derived["step"] is None:
            y = x @ derived["weight"].t()
        else:
            y = self._read(x, squared, derived)
        return y if scale_in is None else y * scale_in

    def _read(self, x: Tensor, squared: Tensor, derived: dict) -> Tensor:
        edges = derived["edges"]
        u = tile.partial_sums(x, derived["blocks"], edges)
        if self.backend == "numba" or self.backend == "auto" and _kernels_fit(u):
            return self._read_compiled(u, squared, derived)
        variance = None if derived["variance"] is None else tile.partial_sums(squared, derived["variance"], edges)
        normals = None
        if derived["noisy"]:
            normals = torch.randn(u.shape, generator=self._generator(x.device), dtype=u.dtype, device=u.device)
        return tile.noisy_adc_sum(u, variance, derived["out_std"], derived["step"], derived["scale"],
                                  derived["top"], normals)

    def _read_compiled(self, u: Tensor, squared: Tensor, derived: dict) -> Tensor:
        global _noisy_adc_sum
        if _noisy_adc_sum is None:   # numba loads and compiles on the first read only
            from ._kernels import noisy_adc_sum as _noisy_adc_sum
        if not _kernels_fit(u):
            raise ExportError(f"the numba crossbar read runs CPU float32/float64 inference only, got {u.device} "
                              f"{u.dtype}{' with gradients' if u.requires_grad else ''}: use backend='torch'")
        if "table" not in derived:   # the kernel's constants, once per derivation
            ones = torch.ones_like(derived["scale"])
            table = torch.stack([ones if derived["out_std"] is None else derived["out_std"],
                                 ones if derived["step"] is None else derived["step"], derived["scale"]]).numpy()
            variance = derived["variance"]
            absent = np.empty((0, 0), table.dtype)     # the kernel's "None"
            derived.update(table=table, top_code=table.dtype.type(derived["top"]), absent=absent,
                           edges_array=np.array(derived["edges"], dtype=np.int64),
                           variance_t=absent if variance is None else torch.cat(variance, 1).t().contiguous().numpy())
        if self._stream is None:
            self._stream = np.array([tile.stream_key(self.seed, self.key, "read"), 0], dtype=np.uint64)
        y = torch.empty(u.shape[1:], dtype=u.dtype)
        inputs = derived["absent"] if derived["variance"] is None else squared.detach().contiguous().numpy()
        _noisy_adc_sum(u.numpy(), inputs, derived["variance_t"],
                       derived["edges_array"], derived["table"], derived["top_code"], derived["noisy"],
                       derived["step"] is not None, self._stream, y.numpy())
        return y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"tiles={len(self.row_edges)}x{len(self.column_edges)}, t={self.clock.item():g} s")
