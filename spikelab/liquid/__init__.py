"""Liquid state machines: NALSM's 3-D liquid with astrocyte-modulated STDP (``reference/algorithms.md`` §3).

==================  ==========================================================================================
module              what is there
==================  ==========================================================================================
:mod:`.topology`    ``grid_liquid`` (seeded Maass-rule 3-D liquid, 80/20 E/I, random input synapses),
                    ``LiquidTopology`` (sparse index arrays, ``csr()``), ``liquid_shape``
:mod:`.machine`     ``LiquidStateMachine`` (``nn.Module``: ``forward`` plastic or frozen, independent or
                    sequential batches; ``learn``; ``save`` / ``load``)
:mod:`.metrics`     branching factor (as NALSM computes it), firing rates, kernel quality, separation,
                    spectral radius: pure functions of spikes, states and weight matrices
==================  ==========================================================================================

The neuron, the STDP rule with its astrocyte and the batch semantics are pure functions in
:mod:`spikelab.functional.liquid` (``liquid_run``: compiled kernel; ``liquid_reference``: torch loop).
"""
from spikelab.functional.liquid import AstroSTDPParameters, LiquidOutput, LiquidParameters

from . import metrics
from .machine import LiquidStateMachine
from .topology import LiquidTopology, grid_liquid, liquid_shape

__all__ = ["metrics", "LiquidStateMachine", "LiquidTopology", "grid_liquid", "liquid_shape", "LiquidParameters",
           "AstroSTDPParameters", "LiquidOutput"]
