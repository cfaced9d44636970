"""The STDP benchmark runs small, prints nothing, and reproduces SpikingJelly's update when it is installed."""
import json

import pytest

from spikelab.bench import format_stdp_table, run_stdp_benchmark
from spikelab.bench.timing import package_version
from spikelab.errors import ConfigError


def test_small_benchmark_result(capsys):
    result = run_stdp_benchmark(rounds=2, warmup=1, threads=1, batch=2, steps=20, sizes=(30, 10), seed=1)
    assert capsys.readouterr().out == ""
    json.dumps(result)  # serialisable for `spikelab bench stdp --json`
    variants = result["variants"]
    assert {"forward", "spikelab", "nearest", "matmul"} <= set(variants)
    for v in variants.values():
        assert len(v["times_ms"]) == 2 and v["iqr_ms"][0] <= v["median_ms"] <= v["iqr_ms"][1]
    assert result["ratios"]["spikelab/forward"] > 0
    if package_version("spikingjelly") is None:
        assert "not installed" in result["missing"]["spikingjelly"] and "n/a" in format_stdp_table(result)
    elif "spikingjelly" in variants:    # the same delta_w from the same spikes, in SpikingJelly's conventions
        assert result["agreement"] < 1e-5
    assert "x forward" in format_stdp_table(result)


def test_bad_rounds():
    with pytest.raises(ConfigError):
        run_stdp_benchmark(rounds=1)
