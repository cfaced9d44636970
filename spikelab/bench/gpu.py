"""GPU training speed and memory in the Open Neuromorphic setting, against snnTorch and SpikingJelly
(:func:`run_gpu_benchmark`, ``spikelab bench gpu``).

Setting (``reference/frameworks.md`` section 2.1): one ``Linear(n, n)`` and one LIF layer, n = 4096, 8192 and
16384, T = 500 steps, batch 16, ``randn`` input, loss = the sum of the output spikes, one forward +
``loss.backward()`` per iteration, in float32 and in bfloat16 (``torch.autocast``: the matrix products in
bfloat16; spikelab's scan still integrates in float32). Published anchors on other GPUs, for orientation only:
Spyx float16 47.0 ms and SpikingJelly CuPy 118.2 ms at n = 16384 (RTX 4090 / 3090, without synchronisation).

Variants, all with the same weights (torch's default init), input and dynamics (``v = 0.9 v + I``, threshold 1,
zero reset detached, ATan surrogate alpha 2; the builders of :mod:`spikelab.bench.lif`):

``spikelab``      ``nn.Linear`` over the whole sequence + :class:`spikelab.neurons.LIF` (Triton scan on CUDA)
``snntorch``      ``nn.Linear`` + ``snntorch.Leaky`` step by step, as in its tutorials
``spikingjelly``  ``layer.Linear`` + ``neuron.LIFNode(step_mode="m")``: SpikingJelly 2 picks its Triton or native
                  CUDA kernels itself; older releases are switched to their CuPy backend when CuPy is installed
``floor``         the ``nn.Linear`` alone (identity in place of the LIF layer): the matrix products' time
``ultralif``      ``nn.Linear`` + :class:`spikelab.neurons.ultra.UltraLIF` (tau 0.9, learnable eps 1, threshold 1;
                  its fused scan: Triton on CUDA)
``ultralif_loop`` the same UltraLIF run as the torch loop of steps (``backend="torch"``); ``ultralif_loop/ultralif``
                  in each run is how many times faster the fused scan is

Timing: :func:`spikelab.bench.timing.time_interleaved` with ``torch.cuda.synchronize`` before every clock reading
(one process, variants interleaved, medians). Memory: the peak the caching allocator reached during one
forward + backward, over what was allocated before (weights and input excluded; their gradients included), and
the BPTT / SLTT / SLTT-K activation memory of :func:`spikelab.bench.memory.run_memory_benchmark` on the GPU.

``device="cpu"`` with tiny ``sizes`` runs the same code on the CPU (a smoke test; its times mean nothing for GPUs).
"""
from __future__ import annotations

import importlib.util
import os

import torch
from torch import nn

from spikelab.errors import ConfigError
from spikelab.training.memory import peak_allocated_bytes
from .lif import PEERS, _copy, _linears, build_variants
from .memory import run_memory_benchmark
from .timing import check_rounds, machine_state, median_ratio, summarize_times, time_interleaved, versions

SIZES, STEPS, BATCH = (4096, 8192, 16384), 500, 16
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
#: Spyx float16 at n = 16384 on an RTX 4090 (Open Neuromorphic benchmark), forward + backward ms
PUBLISHED_BEST_MS = 47.0


def require_device(device: str) -> torch.device:
    """``device`` as a torch device; a ConfigError saying what to do when it is CUDA and there is none."""
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cuda or cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"spikelab bench gpu needs a CUDA GPU, but torch {torch.__version__} ({build}) sees none. "
                          "Run it on a machine with a GPU, or check the code path on the CPU with "
                          "--device cpu --sizes 64,128 --steps 20")
    return device


def run_gpu_benchmark(sizes=SIZES, steps: int = STEPS, batch: int = BATCH, precisions=tuple(PRECISIONS),
                      rounds: int = 10, warmup: int = 2, device: str = "cuda", seed: int = 0,
                      memory_steps=(100, 500)) -> dict:
    """Time forward + backward of ``Linear(n, n)`` + LIF for every variant, size and precision; measure memory.

    Args:
        sizes: layer widths n (default 4096, 8192, 16384).
        steps, batch: T (default 500) and batch size (default 16).
        precisions: ``"fp32"`` and / or ``"bf16"`` (autocast).
        rounds, warmup: timed and untimed iterations per variant (interleaved).
        device: ``"cuda"`` (default; ConfigError when there is none) or ``"cpu"`` (smoke runs on tiny sizes).
        seed: seeds weights and input.
        memory_steps: the T of the BPTT / SLTT memory comparison (700-256-256-20 LIF net, batch 32).

    Returns:
        A JSON-serialisable dict: ``config``, ``machine`` (GPU name, load), ``versions``, ``runs`` (one per size and
        precision: per variant the times of :func:`~spikelab.bench.timing.summarize_times`, ``peak_mib``,
        ``loss`` and ``spike_rate``; ``failed`` variants with their error; ``x_spikelab``, each variant's median
        over spikelab's), ``missing`` peers, ``memory`` (BPTT vs SLTT), ``goals`` and ``notes``.
    """
    check_rounds(rounds)
    device = require_device(device)
    unknown = set(precisions) - set(PRECISIONS)
    if unknown or not precisions:
        raise ConfigError(f"precisions must be among {', '.join(PRECISIONS)}, got {list(precisions)}")
    if not sizes or any(int(n) < 1 for n in sizes):
        raise ConfigError(f"sizes must be positive layer widths, got {list(sizes)}")
    load_before = os.getloadavg()[0]
    runs, missing, backend = [], {}, None
    for n in sizes:
        layers = _linears((int(n), int(n)), seed, gain=1.0)
        variants, missing = build_variants(layers, "zero", device)
        variants.update(_ultra_variants(layers, device))
        if "spikingjelly" in variants:
            backend = _spikingjelly_backend(variants["spikingjelly"][0], device)
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(steps, batch, int(n), generator=generator).to(device)
        for precision in precisions:
            runs.append(_run(variants, x, precision, rounds, warmup, device))
        del variants, x
        if device.type == "cuda":
            torch.cuda.empty_cache()
    memory = run_memory_benchmark(steps=memory_steps, device=str(device), threads=torch.get_num_threads())
    machine = machine_state(load_before)
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    return {
        "config": {"sizes": [int(n) for n in sizes], "steps": steps, "batch": batch, "precisions": list(precisions),
                   "rounds": rounds, "warmup": warmup, "device": str(device), "seed": seed,
                   "dynamics": "beta 0.9, threshold 1, zero reset (detached), atan surrogate alpha 2",
                   "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "spikingjelly_backend": backend},
        "machine": machine,
        "versions": versions("torch", "triton", "snntorch", "spikingjelly", "cupy"),
        "runs": runs,
        "missing": missing,
        "memory": memory,
        "goals": _goals(runs),
        "notes": [
            "times: median ms of forward + loss + backward, torch.cuda.synchronize() before every clock reading, "
            "variants interleaved in one process",
            "peak_mib: allocator peak during one forward + backward over what was allocated before it",
            f"published anchor: Spyx fp16 {PUBLISHED_BEST_MS} ms at n = 16384 on an RTX 4090 (no synchronisation)",
        ] + [f"{name} skipped: {why}" for name, why in missing.items()],
    }


def _ultra_variants(layers, device) -> dict:
    """``Linear`` + UltraLIF as its fused scan (``ultralif``) and as the torch loop of steps (``ultralif_loop``)."""
    from spikelab.neurons.ultra import UltraLIF

    variants = {}
    for name, backend in (("ultralif", "auto"), ("ultralif_loop", "torch")):
        ultra = UltraLIF()
        ultra.backend = backend
        net = nn.Sequential(*_copy(layers), ultra).to(device)
        variants[name] = (net, lambda x, net=net: net(x).sum(0))
    return variants


def _spikingjelly_backend(net, device: torch.device) -> str:
    """Older SpikingJelly releases take a ``backend``: CuPy on CUDA where it is installed; SpikingJelly 2 chooses
    its Triton or native CUDA kernels by itself."""
    nodes = [m for m in net.modules() if hasattr(m, "supported_backends")]
    if not nodes:
        return "spikingjelly's own choice (Triton or native CUDA)" if device.type == "cuda" else "torch (CPU)"
    wanted = "cupy" if device.type == "cuda" and importlib.util.find_spec("cupy") else "torch"
    for node in nodes:
        if wanted in node.supported_backends:
            node.backend = wanted
    return nodes[0].backend


def _run(variants: dict, x: torch.Tensor, precision: str, rounds: int, warmup: int, device: torch.device) -> dict:
    dtype = PRECISIONS[precision]

    def loss_of(forward):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return forward(x).float().sum()

    result, failed, steps = {}, {}, {}
    for name, (net, forward) in variants.items():  # one checked, untimed pass each: loss, spike rate, memory
        try:
            net.zero_grad(set_to_none=True)
            outcome = {}

            def step(net=net, forward=forward, outcome=outcome):
                loss = loss_of(forward)
                loss.backward()
                outcome["loss"] = loss.item()

            peak = peak_allocated_bytes(step, device)
        except Exception as error:  # out of memory, an unsupported dtype in a peer: reported, not fatal
            failed[name] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            continue
        result[name] = {"peak_mib": peak / 2**20, "loss": outcome["loss"],
                        "spike_rate": None if name == "floor" else outcome["loss"] / x.numel()}

        def timed(net=net, forward=forward):
            net.zero_grad(set_to_none=True)
            return loss_of(forward)

        steps[name] = timed
    times = time_interleaved(steps, rounds, warmup, torch.cuda.synchronize if device.type == "cuda" else None)
    for name in steps:
        result[name].update(summarize_times(times[name]["forward"], times[name]["backward"]))
    base = result.get("spikelab", {}).get("median_ms")
    return {"n": x.shape[-1], "precision": precision, "variants": result, "failed": failed,
            "x_spikelab": {name: v["median_ms"] / base for name, v in result.items()} if base else {},
            "ultralif_loop/ultralif": median_ratio(result, "ultralif_loop", "ultralif")}


def _goals(runs: list[dict]) -> dict:
    """spikelab faster than every peer in each run; under the published 47 ms at n = 16384 (any precision)."""
    goals = {}
    for run in runs:
        ratios = {name: r for name, r in run["x_spikelab"].items() if name in PEERS}
        goals[f"n={run['n']} {run['precision']}: spikelab faster than every peer"] = (
            all(r > 1 for r in ratios.values()) if ratios else None)
    best = [run["variants"]["spikelab"]["median_ms"] for run in runs
            if run["n"] == 16384 and "median_ms" in run["variants"].get("spikelab", {})]
    goals[f"n=16384: spikelab under {PUBLISHED_BEST_MS} ms"] = min(best) < PUBLISHED_BEST_MS if best else None
    return goals


def format_gpu_table(result: dict) -> str:
    """A plain-text table of :func:`run_gpu_benchmark`'s result."""
    cfg = result["config"]
    where = result["machine"].get("gpu", cfg["device"])
    lines = [f"Linear(n, n) + LIF, T={cfg['steps']}, batch {cfg['batch']}, {cfg['rounds']} rounds on {where} "
             f"(torch {result['versions']['torch']}, triton {result['versions']['triton']})"]
    for run in result["runs"]:
        lines.append(f"n={run['n']} {run['precision']}")
        lines.append(f"  {'variant':<15}{'fwd ms':>9}{'bwd ms':>9}{'total ms':>10}{'IQR':>18}"
                     f"{'x spikelab':>11}{'peak MiB':>10}{'spike rate':>11}")
        for name, v in run["variants"].items():
            q1, q3 = v["iqr_ms"]
            ratio = run["x_spikelab"].get(name)
            rate = "" if v["spike_rate"] is None else f"{v['spike_rate']:.2%}"
            lines.append(f"  {name:<15}{v['forward_median_ms']:>9.2f}{v['backward_median_ms']:>9.2f}"
                         f"{v['median_ms']:>10.2f}{f'{q1:.2f}-{q3:.2f}':>18}"
                         f"{'' if ratio is None else f'{ratio:.2f}':>11}{v['peak_mib']:>10.1f}{rate:>11}")
        for name, why in run["failed"].items():
            lines.append(f"  {name:<15}failed: {why}")
        if run["ultralif_loop/ultralif"] is not None:
            lines.append(f"  UltraLIF fused scan {run['ultralif_loop/ultralif']:.2f}x faster than its torch loop")
    memory = result["memory"]
    lines.append(f"activation memory of one training step, {'-'.join(map(str, memory['config']['sizes']))} LIF net, "
                 f"batch {memory['config']['batch']} (MiB): " + "; ".join(
                     f"T={row['steps']}: BPTT {row['bptt_mib']:.1f}, SLTT {row['sltt_mib']:.1f}, "
                     f"SLTT-K {row['sltt-k_mib']:.1f}" for row in memory["rows"]))
    for goal, met in result["goals"].items():
        lines.append(f"goal {goal}: " + ("n/a" if met is None else "met" if met else "NOT met"))
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)
