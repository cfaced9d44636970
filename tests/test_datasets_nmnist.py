"""N-MNIST loading: the real sample, layouts, binning, the frame cache, corrupt and missing files, the writer."""
import os
import pickle
import time
from unittest import mock

import numpy as np
import pytest
import tonic
import torch

from spikelab.datasets import NMNIST, cache_dir, write_nmnist_bin
from spikelab.errors import ConfigError, CorruptFileError, DatasetNotFoundError

TRAIN_PER_CLASS = [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]  # from the sample's README
TEST_PER_CLASS = [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]


def read(path):
    return tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)


def write_set(root, split="Train", per_class=2, seed=0, n_events=600):
    """A small set of random recordings in the real layout; returns the paths written."""
    rng = np.random.default_rng(seed)
    paths = []
    for digit in range(10):
        for k in range(per_class):
            path = root / "NMNIST" / split / str(digit) / f"{digit * per_class + k + 1:05d}.bin"
            write_nmnist_bin(path, rng.integers(0, 34, n_events), rng.integers(0, 34, n_events),
                             np.sort(rng.integers(0, 320_000, n_events)), rng.integers(0, 2, n_events))
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def real_train(nmnist_sample):
    return NMNIST(nmnist_sample, train=True)


@pytest.fixture(scope="module")
def real_test_counts(nmnist_sample):
    return NMNIST(nmnist_sample, train=False, binarize=False)


def test_real_sample_loads_with_labels_and_shapes(real_train, nmnist_sample):
    test = NMNIST(nmnist_sample, train=False)
    assert (len(real_train), len(test)) == (1000, 100)
    assert np.bincount(real_train.targets.numpy(), minlength=10).tolist() == TRAIN_PER_CLASS
    assert np.bincount(test.targets.numpy(), minlength=10).tolist() == TEST_PER_CLASS
    assert real_train.targets.dtype == torch.long
    assert real_train.input_shape == (2, 34, 34) and real_train.num_classes == 10 and real_train.n_skipped == 0
    for ds in (real_train, test):
        for i in (0, len(ds) // 2, len(ds) - 1):
            frames, label = ds[i]
            assert frames.shape == (30, 2, 34, 34) and frames.dtype == torch.float32
            assert set(frames.unique().tolist()) <= {0.0, 1.0} and frames.sum() > 100
            assert isinstance(label, int) and label == int(os.path.basename(os.path.dirname(ds.files[i])))
    assert test.files[0].endswith("Test/0/00004.bin")  # the first 0 among the MNIST test digits


def test_files_are_in_tonics_order(real_train, nmnist_sample):
    with mock.patch.object(tonic.datasets.NMNIST, "_check_exists", return_value=True):
        reference = tonic.datasets.NMNIST(save_to=str(nmnist_sample), train=True)
    assert real_train.files == reference.data
    assert real_train.targets.tolist() == reference.targets


def test_counts_match_events_and_tonic_frames(real_test_counts):
    for i in (0, 17, 99):
        events = read(real_test_counts.files[i])
        frames = real_test_counts[i][0].numpy()
        in_window = events[events["t"] < 300_000]
        assert frames.sum() == len(in_window)
        assert frames.sum() >= 0.9 * len(events)  # the last few ms of a recording fall after 300 ms
        reference = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), time_window=10_000, start_time=0,
                                             end_time=300_000)(in_window)
        np.testing.assert_array_equal(frames, reference)


def test_binarize_is_any_event_in_the_bin(real_test_counts, nmnist_sample):
    spikes = NMNIST(nmnist_sample, train=False, binarize=True)
    for i in (0, 50):
        counts = real_test_counts[i][0]
        assert counts.max() > 1  # counts mode really counts
        torch.testing.assert_close(spikes[i][0], (counts > 0).float())


@pytest.mark.parametrize("k, side", [(2, 17), (3, 12), (34, 1)])
def test_downsample_pools_pixels(real_test_counts, nmnist_sample, k, side):
    pooled = NMNIST(nmnist_sample, train=False, downsample=k, binarize=False, cache=False)
    assert pooled.input_shape == (2, side, side)
    frames = pooled[5][0]
    assert frames.shape == (30, 2, side, side)
    torch.testing.assert_close(frames.sum(dim=(2, 3)), real_test_counts[5][0].sum(dim=(2, 3)))


def test_dt_and_duration_set_fixed_windows(nmnist_sample):
    ds = NMNIST(nmnist_sample, train=False, dt=5.0, duration=150.0, binarize=False, cache=False)
    assert ds.T == 30 and ds[0][0].shape[0] == 30
    events = read(ds.files[0])
    expected = np.bincount(events["t"][events["t"] < 150_000] // 5_000, minlength=30)
    np.testing.assert_array_equal(ds[0][0].sum(dim=(1, 2, 3)).numpy(), expected)


def test_first_saccade_only(nmnist_sample):
    ds = NMNIST(nmnist_sample, train=False, first_saccade_only=True, binarize=False, cache=False)
    frames = ds[3][0]
    assert frames[10:].sum() == 0
    assert frames.sum() == (read(ds.files[3])["t"] < 100_000).sum()


def test_both_layouts_are_accepted(tmp_path, nmnist_sample):
    (tmp_path / "with" / "NMNIST").mkdir(parents=True)
    (tmp_path / "with" / "NMNIST" / "Test").symlink_to(nmnist_sample / "NMNIST" / "Test")
    (tmp_path / "without").mkdir()
    (tmp_path / "without" / "Test").symlink_to(nmnist_sample / "NMNIST" / "Test")
    a = NMNIST(tmp_path / "with", train=False, cache=False)
    b = NMNIST(tmp_path / "without", train=False, cache=False)
    assert len(a) == len(b) == 100 and a.targets.tolist() == b.targets.tolist()
    assert "NMNIST/Test" in a.files[0] and "NMNIST" not in b.files[0]
    torch.testing.assert_close(a[42][0], b[42][0])


def test_second_construction_reads_the_cache(tmp_path, monkeypatch):
    write_set(tmp_path, split="Test")
    first = NMNIST(tmp_path, train=False, downsample=2)
    assert first.cache_path.is_file() and first.cache_path.parent == cache_dir() / "frames"
    monkeypatch.setattr(tonic.io, "read_mnist_file", mock.Mock(side_effect=AssertionError("reader called")))
    second = NMNIST(tmp_path, train=False, downsample=2)
    assert second.cache_path == first.cache_path
    assert isinstance(second._frames, np.memmap)
    torch.testing.assert_close(second[7][0], first[7][0])
    assert second.targets.tolist() == first.targets.tolist() and second.files == first.files


def test_cache_key_covers_every_parameter_and_the_files(tmp_path):
    paths = write_set(tmp_path, split="Test", per_class=1)
    base = dict(dt=10.0, duration=300.0, downsample=1, binarize=True, first_saccade_only=False)
    changed = dict(dt=5.0, duration=200.0, downsample=2, binarize=False, first_saccade_only=True)
    reference = NMNIST(tmp_path, train=False, **base)
    keys = {reference.cache_path}
    for name, value in changed.items():
        keys.add(NMNIST(tmp_path, train=False, **{**base, name: value}).cache_path)
    assert len(keys) == 1 + len(changed)
    assert NMNIST(tmp_path, train=False, **reference.config).cache_path == reference.cache_path
    os.utime(paths[0], ns=(1, 1))  # a source file changed
    assert NMNIST(tmp_path, train=False, **base).cache_path != reference.cache_path


def test_nothing_is_written_beside_the_data(tmp_path):
    write_set(tmp_path, split="Train")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    NMNIST(tmp_path, train=True, downsample=3)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_dataset_pickles_without_copying_frames(nmnist_sample):
    ds = NMNIST(nmnist_sample, train=False)
    blob = pickle.dumps(ds)
    assert len(blob) < 100_000  # 100 samples of frames would be 6.9 MB
    torch.testing.assert_close(pickle.loads(blob)[9][0], ds[9][0])


def test_truncated_file_is_named_or_skipped(tmp_path):
    paths = write_set(tmp_path, split="Train")
    bad = paths[5]
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(CorruptFileError, match=str(bad)) as info:
        NMNIST(tmp_path, train=True)
    assert "5-byte" in str(info.value) and "skip_bad=True" in str(info.value)
    with pytest.warns(UserWarning, match="skipped 1 corrupt of 20"):
        ds = NMNIST(tmp_path, train=True, skip_bad=True)
    assert ds.n_skipped == 1 and len(ds) == 19 and str(bad) not in ds.files
    assert len(ds.targets) == 19 and ds[18][1] == 9
    with pytest.raises(CorruptFileError, match=str(bad)):  # the cache remembers the bad file
        NMNIST(tmp_path, train=True)


def test_out_of_range_coordinates_are_corrupt_but_overflow_markers_are_not(tmp_path):
    paths = write_set(tmp_path, split="Test", per_class=1)
    write_nmnist_bin(paths[2], [3, 40, 5], [3, 4, 5], [10, 20, 30], [1, 0, 1])  # x = 40 > 33
    with pytest.raises(CorruptFileError, match=rf"{paths[2]}.*x=40"):
        NMNIST(tmp_path, train=False, cache=False)
    rows = np.array([[3, 3, 0, 0, 10], [0, 240, 0, 0, 0], [4, 4, 0x80, 0, 20]], dtype=np.uint8)  # y = 240: overflow
    rows.tofile(paths[2])
    ds = NMNIST(tmp_path, train=False, binarize=False, cache=False)
    assert ds.n_skipped == 0 and ds[2][0].sum() == 2


def test_missing_files_raise_one_clear_error_quickly(tmp_path):
    started = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as info:
        NMNIST(tmp_path, train=True)
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert f"{tmp_path}/NMNIST/Train/<digit>/<NNNNN>.bin" in message and f"{tmp_path}/Train/" in message
    assert "train.zip" in message and "468j46mzdv" in message and "download failed" in message
    assert list(tmp_path.iterdir()) == []  # tonic's empty download folder was removed again


def test_bad_parameters_raise_config_errors(nmnist_sample):
    for options in (dict(dt=0), dict(duration=2.0, dt=10.0), dict(downsample=0), dict(downsample=1.5)):
        with pytest.raises(ConfigError):
            NMNIST(nmnist_sample, train=False, **options)


def test_writer_round_trips_through_tonic(tmp_path, nmnist_sample):
    rng = np.random.default_rng(1)
    n = 500
    x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 2**23, n))
    write_nmnist_bin(tmp_path / "a" / "x.bin", x, y, t, p)
    events = read(tmp_path / "a" / "x.bin")
    for name, values in zip("xytp", (x, y, t, p)):
        np.testing.assert_array_equal(events[name], values)
    real = nmnist_sample / "NMNIST" / "Train" / "5" / "00001.bin"
    events = read(real)
    write_nmnist_bin(tmp_path / "copy.bin", events["x"], events["y"], events["t"], events["p"])
    assert (tmp_path / "copy.bin").read_bytes() == real.read_bytes()


def test_writer_rejects_values_the_format_cannot_hold(tmp_path):
    with pytest.raises(ConfigError, match="overflow"):
        write_nmnist_bin(tmp_path / "a.bin", [1], [240], [0], [1])
    with pytest.raises(ConfigError, match="t_us"):
        write_nmnist_bin(tmp_path / "a.bin", [1], [1], [2**23], [1])
    with pytest.raises(ConfigError, match="lengths"):
        write_nmnist_bin(tmp_path / "a.bin", [1, 2], [1], [0], [1])
