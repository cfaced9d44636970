"""Trainer: fit a spiking network by backprop through time (BPTT), online through time (SLTT), or local rules.

=========  ================================================================================
mode       what one batch does
=========  ================================================================================
``bptt``   forward over the whole sequence, one backward through every step's graph;
           activation memory grows with T
``sltt``   run the network one step at a time through all layers, backpropagate a per-step
           loss at every step, detach every state before the next step (the membrane's
           temporal route is dropped, Meng et al. 2023); memory no longer grows with T
``sltt-k`` as ``sltt`` but backpropagate at only K random steps; the others run without graph
``local``  forward over the whole sequence; the parameters no local rule governs learn by gradient
           as in ``bptt`` (if there are any), then every attached rule (STDP, homeostasis...) updates
           its layers from the spikes of that forward pass (:mod:`spikelab.training.local`)
=========  ================================================================================

SLTT needs a model with ``step(x_t, state) -> (y_t, state)``, as :class:`spikelab.Sequential` has.
Gradients of all steps accumulate and the optimiser steps once per batch in every mode.

A run folder (``out_dir``) holds ``last.pt`` (written atomically every epoch), ``best.pt`` (best
validation accuracy; validation comes from the training set, never the test set),
``metrics.jsonl`` (one line per epoch) and ``curve.png``. ``fit(..., resume=True)`` continues from
``last.pt`` and ends with the same weights as a run that was never interrupted.

Launched by ``torchrun`` (several processes), the trainer trains on all of them: each takes a share of every
batch and the gradients are averaged, so W processes end with the weights of one process (see
:mod:`spikelab.training.distributed`; gradient modes only).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError
from ..layers import sharded_batch
from ..plots import plot_training_curve
from ..spec import spec_of
from .activity import monitor_activity
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .distributed import GlobalBatchSampler, join_process_group, launched_by_torchrun
from .layer_calls import clamp_parameters, set_epoch
from .local import LocalLearning, correctness_reward, run_local_batch
from .losses import SequenceLoss, get_loss

MODES = ("bptt", "sltt", "sltt-k", "local")
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine", "step", "onecycle")
#: autocast dtypes: the matrix products in low precision, the LIF membrane still integrated in float32
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def detach_state(state):
    """Detach every tensor in a (nested) layer state, cutting its path back in time."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # NamedTuple state
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(s) for s in state)
    return state


def resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return device


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C[i, j]`` = number of samples of class i predicted as j."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class Trainer:
    """Train and evaluate a spiking network on datasets of ``(frames (T, ...), label)`` samples.

    Args:
        model: maps ``(T, B, ...)`` to an output sequence ``(T, B, classes)``.
        loss: a loss name from :mod:`spikelab.training.losses` or a ``SequenceLoss`` (default ``"mean_membrane"``).
        mode: ``"bptt"`` (default), ``"sltt"``, ``"sltt-k"`` or ``"local"`` (the model's local rules, plus gradient
            descent on every parameter no rule governs, if any).
        sltt_k: steps backpropagated per batch in ``sltt-k`` mode (default 2 when that mode is chosen).
        optimizer: ``"adam"`` (default), ``"adamw"``, ``"sgd"`` (momentum 0.9), or a callable ``params -> Optimizer``.
        lr: learning rate (default 1e-3).
        weight_decay: L2 weight decay (default 0).
        param_groups: optimiser parameter groups (dicts with ``"params"`` and any per-group ``lr`` or
            ``weight_decay``), e.g. :func:`spikelab.delay_param_groups`; default: every trainable parameter
            in one group at ``lr`` and ``weight_decay``.
        scheduler: ``"cosine"`` (default, annealed to 0 over ``epochs``), ``"step"`` (x0.1 every third of the
            epochs), ``"onecycle"`` (the DCLS recipe: one cycle up to 5x a group's ``lr`` and down, as torch's
            ``OneCycleLR`` with its defaults, except groups marked ``"schedule": "cosine"`` such as the delay
            positions of :func:`spikelab.delay_param_groups`, which anneal by cosine), ``"none"``, or a callable
            ``optimizer -> LRScheduler`` stepped once per epoch.
        epochs: number of epochs (default 10).
        batch_size: samples per batch (default 64); under torchrun the global batch, shared by the processes.
        device: ``"cpu"`` (default) or ``"cuda"`` (under torchrun, process r takes ``cuda:LOCAL_RANK``).
        seed: seeds shuffling, dropout and initialisation done after construction (default 0).
        out_dir: run folder for checkpoints and metrics; ``None`` keeps nothing on disk.
        model_name: name stored in checkpoints (a model from :mod:`spikelab.models`, or any label).
        config: extra plain data stored in checkpoints (dataset and binning parameters, say).
        grad_clip: clip the gradient norm to this value (default: no clipping).
        sparsity: weight lambda of the spike-rate penalty ``lambda * mean spike rate`` added to the loss
            (default 0; ``bptt`` mode only). Evaluation reports the spike rate and synaptic operations
            per sample (:mod:`spikelab.training.activity`) either way.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: forwards under ``torch.autocast`` in that dtype
            (matrix products in low precision; LIF scans integrate in float32 all the same); ``"fp16"`` also
            scales the loss (``torch.amp.GradScaler``) so small gradients do not underflow.
        progress: show tqdm progress bars (default True; rank 0 only under torchrun).
        distributed: train on the processes torchrun started (default None: when launched by torchrun;
            False: this process alone). See :mod:`spikelab.training.distributed`.
        reward: ``local`` mode, for rules that take a reward: ``reward(output (T, B, C), target (B,))`` giving
            ``(B,)`` or ``(T, B)``; default +1 per correctly predicted sample, -1 per wrong one.

    Example:
        >>> trainer = sl.Trainer(net, loss="mean_membrane", mode="bptt", epochs=5, out_dir="runs/mine")
        >>> history = trainer.fit(train_set, val_set)
        >>> trainer.evaluate(test_set)["accuracy"]
    """

    def __init__(self, model: nn.Module, loss: str | SequenceLoss = "mean_membrane", mode: str = "bptt",
                 sltt_k: int | None = None, optimizer="adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 scheduler="cosine", epochs: int = 10, batch_size: int = 64, device="cpu", seed: int = 0,
                 out_dir=None, model_name: str | None = None, config: dict | None = None,
                 grad_clip: float | None = None, sparsity: float = 0.0, param_groups: list[dict] | None = None,
                 progress: bool = True, reward=None, distributed: bool | None = None, precision: str = "fp32"):
        if mode not in MODES:
            raise ConfigError(f"unknown training mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode in ("sltt", "sltt-k") and not hasattr(model, "step"):
            raise ConfigError(f"mode {mode!r} runs the network step by step: the model needs a step() method "
                              "(build it with sl.Sequential), or use mode='bptt'")
        if sparsity and mode != "bptt":
            raise ConfigError(f"the sparsity penalty needs whole-sequence forwards: use mode='bptt' (got {mode!r})")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if mode == "sltt-k":
            sltt_k = 2 if sltt_k is None else sltt_k
            if sltt_k < 1:
                raise ConfigError(f"sltt_k must be at least 1, got {sltt_k}")
        if distributed and not launched_by_torchrun():
            raise ConfigError("distributed=True needs processes started by torchrun (torchrun --nproc-per-node N ...)")
        if mode == "local" and distributed is not False and launched_by_torchrun():
            raise ConfigError("local rules learn on one process: run mode 'local' without torchrun")
        self.group = join_process_group(device) if distributed is not False else None
        self.device = self.group.device if self.group else resolve_device(device)
        self.model = model.to(self.device)
        # the module training forwards run through: DistributedDataParallel (bptt) under torchrun
        self.replica = self.group.replicate(self.model, mode) if self.group else self.model
        self.loss = get_loss(loss)
        self.local = LocalLearning(model, reward or correctness_reward(self.loss.predict)) if mode == "local" else None
        self.mode, self.sltt_k = mode, sltt_k
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.grad_clip, self.sparsity, self.progress = grad_clip, sparsity, progress and self.is_main
        self.precision = precision
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self.model_name = model_name or type(model).__name__
        self.config = dict(config or {})
        self.config.update(mode=mode, sltt_k=sltt_k, loss=self.loss.name, lr=lr, weight_decay=weight_decay,
                           epochs=epochs, batch_size=batch_size, seed=seed, sparsity=sparsity, precision=precision,
                           optimizer=optimizer if isinstance(optimizer, str) else "custom",
                           scheduler=scheduler if isinstance(scheduler, str) else "custom")
        self.optimizer = self._make_optimizer(optimizer, lr, weight_decay, param_groups)
        self.scheduler = self._make_scheduler(scheduler)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.shuffle_generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.history: list[dict] = []

    @property
    def is_main(self) -> bool:
        """This process writes the run folder and prints: the only process, or rank 0 under torchrun."""
        return self.group is None or self.group.is_main

    # -- construction -------------------------------------------------------------------------
    def _make_optimizer(self, optimizer, lr, weight_decay, param_groups):
        params = param_groups if param_groups is not None else [p for p in self.model.parameters() if p.requires_grad]
        if self.local is not None and param_groups is None:
            params = self.local.gradient_parameters(self.model)
            if not params:   # every parameter learns by its local rule: no gradient step at all
                return None
        if callable(optimizer):
            return optimizer(params)
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        extra = {"momentum": 0.9} if optimizer == "sgd" else {}
        return OPTIMIZERS[optimizer](params, lr=lr, weight_decay=weight_decay, **extra)

    def _make_scheduler(self, scheduler):
        if self.optimizer is None:
            return None
        if callable(scheduler):
            return scheduler(self.optimizer)
        if scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(self.epochs, 1))
        if scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=max(self.epochs // 3, 1), gamma=0.1)
        if scheduler == "onecycle":
            epochs = max(self.epochs, 1)
            factors = [(lambda e: cosine_factor(e, epochs)) if group.get("schedule") == "cosine"
                       else (lambda e: one_cycle_factor(e, epochs)) for group in self.optimizer.param_groups]
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factors)
        if scheduler == "none":
            return None
        raise ConfigError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")

    # -- one batch ----------------------------------------------------------------------------
    def accumulate_gradients(self, x: torch.Tensor, target: torch.Tensor, weight: float = 1.0):
        """Forward and backward one batch ``x (T, B, ...)`` in the trainer's mode, adding into ``.grad``.

        ``weight`` multiplies the loss before the backward pass (a process's share of a global batch).
        Returns ``(loss, output)``: the sequence loss as a float and the output sequence (detached).
        """
        if self.mode == "local":
            return run_local_batch(self.model, self.loss, x, target, learn_by_gradient=self.optimizer is not None)
        if self.mode == "bptt":
            with monitor_activity(self.model) as activity, self._autocast():
                out = self.replica(x)
                loss = self.loss(out, target)
                if self.sparsity and activity.spike_rates:
                    loss = loss + self.sparsity * activity.mean_spike_rate()
            self._backward(loss * weight)
            return loss.item(), out.detach()
        steps = x.shape[0]
        if self.mode == "sltt":
            learn_at = range(steps)
        else:
            learn_at = torch.randperm(steps)[: self.sltt_k].tolist()
        learn_at, n_learn = set(learn_at), len(learn_at)
        state, outputs = None, []
        for t in range(steps):
            with torch.set_grad_enabled(t in learn_at):
                with self._autocast():
                    out_t, state = self.model.step(x[t], state)
                    loss_t = self.loss.per_step(out_t, target, n_learn) if t in learn_at else None
                if loss_t is not None:
                    self._backward(loss_t * weight)
            state = detach_state(state)
            outputs.append(out_t.detach())
        out = torch.stack(outputs)
        return self.loss(out.float(), target).item(), out

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def _train_batch(self, x, target, share=None):
        """One optimiser step; ``share`` is this process's part of the global batch under torchrun. Returns the
        batch's ``[summed loss, correct predictions, samples]``, over all processes."""
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        if share is None:
            loss, out = self.accumulate_gradients(x, target)
            count = len(target)
        else:
            with sharded_batch(share.offset, share.total):
                loss, out = self.accumulate_gradients(x, target, share.loss_weight)
            count = share.count
        correct = (self.loss.predict(out) == target).sum().item() if count else 0
        totals = [loss * count, correct, count]
        if self.group is not None:
            totals = self.group.sum(totals)
            if self.replica is self.model:  # the step-by-step modes: no DDP
                self.group.average_gradients(self.model)
        if not math.isfinite(totals[0]):
            if self.local is not None:
                self.local.clear()
            raise TrainingError(f"training diverged: loss is {totals[0]} at epoch {self.epoch + 1}; "
                                "lower the learning rate")
        if self.optimizer is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            if self.scaler is None:
                self.optimizer.step()
            else:  # skips the step when a scaled gradient overflowed, and adapts the scale
                self.scaler.step(self.optimizer)
                self.scaler.update()
        if self.local is not None:
            self.local.update(out, target)
        clamp_parameters(self.model)
        return totals

    def _batches(self, data, shuffle: bool):
        if isinstance(data, DataLoader):
            if self.group is not None and shuffle:
                raise ConfigError("under torchrun the Trainer splits every batch over the processes: pass the "
                                  "training set as a Dataset, not a DataLoader")
            return data
        if not shuffle:  # its own generator: evaluating (on rank 0 alone under torchrun) draws no global random number
            return DataLoader(data, batch_size=self.batch_size, generator=torch.Generator())
        rank, world_size = (self.group.rank, self.group.world_size) if self.group else (0, 1)
        sampler = GlobalBatchSampler(len(data), self.batch_size, rank, world_size, generator=self.shuffle_generator)
        return DataLoader(data, batch_sampler=sampler, generator=self.shuffle_generator)

    def _to_time_first(self, frames, target):
        return frames.to(self.device, torch.float32).transpose(0, 1).contiguous(), target.to(self.device)

    # -- epochs -------------------------------------------------------------------------------
    def fit(self, train: Dataset | DataLoader, val: Dataset | DataLoader | None = None, resume: bool = False):
        """Train for the remaining epochs; returns the history (one metrics dict per epoch).

        With ``resume=True`` the trainer first restores ``out_dir/last.pt`` (weights, optimiser,
        scheduler, random states, epoch, metrics).
        """
        if resume:
            self.resume()
        for epoch in range(self.epoch, self.epochs):
            started = time.perf_counter()
            train_metrics = self._train_epoch(train, epoch)
            row = {"epoch": epoch + 1, **train_metrics,
                   "lr": None if self.optimizer is None else self.optimizer.param_groups[0]["lr"]}
            if val is not None and self.is_main:
                evaluation = self.evaluate(val, desc="validate")
                row.update({f"val_{key}": evaluation[key] for key in ("loss", "accuracy", "spike_rate", "synops")})
            if self.scheduler is not None:
                self.scheduler.step()
            row["seconds"] = round(time.perf_counter() - started, 3)
            if self.group is not None:
                row = self.group.from_main(row)
            self.history.append(row)
            self.epoch = epoch + 1
            self._save_epoch(is_best=self._is_best(row))
            if self.group is not None:  # last.pt is complete before any process starts the next epoch
                self.group.barrier()
        return self.history

    def _train_epoch(self, data, epoch):
        self.model.train()
        set_epoch(self.model, epoch, self.epochs)
        total_loss = correct = seen = 0
        loader = self._batches(data, shuffle=True)
        sampler = loader.batch_sampler if self.group is not None else None
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{self.epochs}", disable=not self.progress, leave=False,
                       dynamic_ncols=True)
        for number, (frames, target) in enumerate(batches):
            x, target = self._to_time_first(frames, target)
            share = sampler.share(number) if sampler is not None else None
            batch_loss, batch_correct, batch_seen = self._train_batch(x, target, share)
            total_loss += batch_loss
            correct += batch_correct
            seen += batch_seen
            batches.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
        return {"train_loss": total_loss / seen, "train_accuracy": correct / seen}

    @torch.no_grad()
    def evaluate(self, data: Dataset | DataLoader, desc: str = "evaluate") -> dict:
        """Loss, accuracy, confusion matrix (``confusion[true][predicted]``), mean spike rate and synaptic
        operations per sample of the model on ``data``."""
        self.model.eval()
        total_loss, predictions, targets = 0.0, [], []
        with monitor_activity(self.model) as activity:
            for frames, target in tqdm(self._batches(data, shuffle=False), desc=desc, disable=not self.progress,
                                       leave=False, dynamic_ncols=True):
                x, target = self._to_time_first(frames, target)
                with self._autocast():
                    out = self.model(x)
                total_loss += self.loss(out.float(), target).item() * len(target)
                predictions.append(self.loss.predict(out).cpu())
                targets.append(target.cpu())
        result = summarize(torch.cat(predictions), torch.cat(targets), total_loss, out.shape[-1])
        rate = activity.mean_spike_rate()
        result.update(spike_rate=None if rate is None else rate.item(), synops=activity.synops / max(activity.samples, 1))
        return result

    # -- run folder ---------------------------------------------------------------------------
    def _is_best(self, row):
        key = "val_accuracy" if "val_accuracy" in row else "train_accuracy"
        return all(row[key] > earlier.get(key, -1.0) for earlier in self.history[:-1])

    def checkpoint(self) -> dict:
        """Everything needed to continue this run exactly, as tensors and plain data."""
        try:
            model_spec = spec_of(self.model)
        except ConfigError:  # a custom model class: sl.load() then needs model=...
            model_spec = None
        return {
            "epoch": self.epoch,
            "model_name": self.model_name,
            "model_spec": model_spec,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler_state": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler_state": self.scaler.state_dict() if self.scaler is not None else None,
            "rng_state": {**capture_rng_state(), "shuffle": self.shuffle_generator.get_state(),
                          **self._device_rng_state()},
            "config": self.config,
            "metrics": self.history,
            "local_rules": self.local.state_dict() if self.local is not None else None,
        }

    def _save_epoch(self, is_best: bool):
        if self.out_dir is None or not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = self.checkpoint()
        save_checkpoint(self.out_dir / "last.pt", checkpoint)
        if is_best:
            save_checkpoint(self.out_dir / "best.pt", checkpoint)
        lines = "".join(json.dumps(row) + "\n" for row in self.history)
        (self.out_dir / "metrics.jsonl").write_text(lines)
        plot_training_curve(self.history, self.out_dir / "curve.png")

    def _device_rng_state(self) -> dict:
        """The generator of this process's own GPU: under torchrun, process r restores rank 0's cuda:0 state onto
        its cuda:r (every process drew the same numbers on its own device)."""
        return {"device": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}

    def resume(self):
        """Restore the state saved in ``out_dir/last.pt``."""
        if self.out_dir is None:
            raise ConfigError("resume needs the run folder: pass out_dir (CLI: --out) of the interrupted run")
        checkpoint = load_checkpoint(self.out_dir / "last.pt")
        self.model.load_state_dict(checkpoint["model_state"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.local is not None:
            self.local.load_state_dict(checkpoint.get("local_rules"))
        if self.scheduler is not None and checkpoint["scheduler_state"] is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        if self.scaler is not None and checkpoint.get("scaler_state") is not None:
            self.scaler.load_state_dict(checkpoint["scaler_state"])
        restore_rng_state(checkpoint["rng_state"])
        self.shuffle_generator.set_state(checkpoint["rng_state"]["shuffle"])
        if "device" in checkpoint["rng_state"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint["rng_state"]["device"], self.device)
        self.epoch = checkpoint["epoch"]
        self.history = list(checkpoint["metrics"])


def cosine_factor(epoch: int, epochs: int) -> float:
    """Learning-rate multiplier of cosine annealing to 0 over ``epochs`` (torch's ``CosineAnnealingLR``)."""
    return 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))


def one_cycle_factor(epoch: int, epochs: int, peak: float = 5.0, warmup: float = 0.3, start_div: float = 25.0,
                     final_div: float = 1e4) -> float:
    """Learning-rate multiplier of a one-cycle schedule stepped per epoch (torch's ``OneCycleLR`` with its defaults,
    ``max_lr = peak * lr``): cosine from ``peak / start_div`` up to ``peak`` over the first ``warmup`` of the
    epochs, then cosine down to ``peak / start_div / final_div``."""
    if epochs < 2:   # no room for a cycle: the base rate
        return 1.0
    low, high = peak / start_div, peak
    turn = warmup * epochs - 1
    if epoch <= turn:
        start, end, fraction = low, high, epoch / turn if turn > 0 else 1.0
    else:
        start, end = high, low / final_div
        fraction = (epoch - turn) / max(epochs - 1 - turn, 1e-12)
    return end + (start - end) / 2 * (1 + math.cos(math.pi * min(fraction, 1.0)))


def summarize(predictions, targets, total_loss, num_classes) -> dict:
    """Accuracy, mean loss and confusion matrix from predictions and labels."""
    n = len(targets)
    return {
        "loss": total_loss / n,
        "accuracy": (predictions == targets).float().mean().item(),
        "n": n,
        "confusion": confusion_matrix(predictions, targets, num_classes).tolist(),
    }
