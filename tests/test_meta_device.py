"""Every layer builds and runs forward (training and evaluation), step and backward on the ``meta`` device.

``meta`` tensors have shapes and dtypes but no data, so any operation that reads a value on the host (``.item()``,
``float(tensor)``, ``torch.equal``, a numpy conversion, a Python ``if`` on a tensor) or that runs only on the CPU
(numba) raises there. On a GPU each of those is a host synchronisation per forward pass, or a crash: this file
keeps the CUDA code paths free of them on a machine without a GPU. (The Triton kernels themselves are checked in
``test_lif_triton.py`` and ``test_ultralif_triton.py``.)
"""
from __future__ import annotations

import pytest
import torch

from spikelab.delays import DelayedLinear
from spikelab.neurons import LIF, HomeostaticLIF, RecurrentLIF
from spikelab.neurons.ultra import ULTRA_NEURONS, set_spike_mode

T, B, F = 5, 2, 6
LAYERS = {
    "lif": lambda: LIF(0.9),
    "lif_learn_beta": lambda: LIF(0.9, learn_beta="neuron", features=F, reset="subtract"),
    "recurrent_lif": lambda: RecurrentLIF(F, bias=True),
    "homeostatic_lif": lambda: HomeostaticLIF(F),
    "delayed_linear": lambda: DelayedLinear(F, 4, max_delay=3, bias=True),
    "delayed_linear_extend": lambda: DelayedLinear(F, 4, max_delay=30, extend=True),  # the DFT method
    **{name: cls for name, cls in ULTRA_NEURONS.items()},
}


def _out_steps(layer) -> int:
    return T + layer.max_delay if getattr(layer, "extend", False) else T


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("mode", ("train", "eval"))
def test_layer_runs_on_meta_tensors(name, mode):
    layer = LAYERS[name]().to("meta").train(mode == "train")
    out_features = 4 if isinstance(layer, DelayedLinear) else F
    x = torch.empty(T, B, F, device="meta", requires_grad=True)
    y = layer(x)
    assert y.device.type == "meta" and y.shape == (_out_steps(layer), B, out_features)
    y.sum().backward()
    assert x.grad.shape == x.shape
    # in evaluation a delay layer's one-hot taps pass no gradient to the delays; everything else receives one
    expected = [n for n, p in layer.named_parameters() if p.requires_grad and not (mode == "eval" and n == "position")]
    assert all(layer.get_parameter(n).grad.device.type == "meta" for n in expected)
    y_t, _ = layer.step(x[0].detach())
    assert y_t.device.type == "meta" and y_t.shape == (B, out_features)


@pytest.mark.parametrize("name", sorted(ULTRA_NEURONS))
def test_ultra_layers_run_conv_feature_maps_and_hard_spikes_on_meta(name):
    layer = ULTRA_NEURONS[name]().to("meta")
    set_spike_mode(layer, "hard")
    x = torch.empty(T, B, 3, 4, 4, device="meta")
    spikes, state = layer(x, return_state=True)
    assert spikes.shape == x.shape and state.v.shape == x.shape[1:] and state.v.device.type == "meta"


def test_delay_schedule_and_no_grad_steps_on_meta():
    """The rounded phase (straight-through taps) in training, and a no-grad step loop (the kernel cache)."""
    layer = DelayedLinear(F, 4, max_delay=3).to("meta")
    layer.set_epoch(9, 10)
    assert layer.straight_through
    layer(torch.empty(T, B, F, device="meta")).sum().backward()
    with torch.no_grad():
        history = None
        for x_t in torch.empty(T, B, F, device="meta"):
            y_t, history = layer.step(x_t, history)
    assert y_t.shape == (B, 4)
