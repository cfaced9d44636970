"""Float vs crossbar accuracy per preset, with and without noise-aware training (``--train-noise``).

Trains the same MLP twice per seed (plain, and with the device's programming noise in every forward pass), then
measures test accuracy of each on simulated crossbars (``spikelab export crossbar``: 3 programmed chips per point)
right after programming and one day later. Expected: noise-aware training shrinks the drop to within about 1 pp.

    python experiments/crossbar_noise_aware.py --dataset demo --seeds 0 1
    python experiments/crossbar_noise_aware.py --dataset nmnist --data-dir ../shared/data/nmnist-sample --seeds 0
"""
import argparse
import contextlib
import io
import json
from pathlib import Path

import torch

from spikelab.cli import main as spikelab


def run(*args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert spikelab(list(args)) == 0
    return out.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("demo", "nmnist"), default="demo")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--noise", choices=("pcm", "rram"), default="pcm", help="device the noise-aware run trains for")
    parser.add_argument("--out", default="runs/crossbar-noise-aware")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for noisy in (False, True):
            folder = Path(args.out) / f"{args.dataset}-{'noise-' + args.noise if noisy else 'float'}-seed{seed}"
            if not (folder / "best.pt").exists():
                run("train", "--dataset", args.dataset, "--data-dir", args.data_dir, "--epochs", str(args.epochs),
                    "--seed", str(seed), "--no-progress", "--out", str(folder),
                    *(["--train-noise", args.noise] if noisy else []))
            for preset in ("pcm", "rram"):
                result = json.loads(run("export", "crossbar", str(folder), "--preset", preset, "--no-progress",
                                        "--json"))
                row = {"seed": seed, "training": f"noise-{args.noise}" if noisy else "float", "preset": preset,
                       "float": result["float_accuracy"], "programmed": result["programmed"]["mean"],
                       "programmed_std": result["programmed"]["std"], "one_day": result["one_day"]["mean"],
                       "one_day_std": result["one_day"]["std"]}
                rows.append(row)
                print(f"seed {seed} {row['training']:10s} on {preset}: float {row['float']:.4f}, programmed "
                      f"{row['programmed']:.4f} +- {row['programmed_std']:.4f}, one day {row['one_day']:.4f} +- "
                      f"{row['one_day_std']:.4f}", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.dataset}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
