"""The built-in demo set: scikit-learn's handwritten digits turned into N-MNIST-style event recordings.

``demo_root()`` generates it once (seeded, deterministic, a few seconds) and returns a folder that
:class:`~spikelab.datasets.NMNIST` reads like the real data, so training and tests run with no download.

How one recording is made, following N-MNIST (Orchard et al. 2015):

1. One of the 1,797 real 8 x 8 digits of ``sklearn.datasets.load_digits`` (ink 0..16) is scaled 3.5x
   to 28 x 28 pixels (bilinear) and shown on a screen of intensity ``BACKGROUND`` (ink adds up to 1).
2. A simulated 34 x 34 event camera makes N-MNIST's three saccades, 0-105, 105-210 and 210-315 ms:
   the image moves (3.5, 7), then (7, 0), then back to (0, 0) pixels, piecewise linearly, placed
   centrally with a random offset of up to ``JITTER_PX`` per sample.
3. Every pixel follows the DVS rule at 1 ms steps: it emits an ON (OFF) event each time its log
   intensity rises (falls) by its contrast threshold since its last event; thresholds vary from pixel
   to pixel (``THRESHOLD`` log units, relative spread ``THRESHOLD_SPREAD``); event times are
   interpolated within the step (µs).
4. Background activity adds ``NOISE_FRACTION`` (about 1 %) events at random pixels, times and polarities.

This gives 2,900-5,400 events per sample, 4,200 on average (real N-MNIST: 1,069-7,152, mean 4,108). The samples are split 80/20,
stratified by digit (:func:`~spikelab.datasets.stratified_split`, seed ``SEED``), and written with
:func:`~spikelab.datasets.write_nmnist_bin` in the exact N-MNIST layout,
``<cache>/demo-digits-v1/NMNIST/{Train,Test}/<digit>/<NNNNN>.bin``, numbered from 00001 within each
split in the order of ``load_digits``. Generation happens in a temporary folder that is renamed into
place when complete, so an interrupted run never leaves a partial set.
"""
from __future__ import annotations

import math
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from tqdm.auto import tqdm

from .cache import cache_dir as default_cache_dir
from .split import stratified_split
from .writers import write_nmnist_bin

#: Part of the folder name: bump it whenever the generated files change.
VERSION = 1
#: Seed of every random choice (offsets, thresholds, noise, the split).
SEED = 0
#: Share of each digit that goes to the Test split.
TEST_FRACTION = 0.2
#: Sensor width and height in pixels (as N-MNIST).
SENSOR_SIZE = 34
#: Scale from the 8 x 8 digit to the 28 x 28 image.
SCALE = 3.5
#: Saccade corners: time (ms) and image displacement (pixels), from N-MNIST.
SACCADE_MS = (0.0, 105.0, 210.0, 315.0)
SACCADE_X = (0.0, 3.5, 7.0, 0.0)
SACCADE_Y = (0.0, 7.0, 0.0, 0.0)
#: Screen intensity without ink, relative to full ink (1.0).
BACKGROUND = 0.2
#: Mean contrast threshold (change of natural-log intensity) and its relative spread across pixels.
THRESHOLD = 0.33
THRESHOLD_SPREAD = 0.05
#: Background-activity events, as a fraction of the signal events.
NOISE_FRACTION = 0.01
#: Largest random offset of the image per sample, in pixels.
JITTER_PX = 1.0
#: Image position (pixels) that centres the 28-pixel image plus its 7-pixel path on the sensor.
CENTRE_PX = (SENSOR_SIZE - 28 - 7) / 2
#: The log-intensity image is precomputed on a grid of 1/SUBPIXELS pixel, from GRID_ORIGIN_PX over
#: GRID_PX pixels in image coordinates (covering the bilinear support of the 28-pixel image).
SUBPIXELS = 8
GRID_ORIGIN_PX = -2.0
GRID_PX = 32


def demo_root(cache_dir=None) -> Path:
    """Folder of the demo set, generated on first use; pass it to ``NMNIST(root)``.

    Args:
        cache_dir: folder to keep it in (default: :func:`~spikelab.datasets.cache_dir`).

    Returns:
        ``<cache_dir>/demo-digits-v1``, holding ``NMNIST/{Train,Test}/<digit>/<NNNNN>.bin``
        (1,438 Train and 359 Test files).

    Example:
        >>> train = NMNIST(demo_root(), train=True, downsample=2)
    """
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = base / f"demo-digits-v{VERSION}"
    if root.is_dir():
        return root
    base.mkdir(parents=True, exist_ok=True)
    partial = base / f".{root.name}-partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        generate(partial)
        try:
            os.rename(partial, root)
        except OSError:
            if not root.is_dir():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return root


def generate(folder: Path) -> None:
    """Write every demo recording under ``folder/NMNIST/{Train,Test}/<digit>/<NNNNN>.bin``."""
    from sklearn.datasets import load_digits  # importing scikit-learn takes seconds: only when generating

    digits = load_digits()
    ink = digits.images / 16.0
    labels = digits.target
    train_idx, test_idx = stratified_split(labels, fraction=TEST_FRACTION, seed=SEED)
    jobs = [(index, folder / "NMNIST" / split / str(labels[index]) / f"{number:05d}.bin")
            for split, indices in (("Train", train_idx), ("Test", test_idx))
            for number, index in enumerate(indices, start=1)]

    def write(job):
        index, path = job
        write_nmnist_bin(path, *recording(ink[index], np.random.default_rng([SEED, index])))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # the numba kernels release the GIL
        for _ in tqdm(pool.map(write, jobs), total=len(jobs), desc="generating the demo set", unit="file"):
            pass


def recording(ink: np.ndarray, rng: np.random.Generator):
    """Events ``(x, y, t_us, p)`` of one simulated saccade recording of an 8 x 8 ``ink`` image (0..1)."""
    steps = np.arange(SACCADE_MS[-1] + 1)  # one per ms, 0..315
    offset = CENTRE_PX + rng.uniform(-JITTER_PX, JITTER_PX, size=2)
    threshold = THRESHOLD * np.clip(1 + THRESHOLD_SPREAD * rng.standard_normal((SENSOR_SIZE, SENSOR_SIZE)), 0.5, None)
    columns = grid_index(np.interp(steps, SACCADE_MS, SACCADE_X) + offset[0])
    rows = grid_index(np.interp(steps, SACCADE_MS, SACCADE_Y) + offset[1])
    grid = log_intensity_grid(ink, BACKGROUND)
    events = np.empty((16384, 4), dtype=np.int64)
    n = dvs_events(grid, math.log(BACKGROUND), threshold, *columns, *rows, events)
    if n > len(events):  # more events than the buffer holds: run again with room for all
        events = np.empty((n, 4), dtype=np.int64)
        dvs_events(grid, math.log(BACKGROUND), threshold, *columns, *rows, events)
    noise = rng.poisson(NOISE_FRACTION * n)
    x = np.concatenate([events[:n, 0], rng.integers(0, SENSOR_SIZE, noise)])
    y = np.concatenate([events[:n, 1], rng.integers(0, SENSOR_SIZE, noise)])
    t = np.concatenate([events[:n, 2], rng.integers(0, int(SACCADE_MS[-1] * 1000), noise)])
    p = np.concatenate([events[:n, 3], rng.integers(0, 2, noise)])
    return x, y, t, p


def grid_index(position: np.ndarray):
    """For an image at ``position`` (pixels) per step: ``(coarse, phase)`` such that sensor pixel ``i`` sees
    grid cell ``[phase, coarse + i]`` of :func:`log_intensity_grid` (all pixels share one sub-pixel phase)."""
    fine = np.floor((0.5 - position - GRID_ORIGIN_PX) * SUBPIXELS).astype(np.int64)
    return fine // SUBPIXELS, fine % SUBPIXELS


@numba.njit(nogil=True, cache=False)
def log_intensity_grid(ink, background):
    """``grid[pr, pc, r, c]``: natural-log screen intensity ``background + (1 - background) * ink`` at the
    image point ``GRID_ORIGIN_PX + (r * SUBPIXELS + pr + 0.5) / SUBPIXELS`` down (and likewise across with
    ``c, pc``), ``ink`` scaled by ``SCALE`` with bilinear interpolation (0 outside it)."""
    n = GRID_PX * SUBPIXELS
    size = ink.shape[0]
    weights = np.zeros((n, size))  # separable bilinear weights: fine position -> ink pixel
    for f in range(n):
        source = (GRID_ORIGIN_PX + (f + 0.5) / SUBPIXELS) / SCALE - 0.5
        low = math.floor(source)
        if 0 <= low < size:
            weights[f, low] = 1.0 - (source - low)
        if 0 <= low + 1 < size:
            weights[f, low + 1] = source - low
    across = np.zeros((n, size))  # across[c, i]: ink row i interpolated at fine column c
    for c in range(n):
        for i in range(size):
            for j in range(size):
                across[c, i] += weights[c, j] * ink[i, j]
    grid = np.empty((SUBPIXELS, SUBPIXELS, GRID_PX, GRID_PX))
    for r in range(n):
        for c in range(n):
            value = 0.0
            for i in range(size):
                value += weights[r, i] * across[c, i]
            grid[r % SUBPIXELS, c % SUBPIXELS, r // SUBPIXELS, c // SUBPIXELS] = math.log(
                background + (1.0 - background) * value)
    return grid


@numba.njit(nogil=True, cache=False)
def dvs_events(grid, log_background, threshold, col0, col_phase, row0, row_phase, out):
    """DVS events of the moving image, one step per ms; fills ``out[:n]`` with ``(x, y, t_us, p)`` rows and
    returns ``n`` (which may exceed ``len(out)``: then only the first ``len(out)`` are written)."""
    size = threshold.shape[0]
    n_grid = grid.shape[2]
    reference = np.empty((size, size))
    previous = np.empty((size, size))
    n = 0
    for k in range(len(col0)):
        plane = grid[row_phase[k], col_phase[k]]
        for y in range(size):
            r = row0[k] + y
            for x in range(size):
                c = col0[k] + x
                level = plane[r, c] if (0 <= r < n_grid and 0 <= c < n_grid) else log_background
                if k == 0:
                    reference[y, x] = level
                step = threshold[y, x]
                change = level - reference[y, x]
                if change <= -step or change >= step:
                    if change < 0:
                        step = -step
                    count = int(change / step)
                    for j in range(1, count + 1):
                        if n < len(out):
                            crossing = (reference[y, x] + j * step - previous[y, x]) / (level - previous[y, x])
                            out[n, 0] = x
                            out[n, 1] = y
                            out[n, 2] = int((k - 1 + crossing) * 1000.0)
                            out[n, 3] = 1 if step > 0 else 0
                        n += 1
                    reference[y, x] += count * step
                previous[y, x] = level
    return n
