"""N-MNIST: MNIST digits recorded by an event camera, binned into frames of fixed time windows."""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import tonic

from spikelab.errors import CorruptFileError, DatasetNotFoundError

from .binning import bin_events, check_factor, num_steps
from .download import download_with_tonic
from .frames import FrameDataset

#: Width and height of the N-MNIST sensor crop, in pixels.
SENSOR_SIZE = 34
#: tonic's ``first_saccade_only`` keeps events before this time, in µs.
FIRST_SACCADE_US = 100_000
#: Bytes per event in a ``.bin`` file.
EVENT_BYTES = 5
DIGITS = tuple(str(d) for d in range(10))


class NMNIST(FrameDataset):
    """N-MNIST (Orchard et al. 2015): each MNIST digit shown to an ATIS event camera that makes three
    saccades of about 105 ms each (0-105, 105-210, 210-315 ms), cropped to 34 x 34 pixels, 2 polarities.

    One sample is ``(frames, label)``: ``frames`` a float32 tensor ``(T, 2, H, W)`` with
    ``T = round(duration / dt)`` bins of exactly ``dt`` ms and ``H = W = ceil(34 / downsample)``;
    channel 0 holds OFF events, channel 1 ON events; ``frames[t, p, y, x]`` is 1 if pixel ``(x, y)``
    had an event of polarity ``p`` in bin ``t`` (or the event count, with ``binarize=False``).
    ``label`` is the digit, an int 0-9.

    Files: the original layout, ``root/NMNIST/{Train,Test}/<digit>/<NNNNN>.bin`` (60,000 / 10,000 files,
    or any subset) or the same without the ``NMNIST`` level, ``root/{Train,Test}/<digit>/*.bin``. Each
    ``.bin`` is read with ``tonic.io.read_mnist_file``; the label is its digit folder. With no files
    there, tonic's downloader fetches the split from Mendeley Data (dataset 468j46mzdv) into
    ``root/NMNIST``; without a network this raises :class:`DatasetNotFoundError` saying what to put
    where. Nothing is downloaded or md5-checked when files are present.

    All samples are binned once at construction and kept in the frame cache
    (``cache_dir()/frames``, memory-mapped, so 60,000 samples need not fit in RAM); a second
    construction with the same parameters and unchanged files reads the cache.

    Args:
        root: folder holding ``NMNIST/Train|Test`` or ``Train|Test``.
        train: the ``Train`` split (default True) or ``Test``.
        dt: bin width in ms (default 10.0).
        duration: ms of each recording used (default 300.0); events at ``t >= duration`` are dropped.
        downsample: integer spatial pooling factor ``k >= 1`` (default 1): event ``(x, y)`` goes to pixel
            ``(x // k, y // k)`` of a ``ceil(34 / k)``-pixel square.
        binarize: True (default): a bin is 1 if it holds any event; False: the event count.
        first_saccade_only: keep only events before 100 ms, as tonic does (default False); set
            ``duration=100`` with it, or the later bins stay empty.
        skip_bad: skip corrupt files, count them in ``n_skipped`` and warn (default False: raise
            :class:`CorruptFileError` naming the file).
        cache: keep binned frames in the on-disk cache (default True) or only in memory.

    Attributes:
        targets: LongTensor of all labels. files: path of every sample (str), in tonic's order (sorted
        digit folders, sorted file names), skipped files left out. input_shape: ``(2, H, W)``.
        num_classes: 10. T: time bins per sample. n_skipped: corrupt files skipped. config: the binning
        parameters, so ``NMNIST(root, train, **ds.config)`` rebuilds the same frames. cache_path: the
        ``.npy`` holding the frames (None with ``cache=False``).

    Example:
        >>> ds = NMNIST("data", train=False, dt=10, duration=300, downsample=2)
        >>> frames, label = ds[0]          # frames.shape == (30, 2, 17, 17)
    """

    num_classes = 10

    def __init__(self, root, train: bool = True, dt: float = 10.0, duration: float = 300.0, downsample: int = 1,
                 binarize: bool = True, first_saccade_only: bool = False, skip_bad: bool = False,
                 cache: bool = True):
        root = Path(root).expanduser()
        split = "Train" if train else "Test"
        self.config = dict(dt=float(dt), duration=float(duration), downsample=check_factor("downsample", downsample),
                           binarize=bool(binarize), first_saccade_only=bool(first_saccade_only))
        steps = num_steps(dt, duration)
        files, labels = index_split(root, split)
        if not files:
            download_with_tonic(tonic.datasets.NMNIST, root, train, missing_message(root, split))
            files, labels = index_split(root, split)
            if not files:
                raise DatasetNotFoundError(missing_message(root, split))
        side = math.ceil(SENSOR_SIZE / self.config["downsample"])
        self.input_shape = (2, side, side)

        def read(i):
            return bin_file(files[i], **self.config), labels[i]

        self._prepare(name=f"nmnist-{split.lower()}", key={"dataset": "nmnist", "split": split, **self.config},
                      sources=files, frame_shape=(steps, *self.input_shape),
                      binarize=binarize, open_reader=lambda: contextlib.nullcontext((len(files), read, {})),
                      skip_bad=skip_bad, cache=cache)
        self.files = [files[row] for row in self._rows]


def index_split(root: Path, split: str) -> tuple[list[str], list[int]]:
    """Paths and labels of ``<split>/<digit>/*.bin`` under ``root/NMNIST`` or else ``root``, sorted as tonic
    sorts them (digit folders, then file names); empty lists when neither holds any."""
    for folder in (root / "NMNIST" / split, root / split):
        files, labels = [], []
        if folder.is_dir():
            for digit in sorted(os.listdir(folder)):
                if digit in DIGITS and (folder / digit).is_dir():
                    names = sorted(name for name in os.listdir(folder / digit) if name.endswith(".bin"))
                    files += [str(folder / digit / name) for name in names]
                    labels += [int(digit)] * len(names)
        if files:
            return files, labels
    return [], []


def missing_message(root: Path, split: str) -> str:
    """What to put where, and where N-MNIST is published, for a missing ``split``."""
    return (f"N-MNIST {split} files not found under {root}: put the recordings at "
            f"{root}/NMNIST/{split}/<digit>/<NNNNN>.bin (or {root}/{split}/<digit>/<NNNNN>.bin), or tonic's "
            f"archive {root}/NMNIST/{split.lower()}.zip, which is extracted on first use. N-MNIST (Orchard et al. "
            "2015) is published on Mendeley Data: https://data.mendeley.com/datasets/468j46mzdv")


def read_events(path: str) -> np.ndarray:
    """Events of one ``.bin`` file as tonic's structured array (fields x, y, t in µs, p), checked.

    Raises:
        CorruptFileError: the file is not a whole number of 5-byte events, or an event lies outside
            the 34 x 34 sensor (timestamp-overflow markers, y == 240, are handled by tonic).
    """
    size = os.path.getsize(path)
    if size % EVENT_BYTES:
        raise CorruptFileError(f"{path}: {size} bytes is not a whole number of {EVENT_BYTES}-byte N-MNIST events; "
                               "the file is truncated or not N-MNIST (restore it from the archive, or pass "
                               "skip_bad=True to skip it)")
    events = tonic.io.read_mnist_file(path, dtype=tonic.datasets.NMNIST.dtype)
    outside = np.flatnonzero((events["x"] >= SENSOR_SIZE) | (events["y"] >= SENSOR_SIZE))
    if outside.size:
        first = events[outside[0]]
        raise CorruptFileError(f"{path}: {outside.size} events lie outside the {SENSOR_SIZE}x{SENSOR_SIZE} sensor "
                               f"(first: x={first['x']}, y={first['y']}); the file is corrupt or not N-MNIST "
                               "(restore it from the archive, or pass skip_bad=True to skip it)")
    return events


def bin_file(path: str, dt: float, duration: float, downsample: int, binarize: bool,
             first_saccade_only: bool) -> np.ndarray:
    """Frames ``(T, 2 * H * W)`` of one ``.bin`` file; the parameters are those of :class:`NMNIST`."""
    events = read_events(path)
    if first_saccade_only:
        events = events[events["t"] < FIRST_SACCADE_US]
    side = math.ceil(SENSOR_SIZE / downsample)
    cell = (events["p"] * side + events["y"] // downsample) * side + events["x"] // downsample
    return bin_events(events["t"], cell, 2 * side * side, dt, duration, binarize)
