"""Event datasets for spikelab: N-MNIST, SHD and a built-in demo set, binned into frames.

Every dataset yields ``(frames, label)`` with ``frames`` a float32 tensor ``(T, ...)`` of ``T`` bins of
``dt`` ms each (fixed time windows, so a trained model has one physical time step). Files are read
from where the user put them (no download, no md5 check when present); binned frames are cached under
:func:`cache_dir`, never beside the data.

>>> from spikelab.datasets import NMNIST, demo_root
>>> train = NMNIST(demo_root(), train=True, downsample=2)   # built-in digits, no download
>>> frames, label = train[0]                                 # (30, 2, 17, 17), int
"""
from .cache import cache_dir
from .demo import demo_root
from .nmnist import NMNIST
from .registry import DATASET_DEFAULTS, load_dataset
from .shd import SHD
from .split import stratified_split
from .synth_shd import write_synth_delay_shd
from .writers import write_nmnist_bin, write_shd_h5

__all__ = ["NMNIST", "SHD", "demo_root", "cache_dir", "stratified_split", "write_nmnist_bin", "write_shd_h5",
           "load_dataset", "DATASET_DEFAULTS", "write_synth_delay_shd"]
