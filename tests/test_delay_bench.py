"""`spikelab bench delays` runs small, prints nothing, agrees with DCLS (the test extra installs it), counts memory."""
import json

import pytest
import torch

import spikelab.bench.delays as bench
from spikelab.bench import format_delays_table, run_delays_benchmark
from spikelab.training.memory import peak_allocated_bytes
from spikelab.cli import build_parser
from spikelab.errors import ConfigError

from parts import need

SMALL = dict(rounds=2, warmup=1, threads=1, batch=3, steps=12, max_delay=4, layers=((10, 6), (6, 5)), seed=1)


def test_small_delays_benchmark(capsys):
    need("DCLS")
    result = run_delays_benchmark(**SMALL)
    assert capsys.readouterr().out == ""
    json.dumps(result)  # serialisable for `spikelab bench delays --json`
    first, second = result["layers"]
    assert not first["input_grad"] and second["input_grad"]
    for layer in result["layers"]:
        variants = layer["variants"]
        assert {"spikelab", "spikelab-conv", "spikelab-eval"} <= set(variants)
        for v in variants.values():
            assert len(v["times_ms"]) == 2 and v["iqr_ms"][0] <= v["median_ms"] <= v["iqr_ms"][1]
            assert v["peak_mib"] >= 0
        assert {"dcls", "dcls-paper", "dcls-eval"} <= set(variants)     # the test extra installs dcls
        for check in layer["check"].values():
            assert check["agree"], check
        assert layer["ratios"]["dcls/spikelab"] > 0
    table = format_delays_table(result)
    assert "spikelab" in table and "check" in table and "10 -> 6" in table


def test_missing_dcls_is_reported(monkeypatch):
    real = bench.package_version
    monkeypatch.setattr(bench, "package_version", lambda package: None if package == "dcls" else real(package))
    result = run_delays_benchmark(**{**SMALL, "layers": ((6, 4),), "memory": False})
    assert "dcls" not in result["layers"][0]["variants"] and "not installed" in result["missing"]["dcls"]
    assert result["layers"][0]["ratios"]["dcls/spikelab"] is None
    assert "n/a" in format_delays_table(result)
    with pytest.raises(ConfigError, match="rounds"):
        run_delays_benchmark(rounds=1)


class _Scratch(torch.autograd.Function):
    """Allocates 8 MB inside its forward and frees it before returning."""

    @staticmethod
    def forward(ctx, x):
        scratch = torch.ones(2 * 2**20)
        return x + scratch[:1].sum()

    @staticmethod
    def backward(ctx, grad):
        return grad


def test_peak_memory_sees_memory_freed_inside_an_operator():
    x = torch.zeros(4, requires_grad=True)
    assert peak_allocated_bytes(lambda: _Scratch.apply(x).sum().backward()) >= 8 * 2**20
    assert peak_allocated_bytes(lambda: torch.empty(2**20)) >= 4 * 2**20


def test_cli_accepts_bench_delays():
    args = build_parser().parse_args(["bench", "delays", "--rounds", "5", "--json"])
    assert args.target == "delays" and args.rounds == 5 and args.json
