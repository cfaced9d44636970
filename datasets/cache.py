"""The spikelab cache folder and the on-disk cache of binned frames.

Everything spikelab derives from data (binned frames, the generated demo set) goes to one folder,
``$SPIKELAB_CACHE`` or ``~/.cache/spikelab``, never beside the data (which may be read-only).

Binned frames live in ``cache_dir()/frames/<name>-<key>.npy`` (all samples, one array, memory-mapped
on load so a dataset larger than RAM works) plus ``<name>-<key>.json`` (labels, which rows are valid,
which sources were skipped, extra facts such as class names). ``key`` hashes the cache format
version, every parameter that shapes the frames and a fingerprint (path, size, modification time)
of every source file, so changing any of them bins again. Both files are written to a temporary
name and renamed (``os.replace``), the ``.json`` last: a cache entry exists completely or not at all.
The ``frames`` folder can be deleted at any time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from spikelab.errors import ConfigError

#: Bump when the binning or the cache layout changes, so old entries are never read.
FORMAT_VERSION = 1


def cache_dir() -> Path:
    """The cache folder: ``$SPIKELAB_CACHE`` if set, else ``~/.cache/spikelab`` (not created here)."""
    configured = os.environ.get("SPIKELAB_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "spikelab"


def fingerprint(paths) -> str:
    """Hash of the absolute path, size in bytes and modification time (ns) of every file in ``paths``."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class FrameCache:
    """One cache entry: the frames of every sample of one dataset split under one set of parameters.

    Args:
        name: readable prefix of the file names, e.g. ``"nmnist-train"``.
        params: every parameter that shapes the frames (JSON-serialisable).
        sources: the files the frames are binned from.
    """

    def __init__(self, name: str, params: dict, sources):
        key = json.dumps({"format": FORMAT_VERSION, "params": params, "sources": fingerprint(sources)},
                         sort_keys=True)
        stem = f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"
        self.folder = cache_dir() / "frames"
        self.frames_path = self.folder / f"{stem}.npy"
        self.meta_path = self.folder / f"{stem}.json"

    def load(self):
        """``(frames, meta)`` with frames memory-mapped read-only, or ``None`` when there is no entry."""
        if not (self.meta_path.is_file() and self.frames_path.is_file()):
            return None
        meta = json.loads(self.meta_path.read_text())
        return np.load(self.frames_path, mmap_mode="r"), meta

    def create(self, shape: tuple, dtype) -> np.memmap:
        """A zero-filled writable array in a temporary ``.npy``; fill it, then call :meth:`commit`."""
        self._tmp_frames = self.frames_path.with_name(f".{self.frames_path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return np.lib.format.open_memmap(self._tmp_frames, mode="w+", dtype=dtype, shape=shape)
        except OSError as err:
            raise ConfigError(f"cannot write the frame cache in {self.folder} ({err}); set SPIKELAB_CACHE to a "
                              "writable folder with room, or pass cache=False to keep the frames in memory") from err

    def commit(self, frames: np.memmap, meta: dict) -> np.memmap:
        """Move the filled array and its ``meta`` into place; returns the frames memory-mapped read-only."""
        frames.flush()
        os.replace(self._tmp_frames, self.frames_path)
        tmp_meta = self.meta_path.with_name(f".{self.meta_path.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.meta_path)
        return np.load(self.frames_path, mmap_mode="r")

    def discard(self) -> None:
        """Remove the temporary file of an unfinished :meth:`create` (after an error or interrupt)."""
        self._tmp_frames.unlink(missing_ok=True)
