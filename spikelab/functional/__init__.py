"""Pure tensor functions of (input, state, parameters): neuron scans, surrogate spikes, max-plus steps, delays."""
from .delays import delay_kernel, delayed_linear, delayed_linear_step
from .lif import LIFParameters, LIFState, leaky_integrate, leaky_integrate_step, lif_sequence, lif_step
from .surrogate import SURROGATES, default_slope, spike, surrogate_grad
from .ultralif import UltraState, max_plus_lse, ultra_diffusive_step, ultra_step

__all__ = ["LIFParameters", "LIFState", "lif_step", "lif_sequence", "leaky_integrate", "leaky_integrate_step",
           "spike", "surrogate_grad", "SURROGATES", "default_slope", "UltraState", "max_plus_lse", "ultra_step",
           "ultra_diffusive_step", "delay_kernel", "delayed_linear", "delayed_linear_step"]
