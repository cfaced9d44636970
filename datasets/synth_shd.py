"""A synthetic set in the exact SHD layout whose classes differ only in timing: a task that needs delays.

Every sample has the same spikes up to timing: each channel of group A (channels 0-49) fires once
near a random onset, each channel of group B (channels 350-399) fires once ``label * gap`` ms
later, and a few background spikes fall anywhere. Spike counts per channel carry no class
information, so a network without memory or delays cannot tell the classes apart; one whose group-A
synapses are delayed by the class gap sees A and B coincide. The files go through the real SHD
reader (:class:`spikelab.datasets.SHD`), like the published ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .writers import write_shd_h5

GROUP_A = np.arange(0, 50)
GROUP_B = np.arange(350, 400)


def synth_delay_samples(n: int, classes: int = 20, gap_ms: float = 10.0, jitter_ms: float = 1.0,
                        background: int = 50, seed: int = 0):
    """``n`` samples as ``(times in s, units, labels)`` lists; labels balanced over ``classes``.

    Args:
        n: number of samples.
        classes: number of classes; class ``c`` puts group B ``c * gap_ms`` after group A.
        gap_ms: timing step between neighbouring classes, in ms (default 10, one SHD bin of the DCLS setup).
        jitter_ms: standard deviation of each spike's time around its group's time, in ms (default 1).
        background: random spikes per sample, uniform over channels and the first second (default 50).
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    times, units = [], []
    for label in labels:
        onset = rng.uniform(0.05, 0.3)
        group_times = [onset + rng.normal(0, jitter_ms / 1e3, len(GROUP_A)),
                       onset + label * gap_ms / 1e3 + rng.normal(0, jitter_ms / 1e3, len(GROUP_B))]
        sample_times = np.concatenate([*group_times, rng.uniform(0, 1.0, background)])
        sample_units = np.concatenate([GROUP_A, GROUP_B, rng.integers(0, 700, background)])
        times.append(np.clip(sample_times, 0.0, None))
        units.append(sample_units)
    return times, units, labels


def write_synth_delay_shd(folder, n_train: int = 2000, n_test: int = 500, classes: int = 20, seed: int = 0,
                          **options) -> list[Path]:
    """Write ``folder/shd_train.h5`` and ``folder/shd_test.h5`` (options as :func:`synth_delay_samples`)."""
    folder = Path(folder)
    paths = []
    for name, n, split_seed in (("shd_train.h5", n_train, seed), ("shd_test.h5", n_test, seed + 1)):
        times, units, labels = synth_delay_samples(n, classes=classes, seed=split_seed, **options)
        write_shd_h5(folder / name, times, units, labels, keys=[f"gap {c}" for c in range(max(classes, 20))])
        paths.append(folder / name)
    return paths
