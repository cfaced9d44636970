"""Training on several processes, one per device, launched by ``torchrun``; W processes compute what one would.

.. code-block:: text

    torchrun --nproc-per-node 2 -m spikelab train --dataset nmnist --device cuda ...
    torchrun --nproc-per-node 2 my_script.py          # a script whose sl.Trainer(...).fit(...) does the same

:class:`~spikelab.training.Trainer` joins the process group that torchrun describes in its environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): NCCL on CUDA, with process r on
``cuda:LOCAL_RANK``, gloo on the CPU. ``batch_size`` stays the global batch, so the same command trains the same
model on 1 or W processes, to float tolerance (the sums of the gradient all-reduce run in another order):

* **Batches.** Every process draws the same permutation from the trainer's shuffle generator (same seed) and cuts
  it into the same global batches; process r takes the r-th contiguous slice of each (:class:`GlobalBatchSampler`).
  torch's ``DistributedSampler`` deals samples round robin over the whole epoch and pads with repeats, so its
  batches are not one process's batches; this sampler's are.
* **Loss.** A process weighs its mean loss by its share of the batch, ``n_r * W / n``, before the backward pass, and
  the gradients are averaged over the W processes: the gradient of the global batch's mean loss, uneven last
  batches included. A process left without a sample by a short last batch runs a stand-in sample with weight 0.
* **Randomness.** Every process seeds the same generators and draws the same random numbers: :class:`Dropout
  <spikelab.layers.Dropout>` draws the masks of the whole global batch and keeps its rows
  (:func:`spikelab.layers.sharded_batch`), so masks do not depend on how the batch is split.
* **Gradients.** ``bptt``: the model runs inside ``DistributedDataParallel``, whose all-reduce overlaps the backward
  pass. ``sltt`` / ``sltt-k`` run the network step by step, outside DDP's forward, so their gradients are
  all-reduced once after the batch, in one flat buffer.
* **Rank 0** alone writes checkpoints, metrics and plots, shows progress bars, prints, and evaluates the
  validation set (its metrics are sent to the others). Every epoch ends at a barrier after the checkpoint is
  written, so a killed run resumes from a complete ``last.pt``, which every process reads (one machine, or a
  run folder on a shared file system).

Batch-norm statistics are per process (DDP's default), so a model with batch norm matches one process only
approximately.
"""
from __future__ import annotations

import atexit
import contextlib
import math
import os
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from ..errors import ConfigError


class BatchShare(NamedTuple):
    """This process's part of one global batch: rows ``offset`` to ``offset + count`` of ``total``."""

    offset: int
    count: int
    total: int
    world_size: int

    @property
    def loss_weight(self) -> float:
        """``count * W / total``: averaged over W processes, the weighted mean losses give the global batch's mean."""
        return self.count * self.world_size / self.total


class GlobalBatchSampler(Sampler):
    """One process's batches: ``size`` samples in global batches of ``batch_size``, each cut into ``world_size``
    contiguous slices, of which this process (``rank``) takes one.

    The order is drawn from ``generator`` once per epoch (``torch.randperm``), as a shuffling ``DataLoader``
    would, so processes with equally seeded generators agree on every global batch. A slice left empty by a short
    last batch holds the batch's first sample, a stand-in with loss weight 0 (see :meth:`share`).

    Example::

        >>> sampler = GlobalBatchSampler(10, batch_size=4, rank=1, world_size=2, shuffle=False)
        >>> list(sampler), sampler.share(2)
        ([[2, 3], [6, 7], [9]], BatchShare(offset=1, count=1, total=2, world_size=2))
    """

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 generator: torch.Generator | None = None):
        if batch_size < world_size:
            raise ConfigError(f"batch size {batch_size} is smaller than the {world_size} processes sharing it: "
                              "raise --batch-size (it is the global batch) or launch fewer processes")
        self.size, self.batch_size, self.rank, self.world_size = size, batch_size, rank, world_size
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def share(self, batch: int) -> BatchShare:
        """This process's share of global batch number ``batch``: ``tensor_split``'s contiguous slices."""
        total = min(self.batch_size, self.size - batch * self.batch_size)
        base, extra = divmod(total, self.world_size)
        count = base + (self.rank < extra)
        offset = self.rank * base + min(self.rank, extra) if count else 0  # a stand-in is row 0
        return BatchShare(offset, count, total, self.world_size)

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        for batch in range(len(self)):
            start = batch * self.batch_size
            share = self.share(batch)
            rows = order[start + share.offset: start + share.offset + max(share.count, 1)]  # a stand-in: 1 row
            yield rows.tolist()


class ProcessGroup:
    """This process's place in a torchrun launch: rank, world size, device, and the collectives training needs.

    Made by :func:`join_process_group`; :class:`~spikelab.training.Trainer` uses it.
    """

    def __init__(self, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files, prints and evaluates."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self.rank}, world_size={self.world_size}, device={self.device})"

    def barrier(self) -> None:
        dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of ``values`` over all processes (float64)."""
        totals = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return totals.tolist()

    def from_main(self, obj):
        """Rank 0's ``obj`` (any picklable value), on every process."""
        holder = [obj]
        dist.broadcast_object_list(holder, src=0, device=self.device if self.device.type == "cuda" else None)
        return holder[0]

    def replicate(self, model: nn.Module, mode: str) -> nn.Module:
        """The module the training forward runs through: ``model`` in ``DistributedDataParallel`` for ``bptt``;
        for the step-by-step modes ``model`` itself, with rank 0's weights and buffers copied to every process
        (DDP does that for ``bptt``)."""
        if mode == "bptt":
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
        return model

    def average_gradients(self, model: nn.Module) -> None:
        """Average ``.grad`` of every trainable parameter over all processes, in one all-reduce; a parameter that
        received no gradient on any process keeps ``grad = None`` (as the optimiser expects)."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return
        dtype = params[0].dtype
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
                          for p in params]
                         + [torch.tensor([p.grad is not None for p in params], dtype=dtype, device=self.device)])
        dist.all_reduce(flat)
        present = flat[-len(params):] > 0
        start = 0
        for p, has_grad in zip(params, present.tolist()):
            values = flat[start:start + p.numel()].view_as(p).to(p.dtype) / self.world_size
            start += p.numel()
            p.grad = values if has_grad else None


def launched_by_torchrun() -> bool:
    """This process is one of several started by torchrun (``WORLD_SIZE`` > 1 in the environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join_process_group(device: str | torch.device) -> ProcessGroup | None:
    """Join the process group torchrun set up, or None when this is the only process.

    ``device`` is ``"cpu"`` (gloo) or ``"cuda"`` (NCCL; this process takes ``cuda:LOCAL_RANK``). The group is
    initialised once per process and destroyed when the process exits.
    """
    if not launched_by_torchrun():
        return None
    world_size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(device)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ConfigError(f"process {local_rank} on this machine needs cuda:{local_rank}, but torch sees {count} "
                              f"CUDA device(s): launch at most {count} processes per machine (--nproc-per-node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"training on several processes runs on cpu or cuda devices, got {device}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    if dist.get_world_size() != world_size:
        raise ConfigError(f"the process group has {dist.get_world_size()} processes but WORLD_SIZE is {world_size}")
    return ProcessGroup(rank, world_size, device)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def main_process_first(group: ProcessGroup | None):
    """Run the block on rank 0 first, then on the others (data sets generated and cached once, then read)."""
    if group is not None and not group.is_main:
        group.barrier()
    yield
    if group is not None and group.is_main:
        group.barrier()


@contextlib.contextmanager
def quiet_unless_main():
    """Under torchrun, silence standard output on every process but rank 0 (errors still reach stderr)."""
    if int(os.environ.get("RANK", "0")) == 0:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield
