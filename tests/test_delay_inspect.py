"""`spikelab inspect`: delay histograms of a trained run (text summary and PNG), and its building blocks."""
import os
import re
import subprocess
import sys

import pytest
import torch

from spikelab.cli import main
from spikelab.errors import ConfigError
from spikelab.delays import DelayedLinear, delay_summary
from spikelab.layers import Linear, Sequential
from spikelab.neurons import LIF
from spikelab.plots import plot_delay_histogram

RUN = ["--dataset", "shd", "--model", "shd-delays", "--duration", "300", "--epochs", "1", "--batch-size", "32",
       "--no-progress"]


def spikelab(*args):
    return subprocess.run([sys.executable, "-m", "spikelab.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny shd-delays run (2 x 16 hidden, 1 epoch on synthetic SHD-layout data) and one without delays."""
    root = tmp_path_factory.mktemp("inspect")
    assert main(["data", "synth-shd", str(root / "data"), "--train", "60", "--test", "20", "--classes", "4"]) == 0
    assert main(["train", *RUN, "--data-dir", str(root / "data"), "--hidden", "16,16",
                 "--out", str(root / "delays")]) == 0
    assert main(["train", *RUN, "--data-dir", str(root / "data"), "--hidden", "8", "--no-delays",
                 "--out", str(root / "none")]) == 0
    return root


def test_inspect_prints_histograms_and_saves_png(runs):
    result = spikelab("inspect", str(runs / "delays"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (runs / "delays" / "delays.png").stat().st_size > 1000
    assert "dt 10 ms" in out and "delays.png" in out
    # one block per delay layer: 140 -> 16, 16 -> 16, 16 -> 20 (the readout); counts per delay 0..24 sum to in x out
    blocks = re.split(r"\n(?=layer )", out.split("\n", 1)[1])
    layers = [b for b in blocks if b.startswith("layer ")]
    assert len(layers) == 3
    for block, (n_in, n_out) in zip(layers, [(140, 16), (16, 16), (16, 20)]):
        assert f"DelayedLinear {n_in} -> {n_out}, {n_in * n_out} synapses, learned delays 0-24 steps = 240 ms" in block
        lines = [line for line in block.splitlines() if re.fullmatch(r"\s+(counts\s+)?(\d+:\d+\s*)+", line)]
        counts = {int(d): int(c) for line in lines for d, c in re.findall(r"(\d+):(\d+)", line)}
        assert sorted(counts) == list(range(25)), block
        assert sum(counts.values()) == n_in * n_out, block
        mean = float(re.search(r"mean ([\d.]+) steps = ([\d.]+) ms", block).group(1))
        assert 0 <= mean <= 24
        assert re.search(r"at 0: [\d.]+%, at max \(24\): [\d.]+%", block)
    # --out puts the figure elsewhere
    other = runs / "figures" / "d.png"
    assert spikelab("inspect", str(runs / "delays" / "best.pt"), "--out", str(other)).returncode == 0
    assert other.is_file()


def test_inspect_without_delay_layers_is_one_clear_error(runs):
    result = spikelab("inspect", str(runs / "none"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no synaptic delays" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (runs / "none" / "delays.png").exists()
    missing = spikelab("inspect", str(runs / "nowhere"))
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr and "Traceback" not in missing.stderr


def test_delay_summary_counts_rounded_delays():
    layer = DelayedLinear(3, 2, max_delay=4)
    with torch.no_grad():
        layer.position.copy_(torch.tensor([[0.2, 3.6, 4.0], [1.5, 0.0, 2.49]]))
    net = Sequential(layer, LIF(), Linear(2, 2), DelayedLinear(2, 2, max_delay=0))   # max_delay 0: no delays
    (row,) = delay_summary(net, dt=5.0)
    assert row["name"] == "0" and row["synapses"] == 6 and row["max_delay"] == 4
    assert row["counts"] == [2, 0, 2, 0, 2]          # 0.2, 0.0 -> 0; 1.5, 2.49 -> 2 (half to even); 3.6, 4 -> 4
    assert row["mean"] == pytest.approx(2.0) and row["median"] == 2.0 and row["mean_ms"] == pytest.approx(10.0)
    assert row["share_zero"] == pytest.approx(1 / 3) and row["share_max"] == pytest.approx(1 / 3)
    assert delay_summary(Sequential(Linear(2, 2))) == []


def test_plot_delay_histogram(tmp_path):
    path = plot_delay_histogram({"a": torch.randint(0, 25, (16, 8)), "b": torch.rand(4, 4) * 10}, tmp_path / "h.png",
                                max_delay={"a": 24, "b": 10}, dt=10.0, title="t")
    assert path.is_file() and path.stat().st_size > 1000
    assert plot_delay_histogram({"x": torch.tensor([0.0, 2.0])}, tmp_path / "s.png").is_file()
    with pytest.raises(ConfigError, match="no delays to plot"):
        plot_delay_histogram({}, tmp_path / "empty.png")
