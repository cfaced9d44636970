"""Train on the 1,000 real N-MNIST Train recordings of the shared sample, test on its 100 Test recordings.

Runs `spikelab train` for each candidate setting and seed, reads the test accuracy of the best-validation epoch
(what `spikelab eval RUN_DIR` prints) and checks the trained network against SpiNNaker's limits (what
`spikelab export spinnaker RUN_DIR --check` reports). This sweep chose the N-MNIST default of `spikelab train`
(`spikelab.models.DATASET_MODELS["nmnist"]`, candidate ``default``).

    python experiments/nmnist_sample.py                                   # every candidate, seed 0
    python experiments/nmnist_sample.py --candidates default mlp256 --seeds 0 1 2

Measured (2-core VM shared with other jobs, torch 2.13 CPU, 1 thread, `nice`; input 2 x 34 x 34, T = 30 x 10 ms
unless stated; test: accuracy on the 100 Test recordings at the best validation epoch, so one recording is one
percentage point; val: best validation accuracy on the 101 held-out Train recordings; train s: seconds of the
training epochs, at load averages from 1 to 13, so only a rough guide (on an idle core an MLP epoch takes about
1.5 s, a conv epoch about 25 s); SpiNNaker: limit check on the worst-case weight grid):

    candidate          settings (beyond 2 x 34 x 34, T = 30 x 10 ms)       seed  test %  val %  train s  SpiNNaker
    mlp256-e15         2312-256-10, 15 epochs (the issue's command)          0      88   91.1       19  ok
    mlp256             2312-256-10, 20 epochs (the former default)           0      90   93.1       33  ok
                                                                             1      89   85.1       74  ok
                                                                             2      89   87.1       70  ok
                                                                          mean  89.3 +- 0.6
    mlp128             2312-128-10                                           0      90   93.1       67  ok
    mlp512             2312-512-10                                           0      85   94.1       45  ok
    mlp256-drop0.3     dropout 0.3                                           0      89   94.1       24  ok
    mlp512-drop0.3     2312-512-10, dropout 0.3                              0      88   96.0       63  ok
    mlp256x2           2312-256-256-10                                       0      88   93.1       33  ok
    mlp256-dt5         dt 5 ms (T = 60)                                      0      89   95.0      156  ok
    mlp256-dt30        dt 30 ms (T = 10)                                     0      87   94.1       20  ok
    mlp256-ds2         17 x 17 input (578-256-10)                            0      88   94.1        9  ok
    mlp256-spikecount  spike-count loss and decoding                         0      82   88.1       49  ok
    mlp256-e30         30 epochs                                             0      86   94.1      132  ok
    mlp256-lr1e-3      lr 1e-3                                               0      88   93.1       88  ok
    mlp256-bs32        batch 32                                              0      85   94.1       80  ok
    mlp256-adamw       AdamW, weight decay 0.1                               0      88   94.1       99  ok
    mlp500-rram-e15    2312-500-10, RRAM weight noise in training, 15 ep.    0      88   95.0      643  ok
    mlp256-rram        RRAM programming noise in training (regulariser)      0      91   93.1      137  ok
                                                                             1      88   84.2      114  ok
                                                                             2      87   87.1      185  ok
                                                                          mean  88.7 +- 2.1
    conv-avg-drop0.3   12C5-AP2-32C5-AP2-10, dropout 0.3, 20 epochs          0      91   95.0     1705  ok
    (the default                                                             1      91   88.1     2394  ok
    before max pooling exported)                                             2      87   85.1     2415  ok
                                                                          mean  89.7 +- 2.3
    default            12C5-MP2-32C5-MP2-10, dropout 0.3, 20 epochs          0      90   96.0      731  ok
    (conv, max pooling)                                                      1      90   89.1      881  ok
                                                                             2      92   89.1      494  ok
                                                                          mean  90.7 +- 1.2

The Test split has only 100 recordings (2 to 15 per class): differences of 1-2 points between candidates are
within the spread between seeds. The default is the candidate with the best mean over three seeds, 90.7 %, and
exportable: each max pooling of spikes runs on PyNN / SpiNNaker as a population of OR neurons
(:func:`spikelab.graph.max_pool_neuron`). It is 1.4 points above the MLP, which trains about 15 times faster.
(The default's rows were run after the other rows, with the CLI of commit d639d14; the README of an earlier build
quoted 91.7 +- 0.6 for the same setting.) The average-pooling conv, the default before, exports to NEST with 0 of
1,884,464 spikes differing on seed 0 (91 % on both) and passes SpiNNaker's check (61 cores).
"""
import argparse
import json
import statistics
from pathlib import Path

import torch

from spikelab.cli import main

#: Candidate settings: `spikelab train --dataset nmnist` options (``default``: none, the CLI's N-MNIST default).
CANDIDATES = {
    "default": [],
    "mlp256-e15": ["--model", "mlp", "--hidden", "256", "--epochs", "15"],
    "mlp256": ["--model", "mlp", "--hidden", "256", "--epochs", "20"],
    "mlp512": ["--model", "mlp", "--hidden", "512", "--epochs", "20"],
    "mlp256-drop0.3": ["--model", "mlp", "--hidden", "256", "--dropout", "0.3", "--epochs", "20"],
    "mlp512-drop0.3": ["--model", "mlp", "--hidden", "512", "--dropout", "0.3", "--epochs", "20"],
    "mlp256x2": ["--model", "mlp", "--hidden", "256,256", "--epochs", "20"],
    "mlp256-dt5": ["--model", "mlp", "--hidden", "256", "--dt", "5", "--epochs", "20"],
    "mlp256-dt30": ["--model", "mlp", "--hidden", "256", "--dt", "30", "--epochs", "20"],
    "mlp256-ds2": ["--model", "mlp", "--hidden", "256", "--downsample", "2", "--epochs", "20"],
    "mlp256-spikecount": ["--model", "mlp", "--hidden", "256", "--loss", "spike_count", "--epochs", "20"],
    "mlp256-e30": ["--model", "mlp", "--hidden", "256", "--epochs", "30"],
    "mlp256-lr1e-3": ["--model", "mlp", "--hidden", "256", "--lr", "1e-3", "--epochs", "20"],
    "mlp256-bs32": ["--model", "mlp", "--hidden", "256", "--batch-size", "32", "--epochs", "20"],
    "mlp256-adamw": ["--model", "mlp", "--hidden", "256", "--optimizer", "adamw", "--weight-decay", "0.1",
                     "--epochs", "20"],
    "mlp128": ["--model", "mlp", "--hidden", "128", "--epochs", "20"],
    "mlp256-rram": ["--model", "mlp", "--hidden", "256", "--train-noise", "rram", "--epochs", "20"],
    "mlp500-rram-e15": ["--model", "mlp", "--hidden", "500", "--train-noise", "rram", "--epochs", "15"],
    "conv-avg-drop0.3": ["--model", "conv", "--pool", "avg", "--dropout", "0.3", "--epochs", "20"],
}


def run(data_dir: str, candidate: str, seed: int, out: Path) -> dict:
    """Train one candidate (or read its finished run folder) and return its row of the table."""
    from spikelab.backends import spinnaker
    from spikelab.errors import ExportError
    from spikelab.run import TrainedRun

    run_dir = out / f"nmnist-sample-{candidate}-seed{seed}"
    if not (run_dir / "test.json").exists():
        args = ["train", "--dataset", "nmnist", "--data-dir", data_dir, *CANDIDATES[candidate], "--seed", str(seed),
                "--out", str(run_dir), "--no-progress"]
        if (run_dir / "last.pt").exists():
            args.append("--resume")
        if main(args) != 0:
            raise SystemExit(f"training {candidate} seed {seed} failed")
    test = json.loads((run_dir / "test.json").read_text())
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    try:
        check = "ok" if spinnaker.check(TrainedRun.load(run_dir).network()).ok else "violated"
    except ExportError as error:
        check = "refused: " + str(error).split(";")[0]
    return {"candidate": candidate, "seed": seed, "test": test["accuracy"], "best_epoch": test["best_epoch"],
            "val": max(row["val_accuracy"] for row in epochs), "train_s": sum(row["seconds"] for row in epochs),
            "spinnaker": check}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/nmnist-sample", help="folder holding NMNIST/Train and NMNIST/Test")
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES),
                        help="candidate settings (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/experiments"), help="where the run folders go")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'candidate':<20}{'seed':>5}{'test %':>8}{'val %':>7}{'epoch':>6}{'train s':>9}  SpiNNaker")
    for candidate in args.candidates:
        rows = [run(args.data_dir, candidate, seed, args.out) for seed in args.seeds]
        for row in rows:
            print(f"{candidate:<20}{row['seed']:>5}{100 * row['test']:>8.0f}{100 * row['val']:>7.1f}"
                  f"{row['best_epoch']:>6}{row['train_s']:>9.0f}  {row['spinnaker']}")
        if len(rows) > 1:
            accuracies = [100 * row["test"] for row in rows]
            print(f"{candidate:<20}{'mean':>5}{statistics.mean(accuracies):>8.1f} +- "
                  f"{statistics.stdev(accuracies):.1f}")
