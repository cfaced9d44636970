"""Peak activation memory of one training step: BPTT vs SLTT vs SLTT-K (:func:`run_memory_benchmark`)."""
from __future__ import annotations

import torch

from .lif import BETA, INPUT_RATE
from .timing import torch_threads

MODES = ("bptt", "sltt", "sltt-k")


def run_memory_benchmark(steps=(100, 500), batch: int = 32, sizes=(700, 256, 256, 20), sltt_k: int = 2,
                         threads: int = 2, seed: int = 0, device: str = "cpu") -> dict:
    """Peak activation memory of one training step, BPTT vs SLTT vs SLTT-K, for each T in ``steps``.

    The network is the speed benchmark's (LIF layers, zero reset, leaky readout, per-step loss). Memory is
    :func:`spikelab.training.memory.training_step_peak_bytes`: the peak of what torch allocates during
    forward + backward, counted from zero, so weights and the input batch are left out (the weight
    gradients, the same in every mode, are in). ``device`` ``"cuda"`` measures the GPU's allocator instead.
    Nothing is printed.
    """
    with torch_threads(threads):
        rows = [_memory_row(t, batch, tuple(sizes), sltt_k, seed, device) for t in steps]
    return {"config": {"sizes": list(sizes), "batch": batch, "sltt_k": sltt_k, "threads": threads,
                       "device": str(device)}, "rows": rows}


def _memory_row(steps: int, batch: int, sizes: tuple, sltt_k: int, seed: int, device: str) -> dict:
    from spikelab.models import build_model
    from spikelab.training import Trainer
    from spikelab.training.memory import training_step_peak_bytes

    x = (torch.rand(steps, batch, sizes[0], generator=torch.Generator().manual_seed(seed)) < INPUT_RATE).float()
    target = torch.arange(batch) % sizes[-1]
    row = {"steps": steps}
    for mode in MODES:
        torch.manual_seed(seed)
        net = build_model("mlp", sizes[:1], sizes[-1], hidden=sizes[1:-1], neuron_options={"beta": BETA},
                          readout_beta=BETA)
        trainer = Trainer(net, loss="per_step", mode=mode, sltt_k=sltt_k, progress=False, device=device,
                          distributed=False)
        row[f"{mode}_mib"] = training_step_peak_bytes(trainer, x.to(trainer.device), target.to(trainer.device)) / 2**20
    row["sltt/bptt"] = row["sltt_mib"] / row["bptt_mib"]
    return row


def format_memory_table(result: dict) -> str:
    """A plain-text table of :func:`run_memory_benchmark`'s result."""
    cfg = result["config"]
    lines = [f"peak activation memory of one training step, {'-'.join(map(str, cfg['sizes']))}, batch {cfg['batch']}"
             + (f", on {cfg['device']}" if cfg.get("device", "cpu") != "cpu" else ""),
             f"{'T':>5}{'BPTT MiB':>10}{'SLTT MiB':>10}{'SLTT-K MiB':>12}{'SLTT/BPTT':>11}  (K = {cfg['sltt_k']})"]
    for row in result["rows"]:
        lines.append(f"{row['steps']:>5}{row['bptt_mib']:>10.2f}{row['sltt_mib']:>10.2f}{row['sltt-k_mib']:>12.2f}"
                     f"{row['sltt/bptt']:>11.1%}")
    return "\n".join(lines)
