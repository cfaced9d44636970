"""What `spikelab train --dataset NAME` trains when the command line says nothing: one table per dataset
(spikelab.models.DATASET_MODELS, binning in spikelab.datasets.DATASET_DEFAULTS), shown in the help, and the
N-MNIST default runs on the hardware backends."""
import dataclasses
import json

import pytest

from spikelab.backends import spinnaker
from spikelab.cli import build_parser, main
from spikelab.cli.training import dataset_defaults, run_config
from spikelab.datasets import DATASET_DEFAULTS
from spikelab.errors import ConfigError
from spikelab.graph import Network
from spikelab.models import DATASET_MODELS, GENERIC_DEFAULTS, MODEL_DEFAULTS, build_model, training_defaults
from spikelab.run import TrainedRun

NMNIST_INPUT = (2, 34, 34)


def _config(*argv):
    return run_config(build_parser().parse_args(["train", *argv]))


def _options(config) -> dict:
    """A run's model and trainer options, sequences as tuples (as the tables write them)."""
    options = {**config.model_options, **config.trainer}
    return {key: tuple(value) if isinstance(value, list) else value for key, value in options.items()}


def test_every_dataset_has_a_default_model_and_binning():
    assert set(DATASET_MODELS) == set(DATASET_DEFAULTS)
    for dataset, tuned in DATASET_MODELS.items():
        assert set(tuned) - {"model"} <= set(GENERIC_DEFAULTS), dataset    # every tuned option is a train option
        assert training_defaults(dataset)["model"] == tuned["model"]


def test_nmnist_default_resolves_to_the_tabled_model_and_settings():
    tuned = DATASET_MODELS["nmnist"]
    config = _config("--dataset", "nmnist")
    assert config.model == tuned["model"]
    options = _options(config)
    for key, value in tuned.items():
        if key != "model":
            assert options[key] == value, key
    assert dataclasses.asdict(config.binning) == {**dataclasses.asdict(config.binning), **DATASET_DEFAULTS["nmnist"]}


def test_the_command_line_wins_and_another_model_does_not_take_the_datasets_settings():
    tuned = DATASET_MODELS["nmnist"]
    config = _config("--dataset", "nmnist", "--epochs", "3", "--dropout", "0.1")
    assert (config.trainer["epochs"], config.model_options["dropout"]) == (3, 0.1)
    other = next(name for name in ("mlp", "conv") if name != tuned["model"])
    options = _options(_config("--dataset", "nmnist", "--model", other))
    for key in set(tuned) - {"model"}:
        if key in options:
            assert options[key] == GENERIC_DEFAULTS[key], key
    delays = _config("--dataset", "shd", "--model", "shd-delays")
    assert delays.trainer["epochs"] == MODEL_DEFAULTS["shd-delays"]["epochs"]
    assert delays.binning.channel_group == MODEL_DEFAULTS["shd-delays"]["channel_group"]
    with pytest.raises(ConfigError, match="unknown dataset"):
        training_defaults("mnist")


def test_help_and_models_show_the_table(capsys):
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    described = " ".join(train.format_help().split())
    for line in dataset_defaults():
        assert line in described
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    for dataset, tuned in DATASET_MODELS.items():
        assert f"{dataset}: {tuned['model']}" in listed


def test_nmnist_default_model_converts_to_the_hardware_graph_and_fits_spinnaker():
    config = _config("--dataset", "nmnist")
    model = build_model(config.model, NMNIST_INPUT, 10, dt=config.dt, **config.model_options)
    network = Network.from_model(model, config.dt, NMNIST_INPUT)
    assert network.input.size == 2 * 34 * 34 and network.populations[-1].size == 10
    pools = [p.name for p in network.populations if p.kind == "or"]     # max pooling: one OR population per block
    assert pools == (["pool1", "pool2"] if config.model_options["pool"] == "max" else [])
    report = spinnaker.check(network)
    assert report.ok, report.format()


def test_nmnist_default_trained_on_the_real_sample_passes_the_spinnaker_check(nmnist_sample, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "nmnist", "--data-dir", str(nmnist_sample), "--epochs", "1",
                 "--no-progress", "--out", str(run_dir)]) == 0
    assert TrainedRun.load(run_dir).config.model == DATASET_MODELS["nmnist"]["model"]
    capsys.readouterr()
    assert main(["export", "spinnaker", str(run_dir), "--check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["check"]["ok"]
