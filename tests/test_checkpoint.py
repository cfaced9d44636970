import os
import pickle

import pytest
import torch

from spikelab.errors import CheckpointError
from spikelab.training import load_checkpoint, save_checkpoint
from spikelab.training.checkpoint import capture_rng_state, restore_rng_state


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "code-ran"
    payload = RunsCode()
    payload.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"format": "spikelab-checkpoint-v1", "model_state": payload}, path)
    with pytest.raises(CheckpointError, match="would run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_raw_pickle_is_refused(tmp_path):
    path = tmp_path / "pickle.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="not a spikelab checkpoint|would run code"):
        load_checkpoint(path)


def test_text_file_and_foreign_torch_file_are_refused(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a spikelab checkpoint"):
        load_checkpoint(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="marker"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 3, "model_state": {"w": torch.arange(4.0)}})
    save_checkpoint(path, {"epoch": 4, "model_state": {"w": torch.arange(5.0)}})
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 4 and torch.equal(loaded["model_state"]["w"], torch.arange(5.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"], "no temporary file may be left behind"


def test_rng_state_round_trip_through_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = capture_rng_state()
    save_checkpoint(tmp_path / "rng.pt", {"rng_state": state})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng_state"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
