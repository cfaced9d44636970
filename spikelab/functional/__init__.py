"""Pure tensor functions of (input, state, parameters): neuron scans, surrogate spikes, max-plus steps, delays,
plasticity (STDP traces and pair terms)."""
from .delays import delay_kernel, delayed_linear, delayed_linear_step
from .lif import LIFParameters, LIFState, leaky_integrate, leaky_integrate_step, lif_sequence, lif_step
from .plasticity import (STDPParameters, STDPState, apply_stdp, bounds_by_type, clip_weights, discounted_reward,
                         spike_outer_sum, stdp_online, stdp_step, stdp_terms, stdp_update, trace_before, trace_decay,
                         trace_scan, trace_step, weight_factors)
from .surrogate import SURROGATES, default_slope, spike, surrogate_grad
from .ultralif import (UltraState, max_plus_lse, ultra_diffusive_sequence, ultra_diffusive_step, ultra_sequence,
                       ultra_step)

__all__ = ["LIFParameters", "LIFState", "lif_step", "lif_sequence", "leaky_integrate", "leaky_integrate_step",
           "spike", "surrogate_grad", "SURROGATES", "default_slope", "UltraState", "max_plus_lse", "ultra_step",
           "ultra_diffusive_step", "ultra_sequence", "ultra_diffusive_sequence", "delay_kernel", "delayed_linear", "delayed_linear_step", "STDPParameters",
           "STDPState", "trace_decay", "trace_step", "trace_scan", "trace_before", "spike_outer_sum", "stdp_terms",
           "stdp_update", "stdp_step", "weight_factors", "clip_weights", "apply_stdp", "stdp_online", "discounted_reward", "bounds_by_type"]
