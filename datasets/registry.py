"""Datasets by name, with their default binning: what the CLI and the trainer build from a config."""
from __future__ import annotations

import inspect

from spikelab.errors import ConfigError

from .demo import demo_root
from .nmnist import NMNIST
from .shd import SHD

#: Default binning per dataset name: bin width ``dt`` (ms), ``duration`` (ms) and the pooling factor.
#: The demo set is read as N-MNIST, pooled 2x (17 x 17 pixels) so that it trains fast.
DATASET_DEFAULTS = {
    "demo": {"dt": 10.0, "duration": 300.0, "downsample": 2},
    "nmnist": {"dt": 10.0, "duration": 300.0, "downsample": 1},
    "shd": {"dt": 10.0, "duration": 1000.0, "channel_group": 1},
}

_CLASSES = {"demo": NMNIST, "nmnist": NMNIST, "shd": SHD}


def load_dataset(name: str, data_dir, train: bool, **binning):
    """One split of a dataset by name, with :data:`DATASET_DEFAULTS` for every option not given.

    Args:
        name: ``"demo"`` (the built-in set of :func:`demo_root`, generated on first use), ``"nmnist"`` or ``"shd"``.
        data_dir: folder with the files (see :class:`NMNIST`, :class:`SHD`); ignored for ``"demo"``.
        train: the training split (True) or the test split.
        **binning: options of the dataset class (``dt``, ``duration``, ``downsample`` or ``channel_group``,
            ``binarize``, ``skip_bad``, ``cache``, ...), overriding the defaults.

    Returns:
        an :class:`NMNIST` (for ``"demo"`` and ``"nmnist"``) or :class:`SHD`.

    Raises:
        ConfigError: an unknown name, or an option the dataset does not have.

    Example:
        >>> test_set = load_dataset("nmnist", "data", train=False, dt=5.0)
    """
    if name not in _CLASSES:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(_CLASSES))}")
    cls = _CLASSES[name]
    options = [p for p in inspect.signature(cls).parameters if p not in ("root", "train")]
    unknown = sorted(set(binning) - set(options))
    if unknown:
        raise ConfigError(f"dataset {name!r} has no option {', '.join(unknown)}; its options are {', '.join(options)}")
    root = demo_root() if name == "demo" else data_dir
    return cls(root, train=train, **{**DATASET_DEFAULTS[name], **binning})
