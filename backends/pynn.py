r"""Build a :class:`spikelab.graph.Network` in any PyNN simulator, and run it on NEST spike for spike.

The same builder drives NEST (``pyNN.nest``, the exact reference) and SpiNNaker (``pyNN.spiNNaker``, hardware or
the virtual board). Each LIF population becomes ``IF_curr_delta`` cells (``reference/backends.md`` §3):

=================  ===================================  ================================================================
PyNN parameter     value                                why
=================  ===================================  ================================================================
``tau_m``          ``-dt / ln(beta)`` ms                ``exp(-dt / tau_m) = beta`` (NEST and SpiNNaker both integrate
                                                        exactly; not the Euler ``dt / (1 - beta)``), to the last bit
                                                        where a float64 ``tau_m`` allows: :func:`membrane_time_constant`
``cm``             ``(1 - beta) tau_m / dt`` nF         sPyNNaker's delta synapse then adds ``w`` to V, as NEST does
``v_rest``         0 mV                                 spikelab membranes rest at 0
``v_reset``        0 mV                                 zero reset
``v_thresh``       ``threshold`` mV                     fires on ``v >= threshold`` like spikelab
``tau_refrac``     ``refractory_steps * dt`` ms         0: the next step integrates its input; ``dt``: it drops it
``i_offset``       ``bias / dt`` nA                     ``= bias cm / (tau_m (1 - beta))``: adds ``bias`` each step
                                                        (:func:`run_nest` sends it as a synaptic input instead)
=================  ===================================  ================================================================

The readout (a leaky integrator) is the same cell with a threshold it never reaches (:data:`READOUT_THRESHOLD`);
its membrane is recorded. Weights keep their units (a spike adds ``w`` mV); every projection is split by sign
into an ``excitatory`` projection (positive weights) and an ``inhibitory`` one (negative weights, kept negative
as PyNN expects; sPyNNaker uses their magnitude), each a ``FromListConnector`` sorted by ``(pre, post)`` (sPyNNaker
mis-maps unsorted lists). Delays are ``network.simulator_delays(p) * dt``: ``(d + 1)`` steps feed-forward, so
population ``p`` runs ``p.latency`` steps behind the torch model, plus :data:`INPUT_OFFSET` steps of input.

:func:`run_nest` runs a batch of samples on NEST (``spike_precision="on_grid"``, float64) one after another and
returns the outputs aligned with the torch model's time steps. NEST's ``iaf_psc_delta`` updates
``V = P30 (I_e + I) + P33 V + (sum of the weights arriving)``, spikelab ``v = beta v + (W s + bias)``; run_nest
makes them the same float64 operations, so NEST's membranes equal the torch model's bit for bit (not only to
rounding) and a membrane that lands on the threshold fires on both:

* ``P33 = exp(-h / tau_m)`` is ``beta`` (:func:`membrane_time_constant`), except for betas below 0.5 that no
  float64 ``tau_m`` reaches (an ulp apart);
* the bias does not go through ``i_offset``: ``P30 I_e`` is ``bias`` only to an ulp or two, and NEST adds it
  before the leak term. An always-on spike source delivers ``bias`` as a synaptic weight each step instead, into
  the ring buffer that sums the arriving weights, as ``W s + bias`` is one sum in torch. The two sums are equal
  when no addition rounds, the case of float32-trained weights: they have 24 significant bits, so a float64 sum
  is exact unless it grows about 2^29 times larger than its smallest term.

What can still differ at the last bit (batch norm folded into weights, float64 weights, which PyNN's
``* 1000 * 0.001`` unit round trip moves by an ulp for one in seven, an unreachable ``beta``) can only split a
membrane within rounding of the threshold: :func:`spikelab.export.compare_on_nest` reports such a spike as a tie,
with its distance to the threshold.
"""
from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from spikelab.errors import ExportError
from spikelab.functional.lif import time_constant
from spikelab.optional import require
from spikelab.graph import Network, Population, Projection

#: Input spike of step k is emitted at (k + INPUT_OFFSET) * dt: pyNN.nest moves source spikes earlier by one
#: min_delay and NEST refuses a spike at time 0.
INPUT_OFFSET = 2
#: Threshold of the readout population: never reached, and inside SpiNNaker's s16.15 range (+-65536).
READOUT_THRESHOLD = 30000.0
#: Steps simulated after a sample so that every delayed spike has arrived before the next reset.
FLUSH_STEPS = 2


def cell_parameters(population: Population, dt: float) -> dict[str, np.ndarray]:
    """``IF_curr_delta`` parameters (one value per neuron) that make PyNN run ``population`` like spikelab."""
    beta = np.asarray(population.beta, dtype=np.float64)
    if np.any(beta <= 0) or np.any(beta >= 1):
        raise ExportError(f"population {population.name} ({population.source}): beta must be in (0, 1) for a PyNN "
                          f"membrane time constant, got values in [{beta.min():g}, {beta.max():g}]; retrain with "
                          "beta > 0 (e.g. 1e-3): beta = 0 (no memory) has no tau_m")
    tau_m = membrane_time_constant(beta, dt)
    threshold = np.where(np.isinf(population.threshold), READOUT_THRESHOLD, population.threshold)
    return {"tau_m": tau_m, "cm": (1.0 - beta) * tau_m / dt, "v_rest": np.zeros_like(beta),
            "v_reset": np.zeros_like(beta), "v_thresh": threshold.astype(np.float64),
            "tau_refrac": np.full_like(beta, population.refractory_steps * dt),
            "i_offset": np.asarray(population.bias, dtype=np.float64) / dt}


def membrane_time_constant(beta: np.ndarray, dt: float) -> np.ndarray:
    """``tau_m = -dt / ln(beta)`` (ms, :func:`spikelab.functional.lif.time_constant`), moved by one ulp where that
    makes ``exp(-dt / tau_m)``, the leak NEST computes (C's ``exp``, as Python's :func:`math.exp`), equal ``beta``
    to the last bit.

    ``-dt / ln(beta)`` rounds twice. Measured on 20,000 float32 betas per range: its ``exp(-dt / tau_m)``
    misses ``beta`` for 8 in ``[0.5, 0.9)`` and none in ``[0.9, 0.999)``, and a neighbouring float hits it every
    time; below 0.5 it misses 24-70 % of them, and no float64 ``tau_m`` reaches most of those (``exp`` steps
    over them), so ``-dt / ln(beta)`` is kept: an ulp of the small ``beta v`` there rarely survives the addition.
    """
    tau_m = time_constant(beta, dt)
    for value in np.unique(beta):
        at = beta == value
        nominal = float(tau_m[at][0])
        for candidate in (nominal, math.nextafter(nominal, math.inf), math.nextafter(nominal, 0.0)):
            if math.exp(-dt / candidate) == value:
                tau_m[at] = candidate
                break
    return tau_m


def _uniform(values: np.ndarray):
    """PyNN takes a scalar for a parameter shared by all cells (much faster to set than an array)."""
    return float(values[0]) if np.all(values == values[0]) else values


def connection_lists(network: Network, projection) -> dict[str, np.ndarray]:
    """``{"excitatory": array, "inhibitory": array}`` of rows ``(pre, post, weight, delay ms)``, sorted by
    ``(pre, post)``; a receptor with no synapse is left out."""
    return _rows(projection, network.simulator_delays(projection) * network.dt)


def _rows(projection: Projection, delays: np.ndarray) -> dict[str, np.ndarray]:
    lists = {}
    for receptor, sel in projection.receptor_masks().items():
        if sel.any():
            lists[receptor] = np.column_stack([projection.pre_index[sel], projection.post_index[sel],
                                               projection.weight[sel], delays[sel]]).astype(np.float64)
    return lists


@dataclass
class Built:
    """The PyNN objects of a network: populations by name, and ``(projection, receptor, PyNN Projection)``."""

    network: Network
    populations: dict = field(default_factory=dict)
    projections: list = field(default_factory=list)


def build(network: Network, sim, spikes=None, record: bool = True, max_expected_summed_weight=None) -> Built:
    """Create ``network`` in the PyNN module ``sim`` (after ``sim.setup(timestep=network.dt, ...)``).

    Args:
        spikes: optional input spikes ``(T, n_input)`` of one sample for the ``SpikeSourceArray``.
        record: record spikes of LIF populations and the membrane of the readout.
        max_expected_summed_weight: sPyNNaker only: ``{population: [excitatory, inhibitory]}``, the largest input
            per step it must hold, which sets its ring-buffer shift and weight grid
            (:func:`spikelab.backends.spinnaker.check` predicts the worst case).
    """
    built = Built(network)
    times = spike_times(spikes, network.dt, network.input.size)
    if not any(times):   # sPyNNaker 1!7.4.1 fails on per-neuron lists that are all empty; one empty list is fine
        times = []
    source = sim.SpikeSourceArray(spike_times=times)
    built.populations[network.input.name] = sim.Population(network.input.size, source, label=network.input.name)
    for population in network.populations[1:]:
        params = {key: _uniform(value) for key, value in cell_parameters(population, network.dt).items()}
        extra = {}
        if max_expected_summed_weight and population.name in max_expected_summed_weight:
            extra["additional_parameters"] = {
                "max_expected_summed_weight": [float(w) for w in max_expected_summed_weight[population.name]]}
        cells = sim.Population(population.size, sim.IF_curr_delta(**params), label=population.name, **extra)
        cells.initialize(v=0.0)
        if record:
            cells.record("v" if population.kind == "readout" else "spikes")
        built.populations[population.name] = cells
    for projection in network.projections:
        pre, post = built.populations[projection.pre], built.populations[projection.post]
        for receptor, connections in connection_lists(network, projection).items():
            connector = sim.FromListConnector(connections, column_names=["weight", "delay"])
            built.projections.append((projection, receptor,
                                      sim.Projection(pre, post, connector, receptor_type=receptor)))
    return built


def spike_times(spikes, dt: float, size: int) -> list[list[float]]:
    """Per input neuron, the times (ms) of its spikes ``(T, n)``: step k at ``(k + INPUT_OFFSET) * dt``."""
    if spikes is None:
        return [[] for _ in range(size)]
    spikes = np.asarray(spikes)
    if spikes.ndim != 2 or spikes.shape[1] != size:
        raise ExportError(f"input spikes must be (T, {size}) for one sample, got {spikes.shape}")
    if np.any((spikes != 0) & (spikes != 1)):
        raise ExportError("PyNN inputs are spikes: the input must be binary (0/1) per step; "
                          "train and export with binary input (no --counts)")
    times = [[] for _ in range(size)]
    for step, neuron in zip(*np.nonzero(spikes)):
        times[neuron].append(round((step + INPUT_OFFSET) * dt, 9))   # on the grid, also for dt = 0.1
    return times


def _nest():
    """``pyNN.nest``, quiet, with ``IF_curr_delta``'s membrane recordable (PyNN 0.13 omits its variable map)."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = require("pyNN.nest", "running a network on NEST")
        from pyNN.nest.standardmodels import cells
    cells.IF_curr_delta.variable_map = {"v": "V_m"}
    cells.IF_curr_delta.scale_factors = {"v": 1}
    return sim


def run_nest(network: Network, spikes, progress=None) -> dict[str, np.ndarray]:
    """Run ``network`` on NEST for every sample of ``spikes`` ``(T, B, n_input)``, one after another.

    Returns ``{population name: (T, B, n)}`` aligned with the torch model: spikes of LIF populations, the membrane
    of the readout (as :func:`spikelab.graph.simulate` returns them). NEST runs one model step per ms. Between samples NEST is reset (PyNN's reset
    with a flush period, then membranes back to 0), so each sample starts from rest as in torch.
    """
    spikes = np.asarray(spikes)
    steps, batch = spikes.shape[:2]
    spikes = spikes.reshape(steps, batch, -1)
    # The per-step dynamics depend on beta, not on dt: NEST runs one step per ms, where every time is an integer
    # (a dt such as 0.3 ms puts float times like 0.8999999999 off NEST's grid).
    network = dataclasses.replace(network, dt=1.0)
    sim = _nest()
    dt = network.dt
    last_latency = max(p.latency for p in network.populations)
    max_delay = max((int(network.simulator_delays(p).max()) for p in network.projections if p.size), default=1)
    flush = (last_latency * max_delay + INPUT_OFFSET + FLUSH_STEPS) * dt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim.setup(timestep=dt, min_delay=dt, max_delay=max(max_delay, last_latency) * dt, spike_precision="on_grid",
                  t_flush=flush)
        built = build(network, sim)
        _bias_as_input(sim, network, built, steps)
        outputs = {p.name: np.zeros((steps, batch, p.size)) for p in network.populations[1:]}
        duration = (steps + INPUT_OFFSET + last_latency) * dt
        for b in range(batch):
            if b:
                sim.reset()
            built.populations[network.input.name].set(spike_times=spike_times(spikes[:, b], dt, network.input.size))
            sim.run_until(duration)
            for population in network.populations[1:]:
                _collect(built.populations[population.name], population, outputs[population.name][:, b], dt)
            if progress is not None:
                progress(1)
        sim.end()
    return outputs


def _bias_as_input(sim, network: Network, built: Built, steps: int) -> None:
    """Deliver each population's bias as a synaptic weight instead of ``i_offset`` (the module docstring says
    why): one source spikes at every input step, and its synapse onto a population of latency ``L`` has a delay
    of ``L`` steps, so it arrives at that population's steps ``0 .. steps - 1``, as the bias does in torch."""
    biased = [p for p in network.populations[1:] if np.any(p.bias)]
    if not biased:
        return
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=spike_times(np.ones((steps, 1)), network.dt, 1)),
                            label="bias")
    for population in biased:
        cells = built.populations[population.name]
        cells.set(i_offset=0.0)
        neurons = np.flatnonzero(population.bias)
        synapses = Projection("bias", population.name, np.zeros_like(neurons), neurons, population.bias[neurons],
                              np.full(len(neurons), population.latency))
        for receptor, rows in _rows(synapses, synapses.delay * network.dt).items():
            sim.Projection(source, cells, sim.FromListConnector(rows, column_names=["weight", "delay"]),
                           receptor_type=receptor)


def _collect(cells, population: Population, out: np.ndarray, dt: float) -> None:
    """Recorded data of one sample into ``out`` ``(T, n)``, shifted back by the population's delay."""
    segment = cells.get_data(clear=True).segments[-1]
    shift = population.latency + INPUT_OFFSET
    steps = out.shape[0]
    if population.kind == "readout":
        signal = segment.filter(name="v")[0]
        times = np.rint(np.asarray(signal.times.rescale("ms")) / dt).astype(int) - shift
        values = np.asarray(signal.magnitude)
        keep = (times >= 0) & (times < steps)
        out[times[keep]] = values[keep]
        return
    ids, times = segment.spiketrains.multiplexed    # flat arrays: far faster than one SpikeTrain per neuron
    if len(ids) == 0:
        return
    neurons = np.asarray(cells.id_to_index(np.asarray(ids, dtype=np.int64)), dtype=np.int64)
    steps_at = np.rint(np.asarray(times.rescale("ms").magnitude) / dt).astype(int) - shift
    keep = (steps_at >= 0) & (steps_at < steps)
    out[steps_at[keep], neurons[keep]] = 1.0


def write_script(network: Network, folder, decode: str = "mean_membrane", inputs=None,
                 max_expected_summed_weight=None) -> list:
    """Write a standalone PyNN script (``run_pynn.py``) and its ``network.npz`` into ``folder``.

    The script needs only PyNN and numpy: it is what a SpiNNaker user submits (``--simulator spiNNaker``). It
    decodes the output with ``decode`` (the run's loss, :mod:`spikelab.decoding`, a copy of which is written beside
    it as ``spikelab_decoding.py``). ``inputs`` (optional, ``(N, T, n_input)`` binary) is written as ``inputs.npz`` to run it on.
    ``max_expected_summed_weight`` (``{population: [exc, inh]}``) is passed to sPyNNaker, fixing its weight grid
    (:func:`spikelab.backends.spinnaker.check` gives the worst case). Returns the paths written.
    """
    import json
    import shutil
    from pathlib import Path

    from spikelab import decoding

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, populations, projections = {}, [], []
    for population in network.populations[1:]:
        for key, value in cell_parameters(population, network.dt).items():
            arrays[f"{population.name}.{key}"] = value
        populations.append({"name": population.name, "size": population.size, "kind": population.kind,
                            "latency": population.latency, "bias": bool(np.any(population.bias))})
    for number, projection in enumerate(network.projections):
        for receptor, connections in connection_lists(network, projection).items():
            key = f"projection{number}.{receptor}"
            arrays[key] = connections
            projections.append({"pre": projection.pre, "post": projection.post, "receptor": receptor, "key": key})
    max_delay = max((int(network.simulator_delays(p).max()) for p in network.projections if p.size), default=1)
    meta = {"dt": network.dt, "input_offset": INPUT_OFFSET, "input": network.input.name, "decode": decode,
            "max_delay_ms": max_delay * network.dt, "populations": populations, "projections": projections,
            "max_expected_summed_weight": max_expected_summed_weight or {},
            "cell_parameters": [key for key in cell_parameters(network.populations[1], network.dt) if key != "i_offset"]}
    np.savez(folder / "network.npz", meta=json.dumps(meta), **arrays)
    paths = [folder / "run_pynn.py", folder / "network.npz", folder / "spikelab_decoding.py"]
    shutil.copyfile(Path(__file__).with_name("pynn_script.py"), paths[0])
    shutil.copyfile(decoding.__file__, paths[2])
    if inputs is not None:
        inputs = np.asarray(inputs, dtype=np.uint8)
        np.savez_compressed(folder / "inputs.npz", spikes=inputs)
        paths.append(folder / "inputs.npz")
    return paths
