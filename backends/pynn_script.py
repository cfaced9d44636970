#!/usr/bin/env python3
"""Run a network exported by ``spikelab export pynn-script`` on any PyNN simulator (SpiNNaker, NEST, ...).

This file is standalone: it needs PyNN and numpy (and the simulator), not spikelab. It reads ``network.npz``
and ``spikelab_decoding.py`` (spikelab's own decoders, so a class means what it meant in training) from its folder (cell parameters and connection lists, already mapped for ``IF_curr_delta``), runs every
input sample from rest, and writes the output spikes / readout membranes and the predicted classes::

    python run_pynn.py --simulator spiNNaker --inputs inputs.npz --out results.npz
    python run_pynn.py --simulator nest                     # NEST with spike_precision="on_grid"

``inputs.npz`` holds ``spikes``: binary input spikes ``(N, T, n_input)``, one row of ``T`` steps per sample.
Step ``k`` is sent at ``(k + input_offset) * dt`` ms; population ``p``'s step ``t`` appears at
``(t + latency_p + input_offset) * dt`` (each projection adds at least one step of delay). The results give each
population's output back on the model's own steps ``(N, T, n)``.

On SpiNNaker, each sample is a separate ``setup() ... end()`` (a fresh start from rest); for many samples,
run them in batches. sPyNNaker needs ``~/.spynnaker.cfg`` naming your board (or ``virtual_board = True``).
NEST reproduces spikelab spike for spike. SpiNNaker computes in fixed point (16-bit weights, s16.15 membranes;
``spikelab export spinnaker --fixed-point`` predicts the effect), and there a population's bias runs from the
start instead of from its own first step (sPyNNaker cannot change parameters between runs without a board).
"""
import argparse
import json
from pathlib import Path

import numpy as np
from spikelab_decoding import predict      # spikelab's decoders, written beside this script


def load_network(folder: Path):
    data = np.load(folder / "network.npz")
    return json.loads(str(data["meta"])), data


def build(sim, meta, data, spikes, spinnaker=False):
    dt, offset = meta["dt"], meta["input_offset"]
    times = [[] for _ in range(spikes.shape[1])]
    for step, neuron in zip(*np.nonzero(spikes)):
        times[neuron].append(round(float((step + offset) * dt), 9))    # on the grid, also for dt = 0.1
    if not any(times):   # sPyNNaker 1!7.4.1 fails on per-neuron lists that are all empty
        times = []
    populations = {meta["input"]: sim.Population(spikes.shape[1], sim.SpikeSourceArray(spike_times=times),
                                                 label=meta["input"])}
    for pop in meta["populations"]:
        params = {key: data[f"{pop['name']}.{key}"] for key in meta["cell_parameters"] + ["i_offset"]}
        if not spinnaker:   # the bias is switched on when the population's step 0 begins (see run_sample)
            params["i_offset"] = np.zeros(pop["size"])
        params = {key: float(value[0]) if np.all(value == value[0]) else value for key, value in params.items()}
        extra = {}
        if spinnaker and pop["name"] in meta["max_expected_summed_weight"]:   # sPyNNaker's weight grid
            extra["additional_parameters"] = {"max_expected_summed_weight": meta["max_expected_summed_weight"][pop["name"]]}
        cells = sim.Population(pop["size"], sim.IF_curr_delta(**params), label=pop["name"], **extra)
        cells.initialize(v=0.0)
        cells.record("v" if pop["kind"] == "readout" else "spikes")
        populations[pop["name"]] = cells
    for proj in meta["projections"]:
        connections = [(int(i), int(j), float(w), float(d)) for i, j, w, d in data[proj["key"]]]
        sim.Projection(populations[proj["pre"]], populations[proj["post"]],
                       sim.FromListConnector(connections, column_names=["weight", "delay"]),
                       receptor_type=proj["receptor"])
    return populations


def run_sample(sim, meta, data, spikes, setup_options, spinnaker=False):
    dt, offset, steps = meta["dt"], meta["input_offset"], spikes.shape[0]
    sim.setup(timestep=dt, min_delay=dt, **setup_options)
    populations = build(sim, meta, data, spikes, spinnaker)
    if not spinnaker:
        # Exact on NEST: population p's bias starts with its own step 0, p.latency steps in. sPyNNaker cannot change
        # parameters between runs without reading them back from a board, so there the bias runs from the start:
        # a biased population integrates it for `latency` steps before its first input arrives.
        for latency in sorted({pop["latency"] for pop in meta["populations"] if pop["bias"]}):
            sim.run_until(latency * dt)
            for pop in meta["populations"]:
                if pop["latency"] == latency and pop["bias"]:
                    populations[pop["name"]].set(i_offset=data[f"{pop['name']}.i_offset"])
    sim.run_until((steps + offset + max(pop["latency"] for pop in meta["populations"])) * dt)
    outputs = {}
    for pop in meta["populations"]:
        segment = populations[pop["name"]].get_data().segments[-1]
        shift = pop["latency"] + offset
        out = np.zeros((steps, pop["size"]))
        signals = segment.filter(name="v")
        if pop["kind"] == "readout" and signals:       # a virtual board maps the network but returns no data
            signal = signals[0]
            at = np.rint(np.asarray(signal.times.rescale("ms")) / dt).astype(int) - shift
            keep = (at >= 0) & (at < steps)
            out[at[keep]] = np.asarray(signal.magnitude)[keep]
        else:
            for neuron, train in enumerate(segment.spiketrains):
                at = np.rint(np.asarray(train.rescale("ms").magnitude) / dt).astype(int) - shift
                out[at[(at >= 0) & (at < steps)], neuron] = 1.0
        outputs[pop["name"]] = out
    sim.end()
    return outputs


def main(argv=None):
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--simulator", default="spiNNaker", help="PyNN backend module: spiNNaker (default), nest, ...")
    parser.add_argument("--inputs", default=str(here / "inputs.npz"), help="npz with spikes (N, T, n_input)")
    parser.add_argument("--out", default="results.npz", help="where to write outputs and predictions")
    args = parser.parse_args(argv)
    meta, data = load_network(here)
    sim = __import__(f"pyNN.{args.simulator}", fromlist=["setup"])
    setup_options = {}
    if args.simulator == "nest":
        from pyNN.nest.standardmodels import cells           # PyNN 0.13 cannot record IF_curr_delta's v on NEST
        cells.IF_curr_delta.variable_map = {"v": "V_m"}
        cells.IF_curr_delta.scale_factors = {"v": 1}
        setup_options["spike_precision"] = "on_grid"          # grid-based iaf_psc_delta, as the model steps
        setup_options["max_delay"] = meta["max_delay_ms"]
    inputs = np.load(args.inputs)["spikes"]
    on_spinnaker = args.simulator == "spiNNaker"
    results = [run_sample(sim, meta, data, sample, setup_options, on_spinnaker) for sample in inputs]
    output = meta["populations"][-1]["name"]
    predicted = [int(predict(result[output], meta["decode"])) for result in results]
    arrays = {name: np.stack([r[name] for r in results]) for name in results[0]}
    np.savez(args.out, predicted=np.array(predicted), **arrays)
    print(f"{len(predicted)} samples on pyNN.{args.simulator}; predicted classes: {predicted}; wrote {args.out}")


if __name__ == "__main__":
    main()
