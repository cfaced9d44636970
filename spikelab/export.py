"""Trained runs on other simulators: the steps behind ``spikelab export``.

A run folder (``spikelab train --out DIR``) holds the model and the options it was trained with, including the
time step ``dt`` of its input bins. This module turns it into a :class:`spikelab.graph.Network`, loads its test
split as binary spikes, and compares what spikelab computes with what another simulator computes on the same
spikes: NEST through PyNN (spike for spike, float64) here; SpiNNaker checks live in
:mod:`spikelab.backends.spinnaker`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ExportError
from .graph import Network
from .layers import Sequential
from .training import load
from .training.losses import get_loss


@dataclass
class Run:
    """A trained model with what exporting it needs: ``dt`` (ms), the loss that decodes its output, options."""

    model: Sequential
    dt: float
    loss: str
    config: dict
    input_shape: tuple | None

    def network(self, approximate: bool = False) -> Network:
        return Network.from_model(self.model, self.dt, self.input_shape, approximate=approximate)


def load_run(run_dir) -> Run:
    """The model of a run folder (or checkpoint) and its time step, in float64 eval mode."""
    model = load(run_dir).double()
    config = model.run_info["config"].get("run", {})
    binning = config.get("binning", {})
    if "dt" not in binning:
        raise ExportError(f"{run_dir}: the run does not record its time step dt; exporters need it "
                          "(train it with `spikelab train`, or import it with `spikelab import nir --dt`)")
    if not binning.get("binarize", True):
        raise ExportError(f"{run_dir} was trained on event counts (--counts); hardware takes binary spikes: "
                          "retrain without --counts")
    shape = config.get("input_shape")
    loss = config.get("trainer", {}).get("loss", "mean_membrane")
    return Run(model, float(binning["dt"]), loss, config, tuple(shape) if shape else None)


def load_split(config: dict, train: bool):
    """One split of a run's dataset (``config``: the run's options), binned as the run was trained."""
    from spikelab.datasets import load_dataset

    return load_dataset(config["dataset"], config["data_dir"], train=train, skip_bad=config.get("skip_bad", False),
                        **config["binning"])


def load_test_spikes(run: Run, data_dir=None, limit: int | None = None, train: bool = False):
    """The run's test split (or training split) as float64 spikes ``(T, N, ...)`` and labels ``(N,)``: the first
    ``limit`` samples, or all."""
    config = dict(run.config)
    if "dataset" not in config:
        raise ExportError("this run names no dataset to read test spikes from (an imported NIR graph, say): "
                          "import it again with --dataset NAME")
    if data_dir is not None:
        config["data_dir"] = str(data_dir)
    dataset = load_split(config, train)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    frames, labels = zip(*(dataset[i] for i in range(count)))
    x = torch.stack(frames, 1).double()
    if run.input_shape is not None:   # e.g. an imported model that takes the frames flattened
        x = x.reshape(*x.shape[:2], *run.input_shape)
    return x, torch.tensor(labels)


def spikelab_outputs(run: Run, network: Network, x: torch.Tensor, batch_size: int = 128) -> dict[str, np.ndarray]:
    """What the torch model computes, per population as the backends return it: ``{name: (T, N, n)}``."""
    from .recording import record

    parts = []
    with torch.no_grad(), record(run.model) as recorded:
        for start in range(0, x.shape[1], batch_size):
            out = run.model(x[:, start:start + batch_size])
            part = {p.name: recorded[str(p.layer)]["spikes"].flatten(2).numpy()
                    for p in network.populations[1:] if p.kind == "lif"}
            part[network.output.name] = out.flatten(2).numpy()
            parts.append(part)
    return {name: np.concatenate([part[name] for part in parts], axis=1) for name in parts[0]}


def predictions(run: Run, output: np.ndarray) -> np.ndarray:
    """Class predictions from an output sequence ``(T, N, classes)`` with the run's own loss."""
    return get_loss(run.loss).predict(torch.as_tensor(output)).numpy()


def compare_on_nest(run: Run, x: torch.Tensor, y: torch.Tensor, progress=None, approximate: bool = False) -> dict:
    """Run the test samples through spikelab and through PyNN + NEST; accuracies and mismatched spikes.

    Returns a dict with ``n``, ``accuracy_spikelab``, ``accuracy_nest``, ``same_predictions`` (share of samples),
    per LIF population ``spikes`` (spikelab's count) and ``mismatches`` (spikes present in one and not the other),
    the readout's largest membrane difference, and the seconds NEST took.
    """
    from spikelab.backends.pynn import run_nest

    network = run.network(approximate)
    ours = spikelab_outputs(run, network, x)
    started = time.perf_counter()
    theirs = run_nest(network, x.flatten(2).numpy(), progress=progress)
    seconds = time.perf_counter() - started
    pred_ours, pred_theirs = predictions(run, ours[network.output.name]), predictions(run, theirs[network.output.name])
    labels = y.numpy()
    result = {"n": len(labels), "accuracy_spikelab": float((pred_ours == labels).mean()),
              "accuracy_nest": float((pred_theirs == labels).mean()),
              "same_predictions": float((pred_ours == pred_theirs).mean()), "populations": {},
              "nest_seconds": seconds, "approximations": network.approximations}
    for population in network.populations[1:]:
        a, b = ours[population.name], theirs[population.name]
        if population.kind == "lif":
            result["populations"][population.name] = {"spikes": int(a.sum()), "mismatches": int((a != b).sum())}
        else:
            result["populations"][population.name] = {"max_membrane_difference": float(np.abs(a - b).max())}
    return result
