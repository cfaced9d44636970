"""Train on the 1,000 real N-MNIST Train recordings of the shared sample, test on its 100 Test recordings.

Runs `spikelab train` then `spikelab eval` for several seeds and prints the mean test accuracy.

    python experiments/nmnist_sample.py --data-dir ../shared/data/nmnist-sample            # conv SNN, 3 seeds
    python experiments/nmnist_sample.py --data-dir ../shared/data/nmnist-sample --model mlp

Expected (measured on 2 CPU cores, torch 2.13 CPU; see the README's results table):
    conv (12C5-MP2-32C5-MP2-10, dropout 0.3, T = 30 x 10 ms, 20 epochs): mean test accuracy about 0.92, ~5 min per seed
    mlp  (2312-256-10, T = 30 x 10 ms, 20 epochs):                        about 0.86, ~30 s per seed
The Test split has only 100 recordings (2 to 15 per class), so one recording is one percentage point.
"""
import argparse
import json
import statistics
from pathlib import Path

from spikelab.cli import main

CONFIGS = {
    "conv": ["--model", "conv", "--dropout", "0.3"],
    "mlp": ["--model", "mlp", "--hidden", "256"],
}


def run(data_dir: str, model: str, seeds: list[int], out: Path, epochs: int) -> list[float]:
    accuracies = []
    for seed in seeds:
        run_dir = out / f"nmnist-sample-{model}-seed{seed}"
        args = ["train", "--dataset", "nmnist", "--data-dir", data_dir, *CONFIGS[model], "--epochs", str(epochs),
                "--seed", str(seed), "--out", str(run_dir), "--no-progress"]
        if (run_dir / "last.pt").exists():
            args.append("--resume")
        if main(args) != 0:
            raise SystemExit(f"training seed {seed} failed")
        accuracies.append(json.loads((run_dir / "test.json").read_text())["accuracy"])
    return accuracies


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/nmnist-sample", help="folder holding NMNIST/Train and NMNIST/Test")
    parser.add_argument("--model", choices=sorted(CONFIGS), default="conv", help="architecture (default conv)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (default 20)")
    parser.add_argument("--out", type=Path, default=Path("runs/experiments"), help="where the run folders go")
    args = parser.parse_args()
    accuracies = run(args.data_dir, args.model, args.seeds, args.out, args.epochs)
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(json.dumps({"model": args.model, "seeds": args.seeds, "test_accuracy": accuracies,
                      "mean": statistics.mean(accuracies), "std": spread}))
