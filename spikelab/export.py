"""A trained run next to another simulator on the same spikes: what ``spikelab export nest`` reports.

A run folder loads as a :class:`spikelab.run.TrainedRun` (the model, its time step ``dt``, its decoder and its data
splits as binary spikes). :func:`spikelab_outputs` computes what the torch model gives per population, as the
backends return it; :func:`compare_on_nest` runs the same samples through PyNN + NEST (float64, on-grid spikes) and
counts the spikes that differ, a float tie at the threshold apart. SpiNNaker checks live in
:mod:`spikelab.backends.spinnaker`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .decoding import predict
from .graph import Network
from .run import TrainedRun


def spikelab_outputs(run: TrainedRun, network: Network, x: torch.Tensor, batch_size: int = 128) -> dict[str, np.ndarray]:
    """What the torch model computes, per population as the backends return it: ``{name: (T, N, n)}`` (an
    ``"or"`` population's spikes are the output of its ``MaxPool2d``)."""
    parts = []
    for recorded, out in _recorded_batches(run, network, x, batch_size):
        part = {p.name: recorded[str(p.layer)]["spikes"].flatten(2).numpy() for p in _spiking(network)}
        part[network.output.name] = out.flatten(2).numpy()
        parts.append(part)
    return {name: np.concatenate([part[name] for part in parts], axis=1) for name in parts[0]}


def _spiking(network: Network) -> list:
    return [p for p in network.populations[1:] if p.kind in ("lif", "or")]


def _recorded_batches(run: TrainedRun, network: Network, x: torch.Tensor, batch_size: int = 128):
    """``(recorded layers, output)`` of the model for each batch of ``batch_size`` samples of ``x``, in order; the
    max poolings of ``"or"`` populations are recorded as ``{"spikes": output}`` beside the neuron layers."""
    from .recording import record

    pools = {str(p.layer): run.model[p.layer] for p in network.populations if p.kind == "or"}
    with torch.no_grad(), record(run.model) as recorded:
        hooks = [pool.register_forward_hook(lambda module, args, output, key=key:
                                            recorded.__setitem__(key, {"spikes": output}))
                 for key, pool in pools.items()]
        try:
            for start in range(0, x.shape[1], batch_size):
                out = run.model(x[:, start:start + batch_size])
                yield recorded, out
        finally:
            for hook in hooks:
                hook.remove()


#: A spike that differs on NEST is a float tie, not a mismatch, when spikelab's membrane at it lies within this
#: fraction of the threshold from the threshold (see :func:`compare_on_nest`).
TIE_TOLERANCE = 1e-9


def compare_on_nest(run: TrainedRun, x: torch.Tensor, y: torch.Tensor, progress=None, approximate: bool = False) -> dict:
    """Run the test samples through spikelab and through PyNN + NEST; accuracies and mismatched spikes.

    Returns a dict with ``n``, ``accuracy_spikelab``, ``accuracy_nest``, ``same_predictions`` (share of samples),
    per spiking population (``"lif"`` and ``"or"``) ``spikes`` (spikelab's count), ``mismatches`` (spikes present
    in one and not the other, ties apart) and ``ties``, the readout's largest membrane difference, and the seconds
    NEST took. Each tie is ``{"sample", "step", "neuron", "membrane", "margin"}``: spikelab's membrane at that
    spike and its distance ``membrane - threshold``, which shows it is a tie.

    A tie is a differing spike whose spikelab membrane is within ``TIE_TOLERANCE * threshold`` of the threshold.
    NEST computes spikelab's float64 membranes bit for bit when the weights were trained in float32
    (:mod:`spikelab.backends.pynn` says how), and then no spike can differ. Batch norm folded into the weights,
    float64 weights and betas below 0.5 leave differences in the last bit, and a membrane within such a rounding
    of the threshold may fire on one side only: neither side is wrong. ``1e-9`` lies far above those differences
    (the readout membranes of 14 trained runs differed by at most 3.6e-15 before NEST was made bit-exact) and far
    below the closest a trained membrane came to the threshold (1.7e-7, over the test splits of the same 14
    runs), so a spike counted as a tie is one that rounding decides. A tie changes that neuron's later state on
    one side, so spikes that differ after it in the same sample count as mismatches.
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
    spiking = _spiking(network)
    differing = {p.name: np.argwhere(ours[p.name] != theirs[p.name]) for p in spiking}  # rows (step, sample, neuron)
    lif = [p for p in spiking if p.kind == "lif"]
    membranes = _membranes_at(run, network, lif, x, {p.name: differing[p.name] for p in lif})
    spikes = {network.input.name: x.flatten(2).numpy(), **ours}
    membranes.update({p.name: _or_membranes(network, p, spikes, differing[p.name]) for p in spiking if p.kind == "or"})
    for population in network.populations[1:]:
        name = population.name
        if population.kind == "readout":
            result["populations"][name] = {"max_membrane_difference": float(np.abs(ours[name] - theirs[name]).max())}
            continue
        (step, sample, neuron), v = differing[name].T, membranes[name]
        margin = v - population.threshold[neuron]
        tie = np.abs(margin) <= TIE_TOLERANCE * population.threshold[neuron]
        result["populations"][name] = {
            "spikes": int(ours[name].sum()), "mismatches": int((~tie).sum()),
            "ties": [{"sample": int(sample[i]), "step": int(step[i]), "neuron": int(neuron[i]), "membrane": float(v[i]),
                      "margin": float(margin[i])} for i in np.flatnonzero(tie)]}
    return result


def _membranes_at(run: TrainedRun, network: Network, populations, x: torch.Tensor,
                  differing: dict) -> dict[str, np.ndarray]:
    """spikelab's membrane at each differing spike of the LIF ``populations``, ``differing[name]`` rows ``(step,
    sample, neuron)``: the model runs again on those samples only (usually none)."""
    samples = np.unique(np.concatenate([np.empty(0, dtype=np.int64), *(rows[:, 1] for rows in differing.values())]))
    parts = {p.name: [] for p in populations}
    if len(samples):
        for recorded, _ in _recorded_batches(run, network, x[:, samples]):
            for p in populations:
                parts[p.name].append(recorded[str(p.layer)]["v"].flatten(2).numpy())
    membranes = {}
    for p in populations:
        step, sample, neuron = differing[p.name].T
        v = np.concatenate(parts[p.name], axis=1) if parts[p.name] else np.empty((0, 0, 0))
        membranes[p.name] = v[step, np.searchsorted(samples, sample), neuron]
    return membranes


def _or_membranes(network: Network, population, spikes: dict, rows: np.ndarray) -> np.ndarray:
    """The membrane of an ``"or"`` population at ``rows`` ``(step, sample, neuron)``, from the torch model's spikes
    ``{population: (T, N, n)}``: the summed weights of its window's inputs that spiked at that step, as
    :func:`spikelab.graph.from_torch.max_pool_neuron` shows (0, or at least twice the threshold: never a tie)."""
    (projection,) = network.incoming(population.name)
    pre = spikes[projection.pre]
    order = np.argsort(projection.post_index, kind="stable")
    bounds = np.searchsorted(projection.post_index[order], np.arange(population.size + 1))
    membranes = np.empty(len(rows))
    for i, (step, sample, neuron) in enumerate(rows):
        synapses = order[bounds[neuron]:bounds[neuron + 1]]
        membranes[i] = projection.weight[synapses] @ pre[step, sample, projection.pre_index[synapses]]
    return membranes
