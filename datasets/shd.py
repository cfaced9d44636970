"""SHD: spoken digits as spikes of 700 cochlear channels, binned into frames of fixed time windows."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import h5py
import numpy as np
import tonic

from spikelab.errors import CorruptFileError, DatasetNotFoundError

from .binning import bin_events, check_factor, num_steps
from .download import download_with_tonic
from .frames import FrameDataset

#: Cochlear channels (input units) of SHD.
N_CHANNELS = 700
#: Datasets an SHD file must hold (``extra/keys``, the class names, is optional).
REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels")


class SHD(FrameDataset):
    """Spiking Heidelberg Digits (Cramer et al. 2020): spoken digits 0-9 in English and German (20
    classes, 12 speakers) turned into spikes of 700 channels by a model of the inner ear.

    One sample is ``(frames, label)``: ``frames`` a float32 tensor ``(T, C)`` with ``T = round(duration / dt)``
    bins of exactly ``dt`` ms and ``C = ceil(700 / channel_group)``; ``frames[t, c]`` is 1 if any of
    channels ``c * g ... c * g + g - 1`` spiked in bin ``t`` (or the spike count, with ``binarize=False``).
    ``label`` is the class id, an int 0-19 (names in ``class_names``).

    Files: ``root/shd_train.h5`` and ``root/shd_test.h5``, or the same under ``root/SHD/`` (tonic's layout),
    in the published HDF5 layout: ``spikes/times`` (per sample, seconds, float16), ``spikes/units`` (per
    sample, channel ids), ``labels``, ``extra/keys`` (class names). They are read with one h5py handle.
    With no file there, tonic's downloader fetches ``shd_{train,test}.h5.zip`` from
    https://zenkelab.org/datasets/ into ``root/SHD``; without a network this raises
    :class:`DatasetNotFoundError` saying what to put where.

    All samples are binned once at construction and kept in the frame cache (``cache_dir()/frames``,
    memory-mapped); a second construction with the same parameters and an unchanged file reads the cache.

    Args:
        root: folder holding ``shd_*.h5`` or ``SHD/shd_*.h5``.
        train: the training split (default True) or the test split.
        dt: bin width in ms (default 10.0).
        duration: ms of each recording used (default 1000.0); spikes at ``t >= duration`` are dropped
            (samples last up to about 1.4 s).
        channel_group: sum groups of this many adjacent channels, an integer ``g >= 1`` (default 1):
            700 channels become ``ceil(700 / g)``, e.g. 140 for ``g = 5``.
        binarize: True (default): a bin is 1 if it holds any spike; False: the spike count.
        skip_bad: skip corrupt samples (channel >= 700, negative or non-finite times, times and units
            of different lengths, label >= 20), count them in ``n_skipped`` and warn (default False:
            raise :class:`CorruptFileError` naming the file and sample). A file missing a required
            dataset always raises.
        cache: keep binned frames in the on-disk cache (default True) or only in memory.

    Attributes:
        targets: LongTensor of all labels. class_names: the 20 names from ``extra/keys`` (decoded),
        or ``"0"``..``"19"`` if the file has none. input_shape: ``(C,)``. num_classes: 20. T: time bins
        per sample. n_skipped: corrupt samples skipped. config: the binning parameters, so
        ``SHD(root, train, **ds.config)`` rebuilds the same frames. file: the HDF5 file read.
        cache_path: the ``.npy`` holding the frames (None with ``cache=False``).

    Example:
        >>> ds = SHD("data", train=True, dt=10, duration=1000, channel_group=5)
        >>> frames, label = ds[0]          # frames.shape == (100, 140)
    """

    num_classes = 20

    def __init__(self, root, train: bool = True, dt: float = 10.0, duration: float = 1000.0, channel_group: int = 1,
                 binarize: bool = True, skip_bad: bool = False, cache: bool = True):
        root = Path(root).expanduser()
        split = "train" if train else "test"
        self.config = dict(dt=float(dt), duration=float(duration),
                           channel_group=check_factor("channel_group", channel_group), binarize=bool(binarize))
        steps = num_steps(dt, duration)
        path = find_file(root, split)
        if path is None:
            download_with_tonic(tonic.datasets.SHD, root, train, missing_message(root, split))
            path = find_file(root, split)
            if path is None:
                raise DatasetNotFoundError(missing_message(root, split))
        self.file = str(path)
        self.input_shape = (math.ceil(N_CHANNELS / self.config["channel_group"]),)
        extra = self._prepare(name=f"shd-{split}", key={"dataset": "shd", "split": split, **self.config},
                              sources=[path], frame_shape=(steps, *self.input_shape),
                              binarize=binarize, open_reader=lambda: open_reader(path, **self.config),
                              skip_bad=skip_bad, cache=cache)
        self.class_names = extra["class_names"]


def find_file(root: Path, split: str) -> Path | None:
    """``root/shd_<split>.h5``, else ``root/SHD/shd_<split>.h5``, else None."""
    for path in (root / f"shd_{split}.h5", root / "SHD" / f"shd_{split}.h5"):
        if path.is_file():
            return path
    return None


def missing_message(root: Path, split: str) -> str:
    """What to put where, and where SHD is published, for a missing ``split``."""
    return (f"SHD file shd_{split}.h5 not found in {root} or {root}/SHD: put shd_train.h5 and shd_test.h5 there "
            "(unzip shd_train.h5.zip and shd_test.h5.zip, or gunzip the .h5.gz files). SHD (Cramer et al. 2020) "
            "is published at https://zenkelab.org/datasets/ (mirror: https://compneuro.net)")


@contextlib.contextmanager
def open_h5(path: Path):
    """The file opened read-only with its required datasets checked."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise CorruptFileError(f"{path}: not a readable HDF5 file ({err}); download it again") from err
    with handle:
        missing = [key for key in REQUIRED_KEYS if key not in handle]
        if missing:
            raise CorruptFileError(f"{path}: missing {', '.join(missing)}; an SHD file holds "
                                   f"{', '.join(REQUIRED_KEYS)} (download it again, or rewrite it with write_shd_h5)")
        lengths = {key: len(handle[key]) for key in REQUIRED_KEYS}
        if len(set(lengths.values())) != 1 or not lengths["labels"]:
            raise CorruptFileError(f"{path}: {lengths} must be equal and non-zero (one entry per sample)")
        yield handle


@contextlib.contextmanager
def open_reader(path: Path, dt: float, duration: float, channel_group: int, binarize: bool):
    """Yields ``(n_samples, read, extra)`` for :meth:`FrameDataset._prepare`; parameters as in :class:`SHD`."""
    with open_h5(path) as handle:
        times, units = handle["spikes/times"], handle["spikes/units"]
        labels = handle["labels"][()]
        if "extra/keys" in handle:
            names = [key.decode() if isinstance(key, bytes) else str(key) for key in handle["extra/keys"][()]]
        else:
            names = [str(label) for label in range(SHD.num_classes)]
        n_cells = math.ceil(N_CHANNELS / channel_group)

        def read(i):
            t, u, label = times[i], units[i], int(labels[i])
            problem = sample_problem(t, u, label)
            if problem:
                raise CorruptFileError(f"{path}: sample {i} {problem} (pass skip_bad=True to skip such samples)")
            t_us = (t.astype(np.float64) * 1e6).astype(np.int64)  # seconds -> µs, rounded down as tonic does
            return bin_events(t_us, u.astype(np.int64) // channel_group, n_cells, dt, duration, binarize), label

        yield len(labels), read, {"class_names": names}


def sample_problem(times: np.ndarray, units: np.ndarray, label: int) -> str | None:
    """What is wrong with one sample, or None."""
    if len(times) != len(units):
        return f"has {len(times)} spike times but {len(units)} units"
    if len(units) and (units.min() < 0 or units.max() >= N_CHANNELS):
        return f"has units {units.min()}..{units.max()}, but SHD has channels 0..{N_CHANNELS - 1}"
    if not np.all(np.isfinite(times) & (times >= 0)):
        return "has negative or non-finite spike times"
    if not 0 <= label < SHD.num_classes:
        return f"has label {label}, but SHD has classes 0..{SHD.num_classes - 1}"
    return None
