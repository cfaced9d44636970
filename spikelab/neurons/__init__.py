"""Neuron layers: ``nn.Module`` wrappers over :mod:`spikelab.functional`, one family per module.

=========================  ====================================================================
module                     neurons
=========================  ====================================================================
:mod:`.base`               ``Neuron``: the protocol every neuron layer follows (``spiking``,
                           ``step``, ``as_lif``, recording); ``LIFDescription``
:mod:`.lif`                ``LIF``, ``RecurrentLIF``, ``LeakyIntegrator`` (the non-spiking readout)
:mod:`.homeostatic`        ``HomeostaticLIF``: one adaptive threshold per neuron (what ``Homeostasis`` adapts)
:mod:`.ultra`              ``UltraLIF``, ``UltraPLIF``, ``UltraDLIF``, ``UltraDPLIF``: smooth max-plus
                           neurons trained without a surrogate gradient
=========================  ====================================================================
"""
from .base import LIFDescription, Neuron
from .homeostatic import HomeostaticLIF
from .lif import LIF, LeakyIntegrator, RecurrentLIF
from .ultra import ULTRA_NEURONS, UltraDLIF, UltraDPLIF, UltraLIF, UltraPLIF, set_spike_mode

__all__ = ["Neuron", "LIFDescription", "LIF", "RecurrentLIF", "LeakyIntegrator", "HomeostaticLIF", "UltraLIF",
           "UltraPLIF", "UltraDLIF", "UltraDPLIF", "ULTRA_NEURONS", "set_spike_mode"]
