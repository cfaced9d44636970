"""``spikelab export crossbar`` and ``spikelab train --train-noise`` on the demo set."""
import json

from spikelab.cli import main
from spikelab.run import RunConfig
from spikelab.training import load_checkpoint


def test_export_crossbar_prints_accuracy_sweeps_and_a_plot(demo_run, tmp_path, capsys):
    png = tmp_path / "sweep.png"
    assert main(["export", "crossbar", str(demo_run), "--preset", "ideal", "--seeds", "1", "--limit", "60",
                 "--no-progress", "--json"]) == 0
    ideal = json.loads(capsys.readouterr().out)
    assert ideal["samples"] == 60 and ideal["programmed"]["mean"] == ideal["float_accuracy"]   # nothing lost
    assert main(["export", "crossbar", str(demo_run), "--preset", "rram", "--sweep", "noise", "--seeds", "2",
                 "--limit", "60", "--no-progress", "--out", str(png), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in result["sweeps"]] == ["noise"]
    noise = result["sweeps"][0]["points"]
    assert [p["value"] for p in noise] == [0.0, 0.5, 1.0, 2.0, 4.0] and all(len(p["accuracies"]) == 2 for p in noise)
    assert png.is_file() and png.stat().st_size > 10_000
    assert main(["export", "crossbar", str(demo_run), "--sweep", "adc", "--seeds", "1", "--limit", "20",
                 "--no-progress", "--out", str(tmp_path / "adc.png")]) == 0
    printed = capsys.readouterr().out
    assert "ADC bits" in printed and "float" in printed and "one day later" in printed


def test_train_with_noise_records_it_and_refuses_online_modes(tmp_path, capsys):
    run = tmp_path / "noisy"
    assert main(["train", "--hidden", "16", "--epochs", "1", "--batch-size", "128", "--no-progress",
                 "--train-noise", "pcm", "--train-noise-scale", "2", "--out", str(run)]) == 0
    assert "noise-aware training: pcm" in capsys.readouterr().out
    config = load_checkpoint(run / "best.pt")["config"]["run"]
    assert config["train_noise"] == {"preset": "pcm", "scale": 2.0}
    assert RunConfig.from_dict(config).train_noise == {"preset": "pcm", "scale": 2.0}   # kept on --resume
    assert main(["train", "--train-noise", "rram", "--mode", "sltt", "--out", str(tmp_path / "x")]) == 2
    assert "--mode bptt" in capsys.readouterr().err
