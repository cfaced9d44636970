r"""Readouts of a liquid: features from its spikes, NALSM's normalisation, and a linear classifier trained in closed
form (ridge regression) or by gradient (Adadelta, as NALSM).

**Features** (:func:`liquid_features`, from spikes ``s`` ``(T, B, N)``):

============  ==============  ==========================================================================
kind          shape           value
============  ==============  ==========================================================================
``counts``    ``(B, N)``      ``sum_t s[t]`` (what NALSM's readout sees)
``rates``     ``(B, bins N)`` spikes per ms in ``bins`` equal windows (``T // bins`` steps each; the
                              last ``T mod bins`` steps are left out), bin-major
``trace``     ``(B, N)``      an exponential filter read at the last step:
                              ``sum_t s[t] exp(-(T - 1 - t) / tau)``
============  ==============  ==========================================================================

**Normalisation** (:func:`normalise`, NALSM §3.6): each sample divided by its L1 norm, then everything by one
scale, the largest value of the training set (``x / ||x||_1 / max``; a silent sample stays 0). The scale is
fitted on the training features and reused for validation and test.

**Classifiers** (:class:`LinearReadout`, ``scores = x W^T + b`` on the normalised features):

* ``fit_ridge(x, y, classes, ridge)``: ``[W b] = argmin ||[x 1] [W b]^T - Y||^2 + ridge ||W||^2`` with one-hot
  ``Y``, the bias not penalised; solved in closed form (float64 normal equations).
* ``fit_gradient(x, y, classes, valid=(xv, yv), epochs, lr=0.1, weight_decay=5e-10, batch_size=250,
  soft_targets=True)``: NALSM's readout: zero-initialised, softmax cross-entropy against ``softmax(one-hot)``
  targets (``soft_targets``; False: the one-hot labels), L2 ``weight_decay`` on ``W``, Adadelta; keeps the weights
  of the epoch with the best validation accuracy (the test set is never looked at).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikelab.errors import ConfigError

FEATURES = ("counts", "rates", "trace")


def liquid_features(spikes: Tensor, kind: str = "counts", bins: int = 5, tau: float = 20.0) -> Tensor:
    """Features ``(B, F)`` of liquid spikes ``(T, B, N)`` (table in the module docstring); float32."""
    if kind not in FEATURES:
        raise ConfigError(f"feature kind must be one of {', '.join(FEATURES)}, got {kind!r}")
    s = spikes.float()
    steps = s.shape[0]
    if kind == "counts":
        return s.sum(0)
    if kind == "rates":
        if not 1 <= bins <= steps:
            raise ConfigError(f"bins must be between 1 and the number of steps ({steps}), got {bins}")
        width = steps // bins
        binned = s[:bins * width].reshape(bins, width, *s.shape[1:]).sum(1) / width     # (bins, B, N)
        return binned.permute(1, 0, 2).reshape(s.shape[1], -1)
    if not tau > 0:
        raise ConfigError(f"tau must be a positive number of ms, got {tau!r}")
    weights = torch.exp(-torch.arange(steps - 1, -1, -1, dtype=torch.float64) / tau).float()
    return torch.einsum("t,tbn->bn", weights, s)


def normalise(features: Tensor, scale: float | None = None) -> tuple[Tensor, float]:
    """NALSM's normalisation: ``features / ||features||_1`` per sample, then divided by ``scale`` (default: the
    largest of those values, to fit on the training set). Returns the normalised features and the scale."""
    x = features.double()
    norm = x.abs().sum(1, keepdim=True)
    x = torch.where(norm > 0, x / norm.clamp(min=1e-300), torch.zeros_like(x))
    if scale is None:
        scale = float(x.max()) if x.numel() and float(x.max()) > 0 else 1.0
    return (x / scale).float(), scale


class LinearReadout(nn.Module):
    """A linear classifier on normalised liquid features (module docstring); ``scale`` is the normaliser fitted
    on the training set (None: the features are used as given)."""

    def __init__(self, features: int, classes: int, normalised: bool = True):
        super().__init__()
        self.linear = nn.Linear(features, classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.normalised = normalised
        self.register_buffer("scale", torch.tensor(1.0, dtype=torch.float64))

    def prepare(self, features: Tensor, fit: bool = False) -> Tensor:
        """``features`` as the classifier sees them (normalised with the stored scale, or fitting it)."""
        if not self.normalised:
            return features.float()
        x, scale = normalise(features, None if fit else float(self.scale))
        if fit:
            self.scale.fill_(scale)
        return x

    def forward(self, features: Tensor) -> Tensor:
        """Class scores ``(B, classes)`` of raw features ``(B, F)``."""
        return self.linear(self.prepare(features))

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        with torch.no_grad():
            return (self(features).argmax(1) == labels).float().mean().item()

    def fit_ridge(self, features: Tensor, labels: Tensor, ridge: float = 1e-3) -> "LinearReadout":
        """Closed-form ridge regression onto one-hot targets (module docstring)."""
        if not ridge >= 0:
            raise ConfigError(f"ridge must be >= 0, got {ridge!r}")
        x = self.prepare(features, fit=True).double()
        y = F.one_hot(labels.long(), self.linear.out_features).double()
        design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        penalty = torch.eye(design.shape[1], dtype=torch.float64) * ridge
        penalty[-1, -1] = 0.0
        solution = torch.linalg.lstsq(design.T @ design + penalty, design.T @ y).solution   # (F + 1, classes)
        with torch.no_grad():
            self.linear.weight.copy_(solution[:-1].T)
            self.linear.bias.copy_(solution[-1])
        return self

    def fit_gradient(self, features: Tensor, labels: Tensor, valid: tuple[Tensor, Tensor] | None = None,
                     epochs: int = 100, lr: float = 0.1, weight_decay: float = 5e-10, batch_size: int = 250,
                     soft_targets: bool = True, seed: int = 0) -> dict:
        """NALSM's readout training (module docstring). Returns the history: ``train_accuracy``,
        ``valid_accuracy`` per epoch, ``best_epoch`` (0-based; by validation accuracy, or the last epoch
        without a validation set)."""
        if epochs < 1 or batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        x = self.prepare(features, fit=True)
        classes = self.linear.out_features
        targets = F.one_hot(labels.long(), classes).float()
        targets = targets.softmax(1) if soft_targets else targets
        optimiser = torch.optim.Adadelta(self.linear.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        history = {"train_accuracy": [], "valid_accuracy": [], "best_epoch": None}
        best, best_state = -1.0, None
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                loss = F.cross_entropy(self.linear(x[batch]), targets[batch])
                loss = loss + weight_decay * self.linear.weight.pow(2).sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                history["train_accuracy"].append((self.linear(x).argmax(1) == labels).float().mean().item())
            score = self.accuracy(*valid) if valid is not None else float(epoch)
            if valid is not None:
                history["valid_accuracy"].append(score)
            if score > best:
                best, best_state = score, {k: v.clone() for k, v in self.linear.state_dict().items()}
                history["best_epoch"] = epoch
        self.linear.load_state_dict(best_state)
        return history
