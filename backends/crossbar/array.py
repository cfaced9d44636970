r"""One weight matrix on simulated crossbar tiles: :class:`CrossbarArray` holds its programmed conductances and
reads them (arithmetic in :mod:`.tile`).

The array keeps what a chip keeps: the conductance of every cell as programmed, each cell's drift exponent and
fixed noise draws, stuck cells, each tile's digital scale, and a clock (seconds since programming). All are
buffers, so ``state_dict`` / ``load_state_dict`` and spikelab checkpoints carry the programmed chip, not the
weights it was programmed from. The conductances seen at the clock's time (drift, retention, IR drop, drift
compensation) are derived from them and refreshed whenever the clock has moved by more than 0.1 % in
``log(t + t0)``: a change of at most 1e-4 in any conductance.

Reads draw fresh read noise and output noise for every sample and every call (every time step of a spiking
network) from the array's own generator, seeded from the conversion seed (``reseed`` restarts it). Without a DAC
the inputs must be spikes; the first read of an array checks them (a layer that gets non-spikes gets them from
its first call on, and checking every read would cost a pass over the input each time).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikelab.errors import ExportError

from . import tile
from .device import Device, Periphery
from .noise import PCM_T0

CLOCK_TOLERANCE = 1e-3   # relative change of (t + t0) below which the derived conductances are reused


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

    Example::

        >>> import torch
        >>> from spikelab.backends.crossbar import CrossbarArray, RRAM, Periphery
        >>> array = CrossbarArray(torch.randn(64, 700) * 0.05, RRAM(), Periphery(), seed=0)
        >>> array((torch.rand(32, 700) < 0.1).float()).shape
        torch.Size([32, 64])
    """

    def __init__(self, weight: Tensor | None, device: Device, periphery: Periphery, seed: int = 0, key: str = "",
                 shape: tuple[int, int] | None = None, random_fraction: float | None = None, gain: float = 1.0):
        super().__init__()
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
        """Everything a read needs at the clock's time, computed once per (time, dtype, device)."""
        t = self.clock.item()
        cached = self._derived
        if cached is not None and cached["dtype"] == dtype and cached["device"] == where and (
                cached["t"] == t or self.time_dependent is False
                or abs(math.log((t + PCM_T0) / (cached["t"] + PCM_T0))) <= CLOCK_TOLERANCE):
            return cached
        d, p = self.device_model, self.periphery
        with torch.no_grad():
            g = self._conductances(t)
            diff = self._difference(g)
            if p.drift_compensation and self.time_dependent:
                diff = diff * (self.reference / diff.abs().sum().clamp(min=1e-30))
            scale = tile.expand_tiles(self.tile_scale, self.row_edges, self.column_edges)
            variance = None
            if d.read_noise > 0:
                variance = (d.read_noise / (d.g_max - d.g_min)) ** 2 * (g[0].square() + g[1].square())
                if p.drift_compensation and self.time_dependent:
                    variance = variance * (self.reference / self._difference(g).abs().sum().clamp(min=1e-30)) ** 2
            derived = {"t": t, "dtype": dtype, "device": where, "weight": (diff * scale).to(where, dtype)}
            derived["variance"] = None if variance is None else (variance * scale.square()).to(where, dtype)
            per_row_tile = self.tile_scale.repeat_interleave(
                torch.tensor([b - a for a, b in self.column_edges]), 1)            # (row tiles, out)
            derived["out_std"] = None if p.out_noise == 0 else \
                (p.out_noise * per_row_tile.square().sum(0).sqrt()).to(where, dtype)
            if p.adc_bits is not None:
                bounds = (tile.adc_max_bounds(diff, self.row_edges, self.column_edges) if p.adc_bound == "max"
                          else torch.full_like(self.tile_scale, float(p.adc_bound)))
                def tiles(matrix):     # contiguous row tiles: each read multiplies a whole block
                    return [matrix[:, r0:r1].contiguous().to(where, dtype) for r0, r1 in self.row_edges]

                derived.update(d_tiles=tiles(diff), scale=per_row_tile.to(where, dtype),
                               bounds=bounds.repeat_interleave(
                                   torch.tensor([b - a for a, b in self.column_edges]), 1).to(where, dtype),
                               variance_tiles=None if variance is None else tiles(variance))
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
            if not self._inputs_checked and bool(((x != 0) & (x != 1)).any()):
                raise ExportError(
                    "a crossbar without DAC reads spikes (0 or 1) only, and this layer's input has other values "
                    "(event counts, soft spikes of Ultra neurons, pooled or normalised activity): switch Ultra "
                    "neurons to hard spikes (sl.set_spike_mode(model, 'hard')), train on binary spikes, or give the "
                    "periphery a DAC (Periphery(dac_bits=8))")
            if not self._inputs_checked:
                self._inputs_checked = True
            squared = x
        else:
            x, scale_in = tile.dac(x, p.dac_bits)
            squared = None
        derived = self._derive(x.dtype, x.device)
        noisy = derived["variance"] is not None or derived["out_std"] is not None
        rng = self._generator(x.device) if noisy else None
        if p.adc_bits is None:
            y = tile.read(x, derived["weight"], derived["variance"], derived["out_std"], rng, squared)
        else:
            y = tile.read_tiles(x, derived["d_tiles"], derived["variance_tiles"], p.out_noise, derived["scale"],
                                self.row_edges,
                                p.adc_bits, derived["bounds"], rng, squared)
        return y if scale_in is None else y * scale_in

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"tiles={len(self.row_edges)}x{len(self.column_edges)}, t={self.clock.item():g} s")
