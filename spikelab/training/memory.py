"""Measure the memory a training step takes, on any device, with torch's profiler."""
from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile


def peak_allocated_bytes(fn, device: str | torch.device = "cpu") -> int:
    """Peak of the bytes torch allocates on ``device`` while ``fn()`` runs, counted from zero at its start.

    On a CUDA device this is the caching allocator's peak (``torch.cuda.max_memory_allocated``) over what was
    allocated before ``fn``, after a synchronisation; on the CPU it comes from the profiler, as follows.

    Tensors that existed before (weights, the input batch) are not counted; what ``fn`` allocates and
    frees (activations saved for backward, gradients, temporaries) is, in the order it happened: every
    allocation and free event of the profiler, at its own time (an operator's net memory at its start would
    miss what a Python ``autograd.Function`` allocates and frees inside itself).
    Memory that does not go through torch's allocator (NumPy arrays, say) is invisible to it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        fn()
    try:
        events = [(e.start_ns(), e.nbytes()) for e in profiler.profiler.kineto_results.events()
                  if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    except AttributeError:   # a torch without the raw events: each operator's net memory at its start
        events = [(e.time_range.start, e.self_cpu_memory_usage) for e in profiler.events()]
    in_use = peak = 0
    for _, nbytes in sorted(events, key=lambda event: event[0]):
        in_use += nbytes
        peak = max(peak, in_use)
    return peak


def training_step_peak_bytes(trainer, x: torch.Tensor, target: torch.Tensor) -> int:
    """Peak memory of one forward and backward of ``x (T, B, ...)`` in the trainer's mode."""
    trainer.optimizer.zero_grad(set_to_none=True)
    return peak_allocated_bytes(lambda: trainer.accumulate_gradients(x, target), trainer.device)
