"""The shared pieces of spikelab.datasets: the cache folder, the stratified split, load_dataset."""
import numpy as np
import pytest
import torch

from spikelab.datasets import (DATASET_DEFAULTS, NMNIST, SHD, cache_dir, load_dataset, stratified_split,
                               write_shd_h5)
from spikelab.errors import ConfigError


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKELAB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SPIKELAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "spikelab"


def test_stratified_split_keeps_class_shares():
    targets = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    train, val = stratified_split(targets, fraction=0.2, seed=3)
    assert sorted(train + val) == list(range(100)) and not set(train) & set(val)
    assert np.bincount(targets[val].numpy()).tolist() == [10, 6, 4]
    assert train == sorted(train) and val == sorted(val) and all(isinstance(i, int) for i in val)


def test_stratified_split_is_seeded():
    targets = np.arange(200) % 4
    assert stratified_split(targets, 0.1, seed=0) == stratified_split(list(targets), 0.1, seed=0)
    assert stratified_split(targets, 0.1, seed=0)[1] != stratified_split(targets, 0.1, seed=1)[1]
    with pytest.raises(ConfigError):
        stratified_split(targets, fraction=1.0)


def test_defaults_per_dataset():
    assert DATASET_DEFAULTS["nmnist"] == {"dt": 10.0, "duration": 300.0, "downsample": 1}
    assert DATASET_DEFAULTS["demo"] == {"dt": 10.0, "duration": 300.0, "downsample": 2}
    assert DATASET_DEFAULTS["shd"] == {"dt": 10.0, "duration": 1000.0, "channel_group": 1}


def test_load_dataset_applies_defaults_and_overrides(nmnist_sample):
    ds = load_dataset("nmnist", nmnist_sample, train=False)
    assert isinstance(ds, NMNIST) and ds.config["downsample"] == 1 and ds.T == 30 and len(ds) == 100
    ds = load_dataset("nmnist", nmnist_sample, train=False, dt=5.0, downsample=2, skip_bad=True, binarize=False)
    assert ds.T == 60 and ds.input_shape == (2, 17, 17) and ds.config["binarize"] is False


def test_load_dataset_shd(tmp_path):
    write_shd_h5(tmp_path / "shd_test.h5", [[0.01, 0.5]], [[3, 699]], [12])
    ds = load_dataset("shd", tmp_path, train=False, channel_group=7)
    assert isinstance(ds, SHD) and ds.input_shape == (100,) and ds.T == 100 and ds[0][1] == 12
    assert ds[0][0][1, 0] == 1 and ds[0][0][50, 99] == 1 and ds[0][0].sum() == 2


def test_load_dataset_rejects_unknown_names_and_options(nmnist_sample):
    with pytest.raises(ConfigError, match="demo, nmnist, shd"):
        load_dataset("mnist", nmnist_sample, train=True)
    with pytest.raises(ConfigError, match="channel_group"):
        load_dataset("nmnist", nmnist_sample, train=True, channel_group=5)
