r"""Device noise models: how far a resistive cell lands from its target, and how it moves with time.

Pure functions of conductances ``g`` (µS, tensors of any shape) and time ``t`` (seconds since programming). The
published fits are aihwkit's (``aihwkit.inference.noise``, v1.1.0); :mod:`.device` names which one a preset uses.

Programming noise (once, when a cell is written)::

    g_prog = max(g_target + sigma_p(g_target) * N(0, 1), 0)
    sigma_p(g) = (g_max / g_ref) * sum_k c_k (g / g_max)^k                        # µS

=============  ===========================================================  ========  ======================================
model          coefficients ``c_k`` (µS)                                    ``g_ref``  source
=============  ===========================================================  ========  ======================================
``pcm``        0.26348, 1.9650, -1.1731                                     25 µS     Nandakumar et al., ICECS 2019
                                                                                      (aihwkit ``PCMLikeNoiseModel``)
``wan2022``    1 s: 0.348, 16.030, -43.853, 45.393, -16.815;                40 µS     Wan et al., Nature 608, 2022 (NeuRRAM),
               1 day: 0.701, 22.086, -50.773, 47.095, -16.458;                        fitted by aihwkit
               2 days: 0.782, 20.274, -43.507, 37.062, -11.934                        (``ReRamWan2022NoiseModel``)
=============  ===========================================================  ========  ======================================

(aihwkit's Wan 2022 model applies its coefficients unscaled whatever ``g_max``; here they scale with ``g_max / 40``,
which is the same at the published 40 µS.)

Drift (PCM; Nandakumar et al. 2019), with ``nu`` drawn once per cell::

    g(t) = g_prog * ((t + t0) / t0)^(-nu),    nu ~ |N(mu_nu(g_T), sigma_nu(g_T))|
    mu_nu = clip(-0.0155 ln(g_T / g_max) + 0.0244, 0.049, 0.1)
    sigma_nu = clip(-0.0125 ln(g_T / g_max) - 0.0059, 0.008, 0.045)

Noise accumulated since programming (one fixed draw ``e`` per cell, so a cell's state is a function of ``t``):

* ``pcm`` (1/f read noise integrated up to ``t``)::

      g(t) += |g(t)| * Q_s * sqrt(ln((t + t0 + t_read) / (2 t_read))) * e,   Q_s = min(0.0088 / max(g_prog/g_max, 1e-3)^0.65, 0.2)

* ``wan2022`` (retention: the spread of the 1 s, 1 day and 2 day fits, interpolated in ``log t``, constant outside)::

      g(t) = g_prog + sqrt(max(sigma(g_T, t)^2 - sigma(g_T, 1 s)^2, 0)) * e

  so the total spread around the target at ``t`` is ``sigma(g_T, t)``, the published fit at that time.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

PCM_PROGRAMMING = (0.26348, 1.9650, -1.1731)
PCM_REFERENCE_GMAX = 25.0
#: seconds since programming -> coefficients c_0..c_4 of sigma(g / g_max) in µS (at 40 µS)
WAN2022 = {1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
           86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
           172800.0: (0.782, 20.274, -43.507, 37.062, -11.934)}
WAN2022_REFERENCE_GMAX = 40.0
PCM_T0 = 20.0          # s, first read after programming (drift fit)
PCM_T_READ = 250e-9    # s, read pulse (1/f fit)
PROGRAMMING_MODELS = ("pcm", "wan2022")
DRIFT_MODELS = ("pcm",)
RETENTION_MODELS = ("pcm", "wan2022")


def polynomial_sigma(g: Tensor, coefficients, g_max: float, g_reference: float) -> Tensor:
    """``sigma(g) = (g_max / g_reference) * sum_k c_k (g / g_max)^k`` in µS (Horner's rule)."""
    x = g / g_max
    sigma = torch.full_like(g, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        sigma = sigma * x + c
    return sigma * (g_max / g_reference)


def programming_sigma(model: str, g: Tensor, g_max: float) -> Tensor:
    """The spread (µS) of a freshly programmed cell around its target ``g`` (µS) under ``model``."""
    if model == "pcm":
        return polynomial_sigma(g, PCM_PROGRAMMING, g_max, PCM_REFERENCE_GMAX)
    if model == "wan2022":
        return wan2022_sigma(g, 1.0, g_max)
    raise ValueError(f"unknown programming-noise model {model!r}; known: {', '.join(PROGRAMMING_MODELS)}")


def wan2022_sigma(g: Tensor, t: float, g_max: float) -> Tensor:
    """Spread (µS) around the target after ``t`` seconds: the Wan 2022 fits, interpolated linearly in ``log t``
    between 1 s, 1 day and 2 days (constant before 1 s and after 2 days)."""
    times = sorted(WAN2022)
    t = min(max(t, times[0]), times[-1])
    for lo, hi in zip(times, times[1:]):
        if t <= hi:
            a = (math.log(t) - math.log(lo)) / (math.log(hi) - math.log(lo))
            s_lo = polynomial_sigma(g, WAN2022[lo], g_max, WAN2022_REFERENCE_GMAX)
            if a == 0.0:
                return s_lo
            return (1 - a) * s_lo + a * polynomial_sigma(g, WAN2022[hi], g_max, WAN2022_REFERENCE_GMAX)
    raise AssertionError("unreachable")


def pcm_drift_exponents(g_target: Tensor, g_max: float, normal: Tensor) -> Tensor:
    """Drift exponents ``nu = |mu_nu + sigma_nu * normal|`` of PCM cells at target ``g_target`` (µS)."""
    log_g = torch.log((g_target / g_max).abs().clamp(min=1e-7))
    mu = (-0.0155 * log_g + 0.0244).clamp(0.049, 0.1)
    sigma = (-0.0125 * log_g - 0.0059).clamp(0.008, 0.045)
    return (mu + sigma * normal).abs()


def pcm_drift(g_prog: Tensor, nu: Tensor, t: float, t0: float = PCM_T0) -> Tensor:
    """``g_prog * ((t + t0) / t0)^(-nu)``: the conductance ``t`` seconds after programming."""
    return g_prog * ((t + t0) / t0) ** (-nu) if t > 0 else g_prog


def pcm_accumulated_sigma(g_prog: Tensor, g_now: Tensor, g_max: float, t: float, t0: float = PCM_T0,
                          t_read: float = PCM_T_READ) -> Tensor:
    """Spread (µS) of the 1/f noise a PCM cell has accumulated ``t`` seconds after programming (aihwkit)."""
    q_s = (0.0088 / (g_prog.abs() / g_max).pow(0.65).clamp(min=1e-3)).clamp(max=0.2)
    return g_now.abs() * q_s * math.sqrt(math.log((t + t0 + t_read) / (2 * t_read)))


def retention_sigma(model: str, g_target: Tensor, g_prog: Tensor, g_now: Tensor, g_max: float, t: float) -> Tensor:
    """The extra spread (µS) a cell has gathered ``t`` seconds after programming, on top of ``g_now``."""
    if model == "pcm":
        return pcm_accumulated_sigma(g_prog, g_now, g_max, t)
    if model == "wan2022":
        if t <= min(WAN2022):      # the first fit is the programming spread itself: nothing gathered yet
            return torch.zeros_like(g_target)
        extra = wan2022_sigma(g_target, t, g_max).square() - wan2022_sigma(g_target, 1.0, g_max).square()
        return extra.clamp(min=0.0).sqrt()
    raise ValueError(f"unknown retention model {model!r}; known: {', '.join(RETENTION_MODELS)}")
