"""Surrogate-gradient LIF vs the UltraLIF family at T = 1 and T = 10 (Minoza, ICML 2026, arXiv:2602.11206).

The paper's benchmark network: input -> Linear -> 64 neurons -> Linear, output = the last Linear
averaged over T (here: a readout with beta 0, whose mean over T is exactly that), Adam lr 1e-3,
cross-entropy on the averaged output, event counts per bin as input (tonic ToFrame, as the paper). T = 1
collapses each recording into one frame.

    python experiments/ultralif_comparison.py --dataset demo                                  # built-in set
    python experiments/ultralif_comparison.py --dataset nmnist --data-dir ../shared/data/nmnist-sample
    python experiments/ultralif_comparison.py --dataset nmnist --data-dir ~/data --epochs 100   # full N-MNIST
    python experiments/ultralif_comparison.py --dataset shd --data-dir ~/data/shd --epochs 100  # full SHD

Published (T = 1, one hidden layer of 64, 100 epochs, best Ultra neuron vs best surrogate baseline):
    N-MNIST  UltraDLIF 94.14 %   (best baseline DSpike 90.23 %)
    SHD      UltraDLIF 51.24 %   (best baseline FullPLIF 40.02 %)
and with the sparsity penalty lambda = 0.1 (UltraPLIF, T = 10): N-MNIST 97.38 -> 96.93 %, spike rate
0.475 -> 0.292; SHD 68.90 -> 70.27 %, spike rate 0.469 -> 0.383. Full-data runs need the data sets
(not shipped); the sample and the demo set run in minutes on a CPU.
"""
import argparse
import json
import statistics
from pathlib import Path

from spikelab.cli import main

PUBLISHED_T1 = {"nmnist": {"ultradlif": 94.14, "best surrogate baseline": 90.23},
                "shd": {"ultradlif": 51.24, "best surrogate baseline": 40.02}}


def run(args, neuron: str, time_bins: int, seed: int, sparsity: float) -> dict:
    out = args.out / f"{args.dataset}-{neuron}-T{time_bins}-l{sparsity}-seed{seed}"
    command = ["train", "--dataset", args.dataset, "--model", "mlp", "--hidden", "64", "--neuron", neuron,
               "--readout-beta", "0", "--time-bins", str(time_bins), "--epochs", str(args.epochs),
               "--lr", "1e-3", "--batch-size", "128", "--scheduler", "none", "--sparsity", str(sparsity), "--counts",
               "--seed", str(seed), "--out", str(out), "--no-progress"]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if (out / "last.pt").exists():
        command.append("--resume")
    if main(command) != 0:
        raise SystemExit(f"run {out} failed")
    return json.loads((out / "test.json").read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("demo", "nmnist", "shd"), default="demo", help="data set (default demo)")
    parser.add_argument("--data-dir", default=None, help="folder with the data set's files (not needed for demo)")
    parser.add_argument("--neurons", nargs="+", default=["lif", "ultralif", "ultradlif"], help="neurons to compare")
    parser.add_argument("--time-bins", type=int, nargs="+", default=[1, 10], help="T values (default 1 10)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0], help="penalty weights (default 0)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (default 20; the paper: 100)")
    parser.add_argument("--out", type=Path, default=Path("runs/ultralif"), help="where the run folders go")
    args = parser.parse_args()
    rows = []
    for time_bins in args.time_bins:
        for neuron in args.neurons:
            for sparsity in args.sparsity:
                results = [run(args, neuron, time_bins, seed, sparsity) for seed in args.seeds]
                accuracies = [r["accuracy"] for r in results]
                rows.append({"dataset": args.dataset, "T": time_bins, "neuron": neuron, "sparsity": sparsity,
                             "accuracy": accuracies, "mean": statistics.mean(accuracies),
                             "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                             "spike_rate": statistics.mean(r["spike_rate"] for r in results)})
                if "hard_spikes" in results[0]:  # Ultra neurons: the same networks with binary spikes
                    rows[-1]["hard_spike_accuracy"] = [r["hard_spikes"]["accuracy"] for r in results]
    for row in rows:
        print(json.dumps(row))
    if args.dataset in PUBLISHED_T1:
        print("published, T = 1:", json.dumps(PUBLISHED_T1[args.dataset]))
