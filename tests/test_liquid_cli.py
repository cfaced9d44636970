"""``spikelab train --model nalsm``, ``eval`` and ``inspect`` of liquid runs, on a small liquid and the demo set."""
import json
import os
import subprocess
import sys

import pytest

from spikelab.cli import build_parser, main
from spikelab.cli import liquid as liquid_cli
from spikelab.liquid.protocol import RIDGE_PENALTIES, NALSMResult
from spikelab.run import RunConfig
from spikelab.training import load_checkpoint

#: 64 neurons (4x4x4), 100 ms per sample, a short initialisation: seconds, not minutes
SMALL = ["--model", "nalsm", "--dataset", "demo", "--liquid-size", "64", "--duration", "100", "--init-samples",
         "40", "--seed", "1", "--no-progress"]


@pytest.fixture(scope="module")
def liquid_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("liquid") / "run"
    assert main(["train", *SMALL, "--out", str(run)]) == 0
    return run


def test_train_writes_a_run_folder(liquid_run):
    for name in ("best.pt", "last.pt", "metrics.jsonl", "val_indices.json", "test.json"):
        assert (liquid_run / name).is_file(), name
    result = json.loads((liquid_run / "test.json").read_text())
    assert result["n"] == 359 and result["accuracy"] > 0.3          # ten classes: chance is 0.1
    assert result["branching_factor"] > 0 and result["rate_hz"] > 0
    checkpoint = load_checkpoint(liquid_run / "best.pt")
    config = RunConfig.from_dict(checkpoint["config"]["run"])
    assert config.model == "nalsm" and config.dt == 1.0 and config.binning.duration == 100.0
    assert config.model_options == {"liquid_size": 64, "stdp": True, "astrocyte": True, "astro_weight": 0.015}
    assert config.trainer["init_samples"] == 40
    # phase 1 changed the weights (W_INI) away from the all-maximal start
    topology_weight = checkpoint["model_state"]["topology"]["weight"]
    assert (checkpoint["model_state"]["weight"] != topology_weight).any()
    # the library reads the run's checkpoint as it reads run_nalsm's: the readout chosen on validation
    saved = NALSMResult.load(liquid_run / "best.pt")
    assert saved.accuracy["test"] == result["accuracy"] and saved.config["readout"] == "ridge"
    rows = [json.loads(line) for line in (liquid_run / "metrics.jsonl").read_text().splitlines()]
    assert [row["ridge"] for row in rows] == list(RIDGE_PENALTIES)
    assert result["val_accuracy"] == max(row["val_accuracy"] for row in rows)


def test_eval_reproduces_the_test_accuracy(liquid_run, capsys):
    result = json.loads((liquid_run / "test.json").read_text())
    assert main(["eval", str(liquid_run), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"test accuracy {result['accuracy']:.4f}" in printed
    assert f"branching factor {result['branching_factor']:.3f}" in printed


def test_inspect_prints_the_liquid_and_saves_histograms(liquid_run, capsys):
    assert main(["inspect", str(liquid_run), "--samples", "5"]) == 0
    printed = capsys.readouterr().out
    for text in ("branching factor", "mean rate", "input -> liquid", "excitatory -> liquid", "inhibitory -> liquid",
                 "spectral radius"):
        assert text in printed, text
    assert (liquid_run / "liquid.png").stat().st_size > 10_000


def _options(*extra):
    return build_parser().parse_args(["train", *SMALL, *extra])


def test_ablations_reach_the_liquid():
    nalsm = _build(_with_shape(liquid_cli.run_config(_options("--astro-weight", "0.05"))))
    assert nalsm.plasticity.stdp and nalsm.plasticity.astrocyte and nalsm.plasticity.astro_w == 0.05
    no_astro = liquid_cli.run_config(_options("--no-astrocyte"))
    assert no_astro.model_options["astrocyte"] is False and no_astro.model_options["stdp"] is True
    assert not _build(_with_shape(no_astro)).plasticity.astrocyte
    fixed = liquid_cli.run_config(_options("--no-stdp"))
    assert fixed.model_options["stdp"] is False and fixed.trainer["init_samples"] == 0
    assert not _build(_with_shape(fixed)).plasticity.stdp
    # the readout names are the protocol's; the paper's w_A per size
    from spikelab.liquid.protocol import READOUTS
    for readout in READOUTS:
        assert liquid_cli.run_config(_options("--readout", readout)).trainer["readout"] == readout
    assert liquid_cli.run_config(_options("--liquid-size", "8000")).model_options["astro_weight"] == 0.0075


def _build(config):
    return liquid_cli.nalsm_config(config).build_liquid()


def _with_shape(config):
    config.input_shape = (2, 17, 17)
    return config


@pytest.mark.parametrize("extra, message", [
    (["--liquid-size", "10"], "not a cube"),
    (["--dt", "5"], "1 ms"),
    (["--no-stdp", "--astro-weight", "0.1"], "no effect"),
    (["--init-ms", "500"], "longer than"),
    (["--astro-weight", "-1"], "0 or more"),
    (["--resume"], "cannot be resumed"),
])
def test_bad_options_are_named_errors(extra, message, tmp_path, capsys):
    assert main(["train", *SMALL, *extra, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_bad_input_prints_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "spikelab.cli", "train", *SMALL, "--liquid-size", "10", "--out",
                             str(tmp_path / "run")], capture_output=True, text=True, env=os.environ.copy(),
                            timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_inspect_rejects_zero_samples(liquid_run, capsys):
    assert main(["inspect", str(liquid_run), "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err
