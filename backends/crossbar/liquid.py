r"""The RRAM random liquid (Lin et al., *Nat. Comput. Sci.* 2025, "Resistive memory-based zero-shot liquid state
machine"): a liquid state machine whose input and recurrent weights are random conductance pairs, never trained
and never programmed, with only a digital readout trained.

The liquid (one layer of ``N`` LIF neurons, the authors' recurrence)::

    v[t] = decay * v[t-1] * (1 - s[t-1]) + W_in x[t] + W_rec s[t-1],     s[t] = H(v[t] - threshold)
    feature = sum_t s[t] / T                                               # firing rate of each liquid neuron

is ``sl.Linear(in, N, bias=False)`` then ``sl.RecurrentLIF(N, beta=decay, threshold=threshold)``, so it is an
ordinary spikelab model. :func:`random_liquid` builds it two ways:

* the **software twin** (``device=None``): ``W ~ N(0, weight_std)``, the authors' Gaussian simulation;
* **on RRAM** (a :class:`~.device.Device`): every weight is ``(G+ - G-) * gain`` of two cells formed at random
  (formed with probability ``formed_fraction`` at ``N(forming_mean, forming_std)`` µS, else left at g_min; ESGNN,
  Wang et al. 2023), read through the periphery with fresh read noise every step. ``gain`` makes the weights'
  std equal ``weight_std``, so both liquids have the same statistics and differ only in their distribution,
  sparsity and read noise.

Defaults (the authors' N-MNIST script ``LSM-NMNIST/run_lsm_gau_sim.sh``, 89.11 % on full N-MNIST; 89.66 % on
their chip): 16 x 16 centre crop (256 inputs), 200 neurons, T = 50, decay 0.9, threshold 5.0. Their weight scale
is ``const = 0.07`` times a Gaussian of the measured differential-conductance std (about 6.6 µS), so
``weight_std = 0.07 * 6.6 = 0.462`` here; the exact mapping in their code is not public.

=====================  =======  ========  ======================================================================
parameter              unit     default   meaning
=====================  =======  ========  ======================================================================
``in_features``        --       (req.)    inputs per step
``neurons``            --       200       liquid size ``N``
``decay``              1/step   0.9       membrane decay
``threshold``          1        5.0       firing threshold
``weight_std``         1        0.462     std of every input and recurrent weight
``formed_fraction``    1        1.0       share of cells formed (the rest stay at g_min: sparsity)
``seed``               --       0         draws the weights (and, on RRAM, the read noise)
=====================  =======  ========  ======================================================================
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError
from spikelab.layers import Linear, Sequential
from spikelab.neurons import RecurrentLIF

from .array import CrossbarArray
from .convert import CrossbarLinear
from .device import Device, Periphery

PAPER = {"neurons": 200, "decay": 0.9, "threshold": 5.0, "weight_std": 0.07 * 6.6, "steps": 50, "crop": 16}


def formed_cell_variance(device: Device, formed_fraction: float) -> float:
    """Variance (µS^2) of one randomly formed cell: ``g_min`` w.p. ``1 - p``, ``N(forming_mean, forming_std)`` w.p. ``p``."""
    p, mean = formed_fraction, device.forming_mean - device.g_min
    return p * (device.forming_std ** 2 + mean ** 2) - (p * mean) ** 2


def random_liquid(in_features: int, neurons: int = 200, decay: float = 0.9, threshold: float = 5.0,
                  weight_std: float = PAPER["weight_std"], seed: int = 0, device: Device | None = None,
                  periphery: Periphery | None = None, formed_fraction: float = 1.0) -> Sequential:
    """The random liquid (module docstring): software twin when ``device`` is None, else random RRAM conductances.

    Returns ``Sequential(Linear | CrossbarLinear, RecurrentLIF)`` mapping ``(T, B, in_features)`` to the liquid's
    spikes ``(T, B, neurons)``.

    Example::

        >>> import torch
        >>> from spikelab.backends import crossbar
        >>> chip = crossbar.random_liquid(256, device=crossbar.RRAM(), periphery=crossbar.Periphery(adc_bits=None))
        >>> twin = crossbar.random_liquid(256)
        >>> chip((torch.rand(50, 4, 256) < 0.1).float()).shape
        torch.Size([50, 4, 200])
    """
    if not 0 < formed_fraction <= 1:
        raise ConfigError(f"formed_fraction must be in (0, 1], got {formed_fraction!r}")
    liquid = Sequential(Linear(in_features, neurons, bias=False), RecurrentLIF(neurons, beta=decay, threshold=threshold))
    if device is None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for weight in (liquid[0].weight, liquid[1].recurrent.weight):
                weight.copy_(torch.randn(weight.shape, generator=generator) * weight_std)
        return liquid.eval()
    periphery = periphery if periphery is not None else Periphery()
    gain = weight_std / math.sqrt(2 * formed_cell_variance(device, formed_fraction))
    for key, parent, name, rows in (("input", liquid, "0", in_features), ("recurrent", liquid[1], "recurrent", neurons)):
        array = CrossbarArray(None, device, periphery, seed=seed, key=key, shape=(neurons, rows),
                              random_fraction=formed_fraction, gain=gain)
        setattr(parent, name, CrossbarLinear(array, None, None))
    liquid.crossbar = {"device": device.to_dict(), "periphery": periphery.to_dict(), "seed": int(seed), "dt": None,
                       "random_liquid": {"formed_fraction": formed_fraction, "gain": gain}}
    return liquid.eval()


@torch.no_grad()
def firing_rates(liquid: nn.Module, frames, batch_size: int = 100) -> Tensor:
    """The liquid's feature of every sample: mean spike rate per neuron ``(N, neurons)``. ``frames``: ``(T, N, in)``."""
    return torch.cat([liquid(frames[:, start:start + batch_size]).mean(0)
                      for start in range(0, frames.shape[1], batch_size)])


def fit_readout(features: Tensor, labels: Tensor, classes: int, epochs: int = 100, lr: float = 1e-3,
                batch_size: int = 100, seed: int = 0) -> nn.Linear:
    """The digital readout: ``Linear(neurons, classes)`` trained with Adam on cross-entropy (the authors' recipe:
    batch 100, 100 epochs; they use lr 1e-4 on 60,000 samples, 1e-3 suits the small sets here)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    readout = nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.Adam(readout.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(readout(features[index]), labels[index]).backward()
            optimizer.step()
    return readout.eval()


@torch.no_grad()
def readout_accuracy(readout: nn.Linear, features: Tensor, labels: Tensor) -> float:
    return (readout(features).argmax(1) == labels).float().mean().item()
