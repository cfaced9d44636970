"""The liquid benchmark runs small and prints nothing; its result is JSON and its table names every variant."""
import json

import pytest

from spikelab.bench import format_liquid_table, run_liquid_benchmark
from spikelab.errors import ConfigError


def test_small_benchmark_result(capsys):
    result = run_liquid_benchmark(rounds=2, batch=2, size=27, large_size=64, batch_large=1, rounds_large=2, steps=30,
                                  n_input=20, init_samples=300)
    assert capsys.readouterr().out == ""
    json.dumps(result)
    assert set(result["variants"]) == {"nalsm27-1t", "nalsm27-2t", "lsm27-1t", "nalsm64-2t"}
    for v in result["variants"].values():
        assert len(v["times_ms"]) == 2 and v["samples_per_s"] == pytest.approx(1e3 * v["batch"] / v["median_ms"])
    assert result["config"]["init"] == "300 samples x 20 ms"
    assert list(result["goals"]) == ["nalsm27-2t samples/s >= 100"]
    assert result["goals"]["nalsm27-2t samples/s >= 100"] == (result["variants"]["nalsm27-2t"]["samples_per_s"] >= 100)
    table = format_liquid_table(result)
    assert all(name in table for name in result["variants"]) and "goal nalsm27-2t" in table and "rate Hz" in table


def test_bad_rounds():
    with pytest.raises(ConfigError):
        run_liquid_benchmark(rounds=1)


def test_cli_leaves_the_large_liquid_out(monkeypatch, tmp_path, capsys):
    """``spikelab bench liquid --no-large`` runs without NALSM8000; without the flag the function's default runs."""
    from spikelab import bench
    from spikelab.cli import main

    calls = []

    def small(rounds, **options):
        calls.append(options)
        return run_liquid_benchmark(rounds=2, batch=2, size=27, steps=20, n_input=10, init_samples=20,
                                    large_size=options.get("large_size", 64), batch_large=1, rounds_large=2)

    monkeypatch.setattr(bench, "run_liquid_benchmark", small)
    assert main(["bench", "liquid", "--no-large", "--out", str(tmp_path / "a.json")]) == 0
    assert calls[-1] == {"large_size": None} and "nalsm64" not in capsys.readouterr().out
    assert main(["bench", "liquid", "--out", str(tmp_path / "b.json")]) == 0
    assert calls[-1] == {} and "nalsm64-2t" in capsys.readouterr().out


def test_benchmark_on_real_recordings(nmnist_sample, monkeypatch, tmp_path, capsys):
    """``--data-dir``: phase 1 and the timed extraction run on N-MNIST recordings (2312 channels), and say so."""
    result = run_liquid_benchmark(rounds=2, batch=2, size=27, large_size=None, steps=40, init_samples=6,
                                  data_dir=str(nmnist_sample))
    assert result["config"]["n_input"] == 2312 and "N-MNIST recordings" in result["config"]["input"]
    assert result["variants"]["nalsm27-1t"]["rate_hz"] > 0       # real events drive a 27-neuron liquid
    assert "N-MNIST recordings" in format_liquid_table(result)

    from spikelab import bench
    from spikelab.cli import main

    calls = []
    monkeypatch.setattr(bench, "run_liquid_benchmark", lambda rounds, **options: calls.append(options) or result)
    assert main(["bench", "liquid", "--data-dir", str(nmnist_sample), "--out", str(tmp_path / "c.json")]) == 0
    assert calls[-1] == {"data_dir": str(nmnist_sample)}

