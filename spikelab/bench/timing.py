"""What every benchmark shares: interleaved timing in one process, summaries, ratios, the machine's state.

Timing follows ``reference/frameworks.md`` section 3: every variant is built in one process and run alternately,
one iteration at a time, in an order rotated every round, so background load hits all alike; ``warmup`` rounds are
discarded. Results are reported as medians and as ratios between variants, never as absolute goals.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from contextlib import contextmanager

import torch
from torch import nn

from spikelab.errors import ConfigError


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(*packages: str) -> dict:
    """Python's version and each package's installed version (None when absent)."""
    return {"python": platform.python_version(), **{p: package_version(p) for p in packages}}


def check_rounds(rounds: int) -> None:
    if rounds < 2:
        raise ConfigError(f"rounds must be at least 2 (a median needs samples), got {rounds}")


@contextmanager
def torch_threads(threads: int):
    """Run the block with ``threads`` torch intra-op threads, restored afterwards."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


def machine_state(load_before: float) -> dict:
    """CPU count, architecture and the 1-minute load average before and after a run (how busy the machine was)."""
    return {"cpus": os.cpu_count(), "arch": platform.machine(), "load_average_1min": [load_before, os.getloadavg()[0]]}


def training_step(module: nn.Module, loss_fn):
    """A timed step for :func:`time_interleaved`: clear ``module``'s gradients, then ``loss_fn()`` (forward)."""

    def forward():
        module.zero_grad(set_to_none=True)
        return loss_fn()

    return forward


def time_interleaved(steps: dict, rounds: int, warmup: int, synchronize=None) -> dict:
    """Run every ``steps[name]()`` (forward: returns a loss to backpropagate, or None for forward-only) once per
    round, in an order rotated every round, so background load hits all variants alike; the first ``warmup``
    rounds are not kept. ``synchronize`` (e.g. ``torch.cuda.synchronize``) is called before every clock reading,
    so asynchronous GPU work is counted where it runs. Returns ``{name: {"forward": [ms], "backward": [ms],
    "cpu": [ms]}}``: wall-clock times, and the CPU time the process spent on forward + backward (every thread; on a
    shared machine it leaves out the time spent waiting for a core)."""
    names = list(steps)
    times = {name: {"forward": [], "backward": [], "cpu": []} for name in names}
    sync = synchronize or (lambda: None)
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            c0 = time.process_time()
            t0 = time.perf_counter()
            loss = steps[name]()
            sync()
            t1 = time.perf_counter()
            if loss is not None:
                loss.backward()
            sync()
            t2 = time.perf_counter()
            c2 = time.process_time()
            if r >= warmup:
                times[name]["forward"].append(1e3 * (t1 - t0))
                times[name]["backward"].append(1e3 * (t2 - t1))
                times[name]["cpu"].append(1e3 * (c2 - c0))
    return times


def summarize_times(forward: list[float], backward: list[float]) -> dict:
    """Median, IQR and minimum of forward + backward ms, the forward and backward medians, and the raw totals."""
    total = [a + b for a, b in zip(forward, backward)]
    q1, median, q3 = statistics.quantiles(total, n=4, method="inclusive")
    return {"median_ms": median, "iqr_ms": [q1, q3], "min_ms": min(total),
            "forward_median_ms": statistics.median(forward), "backward_median_ms": statistics.median(backward),
            "times_ms": total}


def median_ratio(variants: dict, a: str, b: str) -> float | None:
    """``median(a) / median(b)``: above 1, ``b`` is that many times faster; None when either is missing."""
    if a in variants and b in variants:
        return variants[a]["median_ms"] / variants[b]["median_ms"]
    return None


def goals_met(ratios: dict, goals: dict) -> dict:
    """``{"<ratio> <op> <target>": met}`` for every ``goals[ratio] = (op, target)`` (``op`` ``">="`` or ``"<="``);
    None where the ratio is missing (a peer was not installed)."""
    met = {}
    for key, (op, target) in goals.items():
        ratio = ratios.get(key)
        met[f"{key} {op} {target}"] = None if ratio is None else (ratio >= target if op == ">=" else ratio <= target)
    return met


def goal_lines(result: dict) -> list[str]:
    """The ``goal ...`` and ``note: ...`` lines that end a benchmark's table."""
    lines = []
    for key, met in result["goals"].items():
        ratio = result["ratios"][key.split()[0]]
        lines.append(f"goal {key}: " + ("n/a (peer missing)" if ratio is None else
                                         f"{ratio:.2f} {'met' if met else 'NOT met'}"))
    return lines + [f"note: {note}" for note in result["notes"]]
