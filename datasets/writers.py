"""Writers of the exact on-disk formats of N-MNIST (``.bin``) and SHD (``.h5``).

They let synthetic or converted data go through the same readers as the real files (the demo set
is written with :func:`write_nmnist_bin`), and they round-trip through tonic's own readers.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from spikelab.errors import ConfigError

#: The byte value of y that marks a timestamp-overflow event in N-MNIST files, never a real row.
OVERFLOW_Y = 240
#: N-MNIST timestamps are stored in 23 bits (µs, up to about 8.4 s).
MAX_TIMESTAMP_US = 2**23 - 1
#: SHD channels (units) are 0..699.
SHD_CHANNELS = 700


def write_nmnist_bin(path, x, y, t_us, p) -> None:
    """Write events in the N-MNIST ``.bin`` format: 5 bytes (40 bits) per event, no header.

    Byte 0 is x, byte 1 is y, byte 2 holds the polarity in bit 7 and timestamp bits 22..16, bytes 3 and
    4 timestamp bits 15..8 and 7..0. Events are written in time order (a stable sort, so a decoded real
    file re-encodes to identical bytes). Parent folders are created.

    Args:
        path: the ``.bin`` file to write.
        x: column of each event, 0..255 (0..33 on the N-MNIST sensor).
        y: row of each event, 0..255 except 240 (the overflow marker).
        t_us: timestamp of each event in µs, 0..2**23 - 1.
        p: polarity of each event, 1 = ON, 0 = OFF.

    Raises:
        ValueError: arrays of different lengths, or a value the format cannot hold.
    """
    x, y, t, p = (np.asarray(values, dtype=np.int64).ravel() for values in (x, y, t_us, p))
    if not len(x) == len(y) == len(t) == len(p):
        raise ConfigError(f"x, y, t_us, p must have one entry per event, got lengths "
                         f"{len(x)}, {len(y)}, {len(t)}, {len(p)}")
    if len(t):
        for name, values, high in (("x", x, 255), ("y", y, 255), ("t_us", t, MAX_TIMESTAMP_US), ("p", p, 1)):
            if values.min() < 0 or values.max() > high:
                raise ConfigError(f"{name} must lie in 0..{high} for the N-MNIST format, "
                                 f"got {values.min()}..{values.max()}")
        if np.any(y == OVERFLOW_Y):
            raise ConfigError(f"y = {OVERFLOW_Y} marks a timestamp-overflow event in N-MNIST files; "
                             "no event can have it")
    order = np.argsort(t, kind="stable")
    x, y, t, p = x[order], y[order], t[order], p[order]
    rows = np.empty((len(t), 5), dtype=np.uint8)
    rows[:, 0] = x
    rows[:, 1] = y
    rows[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    rows[:, 3] = (t >> 8) & 0xFF
    rows[:, 4] = t & 0xFF
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows.tofile(os.fspath(path))


def write_shd_h5(path, times, units, labels, speakers=None, keys=None) -> None:
    """Write samples in the SHD HDF5 layout.

    Datasets written: ``spikes/times`` (vlen float16, seconds), ``spikes/units`` (vlen uint16),
    ``labels`` (uint16), ``extra/speaker`` (uint16), ``extra/keys`` (bytes, class id -> name). Each
    sample's spikes are sorted by time. ``extra/meta_info`` (per-speaker gender, age, height in the
    published files) is not written: no reader needs it. Parent folders are created.

    Args:
        path: the ``.h5`` file to write (overwritten).
        times: one array of spike times in seconds (>= 0) per sample; stored as float16, so about 1 ms
            resolution near 1 s.
        units: one array of channel ids (0..699) per sample, as long as its ``times``.
        labels: class id of each sample.
        speakers: speaker id of each sample (default: all 0).
        keys: class names, ``keys[label]`` (default: ``"0"``, ``"1"``, ... up to the largest label, at
            least 20 as in SHD).

    Raises:
        ValueError: lengths that do not match, a unit outside 0..699, or a negative or non-finite time.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    speakers = np.zeros(n, dtype=np.int64) if speakers is None else np.asarray(speakers, dtype=np.int64)
    if keys is None:
        keys = [str(label) for label in range(max(20, int(labels.max(initial=-1)) + 1))]
    if not len(times) == len(units) == n == len(speakers):
        raise ConfigError(f"times, units, labels and speakers need one entry per sample, got lengths "
                         f"{len(times)}, {len(units)}, {n}, {len(speakers)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        times_out = handle.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        units_out = handle.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(zip(times, units)):
            t, u = np.asarray(t, dtype=np.float64).ravel(), np.asarray(u, dtype=np.int64).ravel()
            if len(t) != len(u):
                raise ConfigError(f"sample {i}: {len(t)} spike times but {len(u)} units")
            if len(u) and (u.min() < 0 or u.max() >= SHD_CHANNELS):
                raise ConfigError(f"sample {i}: units must lie in 0..{SHD_CHANNELS - 1}, got {u.min()}..{u.max()}")
            if not np.all(np.isfinite(t) & (t >= 0)):
                raise ConfigError(f"sample {i}: spike times must be finite and >= 0 seconds")
            order = np.argsort(t, kind="stable")
            times_out[i] = t[order].astype(np.float16)
            units_out[i] = u[order].astype(np.uint16)
        handle["labels"] = labels.astype(np.uint16)
        handle["extra/speaker"] = speakers.astype(np.uint16)
        handle["extra/keys"] = np.array([str(key).encode() for key in keys])
