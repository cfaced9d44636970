"""Local learning rules: layers learn from their own spikes (and a reward), without backpropagation.

===================  ==========================================================================================
module               what is there
===================  ==========================================================================================
:mod:`.base`         ``LocalRule`` (attach by forward hooks, capture spikes, state for checkpoints),
                     ``local_rules`` (every rule in a model)
:mod:`.stdp`         ``STDP`` (pair rule: all-to-all / nearest, additive / multiplicative, bounds, batch modes),
                     ``RewardSTDP`` (three-factor: reward-to-go weights instead of an eligibility trace)
:mod:`.homeostasis`  ``Homeostasis``: adaptive thresholds of a ``HomeostaticLIF`` held at a target rate
:mod:`.pynn`         ``stdp_to_pynn``: an ``STDP`` rule as PyNN's ``STDPMechanism`` (NEST, sPyNNaker)
===================  ==========================================================================================

The pure functions under them are in :mod:`spikelab.functional.plasticity`; ``sl.Trainer(mode="local")`` trains
a network by its rules, alone or beside gradient-trained layers.
"""
from .base import LocalRule, local_rules
from .homeostasis import Homeostasis
from .stdp import STDP, RewardSTDP

__all__ = ["LocalRule", "local_rules", "STDP", "RewardSTDP", "Homeostasis", "stdp_to_pynn"]


def __getattr__(name):
    # the PyNN mapping is loaded on first use only (it is for export, not training)
    if name == "stdp_to_pynn":
        from .pynn import stdp_to_pynn

        return stdp_to_pynn
    raise AttributeError(f"module 'spikelab.plasticity' has no attribute {name!r}")
