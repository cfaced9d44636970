"""Neuron layers: ``nn.Module`` wrappers over :mod:`spikelab.functional`, one family per module.

=========================  ====================================================================
module                     neurons
=========================  ====================================================================
:mod:`.lif`                ``LIF``, ``RecurrentLIF``, ``LeakyIntegrator`` (the non-spiking readout)
:mod:`.ultra`              ``UltraLIF``, ``UltraPLIF``, ``UltraDLIF``, ``UltraDPLIF``: smooth max-plus
                           neurons trained without a surrogate gradient
=========================  ====================================================================
"""
from .lif import LIF, LeakyIntegrator, RecurrentLIF
from .ultra import ULTRA_NEURONS, UltraDLIF, UltraDPLIF, UltraLIF, UltraPLIF, set_spike_mode

__all__ = ["LIF", "RecurrentLIF", "LeakyIntegrator", "UltraLIF", "UltraPLIF", "UltraDLIF", "UltraDPLIF",
           "ULTRA_NEURONS", "set_spike_mode"]
