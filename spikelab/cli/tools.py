"""``spikelab bench`` and ``inspect``: speed and memory against the peers, and what a run learned."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from . import liquid
from .common import EPILOG, add_run_dir_argument
from .training import _ints


def add_commands(commands) -> None:
    benchmark = commands.add_parser("bench", help="speed and memory benchmarks against snnTorch, SpikingJelly, DCLS",
                                    description="Interleaved side-by-side benchmark in one process; medians and ratios.")
    benchmark.add_argument("target", choices=sorted(BENCHMARKS),
                           help="; ".join(f"{name}: {what}" for name, (_, what) in sorted(BENCHMARKS.items())))
    benchmark.add_argument("--json", action="store_true", help="print the full result as JSON")
    benchmark.add_argument("--rounds", type=int, help="timed iterations per variant (default 30; gpu 10)")
    benchmark.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    benchmark.add_argument("--reset", choices=("zero", "subtract"), default="zero",
                           help="reset of every variant (default zero: the same equations in all three frameworks; "
                                "subtract leaves SpikingJelly out)")
    gpu = benchmark.add_argument_group("gpu")
    gpu.add_argument("--device", default="cuda", help="cuda (default); cpu runs a smoke test of the code path")
    gpu.add_argument("--sizes", type=_ints, default=(4096, 8192, 16384), help="layer widths n (default 4096,8192,16384)")
    gpu.add_argument("--steps", type=int, default=500, help="time steps T (default 500)")
    gpu.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    gpu.add_argument("--precisions", default="fp32,bf16", help="fp32 and/or bf16 (autocast), comma-separated")
    gpu.add_argument("--memory-steps", type=_ints, default=(100, 500),
                     help="T of the BPTT vs SLTT memory comparison on the device (default 100,500)")
    gpu.add_argument("--out", default=None, metavar="FILE.json",
                     help="gpu and liquid: where to write the full result (default bench-TARGET.json)")
    liquid_group = benchmark.add_argument_group("liquid")
    liquid_group.add_argument("--no-large", action="store_true",
                              help="leave NALSM8000 out (most of the run's time goes to it)")
    liquid_group.add_argument("--data-dir", default=None, metavar="DIR",
                              help="initialise on and time real N-MNIST recordings (DIR/NMNIST/Train and Test) "
                                   "instead of Bernoulli events")
    benchmark.set_defaults(run=lambda args: BENCHMARKS[args.target][0](args))

    inspect = commands.add_parser("inspect", help="what a trained run learned: its delays, or its liquid",
                                  epilog=EPILOG,
                                  description="Delay models: print a histogram summary of every delay layer's integer "
                                              "delays and save one histogram per layer as a PNG. Liquid runs (model "
                                              "nalsm): branching factor, firing rates, weight histograms.")
    add_run_dir_argument(inspect)
    inspect.add_argument("--out", metavar="FILE.png",
                         help="where to save the histograms (default RUN_DIR/delays.png, liquids RUN_DIR/liquid.png)")
    inspect.add_argument("--samples", type=int, default=20,
                         help="liquid runs: test recordings run for the branching factor and rates (default 20, as "
                              "NALSM)")
    inspect.set_defaults(run=inspect_run)


def bench_lif(args) -> int:
    from spikelab.bench import (format_lif_table, format_memory_table, format_ultra_table, run_lif_benchmark,
                                run_memory_benchmark, run_ultra_benchmark)

    speed = run_lif_benchmark(rounds=args.rounds or 30, threads=args.threads, reset=args.reset)
    memory = run_memory_benchmark(threads=args.threads)
    ultra = run_ultra_benchmark(rounds=args.rounds or 30, threads=args.threads)
    if args.json:
        print(json.dumps({"speed": speed, "memory": memory, "ultra": ultra}, indent=2))
    else:
        print(format_lif_table(speed) + "\n\n" + format_memory_table(memory) + "\n\n" + format_ultra_table(ultra))
    return 0


def bench_delays(args) -> int:
    from spikelab.bench import format_delays_table, run_delays_benchmark

    result = run_delays_benchmark(rounds=args.rounds or 30, threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else format_delays_table(result))
    return 0


def bench_crossbar(args) -> int:
    from spikelab.bench import format_crossbar_table, run_crossbar_benchmark

    result = run_crossbar_benchmark(rounds=args.rounds or 30, threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else format_crossbar_table(result))


def bench_gpu(args) -> int:
    from spikelab.bench import format_gpu_table, run_gpu_benchmark

    result = run_gpu_benchmark(sizes=args.sizes, steps=args.steps, batch=args.batch, device=args.device,
                               precisions=tuple(p for p in args.precisions.split(",") if p), rounds=args.rounds or 10,
                               memory_steps=args.memory_steps)
    out = Path(args.out or "bench-gpu.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else format_gpu_table(result))
    print(f"full result: {out}")
    return 0


def bench_stdp(args) -> int:
    from spikelab.bench import format_stdp_table, run_stdp_benchmark

    result = run_stdp_benchmark(rounds=args.rounds or 30, threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else format_stdp_table(result))
    return 0


def bench_liquid(args) -> int:
    from spikelab.bench import format_liquid_table, run_liquid_benchmark

    options = {"large_size": None} if args.no_large else {}
    if args.data_dir is not None:
        options["data_dir"] = args.data_dir
    result = run_liquid_benchmark(rounds=args.rounds or 10, **options)
    out = Path(args.out or "bench-liquid.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else format_liquid_table(result))
    print(f"full result: {out}")
    return 0


#: ``spikelab bench TARGET``: the function that runs it and what it measures.
BENCHMARKS = {
    "lif": (bench_lif, "700-256-256-20 LIF net, batch 32, T=100, forward+backward time vs snnTorch, SpikingJelly and "
                       "the matmul floor; then BPTT vs SLTT peak memory at T=100 and 500; then the UltraLIF family's fused "
                       "scans vs their torch loop (batch 32, T=100, 256 features)"),
    "delays": (bench_delays, "DelayedLinear vs the DCLS package's Dcls1d in the SHD setting (140->256 and 256->256, "
                             "25 taps), time and peak memory"),
    "crossbar": (bench_crossbar, "simulated crossbar inference of a 700->256 layer on spikes (batch 32, T=100) vs "
                                 "the plain layer and aihwkit"),
    "gpu": (bench_gpu, "the Open Neuromorphic setting on a CUDA GPU, Linear(n, n) + LIF, n = 4096/8192/16384, T=500, "
                       "batch 16, fp32 and bf16, time and peak memory vs snnTorch and SpikingJelly; writes --out"),
    "liquid": (bench_liquid, "NALSM feature extraction (250 ms, plastic): samples/s of NALSM1000 at 1 and 2 "
                              "threads (goal >= 100/s on 2), frozen LSM1000, NALSM8000 ms per sample; writes --out"),
    "stdp": (bench_stdp, "the STDP update of a 700->256 LIF layer (batch 32, T=100) vs one forward pass of it and "
                         "SpikingJelly's STDPLearner"),
}


def inspect_run(args) -> int:
    from spikelab.delays import delay_summary
    from spikelab.plots import plot_delay_histogram
    from spikelab.training import load

    if liquid.is_liquid_run(args.run_dir):
        return liquid.inspect(args)
    model = load(args.run_dir)
    info = model.run_info
    dt = getattr(model, "dt", None)
    layers = delay_summary(model, dt=dt)
    if not layers:
        raise ConfigError(f"{args.run_dir}: its {info.get('model_name') or 'custom'} model has no synaptic delays (no "
                          "DelayedLinear layer with max_delay > 0; a --no-delays run, say), so there is nothing to "
                          "inspect. Delays are learned by `spikelab train --model shd-delays`")
    unit = f" (dt {dt:g} ms)" if dt else " (the model has no dt: steps only)"
    print(f"{info['checkpoint']} (epoch {info['epoch']}): {len(layers)} delay layer(s){unit}, delays rounded to "
          "whole steps as evaluation uses them")
    ms = (lambda steps: f" = {steps * dt:g} ms") if dt else (lambda steps: "")
    for row in layers:
        kind = "learned" if row["learned"] else "fixed (not learned)"
        print(f"layer {row['name']}: DelayedLinear {row['in_features']} -> {row['out_features']}, "
              f"{row['synapses']} synapses, {kind} delays 0-{row['max_delay']} steps{ms(row['max_delay'])}")
        print(f"  mean {row['mean']:.2f} steps{ms(round(row['mean'], 2))}, median {row['median']:g} steps"
              f"{ms(row['median'])}; at 0: {row['share_zero']:.1%}, "
              f"at max ({row['max_delay']}): {row['share_max']:.1%}")
        counts = row["counts"]
        print("  " + _sparkline(counts) + f"  (0 .. {row['max_delay']} steps)")
        per_line = 10
        for start in range(0, len(counts), per_line):
            chunk = " ".join(f"{d}:{counts[d]}" for d in range(start, min(start + per_line, len(counts))))
            print(("  counts " if start == 0 else "         ") + chunk)
    out = Path(args.out) if args.out else _run_dir_of(args.run_dir) / "delays.png"
    plot_delay_histogram({f"layer {row['name']}": row["delays"] for row in layers}, out,
                         max_delay={f"layer {row['name']}": row["max_delay"] for row in layers}, dt=dt,
                         title=f"{info.get('model_name') or 'model'}, epoch {info['epoch']}: integer delays per layer")
    print(f"histograms: {out}")
    return 0


def _run_dir_of(path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def _sparkline(counts) -> str:
    """One character per bin, its height proportional to the count (empty bins are a space)."""
    bars, top = " ▁▂▃▄▅▆▇█", max(max(counts), 1)
    return "".join(bars[0] if c == 0 else bars[max(1, round(8 * c / top))] for c in counts)
