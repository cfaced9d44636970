"""How a network's output sequence becomes a class: one decoder per training loss, shared by every backend.

Training (:mod:`spikelab.training.losses` builds its cross-entropy on these scores), evaluation, the SpiNNaker
fixed-point emulation, the NEST comparison and the standalone PyNN script all decode with this module, so a class
means the same everywhere. It imports nothing but numpy: ``spikelab export pynn-script`` copies this
file beside ``run_pynn.py``, which needs only PyNN and numpy. Every function takes a numpy array or a torch tensor
``(T, B, classes)`` (or ``(T, classes)`` for one sample) and returns the same kind.

==================  ====================================  =======================================================
decode              class scores from the output ``o``     meant for
==================  ====================================  =======================================================
``mean_membrane``   ``mean_t o[t]``                       a leaky readout's membrane (spikelab's default)
``per_step``        ``mean_t o[t]``                       a readout trained with a cross-entropy at every step
``spike_count``     ``sum_t o[t]``                        output spikes: the most active neuron wins
``summed_softmax``  ``sum_t softmax(o[t])``               the DCLS paper's readout (Hammouamri et al. 2024)
==================  ====================================  =======================================================
"""
from __future__ import annotations

import numpy as np

try:
    from spikelab.errors import ConfigError as DecodeError
except ImportError:   # beside run_pynn.py, where spikelab is not installed
    DecodeError = ValueError

DECODERS = ("mean_membrane", "per_step", "spike_count", "summed_softmax")


def _softmax(output):
    if hasattr(output, "softmax"):   # a torch tensor
        return output.softmax(-1)
    exp = np.exp(output - output.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def class_scores(output, decode: str = "mean_membrane"):
    """Per-class scores ``(B, classes)`` (or ``(classes,)``) from an output sequence ``(T, B, classes)``."""
    if decode in ("mean_membrane", "per_step"):
        return output.mean(0)
    if decode == "spike_count":
        return output.sum(0)
    if decode == "summed_softmax":
        return _softmax(output).sum(0)
    raise DecodeError(f"unknown decode {decode!r}; choose one of {', '.join(DECODERS)}")


def predict(output, decode: str = "mean_membrane"):
    """The class of every sample: the argmax of :func:`class_scores` over the last axis."""
    return class_scores(output, decode).argmax(-1)
