r"""SpiNNaker (sPyNNaker 1!7.4.1): will a :class:`spikelab.graph.Network` fit, and how does it compute there?

Three tools, from cheap to thorough (``reference/backends.md`` §2, §3.5):

* :func:`check` -- pure Python, no sPyNNaker import, milliseconds: cores per population, synaptic row lengths,
  delays against the on-core ring buffer and the delay extensions, the ring-buffer shift and 16-bit weight grid
  per population and receptor (and how much of the weights it destroys), the s16.15 range of the membrane
  arithmetic. Every violated limit comes with its fix. :meth:`SpinnakerReport.format` prints it,
  :meth:`SpinnakerReport.to_dict` gives JSON.
* :mod:`spikelab.backends.fixed_point` -- the network run in sPyNNaker's ``IF_curr_delta`` integer arithmetic
  (16-bit weights, s16.15 state), for the spikes and accuracy to expect on the chip.
* :func:`map_on_virtual_board` -- sPyNNaker itself on a virtual SpiNN-5 board, in a subprocess with its own
  ``HOME`` and working folder: partitioning, placement, delay extensions, ring-buffer shifts. It maps; no spikes
  come back (a virtual board does not run).

What sPyNNaker does with a network, as the code of 1!7.4.1 reads (paths under ``spynnaker/pyNN/``):

=======================  ===============================================================================
cores                    a LIF population is cut into slices of ``neurons_per_core`` (at most 256,
                         ``POP_TABLE_MAX_ROW_LENGTH``); one core per slice at ``dt >= 1`` ms; at ``dt < 1`` a
                         neuron core plus ``n_synapse_cores`` synapse cores per slice
                         (``population_vertex.py::use_combined_core`` / ``__update_n_synapse_cores``: incoming
                         rows x 30 Hz x pre size / 13e6 synapses per second). A ``SpikeSourceArray`` has no
                         per-core limit (``SplitterFixedLegacy``): one core. A delay extension takes one core
                         per slice of its source population.
synaptic rows            per projection (exc and inh are separate projections), pre neuron and post slice;
                         at most 256 synapses (``master_pop_table.py``), delayed rows counted apart.
delays                   on-core ``2^(14 - bits(min(n, neurons_per_core)) - bits(2))`` steps (32 at 256 per
                         core); delay extensions add 8 stages of that (``MAX_SLOTS``), so 9 x on-core in all.
weights                  ``shift = ceil(log2(max summed weight))`` (+1 on an exact power of two, >= 0),
                         stored ``rint(|w| 2^(15 - shift)) & 0xFFFF`` (``synapse_dynamics_static.py``): a
                         weight of ``2^(shift + 1)`` or more wraps around.
=======================  ===============================================================================

The worst case per step for binary spikes is every synapse of a receptor active at once: the sum of ``|w|``
over a neuron's incoming synapses of that sign (each synapse adds at most once per step, whatever its delay). The
bias does not go through the ring buffer (it is ``i_offset``), so it does not enter the shift; it does enter the
membrane range. :func:`check` predicts the shifts from these sums (``report.max_expected_summed_weight``) and
:func:`map_on_virtual_board` passes them to sPyNNaker as ``max_expected_summed_weight``: sPyNNaker's own default
guesses from 30 Hz and 5 sigma (shift 7 instead of 4 for a dense 784-500 layer, an 8x coarser grid).
:func:`observed_summed_weights` gives a finer, data-driven choice that may saturate on rare bursts.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spikelab.errors import ExportError
from spikelab.graph import Network, Population, Projection, delay_matrices, simulate

#: Most neurons sPyNNaker puts on one core (``POP_TABLE_MAX_ROW_LENGTH``, also its default).
MAX_NEURONS_PER_CORE = 256
#: Most synapses in one synaptic row (one pre neuron, one post core, one projection).
MAX_ROW_LENGTH = 256
#: Bits of a ring-buffer index: delay bits + synapse-type bits + neuron bits (``MAX_RING_BUFFER_BITS``).
MAX_RING_BUFFER_BITS = 14
#: Receptors of ``IF_curr_delta``: excitatory and inhibitory.
RECEPTORS = ("excitatory", "inhibitory")
#: Stages of one delay extension, each as long as the on-core delay (``DelayExtensionVertex.MAX_SLOTS``).
DELAY_EXTENSION_STAGES = 8
#: Fraction bits of sPyNNaker's ``REAL`` (``accum``, s16.15) and its range.
FRACTION_BITS = 15
S1615_LIMIT = 65536.0
#: A stored weight is a 16-bit unsigned magnitude, and so is a ring-buffer entry (it saturates at 0xFFFF).
WEIGHT_MASK = 0xFFFF
#: sPyNNaker's ``[Simulation] spikes_per_second`` and the static synapse throughput it plans synapse cores with.
SPIKES_PER_SECOND = 30
STATIC_SYNAPSES_PER_SECOND = 13_000_000
#: Application cores a synapse core count is capped at on one chip (18 cores - SCAMP - monitor - neuron core).
MAX_SYNAPSE_CORES = 15
#: Application cores of one board (virtual board summary: SpiNN-5, 48 chips, 856 cores of which one per chip
#: runs SCAMP and one the monitor; rounded down).
BOARD_APPLICATION_CORES = {5: 48 * 16, 3: 4 * 16}
#: Default share of non-zero weights allowed to quantise to 0 before :func:`check` calls it a violation.
MAX_ZEROED_FRACTION = 0.05


def n_bits(n_values: int) -> int:
    """Bits to tell ``n_values`` values apart, as sPyNNaker counts them (``pacman...get_n_bits``: 1 for 1)."""
    if n_values <= 0:
        return 0
    if n_values == 1:
        return 1
    return int(math.ceil(math.log2(n_values)))


def ring_buffer_shift(max_summed_weight: float) -> int:
    """sPyNNaker's ring-buffer left shift for a receptor whose summed weight per step reaches ``max_summed_weight``.

    ``population_vertex.py::get_ring_buffer_shifts``: ``ceil(log2(w))`` clamped at 0, plus one when
    ``2^shift <= w`` (the 16-bit buffer holds just under ``2^(shift + 1)``); 0 for ``w <= 0``.
    """
    w = float(max_summed_weight)
    shift = 0 if w <= 0 else int(math.ceil(max(0.0, math.log2(w))))
    return shift + 1 if 2 ** shift <= w else shift


def weight_scale(shift: int) -> float:
    """Stored weight per unit of membrane: ``2^(15 - shift)`` (``__get_weight_scale``); its inverse is the step."""
    return float(2.0 ** (FRACTION_BITS - shift))


def on_core_delay_steps(size: int, neurons_per_core: int = MAX_NEURONS_PER_CORE) -> int:
    """Longest delay (steps) a post population of ``size`` neurons takes without a delay extension."""
    atoms = min(size, neurons_per_core, MAX_NEURONS_PER_CORE)
    return 2 ** (MAX_RING_BUFFER_BITS - n_bits(atoms) - n_bits(len(RECEPTORS)))


def max_delay_steps(size: int, neurons_per_core: int = MAX_NEURONS_PER_CORE) -> int:
    """Longest delay (steps) with a delay extension: the on-core ring buffer plus 8 stages of it."""
    return (1 + DELAY_EXTENSION_STAGES) * on_core_delay_steps(size, neurons_per_core)


def summed_weights(network: Network) -> dict[str, dict[str, np.ndarray]]:
    """Per population and receptor, each neuron's summed ``|w|`` over its incoming synapses of that sign.

    That is the largest input one step can bring through the ring buffer with binary spikes (every synapse active
    at once). ``{population: {"excitatory": (n,), "inhibitory": (n,)}}``.
    """
    sums = {p.name: {r: np.zeros(p.size) for r in RECEPTORS} for p in network.populations[1:]}
    for projection in network.projections:
        for receptor, sel in projection.receptor_masks().items():
            np.add.at(sums[projection.post][receptor], projection.post_index[sel], np.abs(projection.weight[sel]))
    return sums


def max_expected_summed_weights(network: Network) -> dict[str, list[float]]:
    """``{population: [exc, inh]}`` worst-case summed weight per step: what to pass sPyNNaker as
    ``max_expected_summed_weight`` so that the ring buffer never saturates."""
    return {name: [float(s[r].max(initial=0.0)) for r in RECEPTORS] for name, s in summed_weights(network).items()}


def observed_summed_weights(network: Network, spikes) -> dict[str, list[float]]:
    """``{population: [exc, inh]}`` largest summed ``|w|`` that one step actually brought to one neuron when the
    float network ran on ``spikes`` ``(T, B, n_input)``: a data-driven ``max_expected_summed_weight``, finer than
    the worst case (inputs beyond it saturate the ring buffer; check with :func:`simulate_fixed_point`)."""
    outputs = simulate(network, spikes)
    steps = next(iter(outputs.values())).shape[0]
    observed = {}
    for population in network.populations[1:]:
        peaks = []
        for receptor in RECEPTORS:
            total = np.zeros((steps,) + outputs[population.name].shape[1:])
            for projection in network.incoming(population.name):
                pre = outputs[projection.pre]
                for d, matrix in delay_matrices(projection, pre.shape[-1], population.size,
                                                np.abs(projection.weight), projection.receptor_masks()[receptor]):
                    if d < steps:
                        total[d:] += pre[:steps - d] @ matrix.T
            peaks.append(float(total.max(initial=0.0)))
        observed[population.name] = peaks
    return observed


def ring_buffer_shifts(network: Network, max_expected_summed_weight=None) -> dict[str, tuple[int, int]]:
    """``{population: (exc shift, inh shift)}`` sPyNNaker picks given ``max_expected_summed_weight``
    (``{population: [exc, inh]}``, default the worst case of :func:`max_expected_summed_weights`)."""
    sums = max_expected_summed_weights(network)
    if max_expected_summed_weight is not None:
        sums.update({k: list(v) for k, v in max_expected_summed_weight.items()})
    return {name: (ring_buffer_shift(exc), ring_buffer_shift(inh)) for name, (exc, inh) in sums.items()}


def quantized_magnitudes(weights, shift: int) -> np.ndarray:
    """Stored 16-bit magnitudes ``rint(|w| 2^(15 - shift)) & 0xFFFF`` (int64), as sPyNNaker writes them."""
    stored = np.rint(np.abs(np.asarray(weights, dtype=np.float64)) * weight_scale(shift)).astype(np.int64)
    return stored & WEIGHT_MASK


# ------------------------------------------------------------------------------------------------ the check


@dataclass
class Violation:
    """A SpiNNaker limit the network breaks, and how to fix it."""

    limit: str
    message: str
    fix: str
    population: str = ""

    def format(self) -> str:
        where = f"{self.population}: " if self.population else ""
        return f"[{self.limit}] {where}{self.message}\n      fix: {self.fix}"


@dataclass
class ReceptorReport:
    """Weights of one receptor of one population on sPyNNaker's 16-bit grid."""

    receptor: str
    synapses: int
    max_summed_weight: float     # worst case per step: all synapses of this sign at once (or the value given)
    shift: int
    weight_scale: float          # stored units per membrane unit, 2^(15 - shift)
    resolution: float            # membrane units per stored unit, 2^(shift - 15)
    ring_buffer_limit: float     # largest summed input one step holds, 0xFFFF / scale
    max_weight: float            # max |w|
    error_max: float             # max |w - q(w)| / max |w|
    error_rms: float             # rms |w - q(w)| / max |w|
    zeroed: int                  # non-zero weights stored as 0
    zeroed_fraction: float
    wrapped: int                 # weights >= 2^(shift + 1): the 16-bit field wraps
    worst_case_summed_weight: float = 0.0


@dataclass
class PopulationReport:
    """One population as sPyNNaker would place it: cores, delays, rows, weights, arithmetic range."""

    name: str
    kind: str
    size: int
    latency: int
    slices: int
    cores: int
    max_delay_steps: int = 0            # longest incoming simulator delay
    on_core_delay_steps: int = 0
    delay_extension: bool = False       # some incoming projection needs one
    max_row_length: int = 0
    synapse_cores_per_slice: int = 0    # dt < 1 ms only
    alpha_max: float = 0.0              # largest |R I| the membrane update meets (s16.15 must hold it)
    threshold_max: float = 0.0
    receptors: list = field(default_factory=list)


@dataclass
class SpinnakerReport:
    """What :func:`check` found: read :meth:`format`, or :meth:`to_dict` for JSON."""

    dt: float
    neurons_per_core: int
    split_cores: bool
    populations: list
    delay_extension_cores: dict           # {pre population: cores}
    predicted_cores: int                  # everything sPyNNaker places for the network (sources, extensions)
    shifts: dict                          # {population: (exc shift, inh shift)}
    max_expected_summed_weight: dict      # {population: [exc, inh]}: pass to sPyNNaker
    violations: list
    notes: list

    @property
    def ok(self) -> bool:
        return not self.violations

    def population(self, name: str) -> PopulationReport:
        for report in self.populations:
            if report.name == name:
                return report
        raise KeyError(name)

    def to_dict(self) -> dict:
        """Everything as plain JSON types (an infinite bound becomes ``None``)."""
        out = asdict(self)
        out["ok"] = self.ok
        out["shifts"] = {k: list(v) for k, v in self.shifts.items()}
        return _finite(out)

    def format(self) -> str:
        lines = [f"SpiNNaker check (sPyNNaker 1!7.4.1 rules, IF_curr_delta, {self.neurons_per_core} neurons per core)"]
        if self.split_cores:
            lines.append(f"time step: {self.dt:g} ms (< 1 ms: sPyNNaker splits each slice into a neuron core and "
                         "synapse cores; not real time on hardware without time_scale_factor)")
        else:
            timing = "real time" if self.dt == 1.0 else f"{self.dt:g} ms per step"
            lines.append(f"time step: {self.dt:g} ms ({timing}; one combined core per slice)")
        lines.append("latency (steps each population runs behind the torch model): "
                     + ", ".join(f"{p.name} {p.latency}" for p in self.populations))
        lines.append("")
        delayed = {f"{pre}_delayed": cores for pre, cores in self.delay_extension_cores.items()}
        w = max([12] + [len(name) + 2 for name in [p.name for p in self.populations] + list(delayed)])
        lines.append(f"{'population':<{w}}{'kind':<9}{'size':>7}{'cores':>7}{'max delay':>11}{'on-core':>9}"
                     f"{'extension':>11}{'max row':>9}")
        for p in self.populations:
            delay = f"{p.max_delay_steps}" if p.kind != "input" else "-"
            on_core = f"{p.on_core_delay_steps}" if p.kind != "input" else "-"
            ext = ("yes" if p.delay_extension else "no") if p.kind != "input" else "-"
            row = f"{p.max_row_length}" if p.kind != "input" else "-"
            lines.append(f"{p.name:<{w}}{p.kind:<9}{p.size:>7}{p.cores:>7}{delay:>11}{on_core:>9}{ext:>11}{row:>9}")
        for label, cores in delayed.items():
            lines.append(f"{label:<{w}}{'delay':<9}{'':>7}{cores:>7}")
        lines.append(f"predicted cores: {self.predicted_cores}")
        lines.append("")
        lines.append("weights on the 16-bit grid (max summed = all synapses of one sign in one step):")
        lines.append(f"{'population':<{w}}{'receptor':<10}{'synapses':>9}{'max summed':>11}{'shift':>6}"
                     f"{'resolution':>12}{'max |w|':>9}{'err max':>9}{'err rms':>9}{'zeroed':>8}")
        for p in self.populations:
            for r in p.receptors:
                lines.append(f"{p.name:<{w}}{r.receptor[:3]:<10}{r.synapses:>9}{r.max_summed_weight:>11.4g}"
                             f"{r.shift:>6}{r.resolution:>12.3g}{r.max_weight:>9.3g}{r.error_max:>9.2%}"
                             f"{r.error_rms:>9.2%}{r.zeroed_fraction:>8.1%}")
        lines.append("(err: |w - stored w| relative to max |w|; zeroed: non-zero weights stored as 0)")
        lines.append("")
        lines.append("s16.15 range (+-65536): " + ", ".join(
            f"{p.name} |R I| <= {p.alpha_max:.4g}, threshold {p.threshold_max:.6g}"
            for p in self.populations if p.kind != "input"))
        lines.append("")
        if self.violations:
            lines.append(f"{len(self.violations)} SpiNNaker limit(s) violated:")
            lines.extend("  - " + v.format() for v in self.violations)
        else:
            lines.append("no SpiNNaker limit violated")
        if self.notes:
            lines.append("notes:")
            lines.extend(f"  - {note}" for note in self.notes)
        return "\n".join(lines)


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _slices(size: int, neurons_per_core: int) -> int:
    return int(math.ceil(size / max(1, min(neurons_per_core, MAX_NEURONS_PER_CORE))))


def _row_lengths(projection: Projection, sel: np.ndarray, delays: np.ndarray, npc: int, n_pre: int,
                 on_core: int) -> tuple[int, int]:
    """Longest synaptic row (synapses of one pre neuron into one post slice): with undelayed and delayed
    (extension) rows apart, as the rows are written, and over all delays, as sPyNNaker plans synapse cores."""
    if not sel.any():
        return 0, 0
    post_slice = projection.post_index[sel] // npc
    n_slices = int(post_slice.max()) + 1
    row = projection.pre_index[sel] * n_slices + post_slice
    delayed = (delays[sel] > on_core).astype(np.int64)
    written = int(np.bincount(delayed * (n_pre * n_slices) + row).max())
    return written, int(np.bincount(row).max())


def _neurons_per_core_for_delay(size: int, delay: int) -> int:
    """The largest neurons per core at which a population of ``size`` takes ``delay`` steps (0: none does)."""
    for npc in range(min(size, MAX_NEURONS_PER_CORE), 0, -1):
        if max_delay_steps(size, npc) >= delay:
            return npc
    return 0


def _synapse_cores(network: Network, population: Population, rows: dict, npc: int) -> int:
    """sPyNNaker's synapse cores per slice at dt < 1 ms (``__update_n_synapse_cores``, time scale factor 1)."""
    per_second = 0
    for projection in network.incoming(population.name):
        n_pre = network.population(projection.pre).size
        for receptor in RECEPTORS:
            n_conns = rows.get((id(projection), receptor), 0)
            per_second += math.ceil(n_conns * SPIKES_PER_SECOND * n_pre)
    cores = math.ceil(per_second / STATIC_SYNAPSES_PER_SECOND)
    return min(cores, MAX_SYNAPSE_CORES)


def check(network: Network, neurons_per_core: int = MAX_NEURONS_PER_CORE, max_expected_summed_weight=None,
          max_zeroed_fraction: float = MAX_ZEROED_FRACTION, version: int = 5) -> SpinnakerReport:
    """Check ``network`` against SpiNNaker's limits as sPyNNaker 1!7.4.1 applies them (no sPyNNaker needed).

    Args:
        network: the network (:meth:`spikelab.graph.Network.from_model`).
        neurons_per_core: neurons of one population per core (``sim.set_number_of_neurons_per_core``); at most 256.
        max_expected_summed_weight: ``{population: [exc, inh]}`` to use instead of the worst case (what you would
            pass sPyNNaker); a smaller value gives a finer weight grid but the ring buffer may saturate.
        max_zeroed_fraction: share of non-zero weights of one receptor that may be stored as 0 before it counts
            as a violation (default 5 %).
        version: board version the core count is compared with (5: SpiNN-5, 48 chips; 3: SpiNN-3, 4 chips).

    Returns:
        a :class:`SpinnakerReport`; ``report.ok`` is False when a limit is violated.
    """
    dt = float(network.dt)
    npc = int(neurons_per_core)
    violations: list[Violation] = []
    notes: list[str] = []
    if npc < 1:
        raise ExportError(f"neurons_per_core must be >= 1, got {neurons_per_core}")
    if npc > MAX_NEURONS_PER_CORE:
        violations.append(Violation(
            "neurons per core", f"{npc} neurons per core requested; sPyNNaker allows at most {MAX_NEURONS_PER_CORE} "
            "(one synaptic row per core slice, POP_TABLE_MAX_ROW_LENGTH)",
            f"use neurons_per_core <= {MAX_NEURONS_PER_CORE}"))
    npc_used = min(npc, MAX_NEURONS_PER_CORE)   # what the other predictions assume sPyNNaker does
    split = dt < 1.0
    sums = summed_weights(network)
    worst = max_expected_summed_weights(network)
    expected = {k: list(v) for k, v in worst.items()}
    if max_expected_summed_weight is not None:
        unknown = set(max_expected_summed_weight) - set(expected)
        if unknown:
            raise ExportError(f"max_expected_summed_weight names no population of the network: {sorted(unknown)}")
        expected.update({k: [float(x) for x in v] for k, v in max_expected_summed_weight.items()})
    shifts = ring_buffer_shifts(network, expected)

    reports = [PopulationReport(network.input.name, "input", network.input.size, network.input.latency, 1, 1)]
    rows: dict = {}
    extension_pres: dict[str, set] = {}
    for population in network.populations[1:]:
        n = population.size
        on_core = on_core_delay_steps(n, npc_used)
        longest = max_delay_steps(n, npc_used)
        report = PopulationReport(population.name, population.kind, n, population.latency,
                                  _slices(n, npc_used), 0, on_core_delay_steps=on_core)
        for projection in network.incoming(population.name):
            if not projection.size:
                continue
            delays = network.simulator_delays(projection)
            d_max, d_min = int(delays.max()), int(delays.min())
            report.max_delay_steps = max(report.max_delay_steps, d_max)
            if d_min < 1:
                violations.append(Violation(
                    "delays", f"projection {projection.pre} -> {projection.post} has a delay of {d_min} steps; "
                    "sPyNNaker needs >= 1 step", "this is a bug in the graph's latencies: report it",
                    population.name))
            if d_max > on_core:
                report.delay_extension = True
                extension_pres.setdefault(projection.pre, set()).add(on_core)
            if d_max > longest:
                smaller = _neurons_per_core_for_delay(n, d_max)
                hint = (f"or lower neurons_per_core to {smaller} (a smaller slice leaves more ring-buffer bits for "
                        "delays)") if smaller else "(no neurons_per_core is small enough for it)"
                violations.append(Violation(
                    "delays", f"delay of {d_max} steps ({d_max * dt:g} ms) from {projection.pre}: more than "
                    f"{longest} steps ({on_core} on-core x 9 with the 8 delay-extension stages, at "
                    f"{min(n, npc_used)} neurons per core)",
                    f"lower the largest delay (--max-delay, or retrain with shorter delays) to <= {longest} steps, "
                    + hint, population.name))
            n_pre = network.population(projection.pre).size
            for receptor, sel in projection.receptor_masks().items():
                length, planned = _row_lengths(projection, sel, delays, npc, n_pre, on_core)
                rows[(id(projection), receptor)] = planned
                report.max_row_length = max(report.max_row_length, length)
                if length > MAX_ROW_LENGTH:
                    violations.append(Violation(
                        "row length", f"{receptor} projection {projection.pre} -> {projection.post} has a synaptic "
                        f"row of {length} synapses (one pre neuron into one core of {npc} neurons) > "
                        f"{MAX_ROW_LENGTH}", f"lower neurons_per_core to <= {MAX_ROW_LENGTH} so rows split across "
                        "cores", population.name))
        if split:
            report.synapse_cores_per_slice = _synapse_cores(network, population, rows, npc)
            report.cores = report.slices * (1 + report.synapse_cores_per_slice)
        else:
            report.cores = report.slices

        for index, receptor in enumerate(RECEPTORS):
            report.receptors.append(_receptor_report(network, population, receptor, shifts[population.name][index],
                                                     expected[population.name][index],
                                                     worst[population.name][index]))
        for r in report.receptors:
            if r.synapses and r.zeroed_fraction > max_zeroed_fraction:
                violations.append(Violation(
                    "weight resolution", f"{r.zeroed_fraction:.1%} of the {r.receptor} weights ({r.zeroed} of "
                    f"{r.synapses}) are smaller than half the resolution {r.resolution:.3g} (shift {r.shift}, max "
                    f"summed weight {r.max_summed_weight:.4g}) and are stored as 0",
                    "pass a smaller max_expected_summed_weight, e.g. observed_summed_weights on real inputs (a "
                    "finer grid; rare bursts may then saturate the ring buffer), prune those weights, or fine-tune "
                    "on the grid (spikelab export spinnaker RUN_DIR --finetune N --out DIR)", population.name))
            if r.wrapped:
                violations.append(Violation(
                    "weight range", f"{r.wrapped} {r.receptor} weights are >= {2.0 ** (r.shift + 1):g} = "
                    f"2^(shift+1) and wrap around in the 16-bit weight field", "raise max_expected_summed_weight "
                    f"to at least the largest weight ({r.max_weight:.4g})", population.name))
            if r.max_summed_weight < r.worst_case_summed_weight and r.worst_case_summed_weight >= r.ring_buffer_limit:
                notes.append(f"{population.name} {r.receptor}: the worst-case summed input "
                             f"{r.worst_case_summed_weight:.4g} exceeds what the ring buffer holds at shift "
                             f"{r.shift} ({r.ring_buffer_limit:.4g}); bursts saturate it")

        _arithmetic_range(network, population, sums[population.name], report, violations)
        reports.append(report)

    delay_cores = {}
    for pre, stage_lengths in sorted(extension_pres.items()):
        pre_report = next(r for r in reports if r.name == pre)
        delay_cores[pre] = pre_report.slices if pre_report.kind != "input" else 1
        if len(stage_lengths) > 1:
            violations.append(Violation(
                "delays", f"{pre} feeds populations whose on-core delays differ ({sorted(stage_lengths)} steps) and "
                "both need a delay extension; sPyNNaker's single extension per source refuses that "
                "(DelayExtensionException: delay per stage differs)",
                "shorten the delays so that at most one of them needs an extension, or give the post populations "
                "slices with the same number of neuron bits (neurons_per_core)", pre))
    predicted = sum(r.cores for r in reports) + sum(delay_cores.values())
    board = BOARD_APPLICATION_CORES.get(version)
    if board is not None and predicted > board:
        violations.append(Violation(
            "cores", f"{predicted} cores predicted; a SpiNN-{version} board has about {board} application cores",
            "use a larger machine (spalloc) or fewer, smaller layers"))
    if split:
        notes.append("dt < 1 ms: synapse cores estimated as sPyNNaker does (30 Hz per source, 13e6 synapses/s, "
                     "time_scale_factor 1); the virtual board gives the exact number")
    if dt > 1.0:
        notes.append(f"dt = {dt:g} ms: on hardware each step lasts {dt:g} ms of wall-clock time "
                     "(time_scale_factor 1)")
    notes.append("not checked here: SDRAM and DTCM per core, routing tables, packet rates (the virtual board "
                 "maps SDRAM and routes; packet loss is hardware-only)")
    return SpinnakerReport(dt, npc, split, reports, delay_cores, predicted, shifts, expected, violations, notes)


def _receptor_report(network: Network, population: Population, receptor: str, shift: int, expected: float,
                     worst: float) -> ReceptorReport:
    weights = [np.abs(p.weight[p.receptor_masks()[receptor]]) for p in network.incoming(population.name)]
    w = np.concatenate(weights) if weights else np.zeros(0)
    scale = weight_scale(shift)
    stored = np.rint(w * scale)
    quantised = quantized_magnitudes(w, shift) / scale
    max_w = float(w.max(initial=0.0))
    err = np.abs(w - quantised)
    rel = max_w if max_w > 0 else 1.0
    zeroed = int(np.count_nonzero((stored == 0) & (w > 0)))
    return ReceptorReport(
        receptor, len(w), float(expected), shift, scale, 1.0 / scale, WEIGHT_MASK / scale, max_w,
        float(err.max(initial=0.0) / rel), float(np.sqrt(np.mean(err ** 2)) / rel) if len(w) else 0.0,
        zeroed, zeroed / len(w) if len(w) else 0.0, int(np.count_nonzero(stored > WEIGHT_MASK)), float(worst))


def _arithmetic_range(network: Network, population: Population, sums: dict, report: PopulationReport,
                      violations: list) -> None:
    """The membrane update computes ``alpha = R I = (input + bias) / (1 - beta)`` and ``V`` in s16.15."""
    from spikelab.backends.pynn import cell_parameters

    beta = np.asarray(population.beta, dtype=np.float64)
    if np.any(beta <= 0) or np.any(beta >= 1):
        violations.append(Violation(
            "neuron", f"beta in [{beta.min():g}, {beta.max():g}]: IF_curr_delta needs 0 < beta < 1 (a leak)",
            "retrain with beta > 0 (e.g. 1e-3): beta = 0 (no memory) has no PyNN tau_m",
            population.name))
        report.alpha_max = math.inf
        return
    bias = np.asarray(population.bias, dtype=np.float64)
    up = (sums["excitatory"] + np.maximum(bias, 0.0)) / (1.0 - beta)
    down = (sums["inhibitory"] + np.maximum(-bias, 0.0)) / (1.0 - beta)
    report.alpha_max = float(max(up.max(initial=0.0), down.max(initial=0.0)))
    params = cell_parameters(population, network.dt)
    report.threshold_max = float(np.max(params["v_thresh"]))
    if report.alpha_max >= S1615_LIMIT:
        violations.append(Violation(
            "s16.15 range", f"the membrane update can meet |input / (1 - beta)| up to {report.alpha_max:.4g} "
            f"(worst case, all synapses of one sign at once), beyond s16.15's +-{S1615_LIMIT:g}: it saturates",
            "scale the weights, bias and threshold of this layer down by the same factor, or lower beta",
            population.name))
    if report.threshold_max >= S1615_LIMIT:
        violations.append(Violation(
            "s16.15 range", f"threshold {report.threshold_max:g} >= {S1615_LIMIT:g}",
            "scale weights, bias and threshold down together", population.name))
    offset = np.abs(params["i_offset"]).max(initial=0.0)
    if offset >= S1615_LIMIT:
        violations.append(Violation(
            "s16.15 range", f"i_offset = bias / dt reaches {offset:.4g} >= {S1615_LIMIT:g}",
            "scale weights, bias and threshold down together, or use a longer dt", population.name))


# ------------------------------------------------------------------------------------------------ virtual board

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


def _main(argv: list[str]) -> int:
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


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
