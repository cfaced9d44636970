"""The LIF benchmark runs small, prints nothing, and its variants compute the same loss."""
import json

import pytest

from spikelab.errors import ConfigError
from spikelab.bench import format_lif_table, run_lif_benchmark

from parts import need


def test_small_benchmark_result(capsys):
    need("snntorch")
    result = run_lif_benchmark(rounds=2, warmup=1, threads=1, batch=2, steps=6, sizes=(12, 8, 3), seed=1)
    assert capsys.readouterr().out == ""
    json.dumps(result)  # serialisable for `spikelab bench lif --json`
    variants = result["variants"]
    assert {"spikelab", "snntorch", "floor"} <= set(variants)
    for v in variants.values():
        assert len(v["times_ms"]) == 2 and v["iqr_ms"][0] <= v["median_ms"] <= v["iqr_ms"][1]
    assert result["loss_check"]["agree"], result["loss_check"]
    assert variants["spikelab"]["grad_norm_w1"] == pytest.approx(variants["snntorch"]["grad_norm_w1"], rel=1e-5)
    assert set(result["ratios"]) == {"snntorch/spikelab", "spikingjelly/spikelab", "spikelab/floor"}
    table = format_lif_table(result)
    assert "spikelab" in table and "loss check" in table


def test_missing_peer_is_reported(monkeypatch):
    import spikelab.bench.lif as bench

    monkeypatch.setitem(bench.PEERS, "spikingjelly", ("no-such-package-xyz", None))
    result = run_lif_benchmark(rounds=2, warmup=0, threads=1, batch=2, steps=4, sizes=(6, 4, 2))
    assert "spikingjelly" not in result["variants"]
    assert "not installed" in result["missing"]["spikingjelly"]
    assert result["ratios"]["spikingjelly/spikelab"] is None
    assert "n/a" in format_lif_table(result)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        run_lif_benchmark(rounds=1)
    with pytest.raises(ConfigError):
        run_lif_benchmark(reset="none")


def test_sltt_memory_stays_flat_while_bptt_grows():
    from spikelab.bench import format_memory_table, run_memory_benchmark

    result = run_memory_benchmark(steps=(20, 80), batch=8, sizes=(60, 48, 48, 5), threads=1)
    short, long = result["rows"]
    assert long["bptt_mib"] > 3 * short["bptt_mib"]          # BPTT keeps every step's activations
    # SLTT frees each step's graph after its backward: only the per-step outputs it keeps grow with T
    assert long["sltt_mib"] - short["sltt_mib"] < 0.1 * (long["bptt_mib"] - short["bptt_mib"])
    assert long["sltt/bptt"] < short["sltt/bptt"] < 1.0
    assert "SLTT/BPTT" in format_memory_table(result)


def test_ultra_benchmark_times_the_fused_scan_against_the_loop(capsys):
    from spikelab.bench import format_ultra_table, run_ultra_benchmark

    result = run_ultra_benchmark(rounds=2, warmup=1, batch=2, steps=6, features=5)
    assert capsys.readouterr().out == ""
    assert json.loads(json.dumps(result)) == result
    assert sorted(result["layers"]) == sorted(("ultralif", "ultraplif", "ultradlif", "ultradplif"))
    for r in result["layers"].values():
        assert len(r["fused"]["times_ms"]) == len(r["loop"]["times_ms"]) == 2 and r["loop/fused"] > 0
        assert r["max_abs_diff"] < 1e-5      # the two compute the same spikes and input gradient
    assert "loop/fused" in format_ultra_table(result)
