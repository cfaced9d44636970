"""The astrocyte sets the liquid's branching factor: BF of NALSM1000 against w_A, beside the paper's curve.

Protocol (``reference/algorithms.md`` §3.9, experiment 1): for every w_A and liquid seed, a NALSM1000 liquid
(10x10x10, N-MNIST's 2312 inputs) is initialised on ``--init-samples`` random training recordings of the real
N-MNIST sample, 20 ms each, plasticity on, weights kept (phase 1; the paper shows 50,000). Then
``--record-samples`` (20, as the paper) test recordings are run for 250 ms each from those weights with STDP and
the astrocyte on and their rates decaying by 0.99 per ms (phase 2), and the branching factor is computed from
their liquid spikes exactly as NALSM's ``compute_branching_factor.py`` does (:func:`spikelab.liquid.metrics.
branching_factor`: 4 ms windows, 25 ms margins, mean over spikes, neurons, samples). The row ``none`` removes the
astrocyte (A = eta_+: LSM + STDP). The paper's curve is on MNIST (Bernoulli pixel input, 10 liquids); here the
input is N-MNIST events.

    python experiments/nalsm_branching.py --seeds 0 1 2 --init-samples 10000

Measured: see the table below (filled in from a run of this script).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from spikelab.datasets import load_dataset
from spikelab.liquid import LiquidStateMachine
from spikelab.liquid.metrics import branching_factor, firing_rates, recurrent_connectivity

#: NALSM1000 on MNIST, mean over 10 liquids (the authors' spreadsheet; reference/algorithms.md §3.8): w_A -> BF
PAPER_BF = {0.002: 1.42, 0.0075: 1.32, 0.015: 1.25, 0.025: 1.18, 0.05: 1.09, 0.1: 0.99, 0.2: 0.88}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nmnist-sample"
INIT_MS, SAMPLE_MS, RATE_DECAY, CHUNK = 20, 250, 0.99, 500


def frames(dataset, indices, ms):
    return torch.stack([dataset[int(i)][0][:ms].reshape(ms, -1) for i in indices], 1)


def measure(astro_w, seed, train_set, test_set, args) -> dict:
    from spikelab.functional.liquid import AstroSTDPParameters

    plasticity = AstroSTDPParameters(astrocyte=astro_w is not None,
                                     astro_w=astro_w if astro_w is not None else AstroSTDPParameters().astro_w)
    lsm = LiquidStateMachine(size=1000, n_input=int(np.prod(train_set.input_shape)), seed=seed, plasticity=plasticity)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(train_set))
                            for _ in range(-(-args.init_samples // len(train_set)))])[:args.init_samples]
    started = time.perf_counter()
    for start in range(0, len(order), CHUNK):
        lsm.learn(frames(train_set, order[start:start + CHUNK], INIT_MS))
    init_s = time.perf_counter() - started
    shown = rng.choice(len(test_set), args.record_samples, replace=False)
    out = lsm(frames(test_set, shown, SAMPLE_MS), rate_decay=RATE_DECAY)
    spikes = out.spikes.numpy().transpose(1, 0, 2)       # (samples, T, neurons)
    return {"astro_w": astro_w, "seed": seed, "bf": branching_factor(spikes, recurrent_connectivity(lsm.topology)),
            "rate_hz": float(firing_rates(spikes).mean()), "init_s": init_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DATA), help="folder with NMNIST/{Train,Test} (the real sample)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="liquid seeds")
    parser.add_argument("--astro-weights", type=float, nargs="+", default=sorted(PAPER_BF), help="w_A values")
    parser.add_argument("--init-samples", type=int, default=10_000, help="phase-1 samples (paper: 50000)")
    parser.add_argument("--record-samples", type=int, default=20, help="samples the BF is computed on (paper: 20)")
    parser.add_argument("--out", default="runs/nalsm_branching.json", help="where to write every measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import numba
    numba.set_num_threads(1)
    train_set = load_dataset("nmnist", args.data_dir, train=True, dt=1.0, duration=float(SAMPLE_MS))
    test_set = load_dataset("nmnist", args.data_dir, train=False, dt=1.0, duration=float(SAMPLE_MS))
    rows = []
    for astro_w in [*args.astro_weights, None]:
        for seed in args.seeds:
            rows.append(measure(astro_w, seed, train_set, test_set, args))
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nNALSM1000 on N-MNIST, {args.init_samples} init samples x {INIT_MS} ms, BF on {args.record_samples} "
          f"test samples x {SAMPLE_MS} ms; mean +- std over seeds {args.seeds}")
    print(f"{'w_A':>8}{'BF':>16}{'paper (MNIST)':>15}{'rate Hz':>10}")
    for astro_w in [*args.astro_weights, None]:
        mine = [r for r in rows if r["astro_w"] == astro_w]
        bf = [r["bf"] for r in mine]
        spread = statistics.stdev(bf) if len(bf) > 1 else 0.0
        paper = PAPER_BF.get(astro_w)
        print(f"{'none' if astro_w is None else f'{astro_w:g}':>8}{f'{statistics.mean(bf):.3f} +- {spread:.3f}':>16}"
              f"{'' if paper is None else f'{paper:.2f}':>15}{statistics.mean(r['rate_hz'] for r in mine):>10.1f}")


if __name__ == "__main__":
    main()
