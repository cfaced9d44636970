"""spikelab: spiking neural networks in PyTorch, from training to neuromorphic hardware.

>>> import spikelab as sl
>>> net = sl.Sequential(sl.Linear(578, 256), sl.LIF(beta=0.9), sl.Linear(256, 10), sl.LeakyIntegrator())
"""
import importlib

from . import functional, graph, plasticity, spec
from .delays import DelayedLinear, delay_param_groups
from .errors import SpikelabError
from .layers import AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Sequential
from .models import build_model
from .neurons import LIF, HomeostaticLIF, Neuron, LeakyIntegrator, RecurrentLIF, UltraDLIF, UltraDPLIF, UltraLIF, UltraPLIF, set_spike_mode
from .plasticity import STDP, Homeostasis, LocalRule, RewardSTDP
from .plots import plot_membrane, plot_raster, plot_training_curve
from .recording import record
from .training import Trainer, clamp_parameters, load, set_epoch

__version__ = "0.1.0"

__all__ = ["graph", "Neuron", "LIF", "RecurrentLIF", "LeakyIntegrator", "HomeostaticLIF", "UltraLIF", "UltraPLIF", "UltraDLIF", "UltraDPLIF",
           "set_spike_mode", "DelayedLinear", "delay_param_groups", "set_epoch", "clamp_parameters", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d",
           "BatchNorm2d", "Dropout", "Flatten", "Sequential", "Trainer", "load", "record", "plot_raster",
           "plot_membrane", "plot_training_curve", "build_model", "functional", "spec", "SpikelabError", "datasets", "crossbar",
           "plasticity", "LocalRule", "STDP", "RewardSTDP", "Homeostasis"]


def __getattr__(name):
    # spikelab.datasets imports tonic (slow); load it on first use only
    if name == "datasets":
        return importlib.import_module(".datasets", __name__)
    if name == "crossbar":   # sl.crossbar: the simulated crossbar backend (spikelab.backends.crossbar)
        return importlib.import_module(".backends.crossbar", __name__)
    raise AttributeError(f"module 'spikelab' has no attribute {name!r}")
