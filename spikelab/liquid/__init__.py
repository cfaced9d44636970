"""Liquid state machines: NALSM's 3-D liquid with astrocyte-modulated STDP (``reference/algorithms.md`` §3).

==================  ==========================================================================================
module              what is there
==================  ==========================================================================================
:mod:`.topology`    ``grid_liquid`` (seeded Maass-rule 3-D liquid, 80/20 E/I, random input synapses),
                    ``LiquidTopology`` (sparse index arrays, ``csr()``), ``liquid_shape``
:mod:`.machine`     ``LiquidStateMachine`` (``nn.Module``: ``forward`` plastic or frozen, independent or
                    sequential batches; ``learn``; ``save`` / ``load``)
:mod:`.readout`     ``liquid_features`` (counts, binned rates, filtered traces), ``normalise`` (NALSM's L1 then
                    training max), ``LinearReadout`` (``fit_ridge`` closed form, ``fit_gradient`` Adadelta with
                    the epoch chosen on validation)
:mod:`.protocol`    NALSM's three phases: ``NALSMConfig``, ``liquid_input`` (a frames dataset as liquid
                    input), ``init_window``, ``initialise_liquid``, ``extract_features``, ``fit_readout``,
                    ``run_nalsm`` -> ``NALSMResult``
:mod:`.export`      ``liquid_to_network`` (static weights as a ``spikelab.graph.Network`` for PyNN / NEST /
                    SpiNNaker), ``input_unit_spikes``, ``liquid_stdp_rule`` / ``stdp_mechanism`` (the rule on
                    excitatory or inhibitory synapses as ``sl.STDP`` / PyNN's STDPMechanism; refuses the
                    astrocyte by name); imported on first use
:mod:`.metrics`     branching factor (as NALSM computes it), firing rates, kernel quality, separation,
                    spectral radius: pure functions of spikes, states and weight matrices
==================  ==========================================================================================

The neuron, the STDP rule with its astrocyte and the batch semantics are pure functions in
:mod:`spikelab.functional.liquid` (``liquid_run``: compiled kernel; ``liquid_reference``: torch loop).
"""
from spikelab.functional.liquid import AstroSTDPParameters, LiquidOutput, LiquidParameters

from . import metrics
from .machine import LiquidStateMachine
from .protocol import (NALSMConfig, NALSMResult, extract_features, fit_readout, init_window, initialise_liquid,
                       liquid_input, run_nalsm)
from .readout import LinearReadout, liquid_features, normalise
from .topology import LiquidTopology, grid_liquid, liquid_shape

__all__ = ["metrics", "LiquidStateMachine", "LiquidTopology", "grid_liquid", "liquid_shape", "LiquidParameters",
           "AstroSTDPParameters", "LiquidOutput", "LinearReadout", "liquid_features", "normalise", "NALSMConfig",
           "NALSMResult", "liquid_input", "init_window", "initialise_liquid", "extract_features", "fit_readout", "run_nalsm"]
