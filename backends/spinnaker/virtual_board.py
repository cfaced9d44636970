"""sPyNNaker itself on a virtual SpiNN-5 board: :func:`map_on_virtual_board` (partitioning, placement, delay
extensions, ring-buffer shifts; a virtual board maps but does not run, so no spikes come back)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikelab.errors import ExportError
from spikelab.graph import Network

from .limits import MAX_NEURONS_PER_CORE, max_expected_summed_weights

#: Fixes for the sPyNNaker errors a network can cause, by exception name.
_FIXES = {
    "DelayExtensionException": "lower the largest delay or neurons_per_core (spikelab export spinnaker --check "
                               "gives the limit per population)",
    "SynapseRowTooBigException": "lower neurons_per_core so that rows split across more cores",
    "SpynnakerException": "see the message; spikelab export spinnaker --check lists SpiNNaker's limits",
    "PacmanPlaceException": "the network does not fit the board: fewer or smaller populations, or a larger machine",
    "PacmanValueError": "the network does not fit the board: fewer or smaller populations, or a larger machine",
    "ModuleNotFoundError": "install sPyNNaker: pip install 'spynnaker==1!7.4.1' (with pyNN 0.13)",
}

_CONFIG = "[Machine]\nvirtual_board = True\nversion = {version}\n"


def virtual_board_environment(home, version: int = 5) -> dict:
    """Environment variables for a process that runs sPyNNaker on a virtual board: ``HOME`` (and
    ``XDG_CONFIG_HOME``) become the folder ``home``, which gets a ``.spynnaker.cfg`` with ``virtual_board = True``,
    so the user's own configuration is neither read nor written. Run the process in a scratch working folder:
    sPyNNaker writes ``reports/`` there."""
    home = Path(home)
    (home / ".config").mkdir(parents=True, exist_ok=True)
    (home / ".spynnaker.cfg").write_text(_CONFIG.format(version=int(version)))
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PYTHONWARNINGS": "ignore"}


def map_on_virtual_board(network: Network, neurons_per_core: int = MAX_NEURONS_PER_CORE, version: int = 5,
                         workdir=None, spikes=None, max_expected_summed_weight="worst", steps: int | None = None,
                         timeout: float = 600.0) -> dict:
    """Map ``network`` with sPyNNaker on a virtual board (no hardware, no spikes back) and report what it placed.

    sPyNNaker runs in a subprocess (``python -m spikelab.backends.spinnaker``) whose ``HOME`` (and
    ``XDG_CONFIG_HOME``) is a folder holding only ``.spynnaker.cfg`` (``virtual_board = True``, ``version``), and
    whose working folder receives sPyNNaker's ``reports/``: the user's home is never read or written. The network is
    built with :func:`spikelab.backends.pynn.build` (``IF_curr_delta``, exc/inh ``FromListConnector`` projections).

    Args:
        neurons_per_core: passed to ``sim.set_number_of_neurons_per_core(sim.IF_curr_delta, n)``.
        version: 5 (SpiNN-5, 48 chips) or 3 (SpiNN-3, 4 chips).
        workdir: keep the job files and sPyNNaker's reports there (default: a temporary folder, removed after).
        spikes: optional binary input ``(T, n_input)`` of one sample for the spike source.
        max_expected_summed_weight: ``"worst"`` (default: the worst case of :func:`max_expected_summed_weights`,
            what :func:`check` predicts the shifts from), ``None`` (sPyNNaker's own estimate from 30 Hz and 5 sigma)
            or ``{population: [exc, inh]}``.
        steps: steps to run (default the input's length, or 10).
        timeout: seconds before the subprocess is stopped.

    Returns:
        JSON-able ``{"cores": total (populations, sources, delay extensions), "cores_by_population": {name: n},
        "delay_extension_cores": {source population: n}, "system_cores": n (sPyNNaker's own monitors),
        "placements": [[vertex label, x, y, p, vertex class], ...], "ring_buffer_shifts": {pop: [exc, inh]},
        "weight_scales": {pop: [exc, inh]}, "machine": {"chips", "cores", "user_cores"},
        "seconds": {"total", "import", "build", "run"}}``.

    Raises:
        ExportError: sPyNNaker refused the network (message and fix), or is not installed.
    """
    if isinstance(max_expected_summed_weight, str) and max_expected_summed_weight == "worst":
        max_expected_summed_weight = max_expected_summed_weights(network)
    elif max_expected_summed_weight is not None:
        max_expected_summed_weight = {k: [float(x) for x in v] for k, v in max_expected_summed_weight.items()}
    if steps is None:
        steps = int(np.asarray(spikes).shape[0]) if spikes is not None else 10
    job = {"neurons_per_core": int(neurons_per_core), "version": int(version), "steps": int(steps),
           "max_expected_summed_weight": max_expected_summed_weight}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spikelab-spinnaker-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp) / "work"
        work.mkdir(parents=True, exist_ok=True)
        env = virtual_board_environment(Path(tmp) / "home", version)
        with open(work / "network.pkl", "wb") as f:
            pickle.dump(network, f)
        if spikes is not None:
            np.save(work / "spikes.npy", np.asarray(spikes))
        (work / "job.json").write_text(json.dumps(job))
        try:
            proc = subprocess.run([sys.executable, "-m", "spikelab.backends.spinnaker", str(work)], cwd=work,
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise ExportError(f"sPyNNaker did not map the network within {timeout:g} s") from error
        result_file = work / "result.json"
        if not result_file.exists():
            tail = (proc.stderr or proc.stdout or "")[-2000:]
            raise ExportError(f"sPyNNaker's virtual-board run died (exit {proc.returncode}) without a result:\n{tail}")
        result = json.loads(result_file.read_text())
    if "error" in result:
        kind, message = result["error"], result["message"]
        fix = _FIXES.get(kind, "see the message; spikelab export spinnaker --check lists SpiNNaker's limits")
        raise ExportError(f"sPyNNaker refused the network ({kind}): {message}\nfix: {fix}")
    result["seconds"]["total"] = time.perf_counter() - start
    return result


def _virtual_board_job(work: Path) -> dict:
    """The subprocess side of :func:`map_on_virtual_board` (sPyNNaker imported here only)."""
    import logging
    import warnings

    job = json.loads((work / "job.json").read_text())
    with open(work / "network.pkl", "rb") as f:
        network: Network = pickle.load(f)
    spikes = np.load(work / "spikes.npy") if (work / "spikes.npy").exists() else None
    seconds = {}
    t0 = time.perf_counter()
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyNN.spiNNaker as sim
        from spynnaker.pyNN.data import SpynnakerDataView
        from spikelab.backends.pynn import build
    seconds["import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.setup(timestep=network.dt)
    sim.set_number_of_neurons_per_core(sim.IF_curr_delta, job["neurons_per_core"])
    built = build(network, sim, spikes=spikes, record=False,
                  max_expected_summed_weight=job["max_expected_summed_weight"])
    seconds["build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.run(job["steps"] * network.dt)
    seconds["run"] = time.perf_counter() - t0
    labels = set(built.populations)
    by_population = {name: 0 for name in built.populations}
    delay_cores: dict[str, int] = {}
    placements = []
    other = 0
    for placement in SpynnakerDataView.iterate_placemements():
        vertex = placement.vertex
        app = getattr(vertex, "app_vertex", None)
        label = getattr(app, "label", None) or vertex.label or type(vertex).__name__
        placements.append([str(vertex.label), placement.x, placement.y, placement.p, type(vertex).__name__])
        if label in labels:
            by_population[label] += 1
        elif type(app).__name__ == "DelayExtensionVertex":   # labelled "<source>_delayed"
            source = label[:-len("_delayed")] if label.endswith("_delayed") else label
            delay_cores[source] = delay_cores.get(source, 0) + 1
        else:
            other += 1
    shifts, scales = {}, {}
    for population in network.populations[1:]:
        vertex = built.populations[population.name]._vertex
        rb = [int(s) for s in vertex.get_ring_buffer_shifts()]
        shifts[population.name] = rb
        scales[population.name] = [float(s) for s in vertex.get_weight_scales(rb)]
    machine = SpynnakerDataView.get_machine()
    result = {
        "cores": sum(by_population.values()) + sum(delay_cores.values()),
        "cores_by_population": by_population,
        "delay_extension_cores": delay_cores,
        "system_cores": other,
        "placements": placements,
        "ring_buffer_shifts": shifts,
        "weight_scales": scales,
        "machine": {"chips": machine.n_chips, "cores": machine.total_cores,
                    "user_cores": machine.total_available_user_cores},
        "neurons_per_core": job["neurons_per_core"],
        "dt": network.dt,
        "seconds": seconds,
    }
    sim.end()
    return result


def run_job(argv: list[str]) -> int:
    """Entry point of the subprocess (``python -m spikelab.backends.spinnaker WORK``): result.json either way."""
    work = Path(argv[0])
    try:
        result = _virtual_board_job(work)
    except Exception as error:  # noqa: BLE001 - every sPyNNaker error goes back to the parent as data
        import traceback
        (work / "result.json").write_text(json.dumps({"error": type(error).__name__, "message": str(error),
                                                      "traceback": traceback.format_exc()}))
        return 2
    (work / "result.json").write_text(json.dumps(result))
    return 0
