"""The RRAM random liquid (Lin et al., Nat. Comput. Sci. 2025) against its software twin.

A fixed random LSM encoder (16 x 16 centre crop of the ON channel -> 200 LIF neurons, T = 50, decay 0.9,
threshold 5) whose weights are Gaussian (software twin) or random RRAM conductance pairs read through the crossbar
periphery with fresh read noise every step; only a digital Linear(200 -> 10) readout is trained on the firing
rates (Adam, cross-entropy, 100 epochs). The authors report 89.11 % (software) and 89.66 % (chip) on full N-MNIST
(60,000 training recordings); here the 1,000-recording sample or the demo set, so expect less.

    python experiments/crossbar_rram_liquid.py --data-dir ../shared/data/nmnist-sample --seeds 3
    python experiments/crossbar_rram_liquid.py --dataset demo --seeds 3
"""
import argparse
import statistics

import torch

import spikelab as sl
from spikelab.backends import crossbar


def frames(dataset, crop: int):
    """``(T, N, crop * crop)`` spikes of the ON channel, centre crop; and the labels."""
    x, y = zip(*(dataset[i] for i in range(len(dataset))))
    x = torch.stack(x, 1)[:, :, 0]
    top = (x.shape[-2] - crop) // 2
    left = (x.shape[-1] - crop) // 2
    return (x[..., top:top + crop, left:left + crop] > 0).float().flatten(2), torch.tensor(y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("nmnist", "demo"), default="nmnist")
    parser.add_argument("--data-dir", default="../shared/data/nmnist-sample")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    crop, steps = crossbar.liquid.PAPER["crop"], crossbar.liquid.PAPER["steps"]
    options = dict(dt=300.0 / steps, duration=300.0)
    if args.dataset == "demo":
        root, options["downsample"] = sl.datasets.demo.demo_root(), 1
    else:
        root = args.data_dir
    train = sl.datasets.NMNIST(root, train=True, **options)
    test = sl.datasets.NMNIST(root, train=False, **options)
    (x_train, y_train), (x_test, y_test) = frames(train, crop), frames(test, crop)
    print(f"{args.dataset}: {x_train.shape[1]} train / {x_test.shape[1]} test, T = {x_train.shape[0]}, "
          f"{x_train.shape[2]} inputs, input rate {x_train.mean():.3f}")
    results = {"software": [], "rram": [], "rram-ideal-periphery": []}
    for seed in range(args.seeds):
        liquids = {"software": crossbar.random_liquid(crop * crop, seed=seed),
                   "rram": crossbar.random_liquid(crop * crop, seed=seed, device=crossbar.RRAM()),
                   "rram-ideal-periphery": crossbar.random_liquid(crop * crop, seed=seed, device=crossbar.RRAM(),
                                                                  periphery=crossbar.Periphery.ideal())}
        for name, liquid in liquids.items():
            f_train, f_test = crossbar.firing_rates(liquid, x_train), crossbar.firing_rates(liquid, x_test)
            readout = crossbar.fit_readout(f_train, y_train, 10, epochs=args.epochs, seed=seed)
            accuracy = crossbar.readout_accuracy(readout, f_test, y_test)
            results[name].append(accuracy)
            print(f"seed {seed} {name:22s} test accuracy {accuracy:.4f} (liquid rate {f_train.mean():.3f})")
    for name, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:22s} {statistics.fmean(values):.4f} +- {spread:.4f}  ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
