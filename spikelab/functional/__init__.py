"""Pure tensor functions of (input, state, parameters): neuron scans and surrogate spikes."""
from .lif import LIFParameters, LIFState, leaky_integrate, leaky_integrate_step, lif_sequence, lif_step
from .surrogate import SURROGATES, default_slope, spike, surrogate_grad

__all__ = ["LIFParameters", "LIFState", "lif_step", "lif_sequence", "leaky_integrate", "leaky_integrate_step",
           "spike", "surrogate_grad", "SURROGATES", "default_slope"]
