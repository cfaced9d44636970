import numpy as np

from spikelab.cli import main
from spikelab.datasets import SHD
from spikelab.datasets.synth_shd import GROUP_A, GROUP_B, synth_delay_samples


def test_classes_differ_only_in_timing():
    times, units, labels = synth_delay_samples(200, classes=5, background=0, seed=3)
    for t, u, label in zip(times, units, labels):
        assert sorted(u.tolist()) == sorted(GROUP_A.tolist() + GROUP_B.tolist())  # same channels, once each
        gap = t[np.isin(u, GROUP_B)].mean() - t[np.isin(u, GROUP_A)].mean()
        assert abs(gap - label * 0.010) < 0.001
    assert np.bincount(labels).tolist() == [40] * 5


def test_cli_writes_files_the_shd_reader_loads(tmp_path, capsys):
    assert main(["data", "synth-shd", str(tmp_path), "--train", "40", "--test", "20", "--classes", "4"]) == 0
    assert "--dataset shd" in capsys.readouterr().out
    train = SHD(tmp_path, train=True, dt=10.0, duration=1000.0, cache=False)
    test = SHD(tmp_path, train=False, dt=10.0, duration=1000.0, cache=False)
    assert len(train) == 40 and len(test) == 20
    assert set(train.targets.tolist()) == {0, 1, 2, 3}
    frames, label = train[0]
    assert frames.shape == (100, 700) and frames[:, GROUP_A].sum() >= 50  # each group-A channel fires once


def test_bad_sizes_are_refused(tmp_path, capsys):
    assert main(["data", "synth-shd", str(tmp_path), "--classes", "30"]) == 2
    assert "between 2 and 20" in capsys.readouterr().err
