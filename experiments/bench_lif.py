"""LIF training speed on CPU: spikelab vs snnTorch, SpikingJelly and the matrix-multiply floor.

700-256-256-20 LIF network, batch 32, T=100, forward + backward, variants interleaved in one process
(see ``spikelab/bench.py``). Goals: >= 1.5x faster than snnTorch, >= 1.1x faster than SpikingJelly,
within 1.3x of the floor. SpikingJelly is optional: ``pip install --no-deps spikingjelly``.

    python experiments/bench_lif.py --rounds 30
    python experiments/bench_lif.py --rounds 30 --json results.json
"""
import argparse
import json

from spikelab.bench import format_lif_table, run_lif_benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed iterations per variant (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--reset", choices=("zero", "subtract"), default="zero",
                        help="reset of every variant (default zero: the same equations in all frameworks)")
    parser.add_argument("--json", metavar="PATH", help="also write the full result (raw times included) here")
    args = parser.parse_args()
    result = run_lif_benchmark(rounds=args.rounds, warmup=args.warmup, threads=args.threads, reset=args.reset)
    print(format_lif_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
