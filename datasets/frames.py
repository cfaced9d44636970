"""A dataset of event recordings binned once into frames, kept in the cache or in memory.

:class:`FrameDataset` is the shared base of :class:`~spikelab.datasets.NMNIST` and
:class:`~spikelab.datasets.SHD`: a subclass finds its source files and knows how to bin one sample;
this class bins every sample (with a progress bar), skips and counts corrupt ones when asked,
stores the frames in the on-disk cache (:mod:`spikelab.datasets.cache`) and serves them as
float32 tensors.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from tqdm.auto import tqdm

from spikelab.errors import CorruptFileError

from .binning import frame_dtype
from .cache import FrameCache

#: Show a progress bar when binning at least this many samples.
PROGRESS_MIN_SAMPLES = 300

#: ``open_reader()`` is a context manager yielding ``(n_samples, read, extra)``: ``read(i)`` bins sample
#: ``i`` into ``(frames, label)`` or raises :class:`CorruptFileError` naming the file; ``extra`` is a dict
#: of facts (class names, say) kept with the cache. It is only opened when the cache has no entry.
ReaderFactory = Callable[[], AbstractContextManager]


class FrameDataset(torch.utils.data.Dataset):
    """Base class: ``dataset[i]`` is ``(frames, label)``, frames a float32 tensor ``(T, *input_shape)``.

    Attributes set by :meth:`_prepare`: ``targets`` (LongTensor of labels), ``n_skipped`` (corrupt
    samples skipped), ``cache_path`` (the ``.npy`` holding the frames, or ``None`` with ``cache=False``),
    ``T`` (time bins per sample). Subclasses set ``input_shape``, ``num_classes`` and ``config``.
    """

    def _prepare(self, *, name: str, key: dict, sources: list, frame_shape: tuple, binarize: bool,
                 open_reader: ReaderFactory, skip_bad: bool, cache: bool) -> dict:
        """Load the frames from the cache, or bin every sample; returns the ``extra`` dict.

        Args:
            name: cache file prefix and progress-bar label, e.g. ``"nmnist-train"``.
            key: every parameter that shapes the frames (the source fingerprint is added).
            sources: the files the samples come from.
            frame_shape: shape of one sample, ``(T, ...)``.
            binarize: selects the storage type (:func:`~spikelab.datasets.binning.frame_dtype`).
            open_reader: see :data:`ReaderFactory`.
            skip_bad: skip corrupt samples (and warn how many) instead of raising.
            cache: keep the frames in the on-disk cache (True) or in memory (False).
        """
        store = FrameCache(name, key, sources) if cache else None
        found = store.load() if store is not None else None
        if found is not None:
            frames, meta = found
        else:
            frames, meta = self._bin_all(name, frame_shape, frame_dtype(binarize), open_reader, skip_bad, store)
        skipped = meta["skipped"]
        if skipped and not skip_bad:  # binned earlier with skip_bad=True
            raise CorruptFileError(f"{skipped[0]} ({len(skipped)} corrupt in all; pass skip_bad=True to skip them)")
        if skipped:
            warnings.warn(f"{name}: skipped {len(skipped)} corrupt of {len(skipped) + len(meta['rows'])} samples; "
                          f"first: {skipped[0]}", stacklevel=3)
        self._frames = frames
        self._rows = np.asarray(meta["rows"], dtype=np.int64)
        self.targets = torch.as_tensor(meta["labels"], dtype=torch.long)
        self.n_skipped = len(skipped)
        self.cache_path = store.frames_path if store is not None else None
        self.T = frame_shape[0]
        return meta["extra"]

    @staticmethod
    def _bin_all(name, frame_shape, dtype, open_reader, skip_bad, store):
        rows, labels, skipped = [], [], []
        with open_reader() as (n_samples, read, extra):
            shape = (n_samples, *frame_shape)
            frames = store.create(shape, dtype) if store is not None else np.zeros(shape, dtype)
            try:
                for i in tqdm(range(n_samples), desc=f"binning {name}", unit="sample",
                              disable=n_samples < PROGRESS_MIN_SAMPLES):
                    try:
                        sample, label = read(i)
                    except CorruptFileError as err:
                        if not skip_bad:
                            raise
                        skipped.append(str(err))
                        continue
                    frames[i] = sample.reshape(frame_shape)
                    rows.append(i)
                    labels.append(int(label))
                if not rows:
                    raise CorruptFileError(f"{name}: all {n_samples} samples are corrupt; first: {skipped[0]}")
                meta = {"rows": rows, "labels": labels, "skipped": skipped, "extra": extra}
                if store is not None:
                    frames = store.commit(frames, meta)
            except BaseException:
                if store is not None:
                    store.discard()
                raise
        return frames, meta

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int):
        frames = torch.from_numpy(np.asarray(self._frames[self._rows[index]], dtype=np.float32))
        return frames, int(self.targets[index])

    def __getstate__(self):
        # a DataLoader worker started by spawn re-opens the memory map instead of copying the frames
        state = self.__dict__.copy()
        if self.cache_path is not None:
            state["_frames"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.cache_path is not None:
            self._frames = np.load(self.cache_path, mmap_mode="r")
