r"""Accuracy against each non-ideality: one knob of a preset varied, the rest left at the preset.

===========  =====================================================  ==============================================
sweep        what varies                                            values (default)
===========  =====================================================  ==============================================
``noise``    programming noise and read noise, as a multiple of     0, 0.5, 1, 2, 4
             the preset's
``drift``    time since programming (s): drift and retention        0, 1 h, 1 day, 1 month, 1 year
``levels``   conductance levels per cell (None: continuous)         None, 64, 32, 16, 8, 4
``adc``      ADC bits per tile column (None: ideal)                 None, 10, 8, 6, 5, 4
===========  =====================================================  ==============================================

Every point programs a fresh chip per seed (``seeds``) and reports the mean and spread of test accuracy; the same
seed draws the same cells at every point (a common random stream per kind of draw), so points differ by the knob
alone.
"""
from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError

from .convert import convert, set_time
from .device import Device, Periphery

SWEEPS = {
    "noise": ("noise scale (x the preset's programming and read noise)", (0.0, 0.5, 1.0, 2.0, 4.0)),
    "drift": ("time since programming (s)", (0.0, 3600.0, 86400.0, 2592000.0, 31536000.0)),
    "levels": ("conductance levels (None: continuous)", (None, 64, 32, 16, 8, 4)),
    "adc": ("ADC bits (None: ideal ADC)", (None, 10, 8, 6, 5, 4)),
}


def configure(kind: str, value, device: Device, periphery: Periphery) -> tuple[Device, Periphery, float]:
    """``(device, periphery, seconds since programming)`` of one sweep point."""
    if kind == "noise":
        return (device.replace(programming_scale=value * device.programming_scale,
                               read_noise=value * device.read_noise), periphery, 0.0)
    if kind == "drift":
        return device, periphery, float(value)
    if kind == "levels":
        return device.replace(levels=value), periphery, 0.0
    if kind == "adc":
        return device, periphery.replace(adc_bits=value), 0.0
    raise ConfigError(f"unknown sweep {kind!r}; choose one of {', '.join(SWEEPS)}")


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, predict: Callable, batch_size: int = 128) -> float:
    """Share of samples of ``x`` ``(T, N, ...)`` whose ``predict(model output)`` equals ``y``."""
    predicted = torch.cat([torch.as_tensor(predict(model(x[:, i:i + batch_size]))) for i in range(0, x.shape[1], batch_size)])
    return (predicted == y).double().mean().item()


def chip_accuracy(model: nn.Module, x: Tensor, y: Tensor, predict: Callable, device: Device, periphery: Periphery,
                  seconds: float = 0.0, seed: int = 0, dt: float | None = None) -> float:
    """Program ``model`` with ``seed``, wait ``seconds``, and measure its accuracy on ``(x, y)``."""
    chip = set_time(convert(model, device, periphery, seed=seed, dt=dt), seconds)
    return accuracy(chip, x, y, predict)


def summarize_accuracies(values: list[float]) -> dict:
    return {"accuracies": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def run_sweep(model: nn.Module, x: Tensor, y: Tensor, predict: Callable, kind: str, device: Device,
              periphery: Periphery, seeds=(0,), dt: float | None = None, values=None, progress=None) -> dict:
    """Accuracy of ``model`` on ``(x, y)`` at every point of sweep ``kind`` (module docstring).

    Returns ``{"kind", "label", "points": [{"value", "accuracies", "mean", "std"}, ...]}``.
    """
    if kind not in SWEEPS:
        raise ConfigError(f"unknown sweep {kind!r}; choose one of {', '.join(SWEEPS)}")
    label, defaults = SWEEPS[kind]
    points = []
    for value in (defaults if values is None else values):
        point_device, point_periphery, seconds = configure(kind, value, device, periphery)
        results = []
        for seed in seeds:
            results.append(chip_accuracy(model, x, y, predict, point_device, point_periphery, seconds, seed, dt))
            if progress is not None:
                progress()
        points.append({"value": value, **summarize_accuracies(results)})
    return {"kind": kind, "label": label, "points": points}


def format_sweep(sweep: dict, float_accuracy: float) -> str:
    """A text table of one sweep, float accuracy beside it."""
    lines = [f"{sweep['label']}: accuracy (float model {float_accuracy:.4f})"]
    for point in sweep["points"]:
        spread = f" +- {point['std']:.4f}" if len(point["accuracies"]) > 1 else ""
        lines.append(f"  {str(point['value']):>12}  {point['mean']:.4f}{spread}  "
                     f"(drop {float_accuracy - point['mean']:+.4f})")
    return "\n".join(lines)


def plot_sweeps(sweeps: list[dict], float_accuracy: float, path, title: str = "") -> None:
    """One panel per sweep: accuracy (mean +- std over seeds) against the knob, the float accuracy as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.2 * len(sweeps), 3.4), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        labels = [str(p["value"]) for p in sweep["points"]]
        means = [p["mean"] for p in sweep["points"]]
        stds = [p["std"] for p in sweep["points"]]
        ax.errorbar(range(len(labels)), means, yerr=stds, marker="o", capsize=3, label="crossbar")
        ax.axhline(float_accuracy, color="k", linestyle="--", label="float")
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(sweep["label"], fontsize=8)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
