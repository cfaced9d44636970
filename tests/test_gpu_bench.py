"""``spikelab bench gpu``: a clear error without CUDA, and its whole code path on the CPU at tiny sizes."""
import json

import pytest
import torch

from spikelab.bench import format_gpu_table, run_gpu_benchmark
from spikelab.cli import main
from spikelab.errors import ConfigError

TINY = dict(sizes=(48,), steps=12, batch=3, rounds=2, warmup=1, memory_steps=(8,))


def test_without_cuda_it_says_so(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU.*--device cpu"):
        run_gpu_benchmark(**TINY)
    assert main(["bench", "gpu"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_bad_precision_and_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="precisions"):
        run_gpu_benchmark(**{**TINY, "device": "cpu", "precisions": ("fp8",)})
    with pytest.raises(ConfigError, match="sizes"):
        run_gpu_benchmark(**{**TINY, "device": "cpu", "sizes": (0,)})


def test_cpu_smoke_run_measures_every_variant_in_both_precisions():
    result = run_gpu_benchmark(device="cpu", **TINY)
    assert [(run["n"], run["precision"]) for run in result["runs"]] == [(48, "fp32"), (48, "bf16")]
    for run in result["runs"]:
        variants = run["variants"]
        assert {"spikelab", "snntorch", "floor"} <= set(variants) and not run["failed"]
        for v in variants.values():
            assert len(v["times_ms"]) == 2 and v["median_ms"] > 0 and v["peak_mib"] > 0
        assert run["x_spikelab"]["spikelab"] == 1
        assert {"ultralif", "ultralif_loop"} <= set(variants) and run["ultralif_loop/ultralif"] > 0
        # the fused scan and the loop of steps: the same UltraLIF, the same loss (float rounding apart)
        if run["precision"] == "fp32":
            assert variants["ultralif"]["loss"] == pytest.approx(variants["ultralif_loop"]["loss"], rel=1e-5)
        assert 0 < variants["spikelab"]["spike_rate"] < 1
    fp32 = result["runs"][0]["variants"]
    # the same equations: snnTorch's Leaky and spikelab's LIF fire the same spikes on the same float input
    assert fp32["snntorch"]["loss"] == fp32["spikelab"]["loss"]
    assert result["memory"]["rows"][0]["steps"] == 8
    table = format_gpu_table(result)
    assert "n=48 fp32" in table and "n=48 bf16" in table and "SLTT" in table and "UltraLIF fused scan" in table
    assert json.loads(json.dumps(result)) == result


def test_cli_writes_the_json(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--device", "cpu", "--sizes", "32", "--steps", "8", "--batch", "2", "--rounds", "2",
                 "--precisions", "fp32", "--memory-steps", "6", "--out", str(out)]) == 0
    assert "n=32 fp32" in capsys.readouterr().out
    assert json.loads(out.read_text())["config"]["sizes"] == [32]
