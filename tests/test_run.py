"""The run description (spikelab.run), the model's own time step, one decoder for every backend, optional packages."""
import numpy as np
import pytest
import torch

import spikelab as sl
from spikelab.decoding import DECODERS, class_scores, predict
from spikelab.errors import ConfigError, MissingDependencyError
from spikelab.optional import require
from spikelab.run import Binning, RunConfig, TrainedRun
from spikelab.training.losses import LOSSES, get_loss


def test_binning_takes_dataset_defaults_and_refuses_options_a_dataset_lacks():
    assert Binning.for_dataset("shd", dt=5.0) == Binning(dt=5.0, duration=1000.0, channel_group=1)
    assert Binning.for_dataset("nmnist").options() == {"dt": 10.0, "duration": 300.0, "binarize": True,
                                                      "downsample": 1}
    with pytest.raises(ConfigError, match="--downsample does not apply to dataset 'shd'"):
        Binning.for_dataset("shd", downsample=2)
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        Binning.for_dataset("mnist")


def test_run_config_round_trips_through_plain_data_and_reads_older_runs():
    config = RunConfig(dataset="demo", data_dir="/data", binning=Binning.for_dataset("demo", dt=5.0), model="mlp",
                       model_options={"hidden": [16]}, trainer={"loss": "spike_count", "seed": 3},
                       input_shape=(2, 17, 17), notes={"imported_from": "x.nir"})
    data = config.to_dict()
    assert data["binning"]["dt"] == 5.0 and data["input_shape"] == [2, 17, 17]
    back = RunConfig.from_dict(data)
    assert back == config and back.dt == 5.0 and back.decode == "spike_count" and back.seed == 3
    legacy = {k: v for k, v in data.items() if k != "notes"} | {"spinnaker": {"finetuned_from": "a"}}
    assert RunConfig.from_dict(legacy).notes == {"spinnaker": {"finetuned_from": "a"}}
    with pytest.raises(ConfigError, match="does not record its time step"):
        RunConfig.from_dict({**data, "binning": {"duration": 300.0}})


def test_a_run_without_a_dataset_says_how_to_get_one():
    config = RunConfig(dataset=None, data_dir=None, binning=Binning(dt=1.0))
    with pytest.raises(ConfigError, match="--dataset NAME"):
        config.load_split(train=False)


def test_the_model_carries_its_time_step_into_checkpoints_and_the_graph(tmp_path):
    net = sl.build_model("mlp", (6,), 3, dt=2.5, hidden=(5,))
    assert net.dt == 2.5 and sl.spec.build(sl.spec.spec_of(net)).dt == 2.5
    assert sl.graph.Network.from_model(net).dt == 2.5                  # no dt argument needed
    assert sl.graph.Network.from_model(net, dt=1.0).dt == 1.0          # an explicit one wins
    with pytest.raises(ConfigError, match="dt must be the time step"):
        net.dt = 0.0
    with pytest.raises(ConfigError, match="has no time step"):
        sl.graph.Network.from_model(sl.Sequential(sl.Linear(6, 3), sl.LeakyIntegrator()))


def test_trained_run_loads_model_config_and_spikes(demo_run):
    run = TrainedRun.load(demo_run)
    assert run.model.dt == run.dt == run.config.dt == 10.0 and run.decode == "mean_membrane"
    assert next(run.model.parameters()).dtype == torch.float64 and not run.model.training
    x, y = run.spikes(limit=4)
    assert x.shape[:2] == (30, 4) and set(x.unique().tolist()) <= {0.0, 1.0} and y.shape == (4,)
    assert run.network().dt == 10.0


def test_one_decoder_table_for_training_and_every_backend():
    assert set(LOSSES) == set(DECODERS)
    rng = np.random.default_rng(0)
    out = rng.normal(size=(7, 5, 4))
    for decode in DECODERS:
        torch_scores = get_loss(decode).scores(torch.from_numpy(out))
        np.testing.assert_allclose(class_scores(out, decode), torch_scores.numpy(), rtol=1e-12)
        assert np.array_equal(predict(out, decode), get_loss(decode).predict(torch.from_numpy(out)).numpy())
    # summed softmax and the mean membrane can disagree: the decoders are not interchangeable
    out = np.array([[[30.0, 0.0]]] + [[[0.0, 1.0]]] * 4)
    assert predict(out, "mean_membrane")[0] == 0 and predict(out, "summed_softmax")[0] == 1
    with pytest.raises(ConfigError, match="unknown decode"):
        class_scores(out, "max")


def test_a_missing_optional_package_names_the_extra_to_install():
    with pytest.raises(MissingDependencyError, match=r"pip install 'spikelab\[pynn\]'"):
        require("pyNN.no_such_simulator", "running on a simulator")
    with pytest.raises(MissingDependencyError, match="pip install no_such_package_xyz"):
        require("no_such_package_xyz", "a feature")
