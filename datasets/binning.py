"""Binning events into frames of fixed time windows.

An event stream becomes a frame tensor ``(T, cells)`` where ``T = round(duration / dt)`` and every bin
spans exactly ``dt`` ms: bin ``k`` holds the events with ``k * dt <= t < (k + 1) * dt``. Events at or
after ``duration`` (or after the last whole bin, when ``duration`` is not a multiple of ``dt``) are
dropped. Fixed windows give every sample the same physical time step, which exporters need.

Frames are stored as unsigned integers: ``uint8`` 0/1 spikes when ``binarize`` is true, ``uint16``
event counts otherwise (saturating at 65,535; a ``uint8`` count could overflow once pixels or
channels are pooled).
"""
from __future__ import annotations

import numpy as np

from spikelab.errors import ConfigError

COUNT_MAX = np.iinfo(np.uint16).max


def num_steps(dt: float, duration: float) -> int:
    """Number of time bins ``T = round(duration / dt)``, after checking both are usable.

    Args:
        dt: bin width in ms, > 0.
        duration: length of each recording that is used, in ms, at least ``dt``.
    """
    if not dt > 0:
        raise ConfigError(f"dt must be a positive bin width in ms, got {dt}")
    steps = round(duration / dt)
    if steps < 1:
        raise ConfigError(f"duration ({duration} ms) must be at least one bin of dt = {dt} ms")
    return steps


def check_factor(name: str, value) -> int:
    """Check a pooling factor (``downsample``, ``channel_group``) is an integer >= 1 and return it."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def frame_dtype(binarize: bool) -> np.dtype:
    """Storage type of binned frames: ``uint8`` spikes or ``uint16`` counts."""
    return np.dtype(np.uint8) if binarize else np.dtype(np.uint16)


def bin_events(t_us: np.ndarray, cell: np.ndarray, n_cells: int, dt: float, duration: float,
               binarize: bool) -> np.ndarray:
    """Histogram events into a ``(T, n_cells)`` frame array, ``T = num_steps(dt, duration)``.

    Args:
        t_us: event times in µs (integers >= 0), one per event.
        cell: flat index of each event's cell (pixel and polarity, or channel), in ``[0, n_cells)``.
        n_cells: number of cells per time bin.
        dt: bin width in ms.
        duration: events at ``t >= duration`` ms are dropped, as are events after the last bin.
        binarize: True gives 0/1 (any event in the bin), False the event count.

    Returns:
        ``(T, n_cells)`` array of :func:`frame_dtype` ``(binarize)``.
    """
    steps = num_steps(dt, duration)
    t_us = np.asarray(t_us, np.int64)
    step = np.floor_divide(t_us, dt * 1000.0).astype(np.int64)
    keep = (step < steps) & (t_us < duration * 1000.0)
    counts = np.bincount(step[keep] * n_cells + cell[keep], minlength=steps * n_cells)
    counts = counts.reshape(steps, n_cells)
    if binarize:
        return (counts > 0).astype(np.uint8)
    return np.minimum(counts, COUNT_MAX).astype(np.uint16)
