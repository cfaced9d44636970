"""Neuron layers: ``nn.Module`` wrappers over :mod:`spikelab.functional`, one family per module.

=========================  ====================================================================
module                     neurons
=========================  ====================================================================
:mod:`.lif`                ``LIF``, ``RecurrentLIF``, ``LeakyIntegrator`` (the non-spiking readout)
=========================  ====================================================================
"""
from .lif import LIF, LeakyIntegrator, RecurrentLIF

__all__ = ["LIF", "RecurrentLIF", "LeakyIntegrator"]
