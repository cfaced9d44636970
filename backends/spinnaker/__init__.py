r"""SpiNNaker (sPyNNaker 1!7.4.1): will a :class:`spikelab.graph.Network` fit, and how does it compute there?

Three tools, from cheap to thorough (``reference/backends.md`` §2, §3.5), in three modules (``limits``: the
constants and the weight / delay arithmetic they imply; ``check``; ``virtual_board``):

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
from .check import PopulationReport, ReceptorReport, SpinnakerReport, Violation, check
from .limits import (BOARD_APPLICATION_CORES, DELAY_EXTENSION_STAGES, FRACTION_BITS, MAX_NEURONS_PER_CORE,
                     MAX_RING_BUFFER_BITS, MAX_ROW_LENGTH, MAX_SYNAPSE_CORES, MAX_ZEROED_FRACTION, RECEPTORS,
                     S1615_LIMIT, SPIKES_PER_SECOND, STATIC_SYNAPSES_PER_SECOND, WEIGHT_MASK, max_delay_steps,
                     max_expected_summed_weights, n_bits, observed_summed_weights, on_core_delay_steps,
                     quantized_magnitudes, ring_buffer_shift, ring_buffer_shifts, summed_weights, weight_scale)
from .virtual_board import map_on_virtual_board, virtual_board_environment

__all__ = ["check", "SpinnakerReport", "PopulationReport", "ReceptorReport", "Violation", "map_on_virtual_board",
           "virtual_board_environment", "max_expected_summed_weights", "observed_summed_weights",
           "ring_buffer_shifts", "ring_buffer_shift", "weight_scale", "quantized_magnitudes", "summed_weights",
           "on_core_delay_steps", "max_delay_steps", "n_bits", "MAX_NEURONS_PER_CORE", "MAX_ROW_LENGTH",
           "MAX_RING_BUFFER_BITS", "RECEPTORS", "DELAY_EXTENSION_STAGES", "FRACTION_BITS", "S1615_LIMIT",
           "WEIGHT_MASK", "SPIKES_PER_SECOND", "STATIC_SYNAPSES_PER_SECOND", "MAX_SYNAPSE_CORES",
           "BOARD_APPLICATION_CORES", "MAX_ZEROED_FRACTION"]
