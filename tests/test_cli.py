"""The spikelab command, run as a user runs it: in a subprocess, on the built-in demo set."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from spikelab.cli import build_parser, main
from spikelab.training import load_checkpoint

TINY = ["--hidden", "32", "--epochs", "3", "--batch-size", "128", "--no-progress", "--seed", "1"]


def spikelab(*args, check=True, **kwargs):
    result = subprocess.run([sys.executable, "-m", "spikelab.cli", *args], capture_output=True, text=True,
                            env=os.environ.copy(), timeout=900, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"spikelab {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def test_every_option_is_described():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "eval", "models", "bench", "data", "inspect", "export", "import"}
    nested = {}
    for name, command in commands.items():
        if command._subparsers is not None:       # export TARGET, import FORMAT
            for sub, parser in command._subparsers._group_actions[0].choices.items():
                nested[f"{name} {sub}"] = parser
    assert {"export nest", "export spinnaker", "export pynn-script", "export nir", "import nir"} <= set(nested)
    for name, command in {**commands, **nested}.items():
        for action in command._actions:
            if action.dest not in ("help", "target", "format"):
                assert action.help, f"spikelab {name} {action.option_strings or action.dest} has no help text"
    train_options = {s for a in commands["train"]._actions for s in a.option_strings}
    assert {"--model", "--dataset", "--data-dir", "--dt", "--epochs", "--batch-size", "--lr", "--neuron", "--mode",
            "--seed", "--device", "--out", "--resume"} <= train_options


def test_models_lists_architectures(capsys):
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    for name in ("mlp", "conv", "rsnn"):
        assert name in listed


def test_train_then_eval_on_demo(tmp_path):
    run = tmp_path / "run"
    trained = spikelab("train", *TINY, "--out", str(run))
    assert "test accuracy" in trained.stdout
    for name in ("last.pt", "best.pt", "metrics.jsonl", "curve.png", "val_indices.json", "test.json"):
        assert (run / name).is_file(), name
    test_result = json.loads((run / "test.json").read_text())
    assert test_result["accuracy"] > 0.5  # 3 short epochs of a tiny net: far above chance (0.1)
    evaluated = spikelab("eval", str(run), "--no-progress")
    assert f"test accuracy {test_result['accuracy']:.4f}" in evaluated.stdout
    assert "confusion matrix" in evaluated.stdout
    rows = [line for line in evaluated.stdout.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 11  # header of class numbers plus one row per class
    val = json.loads((run / "val_indices.json").read_text())["val"]
    assert len(val) == len(set(val)) and 100 < len(val) < 200  # 10 % of the 1,438 demo training recordings


def test_kill_9_then_resume_gives_same_result(tmp_path):
    straight = tmp_path / "straight"
    spikelab("train", *TINY, "--epochs", "4", "--out", str(straight))
    interrupted = tmp_path / "interrupted"
    command = [sys.executable, "-m", "spikelab.cli", "train", *TINY, "--epochs", "4", "--out", str(interrupted)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    metrics = interrupted / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # into the third epoch
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert load_checkpoint(interrupted / "last.pt")["epoch"] < 4
    resumed = spikelab("train", *TINY, "--epochs", "4", "--out", str(interrupted), "--resume")
    assert "resuming" in resumed.stdout
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(interrupted / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    for name, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][name]), name
    drop_time = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop_time(a["metrics"]) == drop_time(b["metrics"])
    assert json.loads((straight / "test.json").read_text())["accuracy"] == \
        json.loads((interrupted / "test.json").read_text())["accuracy"]


def test_bad_checkpoint_is_one_line_error_without_traceback(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_text("not a checkpoint")
    result = spikelab("eval", str(bogus), check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "not a spikelab checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_names_the_files(tmp_path, capsys):
    # in-process, so the test's network block applies: the download attempt fails as it would offline
    code = main(["train", "--dataset", "shd", "--data-dir", str(tmp_path / "nothing"), "--no-progress",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "shd_train.h5" in err


def test_option_that_does_not_apply_is_refused(tmp_path):
    result = spikelab("train", "--dataset", "demo", "--channel-group", "5", "--out", str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "--channel-group" in result.stderr and "Traceback" not in result.stderr


def write_learnable_shd(folder, n, seed):
    """SHD-layout files where class c fires channels 100c..100c+99 (classes 0..3): learnable in one epoch."""
    import numpy as np

    from spikelab.datasets import write_shd_h5

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    times = [np.sort(rng.uniform(0, 0.45, 300)) for _ in labels]
    units = [rng.integers(100 * c, 100 * c + 100, 300) for c in labels]
    write_shd_h5(folder, times, units, labels)


def test_train_and_eval_rsnn_on_shd_files(tmp_path, capsys):
    write_learnable_shd(tmp_path / "shd" / "shd_train.h5", 120, seed=0)
    write_learnable_shd(tmp_path / "shd" / "SHD_unused.h5", 1, seed=2)  # other files in the folder are ignored
    write_learnable_shd(tmp_path / "shd" / "shd_test.h5", 40, seed=1)
    run = tmp_path / "run"
    code = main(["train", "--dataset", "shd", "--data-dir", str(tmp_path / "shd"), "--model", "rsnn", "--hidden", "24",
                 "--dt", "50", "--duration", "500", "--channel-group", "10", "--epochs", "3", "--batch-size", "16",
                 "--lr", "0.01", "--mode", "sltt", "--no-progress", "--out", str(run)])
    out = capsys.readouterr().out
    assert code == 0
    assert "input (70,) x T=10" in out
    assert json.loads((run / "test.json").read_text())["accuracy"] > 0.5  # 4 classes: chance is 0.25
    assert main(["eval", str(run / "last.pt"), "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_existing_run_is_never_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_text("a previous run's checkpoint")
    assert main(["train", "--out", str(run), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run / "last.pt").read_text() == "a previous run's checkpoint"


def test_resume_before_first_checkpoint_starts_over(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run), "--resume"]) == 0
    assert "starting from the beginning" in capsys.readouterr().out
    assert (run / "best.pt").is_file()


def test_ultra_neuron_at_one_time_bin_reports_soft_and_hard_spikes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--neuron", "ultradlif", "--time-bins", "1", "--sparsity", "0.1", "--hidden", "16",
                 "--readout-beta", "0", "--epochs", "1", "--no-progress", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "x T=1 (dt 300 ms)," in out and "hard (binary) spikes" in out
    result = json.loads((run / "test.json").read_text())
    assert 0 < result["spike_rate"] < 1 and 0 <= result["hard_spikes"]["accuracy"] <= 1
    assert result["synops"] > 0
    model = load_checkpoint(run / "best.pt")
    assert model["config"]["sparsity"] == 0.1 and model["model_spec"]["layers"][2]["type"] == "UltraDLIF"


def test_shd_delays_model_needs_its_delays(tmp_path, capsys):
    """On SHD-layout data whose classes differ only in timing, learned delays solve what no delays cannot."""
    assert main(["data", "synth-shd", str(tmp_path / "data"), "--train", "400", "--test", "100", "--classes", "4"]) == 0
    accuracy = {}
    for flag in ("learned", "--fixed-delays", "--no-delays"):
        run = tmp_path / flag.strip("-")
        args = ["train", "--dataset", "shd", "--data-dir", str(tmp_path / "data"), "--model", "shd-delays",
                "--hidden", "64", "--duration", "600", "--epochs", "10", "--batch-size", "32", "--no-progress",
                "--out", str(run)]
        assert main(args + ([flag] if flag.startswith("--") else [])) == 0
        accuracy[flag] = json.loads((run / "test.json").read_text())["accuracy"]
        checkpoint = load_checkpoint(run / "best.pt")
        assert checkpoint["config"]["run"]["binning"]["channel_group"] == 5  # the published 700 -> 140
    capsys.readouterr()
    assert accuracy["learned"] > 0.8, accuracy
    assert accuracy["--no-delays"] < 0.5, accuracy  # chance is 0.25
    assert accuracy["learned"] > accuracy["--fixed-delays"], accuracy


def test_delay_flags_need_the_delay_model(capsys):
    assert main(["train", "--model", "mlp", "--no-delays"]) == 2
    assert "shd-delays" in capsys.readouterr().err
