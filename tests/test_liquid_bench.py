"""The liquid benchmark runs small and prints nothing; its result is JSON and its table names every variant."""
import json

import pytest

from spikelab.bench import format_liquid_table, run_liquid_benchmark
from spikelab.errors import ConfigError


def test_small_benchmark_result(capsys):
    result = run_liquid_benchmark(rounds=2, batch=2, size=27, large_size=64, batch_large=1, rounds_large=2, steps=30,
                                  n_input=20)
    assert capsys.readouterr().out == ""
    json.dumps(result)
    assert set(result["variants"]) == {"nalsm27-1t", "nalsm27-2t", "lsm27-1t", "nalsm64-2t"}
    for v in result["variants"].values():
        assert len(v["times_ms"]) == 2 and v["samples_per_s"] == pytest.approx(1e3 * v["batch"] / v["median_ms"])
    assert list(result["goals"]) == ["nalsm27-2t samples/s >= 100"]
    assert result["goals"]["nalsm27-2t samples/s >= 100"] == (result["variants"]["nalsm27-2t"]["samples_per_s"] >= 100)
    table = format_liquid_table(result)
    assert all(name in table for name in result["variants"]) and "goal nalsm27-2t" in table


def test_bad_rounds():
    with pytest.raises(ConfigError):
        run_liquid_benchmark(rounds=1)
