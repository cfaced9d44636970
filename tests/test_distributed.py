"""Training on 2 CPU processes (torchrun, gloo) ends with the weights of 1 process with the same global batch.

The 2-process runs are launched with ``python -m torch.distributed.run`` on this file (the ``__main__`` block is
the worker); the 1-process references run here. The data (17 samples, global batch 8) ends on a batch of one
sample, so one process runs a zero-weight stand-in; the model has dropout, so the masks must not depend on the
split. ``torchrun -m spikelab train`` is killed during its second epoch, resumed, and compared with one process.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import spikelab as sl
from spikelab.cli import main
from spikelab.training import Trainer, load_checkpoint
from spikelab.training.distributed import BatchShare, GlobalBatchSampler

SAMPLES, STEPS, FEATURES, CLASSES, BATCH, EPOCHS = 17, 6, 12, 3, 8, 3


def datasets():
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(SAMPLES + 6, STEPS, FEATURES, generator=g) < 0.4).float()
    labels = torch.randint(0, CLASSES, (SAMPLES + 6,), generator=g)
    return TensorDataset(frames[:SAMPLES], labels[:SAMPLES]), TensorDataset(frames[SAMPLES:], labels[SAMPLES:])


def make_trainer(mode: str, out_dir=None, distributed=None) -> Trainer:
    torch.manual_seed(0)
    model = sl.Sequential(sl.Linear(FEATURES, 24), sl.LIF(beta=0.8, threshold=0.5), sl.Dropout(0.3),
                          sl.Linear(24, CLASSES), sl.LeakyIntegrator(beta=0.8))
    return Trainer(model, mode=mode, lr=0.02, epochs=EPOCHS, batch_size=BATCH, seed=3, out_dir=out_dir,
                   progress=False, distributed=distributed)


def _worker(out: Path, modes: list[str]) -> None:
    """One process of a torchrun launch: train each mode, save this rank's weights and history."""
    train, val = datasets()
    for mode in modes:
        trainer = make_trainer(mode, out / mode)
        rank = trainer.group.rank
        trainer.fit(train, val)
        torch.save({"state": trainer.model.state_dict(), "history": trainer.history,
                    "world_size": trainer.group.world_size}, out / f"{mode}-rank{rank}.pt")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               __file__, str(out), "bptt,sltt"]
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.parametrize("mode", ["bptt", "sltt"])
def test_two_processes_equal_one(mode, two_processes):
    rank0 = torch.load(two_processes / f"{mode}-rank0.pt")
    rank1 = torch.load(two_processes / f"{mode}-rank1.pt")
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert _max_difference(rank0["state"], rank1["state"]) == 0  # the replicas never drift apart
    single = make_trainer(mode)
    train, val = datasets()
    single.fit(train, val)
    start = make_trainer(mode).model.state_dict()
    assert _max_difference(start, single.model.state_dict()) > 1e-2  # training moved the weights
    assert _max_difference(rank0["state"], single.model.state_dict()) < 1e-5
    drop_time = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop_time(rank0["history"]) == drop_time(rank1["history"])  # rank 0's validation, sent to rank 1
    for two, one in zip(rank0["history"], single.history):
        assert two["train_accuracy"] == one["train_accuracy"] and two["val_accuracy"] == one["val_accuracy"]
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)


def test_only_rank0_writes_the_run_folder(two_processes):
    run = two_processes / "bptt"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "curve.png", "last.pt", "metrics.jsonl"]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == EPOCHS


def test_cli_under_torchrun_killed_and_resumed_equals_one_process(tmp_path):
    """``torchrun -m spikelab train``, killed (agent and workers at once) during its second epoch and resumed with
    ``--resume``, ends with the weights of one ``spikelab train`` process."""
    options = ["train", "--hidden", "32", "--dropout", "0.2", "--epochs", "3", "--batch-size", "128",
               "--no-progress", "--seed", "1"]
    assert main([*options, "--out", str(tmp_path / "one")]) == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "spikelab",
              *options, "--out", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(launch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    metrics = tmp_path / "two" / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().strip()):
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert load_checkpoint(tmp_path / "two" / "last.pt")["epoch"] < 3
    resumed = subprocess.run(launch + ["--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming") == 1 and resumed.stdout.count("test accuracy") == 1  # rank 0 prints
    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert one["epoch"] == two["epoch"] == 3
    difference = _max_difference(one["model_state"], two["model_state"])
    assert difference < 1e-5, difference


def test_global_batches_are_split_into_contiguous_shares():
    shares = [GlobalBatchSampler(10, 4, rank, 3, shuffle=False) for rank in range(3)]
    assert [list(s) for s in shares] == [[[0, 1], [4, 5], [8]], [[2], [6], [9]], [[3], [7], [8]]]
    assert shares[2].share(2) == BatchShare(offset=0, count=0, total=2, world_size=3)  # stand-in for sample 8
    assert shares[0].share(0).loss_weight == pytest.approx(2 * 3 / 4)
    assert sum(s.share(1).loss_weight for s in shares) == pytest.approx(3)  # weights average to 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("modes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _worker(args.out, args.modes.split(","))
