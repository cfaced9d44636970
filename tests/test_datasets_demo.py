"""The built-in demo set: layout, event statistics, determinism, atomic generation, learnability."""
import hashlib
import os

import numpy as np
import pytest
import tonic

import spikelab.datasets.demo as demo_module
from spikelab.datasets import NMNIST, cache_dir, demo_root, load_dataset


def digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.bin"))}


@pytest.fixture(scope="module")
def root():
    return demo_root()


def test_layout_and_stratified_80_20_split(root):
    assert root == cache_dir() / "demo-digits-v1"
    train = sorted(root.glob("NMNIST/Train/*/*.bin"))
    test = sorted(root.glob("NMNIST/Test/*/*.bin"))
    assert len(train) + len(test) == 1797 and abs(len(test) / 1797 - 0.2) < 0.01
    for digit in range(10):
        n_train = len(list(root.glob(f"NMNIST/Train/{digit}/*.bin")))
        n_test = len(list(root.glob(f"NMNIST/Test/{digit}/*.bin")))
        assert 0.18 < n_test / (n_train + n_test) < 0.22
    numbers = sorted(int(p.stem) for p in test)
    assert numbers == list(range(1, len(test) + 1))  # numbered from 00001 within the split, as N-MNIST
    assert not list(root.parent.glob(".demo-digits-v1-partial-*"))


def test_events_look_like_n_mnist(root):
    files = sorted(root.glob("NMNIST/*/*/*.bin"))
    counts = np.array([os.path.getsize(p) // 5 for p in files])
    assert 2000 <= counts.mean() <= 7000 and counts.min() >= 1000 and counts.max() <= 9000
    events = tonic.io.read_mnist_file(str(files[0]), dtype=tonic.datasets.NMNIST.dtype)
    assert events["x"].max() <= 33 and events["y"].max() <= 33 and set(np.unique(events["p"])) == {0, 1}
    assert np.all(np.diff(events["t"]) >= 0) and 300_000 < events["t"].max() <= 315_000
    per_saccade = np.histogram(events["t"], bins=[0, 105_000, 210_000, 315_001])[0]
    assert per_saccade.min() > 0.15 * len(events)  # all three saccades produce events


def test_regeneration_gives_identical_bytes(root, tmp_path):
    again = demo_root(cache_dir=tmp_path)
    assert again == tmp_path / "demo-digits-v1"
    assert digests(again) == digests(root)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(folder):
        (folder / "NMNIST").mkdir()
        (folder / "NMNIST" / "half.bin").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo_root(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_through_the_nmnist_reader_and_learnable(root):
    train = load_dataset("demo", data_dir="ignored", train=True)
    test = load_dataset("demo", data_dir=None, train=False)
    assert isinstance(train, NMNIST) and train.input_shape == (2, 17, 17) and train.T == 30
    assert len(train) + len(test) == 1797 and train.files[0].startswith(str(root))

    def features(ds):
        return np.stack([ds[i][0].sum(0).flatten().numpy() for i in range(len(ds))]) / ds.T, ds.targets.numpy()

    x_train, y_train = features(train)
    x_test, y_test = features(test)
    centroids = np.stack([x_train[y_train == digit].mean(0) for digit in range(10)])
    predicted = np.argmin(((x_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == y_test).mean() > 0.6  # nearest centroid on spike counts; chance is 0.1, measured 0.83
