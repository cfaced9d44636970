r"""Tile arithmetic as pure functions: weights to conductance pairs, programming, time, IR drop, ADC, the read.

A weight matrix ``W`` (out, rows) is cut into tiles of ``tile_rows x tile_columns`` cells. Each tile has a scale
``w_max`` (the largest ``|W|`` in it) and stores every weight as a differential pair in [g_min, g_max] (µS)::

    G+ = g_min + (g_max - g_min) * max(W, 0) / w_max,     G- = g_min + (g_max - g_min) * max(-W, 0) / w_max
    d  = (G+ - G-) / (g_max - g_min)                      # one full-scale cell = 1; d * w_max = W when ideal

``levels`` quantise ``(G - g_min) / (g_max - g_min)`` to ``round(. (levels - 1)) / (levels - 1)``.

A read of inputs ``x`` (N, rows) gives, per row tile ``r``, the analog column sums (units of one full-scale cell)
with their noise, digitised by the tile's ADC and scaled back; the tiles add up digitally::

    u_r = x_r @ d_r^T + sqrt(x_r^2 @ v_r^T + out_noise^2) * N(0, 1),      v = read_noise^2 (G+^2 + G-^2) / (g_max - g_min)^2
    y   = sum_r ADC(u_r) * w_max_r,          ADC(u) = clip(round(u / q), -(2^(b-1) - 1), 2^(b-1) - 1) * q,  q = 2 bound / (2^b - 2)

The read noise term is exact per cell: a fresh ``G (1 + read_noise N)`` for every cell, sample and step gives
column sums with exactly this normal distribution, drawn here in output space (one extra matrix product, not one
random number per cell), and the output noise joins it in the same normal (the sum of two independent normals).
Without an ADC the row tiles add up before any rounding, so the whole read is one matrix product with
``W_eff = d * w_max`` (the variances scaled by ``w_max^2``, the output noise of the row tiles added in quadrature).
:func:`partial_sums` and :func:`noisy_adc_sum` compute a read with torch operations; ``_kernels.noisy_adc_sum`` is
the same arithmetic in one compiled pass (CPU), tested against them.

First-order IR drop along a column of ``n`` rows (row 0 farthest from the sense amplifier, wire resistance
``r_w`` between neighbouring cells): with ideal cell currents, the column wire at row ``i`` sits at
``r_w sum_{k >= i} sum_{m <= k} I_m`` above ground, which lowers every cell's current; to first order in ``r_w``
this is the same as reading the conductances::

    G_eff[m] = G[m] (1 - r_w h[m]),    h[m] = sum_i G[i] (n - max(i, m))

(``h`` from two cumulative sums), so IR drop costs nothing per read.
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from .noise import pcm_drift, programming_sigma, retention_sigma


def stream_key(seed: int, *keys) -> int:
    """A 64-bit key for the random stream ``(seed, *keys)``: one independent stream per array and per kind of draw,
    so that switching one non-ideality on or off leaves the random numbers of the others unchanged."""
    digest = hashlib.sha256(repr((int(seed),) + keys).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def generator(seed: int, *keys, device="cpu") -> torch.Generator:
    """A torch generator on the stream ``(seed, *keys)`` (:func:`stream_key`)."""
    return torch.Generator(device=device).manual_seed(stream_key(seed, *keys) & (2 ** 63 - 1))


def normal(shape, seed: int, *keys) -> Tensor:
    """Standard normal float64 draws of ``shape`` from the stream ``(seed, *keys)``."""
    return torch.randn(shape, generator=generator(seed, *keys), dtype=torch.float64)


def tile_edges(size: int, tile: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of consecutive tiles of ``tile`` covering ``range(size)``."""
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def expand_tiles(per_tile: Tensor, row_edges, column_edges) -> Tensor:
    """A ``(row tiles, column tiles)`` tensor spread over the cells: ``(out, rows)``."""
    rows = torch.tensor([b - a for a, b in row_edges], device=per_tile.device)
    columns = torch.tensor([b - a for a, b in column_edges], device=per_tile.device)
    return per_tile.repeat_interleave(rows, 0).repeat_interleave(columns, 1).t()


def tile_maxima(weight: Tensor, row_edges, column_edges) -> Tensor:
    """The largest ``|W|`` of every tile: ``(row tiles, column tiles)``; a tile of zeros gets 1 (any scale works)."""
    absolute = weight.detach().abs()
    maxima = torch.tensor([[absolute[c0:c1, r0:r1].max().item() for c0, c1 in column_edges]
                           for r0, r1 in row_edges], dtype=torch.float64)
    return torch.where(maxima > 0, maxima, torch.ones_like(maxima))


def quantize_fraction(fraction: Tensor, levels: int | None) -> Tensor:
    """A fraction of the conductance range in [0, 1] rounded to one of ``levels`` evenly spaced levels."""
    if levels is None:
        return fraction
    return torch.round(fraction * (levels - 1)) / (levels - 1)


def target_pairs(weight: Tensor, scale: Tensor, g_min: float, g_max: float, levels: int | None) -> Tensor:
    """Target conductances ``(2, out, rows)`` (µS, float64) of the pairs (G+, G-) for ``weight`` (out, rows), with
    ``scale`` the ``w_max`` of each cell's tile ``(out, rows)``."""
    fraction = (weight.detach().double() / scale).clamp(-1.0, 1.0)
    positive = quantize_fraction(fraction.clamp(min=0.0), levels)
    negative = quantize_fraction((-fraction).clamp(min=0.0), levels)
    return g_min + (g_max - g_min) * torch.stack([positive, negative])


def program(g_target: Tensor, device, seed: int, *keys) -> dict:
    """Write target conductances ``(2, out, rows)`` (µS): what each cell holds afterwards and what it will do.

    Returns ``target`` (what each cell was told to reach on its own range, after the device-to-device spread of
    g_max), ``programmed`` (µS, after programming noise, >= 0), and, where the device has them, ``nu`` (drift
    exponents), ``retention`` (the fixed draws of the noise gathered over time) and ``stuck`` (int8: 1 stuck at
    g_min, 2 at g_max). Each kind of draw has its own random stream ``(seed, *keys, kind)``.
    """
    from .noise import pcm_drift_exponents

    shape = g_target.shape
    target = g_target
    if device.gmax_spread > 0:
        cell_gmax = device.g_max * (1 + device.gmax_spread * normal(shape, seed, *keys, "gmax"))
        span = (cell_gmax - device.g_min).clamp(min=0.0)
        target = device.g_min + (g_target - device.g_min) * span / (device.g_max - device.g_min)
    programmed = target
    if device.programs_noisily:
        sigma = programming_sigma(device.programming_noise, target, device.g_max)
        programmed = target + device.programming_scale * sigma * normal(shape, seed, *keys, "programming")
    state = {"target": target, "programmed": programmed.clamp(min=0.0)}
    if device.drift is not None:
        state["nu"] = pcm_drift_exponents(target, device.g_max, normal(shape, seed, *keys, "drift"))
    if device.retention is not None:
        state["retention"] = normal(shape, seed, *keys, "retention")
    if device.stuck_at_gmin > 0 or device.stuck_at_gmax > 0:
        u = torch.rand(shape, generator=generator(seed, *keys, "stuck"), dtype=torch.float64)
        stuck = torch.zeros(shape, dtype=torch.int8)
        stuck[u < device.stuck_at_gmin] = 1
        stuck[(u >= device.stuck_at_gmin) & (u < device.stuck_at_gmin + device.stuck_at_gmax)] = 2
        state["stuck"] = stuck
    return state


def remove_cells(state: dict, cells: Tensor) -> dict:
    """``state`` (:func:`program`) with no cell pair where ``cells`` ``(out, rows)`` is False (the absent synapses of
    a sparse matrix): both cells hold 0 µS at every time (no drift exponent, no gathered noise, never stuck), so
    the weight there is exactly 0 and adds no current, no IR drop and nothing to drift compensation."""
    present = cells.to(torch.bool).expand(2, *cells.shape)
    return {name: torch.where(present, value, torch.zeros((), dtype=value.dtype)) for name, value in state.items()}


def conductances_at(state: dict, device, t: float) -> Tensor:
    """The conductances ``(2, out, rows)`` (µS) of programmed cells ``t`` seconds after programming: drift, then
    the noise gathered since, clipped at 0; stuck cells hold g_min or g_max whatever the time."""
    g = state["programmed"]
    if "nu" in state:
        g = pcm_drift(g, state["nu"], t)
    if "retention" in state:
        g = g + retention_sigma(device.retention, state["target"], state["programmed"], g, device.g_max, t) \
            * state["retention"]
    g = g.clamp(min=0.0)
    if "stuck" in state:
        g = torch.where(state["stuck"] == 1, torch.full_like(g, device.g_min), g)
        g = torch.where(state["stuck"] == 2, torch.full_like(g, device.g_max), g)
    return g


def ir_drop(g: Tensor, row_edges, wire_resistance: float) -> Tensor:
    """First-order IR drop: ``G_eff = G (1 - r_w h)`` per row tile (module docstring); ``g`` in µS ``(..., rows)``,
    ``wire_resistance`` in Ω."""
    if wire_resistance == 0:
        return g
    parts = []
    for r0, r1 in row_edges:
        tile = g[..., r0:r1] * 1e-6                                   # siemens
        n = r1 - r0
        position = torch.arange(n, dtype=g.dtype, device=g.device)
        before = tile.cumsum(-1) - tile                               # sum_{i < m} G_i
        weighted = tile * (n - position)
        after = weighted.flip(-1).cumsum(-1).flip(-1)                 # sum_{i >= m} G_i (n - i)
        h = (n - position) * before + after
        parts.append(g[..., r0:r1] * (1 - wire_resistance * h))
    return torch.cat(parts, -1)


def adc_grid(bits: int, bound: Tensor | float) -> tuple[Tensor | float, int]:
    """``(step, top)`` of a signed ``bits``-bit ADC spanning ``[-bound, bound]``: ``2^bits - 1`` codes
    ``-top .. top`` of width ``step = 2 bound / (2^bits - 2)``, zero exact."""
    return 2 * bound / (2 ** bits - 2), 2 ** (bits - 1) - 1


def adc(u: Tensor, step: Tensor | float, top: int) -> Tensor:
    """``clip(round(u / step), -top, top) * step``: what the ADC of :func:`adc_grid` reads for ``u``."""
    return torch.round(u / step).clamp(-top, top) * step


def dac(x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Analog inputs ``(N, rows)`` as a ``bits``-bit DAC drives them: ``(levels in [-1, 1], scale (N, 1))`` with
    ``x ~= levels * scale`` (scaled by each sample's absolute maximum, aihwkit's ``ABS_MAX`` noise management)."""
    scale = x.abs().amax(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    top = 2 ** (bits - 1) - 1
    return torch.round(x / scale * top) / top, scale


def adc_max_bounds(d: Tensor, row_edges, column_edges) -> Tensor:
    """Per tile, the largest column current with every row at 1 (``max(sum max(d, 0), sum max(-d, 0))``, in units of
    one full-scale cell): an ADC range that never clips spike inputs. ``(row tiles, column tiles)``."""
    return torch.tensor([[max(d[c0:c1, r0:r1].clamp(min=0).sum(1).max().item(),
                              (-d[c0:c1, r0:r1]).clamp(min=0).sum(1).max().item(), 1e-12)
                          for c0, c1 in column_edges] for r0, r1 in row_edges], dtype=torch.float64)


def partial_sums(x: Tensor, blocks: list[Tensor], row_edges) -> Tensor:
    """The analog column sums of every row tile: ``u[r] = x[:, r0:r1] @ blocks[r]^T`` ``(R, N, out)`` for inputs
    ``x`` ``(N, rows)`` and ``blocks[r]`` ``(out, r1 - r0)``."""
    parts = x.split([r1 - r0 for r0, r1 in row_edges], dim=1)
    if x.requires_grad and torch.is_grad_enabled():   # out= does not carry gradients
        return torch.stack([part @ block.t() for part, block in zip(parts, blocks)])
    u = x.new_empty((len(blocks), x.shape[0], blocks[0].shape[0]))
    for part, block, out in zip(parts, blocks, u.unbind()):
        torch.mm(part, block.t(), out=out)
    return u


def noisy_adc_sum(u: Tensor, variance: Tensor | None, out_std: Tensor | None, step: Tensor | None,
                  scale: Tensor, top: int, normals: Tensor | None) -> Tensor:
    """``y = sum_r scale[r] * ADC(u[r] + sqrt(variance[r] + out_std[r]^2) * normals[r])`` ``(N, out)``: the noise,
    ADC and digital sum of a read (module docstring).

    Args:
        u: analog column sums ``(R, N, out)`` (:func:`partial_sums`).
        variance: their read-noise variances ``(R, N, out)``, or None.
        out_std: output noise std per row tile and column ``(R, out)``, or None (no noise at all).
        step: ADC step per row tile and column ``(R, out)`` (:func:`adc_grid`), or None (no ADC).
        scale: the digital scale of each row tile's columns ``(R, out)``.
        top: the largest ADC code (:func:`adc_grid`).
        normals: standard normals ``(R, N, out)`` (needed when ``out_std`` is given).
    """
    if out_std is not None:
        std = out_std[:, None] if variance is None else (variance + (out_std * out_std)[:, None]).sqrt()
        u = u + std * normals
    if step is not None:
        u = adc(u, step[:, None], top)
    y = u[0] * scale[0]
    for r in range(1, u.shape[0]):
        y = y + u[r] * scale[r]
    return y
