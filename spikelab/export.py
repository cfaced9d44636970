"""A trained run next to another simulator on the same spikes: what ``spikelab export nest`` reports.

A run folder loads as a :class:`spikelab.run.TrainedRun` (the model, its time step ``dt``, its decoder and its data
splits as binary spikes). :func:`spikelab_outputs` computes what the torch model gives per population, as the
backends return it; :func:`compare_on_nest` runs the same samples through PyNN + NEST (float64, on-grid spikes) and
counts the spikes that differ. SpiNNaker checks live in :mod:`spikelab.backends.spinnaker`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .decoding import predict
from .graph import Network
from .run import TrainedRun


def spikelab_outputs(run: TrainedRun, network: Network, x: torch.Tensor, batch_size: int = 128) -> dict[str, np.ndarray]:
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


def compare_on_nest(run: TrainedRun, x: torch.Tensor, y: torch.Tensor, progress=None, approximate: bool = False) -> dict:
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
    pred_ours, pred_theirs = (predict(out[network.output.name], run.decode) for out in (ours, theirs))
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
