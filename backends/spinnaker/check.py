"""Will a :class:`spikelab.graph.Network` fit on SpiNNaker? :func:`check` answers in milliseconds, without sPyNNaker.

Cores per population, synaptic row lengths, delays against the on-core ring buffer and the delay extensions, the
ring-buffer shift and 16-bit weight grid per population and receptor (and how much of the weights it destroys),
the s16.15 range of the membrane arithmetic. Every violated limit comes with its fix.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from spikelab.errors import ConfigError, ExportError
from spikelab.graph import Network, Population, Projection

from .limits import (BOARD_APPLICATION_CORES, MAX_NEURONS_PER_CORE, MAX_ROW_LENGTH, MAX_SYNAPSE_CORES,
                     MAX_ZEROED_FRACTION, RECEPTORS, S1615_LIMIT, SPIKES_PER_SECOND, STATIC_SYNAPSES_PER_SECOND,
                     WEIGHT_MASK, max_delay_steps, max_expected_summed_weights, on_core_delay_steps,
                     quantized_magnitudes, ring_buffer_shifts, summed_weights, weight_scale)

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
        raise ConfigError(f"no population {name!r} in this report; it has {', '.join(r.name for r in self.populations)}")

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
