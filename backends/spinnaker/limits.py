"""SpiNNaker's hard limits and how sPyNNaker 1!7.4.1 stores weights: constants and the arithmetic behind them.

Ring-buffer shifts and the 16-bit weight grid, on-core and delay-extension delays, the worst-case and observed
input per step (``reference/backends.md`` §2, §3.5). :mod:`.check` compares a network with these limits;
:mod:`spikelab.backends.fixed_point` computes with them.
"""
from __future__ import annotations

import math

import numpy as np

from spikelab.graph import Network, delay_matrices, simulate

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
