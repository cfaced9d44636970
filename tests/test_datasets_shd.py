"""SHD loading from files in the exact HDF5 layout (no real SHD file is available offline)."""
import time
from unittest import mock

import h5py
import numpy as np
import pytest
import tonic
import torch

import spikelab.datasets.shd as shd_module
from spikelab.datasets import SHD, write_shd_h5
from spikelab.errors import ConfigError, CorruptFileError, DatasetNotFoundError

KEYS = "zero one two three four five six seven eight nine null eins zwei drei vier fuenf sechs sieben acht neun".split()


def make_samples(n=30, seed=0):
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(n):
        count = rng.integers(200, 1500)
        times.append(rng.uniform(0, 1.3, count))
        units.append(rng.integers(0, 700, count))
    return times, units, np.arange(n) % 20, rng.integers(0, 12, n)


def write(path, n=30, seed=0):
    times, units, labels, speakers = make_samples(n, seed)
    write_shd_h5(path, times, units, labels, speakers=speakers, keys=KEYS)
    return times, units, labels


def spikes_us(times):
    """Spike times as stored (float16 seconds) in µs, rounded down as tonic does."""
    return (np.asarray(times, np.float16).astype(np.float64) * 1e6).astype(np.int64)


def test_both_layouts_are_accepted(tmp_path):
    write(tmp_path / "flat" / "shd_train.h5")
    write(tmp_path / "nested" / "SHD" / "shd_train.h5")
    a = SHD(tmp_path / "flat", train=True, cache=False)
    b = SHD(tmp_path / "nested", train=True, cache=False)
    assert len(a) == len(b) == 30 and a.targets.tolist() == b.targets.tolist() == (np.arange(30) % 20).tolist()
    assert a.input_shape == (700,) and a.num_classes == 20 and a.class_names == KEYS
    frames, label = a[3]
    assert frames.shape == (100, 700) and frames.dtype == torch.float32 and label == 3
    torch.testing.assert_close(b[3][0], frames)


def test_counts_land_in_the_right_bins(tmp_path):
    times, units, _ = write(tmp_path / "shd_test.h5")
    ds = SHD(tmp_path, train=False, binarize=False, cache=False)
    for i in (0, 11, 29):
        t = spikes_us(times[i])
        keep = t < 1_000_000
        expected = np.zeros((100, 700))
        np.add.at(expected, (t[keep] // 10_000, units[i][keep]), 1)
        np.testing.assert_array_equal(ds[i][0].numpy(), expected)
        assert ds[i][0].sum() > 0.6 * len(t)  # most spikes fall in the first second


@pytest.mark.parametrize("group, channels", [(5, 140), (3, 234), (700, 1)])
def test_channel_group_sums_adjacent_channels(tmp_path, group, channels):
    write(tmp_path / "shd_train.h5")
    full = SHD(tmp_path, binarize=False, cache=False)
    grouped = SHD(tmp_path, channel_group=group, binarize=False, cache=False)
    assert grouped.input_shape == (channels,) and grouped[0][0].shape == (100, channels)
    torch.testing.assert_close(grouped[4][0].sum(1), full[4][0].sum(1))
    padded = torch.nn.functional.pad(full[4][0], (0, channels * group - 700))
    torch.testing.assert_close(grouped[4][0], padded.reshape(100, channels, group).sum(2))


def test_binarize_and_dt(tmp_path):
    write(tmp_path / "shd_train.h5")
    counts = SHD(tmp_path, dt=20.0, duration=1400.0, binarize=False, cache=False)
    spikes = SHD(tmp_path, dt=20.0, duration=1400.0, cache=False)
    assert counts.T == 70 and counts[0][0].shape == (70, 700) and counts[0][0].max() > 1
    torch.testing.assert_close(spikes[0][0], (counts[0][0] > 0).float())


def test_writer_round_trips_through_tonic(tmp_path):
    times, units, labels = write(tmp_path / "SHD" / "shd_test.h5", n=10)
    with mock.patch.object(tonic.datasets.SHD, "_check_exists", return_value=True):
        reference = tonic.datasets.SHD(save_to=str(tmp_path), train=False)
        assert [key.decode() for key in reference.classes] == KEYS
        for i in range(10):
            events, label = reference[i]
            order = np.argsort(times[i], kind="stable")  # the writer sorts each sample by time
            np.testing.assert_array_equal(events["t"], spikes_us(times[i])[order])
            np.testing.assert_array_equal(events["x"], units[i][order])
            assert label == labels[i]


def test_second_construction_reads_the_cache(tmp_path, monkeypatch):
    write(tmp_path / "shd_train.h5")
    first = SHD(tmp_path, channel_group=5)
    monkeypatch.setattr(shd_module, "open_reader", mock.Mock(side_effect=AssertionError("file read again")))
    second = SHD(tmp_path, channel_group=5)
    assert second.cache_path == first.cache_path and second.class_names == KEYS
    torch.testing.assert_close(second[9][0], first[9][0])
    keys = {first.cache_path}
    monkeypatch.undo()
    for options in (dict(dt=5.0), dict(duration=500.0), dict(channel_group=1), dict(binarize=False)):
        keys.add(SHD(tmp_path, **{"channel_group": 5, **options}).cache_path)
    assert len(keys) == 5


def test_missing_key_is_named(tmp_path):
    path = tmp_path / "shd_train.h5"
    write(path)
    with h5py.File(path, "a") as handle:
        del handle["spikes/units"]
    with pytest.raises(CorruptFileError, match=rf"{path}.*spikes/units"):
        SHD(tmp_path, skip_bad=True)


def test_not_hdf5_is_corrupt(tmp_path):
    (tmp_path / "shd_train.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(CorruptFileError, match="shd_train.h5"):
        SHD(tmp_path)


def test_bad_unit_is_named_or_skipped(tmp_path):
    path = tmp_path / "shd_train.h5"
    _, _, labels = write(path)
    with h5py.File(path, "a") as handle:
        units = handle["spikes/units"][7]
        units[0] = 700
        handle["spikes/units"][7] = units
    with pytest.raises(CorruptFileError, match=rf"{path}: sample 7 has units .*700"):
        SHD(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 corrupt of 30"):
        ds = SHD(tmp_path, skip_bad=True)
    assert ds.n_skipped == 1 and len(ds) == 29 and ds.targets.tolist() == np.delete(labels, 7).tolist()


def test_missing_file_raises_one_clear_error_quickly(tmp_path):
    started = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as info:
        SHD(tmp_path, train=False)
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "shd_test.h5" in message and "shd_train.h5" in message and f"{tmp_path}/SHD" in message
    assert "zenkelab.org/datasets" in message and "compneuro.net" in message
    assert list(tmp_path.iterdir()) == []


def test_bad_channel_group_is_a_config_error(tmp_path):
    write(tmp_path / "shd_train.h5", n=2)
    with pytest.raises(ConfigError, match="channel_group"):
        SHD(tmp_path, channel_group=0)


def test_writer_rejects_bad_samples(tmp_path):
    with pytest.raises(ConfigError, match="units"):
        write_shd_h5(tmp_path / "a.h5", [[0.1]], [[700]], [0])
    with pytest.raises(ConfigError, match="times"):
        write_shd_h5(tmp_path / "a.h5", [[0.1, 0.2]], [[1]], [0])
    write_shd_h5(tmp_path / "b.h5", [[0.2, 0.1]], [[1, 2]], [3])
    with h5py.File(tmp_path / "b.h5") as handle:
        assert handle["spikes/times"][0].dtype == np.float16 and handle["spikes/units"][0].tolist() == [2, 1]
        assert handle["extra/keys"][3] == b"3" and handle["labels"][()].tolist() == [3]
