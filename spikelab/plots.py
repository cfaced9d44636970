"""Figures saved as PNG: spike rasters, membrane traces, training curves, synaptic delay histograms, histograms of
liquid quantities (weights, firing rates, branching factors)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .errors import ConfigError  # noqa: E402


def plot_raster(spikes: torch.Tensor, path, sample: int = 0, dt: float | None = None, title: str = "") -> Path:
    """Save a raster of one sample's spikes ``(T, B, ...)``: a dot per (time step, neuron) spike."""
    spikes = spikes.detach().cpu()[:, sample].reshape(spikes.shape[0], -1)
    steps, neurons = torch.nonzero(spikes > 0, as_tuple=True)
    times = steps.float() * (dt if dt else 1.0)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.scatter(times.numpy(), neurons.numpy(), s=2, c="k", marker="|")
    ax.set_xlim(0, spikes.shape[0] * (dt if dt else 1.0))
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set_xlabel("time (ms)" if dt else "time step")
    ax.set_ylabel("neuron")
    ax.set_title(title or f"{len(steps)} spikes, {spikes.shape[1]} neurons")
    return _save(fig, path)


def plot_membrane(v: torch.Tensor, path, sample: int = 0, neurons: int = 5, threshold: float | None = None) -> Path:
    """Save the membrane traces ``(T, B, ...)`` of the first ``neurons`` neurons of one sample."""
    traces = v.detach().cpu()[:, sample].reshape(v.shape[0], -1)[:, :neurons]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(traces.numpy(), lw=1)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label="threshold")
        ax.legend(loc="upper right")
    ax.set_xlabel("time step")
    ax.set_ylabel("membrane")
    return _save(fig, path)


def plot_training_curve(history: list[dict], path) -> Path:
    """Save loss and accuracy per epoch (train, and validation where present)."""
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    for split in ("train", "val"):
        if f"{split}_loss" in history[0]:
            loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], marker="o", label=split)
            acc_ax.plot(epochs, [row[f"{split}_accuracy"] for row in history], marker="o", label=split)
    loss_ax.set(xlabel="epoch", ylabel="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    loss_ax.legend()
    acc_ax.legend()
    return _save(fig, path)


def plot_delay_histogram(delays: dict, path, max_delay: int | dict | None = None, dt: float | None = None,
                         title: str = "") -> Path:
    """Save one histogram per layer of integer synaptic delays, side by side.

    Args:
        delays: ``{layer name: delays in steps}`` (any shape, e.g. ``(out, in)``; rounded to whole steps here).
        max_delay: the longest possible delay in steps, one for all layers or ``{layer name: steps}``; sets each
            x axis (default: the largest delay present).
        dt: time step in ms; given, the x axis is in ms.
        title: figure title.
    """
    if not delays:
        raise ConfigError("no delays to plot: give {layer name: delays}, e.g. from spikelab.delays.delay_summary")
    fig, axes = plt.subplots(1, len(delays), figsize=(4.5 * len(delays), 3.5), squeeze=False)
    scale = dt if dt else 1.0
    for ax, (name, d) in zip(axes[0], delays.items()):
        d = torch.as_tensor(d).detach().cpu().double().round().flatten().long()
        top = max_delay.get(name) if isinstance(max_delay, dict) else max_delay
        top = int(d.max()) if top is None else int(top)
        counts = torch.bincount(d.clamp(0, top), minlength=top + 1)
        ax.bar((torch.arange(top + 1) * scale).numpy(), counts.numpy(), width=0.9 * scale, color="C0")
        ax.set_xlim(-0.6 * scale, (top + 0.6) * scale)
        ax.set_xlabel("delay (ms)" if dt else "delay (steps)")
        ax.set_ylabel("synapses")
        ax.set_title(f"{name}: {d.numel()} synapses, mean {d.double().mean() * scale:.3g}{' ms' if dt else ''}")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_histograms(panels: dict, path, bins: int = 40, title: str = "") -> Path:
    """Save one histogram per panel, side by side: ``{panel title: (values, x label)}`` (values of any shape;
    NaN left out), e.g. a liquid's weights per synapse type, its firing rates and branching factors."""
    if not panels:
        raise ConfigError("no values to plot: give {panel title: (values, x label)}")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.5), squeeze=False)
    for ax, (name, (values, xlabel)) in zip(axes[0], panels.items()):
        values = torch.as_tensor(values).detach().cpu().double().flatten()
        values = values[~torch.isnan(values)]
        if len(values):
            ax.hist(values.numpy(), bins=bins, color="C0")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        ax.set_title(f"{name} (n={len(values)})", fontsize=10)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
