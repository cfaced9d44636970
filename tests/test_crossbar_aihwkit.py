"""Cross-check of the crossbar's noise statistics against aihwkit's PCM and Wan 2022 models, and a small
`spikelab bench crossbar` with its aihwkit variants (optional extra
``crossbar-check`` plus ``pip install --no-deps aihwkit==1.1.0``; skipped where aihwkit is not installed, failed
under ``SPIKELAB_REQUIRE_ALL=1``)."""
import json

import pytest
import torch

from parts import need
from spikelab.backends import crossbar
from spikelab.bench import format_crossbar_table, run_crossbar_benchmark
from spikelab.backends.crossbar import tile

INSTALL = "pip install -e '.[crossbar-check]' && pip install --no-deps aihwkit==1.1.0"
aihwkit_pcm = need("aihwkit.inference.noise.pcm", INSTALL)
aihwkit_reram = need("aihwkit.inference.noise.reram", INSTALL)
pytestmark = pytest.mark.crossbar_check

CELLS = 1_000_000


def _targets(g_max):
    return torch.linspace(0.05 * g_max, g_max, CELLS, dtype=torch.float64).reshape(2, 500, 1000)


def _binned_std(error, target, g_max, bins=10):
    """Std of the error in 10 conductance bins (the statistic both must share)."""
    index = (target / g_max * bins).clamp(max=bins - 1e-9).long()
    return torch.stack([error[index == b].std() for b in range(1, bins)])


@pytest.mark.parametrize("name, g_max", [("pcm", 25.0), ("wan2022", 40.0)])
def test_programming_noise_matches_aihwkit_within_two_percent(name, g_max):
    target = _targets(g_max)
    ours = tile.program(target, crossbar.Device(g_max=g_max, programming_noise=name), 0, "check")["programmed"]
    torch.manual_seed(0)
    model = (aihwkit_pcm.PCMLikeNoiseModel(g_max=g_max) if name == "pcm"
             else aihwkit_reram.ReRamWan2022NoiseModel(g_max=g_max))
    theirs = model.apply_programming_noise_to_conductance(target.float()).double()
    ratio = _binned_std(ours - target, target, g_max) / _binned_std(theirs - target.float().double(), target, g_max)
    assert torch.all((ratio - 1).abs() < 0.02), ratio


def test_pcm_drift_and_accumulated_noise_match_aihwkit_after_one_day():
    g_max, t = 25.0, 86400.0
    target = _targets(g_max)
    device = crossbar.Device(g_max=g_max, drift="pcm", retention="pcm")
    state = tile.program(target, device, 1, "check")                 # no programming noise: g_prog = target
    ours = tile.conductances_at(state, device, t)
    torch.manual_seed(1)
    model = aihwkit_pcm.PCMLikeNoiseModel(g_max=g_max)
    nu = model.generate_drift_coefficients(target.float())
    theirs = model.apply_drift_noise_to_conductance(target.float(), nu, t).double()
    for stat in (lambda g: g.mean(), lambda g: g.std()):
        for b in range(2, 10):
            band = (target >= b * 0.1 * g_max) & (target < (b + 1) * 0.1 * g_max)
            assert stat(ours[band]).item() == pytest.approx(stat(theirs[band]).item(), rel=0.02)


def test_wan2022_one_day_spread_matches_aihwkit():
    g_max = 40.0
    target = _targets(g_max)
    device = crossbar.Device(g_max=g_max, programming_noise="wan2022", retention="wan2022")
    ours = tile.conductances_at(tile.program(target, device, 2, "check"), device, 86400.0)
    torch.manual_seed(2)
    model = aihwkit_reram.ReRamWan2022NoiseModel(g_max=g_max)
    theirs = model.apply_drift_noise_to_conductance(target.float(), target.float(), 86400.0).double()
    ratio = _binned_std(ours - target, target, g_max) / _binned_std(theirs - target, target, g_max)
    assert torch.all((ratio - 1).abs() < 0.02), ratio


def test_small_crossbar_benchmark_times_every_variant_and_aihwkit(capsys):
    result = run_crossbar_benchmark(rounds=2, warmup=1, threads=1, batch=2, steps=4, in_features=600,
                                    out_features=8)
    assert capsys.readouterr().out == "" and not result["missing"]
    json.dumps(result)                                   # serialisable for `spikelab bench crossbar --json`
    variants = result["variants"]
    assert {"plain", "ideal", "noise+adc", "noise+adc-torch", "read-noise", "read-noise-torch", "plain-steps",
            "noise+adc-steps", "read-noise-steps", "resample", "aihwkit", "aihwkit-perfect"} <= set(variants)
    for v in variants.values():
        assert len(v["times_ms"]) == 2 and v["iqr_ms"][0] <= v["median_ms"] <= v["iqr_ms"][1]
        assert v["cpu_median_ms"] >= 0
    bases = {name: "plain-steps" if name.endswith("-steps") else "plain" for name in variants}
    assert set(result["ratios"]) == set(result["cpu_ratios"]) == {f"{name}/{base}" for name, base in bases.items()
                                                                  if name != base}
    assert len(result["goals"]) == 3
    table = format_crossbar_table(result)
    assert all(name in table for name in variants) and table.count("goal ") == 3 and "CPU ratio" in table
