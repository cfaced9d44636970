"""Stratified, seeded train/validation split of a labelled dataset."""
from __future__ import annotations

import numpy as np

from spikelab.errors import ConfigError


def stratified_split(targets, fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split sample indices into ``(train_idx, val_idx)`` with each class split in the same proportion.

    Each class's indices are shuffled with a generator seeded by ``seed`` and ``round(fraction * n_class)``
    of them go to validation, so every class keeps its share and the same seed gives the same split.

    Args:
        targets: label of every sample (list, numpy array or tensor of ints).
        fraction: share of each class held out for validation, in (0, 1) (default 0.1).
        seed: seed of the shuffle (default 0).

    Returns:
        ``(train_idx, val_idx)``: sorted lists of ints, disjoint, together all indices.

    Example:
        >>> train_idx, val_idx = stratified_split(dataset.targets, fraction=0.1, seed=0)
        >>> train_set = torch.utils.data.Subset(dataset, train_idx)
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"the validation fraction must lie strictly between 0 and 1, got {fraction}")
    targets = np.asarray(targets).ravel()
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        val.extend(members[:int(np.floor(fraction * len(members) + 0.5))].tolist())
    held_out = set(val)
    train = [i for i in range(len(targets)) if i not in held_out]
    return train, sorted(val)
