r"""Simulated resistive-memory crossbars for spiking networks: every synapse of a trained model on programmed
conductance pairs, with each non-ideality switchable on its own, and the RRAM random liquid.

==============  ====================================================================================================
module          what is there
==============  ====================================================================================================
``noise``       published device noise models as pure functions: programming sigma(G) (PCM, Wan 2022 RRAM),
                PCM drift, noise gathered over time
``device``      :class:`Device` (the cell) and :class:`Periphery` (tiles, ADC, DAC, IR drop); presets
                :func:`PCM`, :func:`RRAM`
``tile``        the tile arithmetic as pure functions: pairs, levels, programming, time, IR drop, ADC, the read
``array``       :class:`CrossbarArray`: one programmed weight matrix and its reads
``convert``     :func:`convert` a model (the synapse protocol), :func:`set_time`, :func:`reseed`, :func:`save`,
                :func:`load`
``training``    :func:`add_training_noise`: noise-aware training hooks
``sweep``       accuracy against each non-ideality, tables and plots
``liquid``      :func:`random_liquid`: a liquid state machine whose weights are random RRAM conductances
``nalsm``       :class:`CrossbarLiquid`: NALSM's ``LiquidStateMachine`` converted (programmed weights, frozen)
==============  ====================================================================================================

Example::

    >>> import torch, spikelab as sl
    >>> from spikelab.backends import crossbar
    >>> net = sl.Sequential(sl.Linear(100, 32), sl.LIF(), sl.Linear(32, 3), sl.LeakyIntegrator())
    >>> chip = crossbar.convert(net, crossbar.RRAM(levels=32), crossbar.Periphery(adc_bits=8), seed=0)
    >>> out = chip((torch.rand(20, 4, 100) < 0.2).float())     # fresh read noise every sample and step
"""
from .array import CrossbarArray
from .convert import (CrossbarConv2d, CrossbarDelayedLinear, CrossbarLinear, arrays, convert, load, register_synapse,
                      reseed, save, set_time, synapse_layers)
from .device import PCM, PRESETS, RRAM, Device, Periphery, preset
from .liquid import firing_rates, fit_readout, random_liquid, readout_accuracy
from .nalsm import CrossbarLiquid
from .sweep import SWEEPS, plot_sweeps, run_sweep
from .training import add_training_noise

__all__ = ["Device", "Periphery", "PCM", "RRAM", "PRESETS", "preset", "CrossbarArray", "convert", "set_time", "reseed",
           "save", "load", "arrays", "register_synapse", "synapse_layers", "CrossbarLinear", "CrossbarConv2d",
           "CrossbarDelayedLinear", "add_training_noise", "random_liquid", "firing_rates", "fit_readout",
           "readout_accuracy", "CrossbarLiquid", "SWEEPS", "run_sweep", "plot_sweeps"]
