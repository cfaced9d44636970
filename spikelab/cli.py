"""The ``spikelab`` command: train, eval, models, bench.

Errors a user can cause print one line (``error: ...``) without a traceback and exit with 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import ConfigError, SpikelabError

EPILOG = "Every option is described by `spikelab COMMAND --help`."


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,128, got {text!r}") from None


def _add_data_options(parser, for_eval=False):
    from spikelab.datasets import DATASET_DEFAULTS

    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=sorted(DATASET_DEFAULTS), default=None if for_eval else "demo",
                       help="demo: built-in digits as N-MNIST-style events (no download); nmnist; shd"
                            + (" (default: the run's own dataset)" if for_eval else " (default: demo)"))
    group.add_argument("--data-dir", default=None if for_eval else "data",
                       help="folder with the dataset files: DIR/NMNIST/{Train,Test}/<digit>/*.bin or "
                            "DIR/{Train,Test}/...; DIR/shd_{train,test}.h5 or DIR/SHD/shd_*.h5"
                            + (" (default: the run's own)" if for_eval else " (default: ./data)"))
    group.add_argument("--skip-bad", action="store_true",
                       help="skip corrupt files and report how many, instead of stopping at the first")
    if for_eval:
        return
    group.add_argument("--dt", type=float, help="time-bin width in ms (default per dataset: 10)")
    group.add_argument("--time-bins", type=int,
                       help="T bins of duration/T ms each instead of --dt; 1 collapses each recording into one frame")
    group.add_argument("--duration", type=float,
                       help="ms of each recording to use, T = duration / dt (default: nmnist/demo 300, shd 1000)")
    group.add_argument("--downsample", type=int,
                       help="N-MNIST/demo spatial pooling factor, 34x34 -> ceil(34/k) (default: nmnist 1, demo 2)")
    group.add_argument("--channel-group", type=int,
                       help="SHD: sum groups of this many adjacent channels, e.g. 5: 700 -> 140 (default 1; shd-delays 5)")
    group.add_argument("--counts", action="store_true",
                       help="feed event counts per bin instead of binary spikes (not exportable to hardware)")
    group.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training set held out, stratified, to choose the best epoch (default 0.1)")


def _add_train_parser(commands):
    from spikelab.models import MODELS, NEURONS
    from spikelab.training import LOSSES, MODES

    parser = commands.add_parser("train", help="train a spiking network", epilog=EPILOG,
                                 description="Train a spiking network; checkpoints, metrics and plots go to --out.")
    _add_data_options(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=sorted(MODELS), default="mlp", help="architecture (default mlp; see `spikelab models`)")
    model.add_argument("--hidden", type=_ints, help="hidden layer sizes, comma-separated (default 256; shd-delays 256,256)")
    model.add_argument("--channels", type=_ints, default=(12, 32), help="conv model: channels per block (default 12,32)")
    model.add_argument("--dropout", type=float,
                       help="dropout after each hidden layer, one mask per sequence (default 0; shd-delays 0.4)")
    model.add_argument("--neuron", choices=NEURONS, default="lif",
                       help="spiking neuron: lif (surrogate gradient, default) or the UltraLIF family (smooth "
                            "max-plus neurons, no surrogate): ultralif, ultraplif (learnable tau), ultradlif "
                            "(neighbour coupling), ultradplif")
    model.add_argument("--beta", type=float,
                       help="membrane decay per step, in [0, 1); Ultra neurons: their tau (default 0.9; shd-delays 0.005)")
    model.add_argument("--learn-beta", choices=("no", "layer", "neuron"), default="no",
                       help="learn the decay: one per layer or one per neuron (default no)")
    model.add_argument("--threshold", type=float, default=1.0, help="firing threshold (default 1.0)")
    model.add_argument("--reset", choices=("zero", "subtract", "none"), default="zero",
                       help="after a spike: zero (default; runs on SpiNNaker), subtract the threshold, or none")
    model.add_argument("--refractory-steps", type=int, choices=(0, 1), default=0,
                       help="1: the step after a spike ignores its input (default 0)")
    model.add_argument("--surrogate", choices=("atan", "fast_sigmoid", "triangle"), default="atan",
                       help="surrogate gradient of the spike (default atan)")
    model.add_argument("--slope", type=float,
                       help="surrogate slope (default per surrogate: atan 2, fast_sigmoid 25, triangle 1; shd-delays 5)")
    model.add_argument("--eps", type=float, default=1.0,
                       help="Ultra neurons: initial temperature eps of the max-plus relaxation, in [0.1, 20] (default 1)")
    model.add_argument("--fixed-eps", action="store_true", help="Ultra neurons: keep eps fixed instead of learning it")
    model.add_argument("--readout-beta", type=float,
                       help="leak of the non-spiking readout; 0 makes the output the last layer averaged over T "
                            "(default 0.9; shd-delays 0.005)")
    delays = parser.add_argument_group("delays (model shd-delays)")
    delays.add_argument("--max-delay", type=int, default=24, help="largest synaptic delay in time steps (default 24)")
    exclusive = parser.add_mutually_exclusive_group()  # (argparse deprecates nesting it in a group)
    exclusive.add_argument("--fixed-delays", action="store_true", help="random delays, not learned (ablation)")
    exclusive.add_argument("--no-delays", action="store_true", help="no delays at all (ablation)")
    delays.add_argument("--position-lr", type=float, default=0.1,
                        help="learning rate of the delays, their own parameter group (default 0.1, as published)")
    train = parser.add_argument_group("training")
    train.add_argument("--mode", choices=MODES, default="bptt",
                       help="bptt (default); sltt: per-step backprop, memory constant in T; sltt-k: at K random steps")
    train.add_argument("--sltt-k", type=int, default=2, help="steps backpropagated per batch in sltt-k mode (default 2)")
    train.add_argument("--loss", choices=sorted(LOSSES),
                       help="mean_membrane (default): CE on mean readout membrane; spike_count; summed_softmax "
                            "(shd-delays' default); per_step")
    train.add_argument("--epochs", type=int, help="epochs (default: demo 15, shd-delays 150, otherwise 20)")
    train.add_argument("--batch-size", type=int, help="samples per batch (default 64; shd-delays 256)")
    train.add_argument("--lr", type=float, help="learning rate (default 2e-3; shd-delays 1e-3)")
    train.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam", help="optimiser (default adam)")
    train.add_argument("--scheduler", choices=("cosine", "step", "none"), default="cosine",
                       help="learning-rate schedule over the epochs (default cosine)")
    train.add_argument("--weight-decay", type=float, help="L2 weight decay (default 0; shd-delays 1e-5)")
    train.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm (default: off)")
    train.add_argument("--sparsity", type=float, default=0.0,
                       help="add SPARSITY x mean spike rate to the loss (bptt mode; default 0)")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation, shuffling, dropout (default 0)")
    run.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    run.add_argument("--out", default=None,
                     help="run folder (default runs/DATASET-MODEL-seedSEED; a new numbered folder if it exists)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out (or the default folder) from its last checkpoint")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


GENERIC_DEFAULTS = {"hidden": (256,), "dropout": 0.0, "beta": 0.9, "readout_beta": 0.9, "slope": None,
                    "loss": "mean_membrane", "batch_size": 64, "lr": 2e-3, "weight_decay": 0.0}


def _fill_defaults(args) -> None:
    """Options left unset take the model's published value (models.MODEL_DEFAULTS), else the generic one."""
    from spikelab.models import MODEL_DEFAULTS

    published = MODEL_DEFAULTS.get(args.model, {})
    for key, generic in GENERIC_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, published.get(key, generic))
    if args.epochs is None:
        args.epochs = published.get("epochs", 15 if args.dataset == "demo" else 20)
    if args.channel_group is None and args.dataset == "shd":
        args.channel_group = published.get("channel_group")
    if args.model != "shd-delays" and (args.fixed_delays or args.no_delays):
        raise ConfigError("--fixed-delays and --no-delays apply to --model shd-delays only")


def _binning(args) -> dict:
    from spikelab.datasets import DATASET_DEFAULTS

    binning = dict(DATASET_DEFAULTS[args.dataset])
    for key in ("dt", "duration", "downsample", "channel_group"):
        value = getattr(args, key)
        if value is not None:
            if key not in binning:
                raise ConfigError(f"--{key.replace('_', '-')} does not apply to dataset {args.dataset!r}")
            binning[key] = value
    if args.time_bins is not None:
        if args.dt is not None:
            raise ConfigError("give --dt or --time-bins, not both (--time-bins N sets dt = duration / N)")
        if args.time_bins < 1:
            raise ConfigError(f"--time-bins must be at least 1, got {args.time_bins}")
        binning["dt"] = binning["duration"] / args.time_bins
    binning["binarize"] = not args.counts
    return binning


def _run_folder(args) -> Path:
    if args.out is not None:
        return Path(args.out)
    base = Path("runs") / f"{args.dataset}-{args.model}-seed{args.seed}"
    if args.resume or not (base / "last.pt").exists():
        return base
    number = 2
    while (base.parent / f"{base.name}-{number}" / "last.pt").exists():
        number += 1
    return base.parent / f"{base.name}-{number}"


def _run_config(args) -> dict:
    """Everything that defines a run, as plain data (stored in every checkpoint)."""
    _fill_defaults(args)
    if args.neuron == "lif":
        neuron_options = dict(beta=args.beta, threshold=args.threshold, reset=args.reset,
                              refractory_steps=args.refractory_steps, surrogate=args.surrogate, slope=args.slope,
                              learn_beta=False if args.learn_beta == "no" else args.learn_beta)
    else:
        neuron_options = dict(threshold=args.threshold, eps=args.eps, learn_eps=not args.fixed_eps)
        if args.neuron != "ultradlif":  # the diffusive neuron has no leak
            neuron_options["tau"] = args.beta
    model_options = dict(hidden=list(args.hidden), dropout=args.dropout, neuron=args.neuron,
                         neuron_options=neuron_options, readout_beta=args.readout_beta)
    if args.model == "conv":
        model_options["channels"] = list(args.channels)
        del model_options["hidden"]
    if args.model == "shd-delays":
        model_options.update(max_delay=args.max_delay,
                             delays="fixed" if args.fixed_delays else "none" if args.no_delays else "learned")
    return {
        "dataset": args.dataset, "data_dir": str(Path(args.data_dir).resolve()), "binning": _binning(args),
        "skip_bad": args.skip_bad, "val_fraction": args.val_fraction, "position_lr": args.position_lr,
        "model": args.model, "model_options": model_options,
        "trainer": dict(loss=args.loss, mode=args.mode, sltt_k=args.sltt_k if args.mode == "sltt-k" else None,
                        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                        scheduler=args.scheduler, epochs=args.epochs, batch_size=args.batch_size,
                        seed=args.seed, grad_clip=args.grad_clip, sparsity=args.sparsity),
    }


def _load_split(config: dict, train: bool):
    from spikelab.datasets import load_dataset

    return load_dataset(config["dataset"], config["data_dir"], train=train, skip_bad=config["skip_bad"],
                        **config["binning"])


def train(args) -> int:
    import torch
    from torch.utils.data import Subset

    from spikelab.datasets import stratified_split
    from spikelab.delays import DelayedLinear, delay_param_groups
    from spikelab.models import build_model
    from spikelab.training import Trainer, load_checkpoint

    started = time.perf_counter()
    out = _run_folder(args)
    resume = args.resume and (out / "last.pt").exists()
    if args.resume and not resume:
        print(f"no checkpoint in {out} yet: starting from the beginning")
    if not args.resume and (out / "last.pt").exists():
        raise ConfigError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    if resume:
        config = load_checkpoint(out / "last.pt")["config"]["run"]
        print(f"resuming {out} from its last checkpoint (with the options it was started with)")
    else:
        config = _run_config(args)
    trainer_options = config["trainer"]
    torch.manual_seed(trainer_options["seed"])
    train_full = _load_split(config, train=True)
    test_set = _load_split(config, train=False)
    config.setdefault("input_shape", list(train_full.input_shape))   # what exporters need for conv models
    train_idx, val_idx = stratified_split(train_full.targets, config["val_fraction"], trainer_options["seed"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "val_indices.json").write_text(json.dumps({"val": list(map(int, val_idx))}))
    model = build_model(config["model"], train_full.input_shape, train_full.num_classes, **config["model_options"])
    groups = None
    if any(isinstance(m, DelayedLinear) for m in model.modules()):  # delays get their own learning rate
        groups = delay_param_groups(model, lr=trainer_options["lr"], position_lr=config["position_lr"],
                                    weight_decay=trainer_options["weight_decay"])
    trainer = Trainer(model, device=args.device, out_dir=out, model_name=config["model"], progress=not args.no_progress,
                      config={"run": config}, param_groups=groups, **trainer_options)
    print(f"training {config['model']} on {config['dataset']}: {len(train_idx)} train / {len(val_idx)} validation / "
          f"{len(test_set)} test samples, input {tuple(train_full.input_shape)} x T={train_full[0][0].shape[0]}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, mode {trainer_options['mode']} -> {out}")
    trainer.fit(Subset(train_full, train_idx), Subset(train_full, val_idx), resume=resume)
    for row in trainer.history:
        print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}  "
              f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}  ({row['seconds']:.1f} s)")
    best = load_checkpoint(out / "best.pt")
    trainer.model.load_state_dict(best["model_state"])
    result = _evaluate_test(trainer, test_set)
    result.update(best_epoch=best["epoch"], checkpoint=str(out / "best.pt"))
    (out / "test.json").write_text(json.dumps(result) + "\n")
    _print_evaluation(result)
    print(f"done in {time.perf_counter() - started:.1f} s; run folder {out}")
    return 0


def _evaluate_test(trainer, test_set) -> dict:
    """Test metrics; for models with Ultra neurons (soft spikes), also with hard (binary) spikes."""
    from spikelab.neurons import set_spike_mode

    result = trainer.evaluate(test_set, desc="test")
    previous = set_spike_mode(trainer.model, "hard")
    if previous:  # the model has Ultra layers: also evaluate the deployable binary spikes
        hard = trainer.evaluate(test_set, desc="test, hard spikes")
        set_spike_mode(trainer.model, previous)
        result["hard_spikes"] = {key: hard[key] for key in ("accuracy", "loss", "spike_rate", "synops")}
    return result


def _print_evaluation(result: dict) -> None:
    print(f"test accuracy {result['accuracy']:.4f} ({result['n']} samples, loss {result['loss']:.4f}"
          + (f", best epoch {result['best_epoch']})" if "best_epoch" in result else ")"))
    if "hard_spikes" in result:
        hard = result["hard_spikes"]
        print(f"with hard (binary) spikes instead of soft ones: test accuracy {hard['accuracy']:.4f}, "
              f"spike rate {hard['spike_rate']:.4f}")
    if result.get("spike_rate") is not None:
        print(f"mean spike rate {result['spike_rate']:.4f}, synaptic operations per sample {result['synops']:.0f}")
    confusion = result["confusion"]
    width = max(4, len(str(max(max(row) for row in confusion))) + 1)
    print("confusion matrix (rows: true class, columns: predicted)")
    print(" " * 4 + "".join(f"{j:>{width}}" for j in range(len(confusion))))
    for i, row in enumerate(confusion):
        print(f"{i:>4}" + "".join(f"{count:>{width}}" for count in row))


def evaluate(args) -> int:
    from spikelab.training import Trainer, load

    model = load(args.checkpoint)
    config = dict(model.run_info["config"]["run"])
    if args.dataset is not None and args.dataset != config["dataset"]:
        raise ConfigError(f"this model was trained on {config['dataset']!r}; evaluating it on {args.dataset!r} "
                          "would feed inputs of another shape")
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    config["skip_bad"] = args.skip_bad
    test_set = _load_split(config, train=False)
    trainer = Trainer(model, loss=config["trainer"]["loss"], batch_size=args.batch_size, device=args.device,
                      progress=not args.no_progress)
    result = _evaluate_test(trainer, test_set)
    print(f"{model.run_info['checkpoint']} (epoch {model.run_info['epoch']}) on {config['dataset']} test split")
    _print_evaluation(result)
    return 0


def list_models(args) -> int:
    from spikelab.models import MODELS

    for name, builder in MODELS.items():
        print(f"{name:11s} {builder.__doc__.strip().splitlines()[0]}")
    return 0


def bench(args) -> int:
    from spikelab.bench import format_lif_table, format_memory_table, run_lif_benchmark, run_memory_benchmark

    if args.target == "delays":
        return bench_delays(args)
    speed = run_lif_benchmark(rounds=args.rounds, threads=args.threads, reset=args.reset)
    memory = run_memory_benchmark(threads=args.threads)
    if args.json:
        print(json.dumps({"speed": speed, "memory": memory}, indent=2))
    else:
        print(format_lif_table(speed) + "\n\n" + format_memory_table(memory))
    return 0


def make_data(args) -> int:
    from spikelab.datasets import write_synth_delay_shd

    if args.train < 1 or args.test < 1 or not 2 <= args.classes <= 20:
        raise ConfigError("synth-shd needs --train and --test of at least 1 and --classes between 2 and 20")
    paths = write_synth_delay_shd(args.folder, n_train=args.train, n_test=args.test, classes=args.classes,
                                  seed=args.seed)
    print(f"wrote {', '.join(map(str, paths))}: {args.classes} classes that differ only in the timing between "
          f"two channel groups; train on it with --dataset shd --data-dir {args.folder}")
    return 0


def bench_delays(args) -> int:
    from spikelab.bench import format_delays_table, run_delays_benchmark

    result = run_delays_benchmark(rounds=args.rounds, threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else format_delays_table(result))
    return 0


def inspect_run(args) -> int:
    from spikelab.delays import delay_summary
    from spikelab.plots import plot_delay_histogram
    from spikelab.training import load

    model = load(args.run_dir)
    info = model.run_info
    dt = ((info.get("config") or {}).get("run") or {}).get("binning", {}).get("dt")
    layers = delay_summary(model, dt=dt)
    if not layers:
        raise ConfigError(f"{args.run_dir}: its {info.get('model_name') or 'custom'} model has no synaptic delays (no "
                          "DelayedLinear layer with max_delay > 0; a --no-delays run, say), so there is nothing to "
                          "inspect. Delays are learned by `spikelab train --model shd-delays`")
    unit = f" (dt {dt:g} ms)" if dt else " (no dt in the run's configuration: steps only)"
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


def _export_nest(args) -> int:
    from tqdm import tqdm

    from spikelab.export import compare_on_nest, load_run, load_test_spikes

    run = load_run(args.run_dir)
    x, y = load_test_spikes(run, args.data_dir, args.limit)
    print(f"{args.run_dir}: {x.shape[1]} test samples of {run.config['dataset']}, T = {x.shape[0]} steps of "
          f"{run.dt:g} ms, on PyNN + NEST (float64, on-grid spikes)")
    with tqdm(total=x.shape[1], desc="NEST", unit="sample", disable=args.no_progress) as bar:
        result = compare_on_nest(run, x, y, progress=bar.update)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"accuracy: spikelab {result['accuracy_spikelab']:.4f}, NEST {result['accuracy_nest']:.4f}; same "
          f"prediction on {result['same_predictions']:.2%} of samples ({result['nest_seconds']:.1f} s on NEST)")
    for name, counts in result["populations"].items():
        if "spikes" in counts:
            print(f"  {name}: {counts['spikes']} spikes in spikelab, {counts['mismatches']} differ on NEST")
        else:
            print(f"  {name}: membranes differ by at most {counts['max_membrane_difference']:.3g}")
    return 0


def _export_spinnaker(args) -> int:
    from spikelab.backends import spinnaker
    from spikelab.export import load_run, load_test_spikes

    run = load_run(args.run_dir)
    network = run.network()
    summed = run.config.get("spinnaker", {}).get("max_expected_summed_weight")   # a run fine-tuned on its grid
    if args.summed_weight == "worst":
        summed = None
    elif args.summed_weight == "observed":   # the grid the training data needs, finer than the worst case
        x_train, _ = load_test_spikes(run, args.data_dir, args.limit, train=True)
        summed = spinnaker.observed_summed_weights(network, x_train.flatten(2).numpy())
    report = spinnaker.check(network, neurons_per_core=args.neurons_per_core, max_expected_summed_weight=summed)
    result = {"check": report.to_dict()}
    if not args.json:
        print(report.format())
    if args.finetune:
        result["finetuned"] = _finetune_on_grid(run, network, report, args)
    if args.fixed_point:
        result["fixed_point"] = _fixed_point_accuracy(run, network, report, args)
    if args.virtual_board:
        started = time.perf_counter()
        mapped = spinnaker.map_on_virtual_board(network, neurons_per_core=args.neurons_per_core,
                                                max_expected_summed_weight=report.max_expected_summed_weight)
        mapped["wall_seconds"] = time.perf_counter() - started
        result["virtual_board"] = mapped
        if not args.json:
            _print_virtual_board(mapped, report)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if report.ok else 1


def _finetune_on_grid(run, network, report, args) -> dict:
    """Fine-tune a copy of the run with every weight on SpiNNaker's grid; a new run folder, baked weights."""
    from torch.utils.data import Subset

    from spikelab.backends.fixed_point import weight_grids
    from spikelab.datasets import stratified_split
    from spikelab.spec import spec_of
    from spikelab.training import Trainer, load, load_checkpoint, save_checkpoint
    from spikelab.training.weight_grid import bake, put_on_grid

    if args.out is None:
        raise ConfigError("--finetune needs --out DIR: the fine-tuned run is written to a new folder")
    out = Path(args.out)
    if (out / "last.pt").exists():
        raise ConfigError(f"{out} already holds a run; choose another --out")
    grids = weight_grids(network, run.model, report.shifts)
    model = put_on_grid(load(args.run_dir).train(), grids)
    config = dict(run.config)
    if args.data_dir is not None:
        config["data_dir"] = str(Path(args.data_dir).resolve())
    config["spinnaker"] = {"max_expected_summed_weight": report.max_expected_summed_weight,
                           "finetuned_from": str(args.run_dir)}
    train_full = _load_split(config, train=True)
    seed = config["trainer"]["seed"]
    train_idx, val_idx = stratified_split(train_full.targets, config["val_fraction"], seed)
    trainer = Trainer(model, loss=run.loss, lr=args.finetune_lr, epochs=args.finetune, seed=seed,
                      batch_size=config["trainer"]["batch_size"], out_dir=out, model_name=run.model.run_info["model_name"],
                      config={"run": config}, progress=not args.no_progress)
    print(f"\nfine-tuning on the weight grid for {args.finetune} epochs (lr {args.finetune_lr:g}) -> {out}")
    trainer.fit(Subset(train_full, train_idx), Subset(train_full, val_idx))
    for name in ("last.pt", "best.pt"):    # store plain weights, each exactly on its grid point
        checkpoint = load_checkpoint(out / name)
        model.load_state_dict(checkpoint["model_state"])
        bake(model)
        checkpoint.update(model_state=model.state_dict(), model_spec=spec_of(model))
        save_checkpoint(out / name, checkpoint)
        put_on_grid(model, grids)
    best = max(trainer.history, key=lambda row: row["val_accuracy"])
    print(f"best validation accuracy on the grid {best['val_accuracy']:.4f} (epoch {best['epoch']}); "
          f"check it with: spikelab export spinnaker {out} --fixed-point")
    return {"out": str(out), "history": trainer.history}


def _fixed_point_accuracy(run, network, report, args) -> dict:
    from spikelab.backends.fixed_point import evaluate_fixed_point
    from spikelab.export import load_test_spikes, predictions

    x, y = load_test_spikes(run, args.data_dir, args.limit)
    result = evaluate_fixed_point(network, x.flatten(2).numpy(), y.numpy(), shifts=report.shifts,
                                  predict=lambda output: predictions(run, output))
    if not args.json:
        lif_spikes = {name: m for name, m in result["mismatch"].items() if "rate" in m}
        print(f"\naccuracy on {result['samples']} test samples: float64 {result['float_accuracy']:.4f}, 16-bit "
              f"weights {result['quantized_weights_accuracy']:.4f}, SpiNNaker fixed point (s16.15) "
              f"{result['fixed_accuracy']:.4f}; same class as float64 on {result['agreement']:.2%}")
        print("spikes that differ from float64: " + ", ".join(
            f"{name} {m['mismatched']} of {m['reference_spikes']} ({m['rate']:.1%})" for name, m in lif_spikes.items()))
    return result


def _print_virtual_board(mapped: dict, report) -> None:
    print(f"\nvirtual SpiNN-5 board (sPyNNaker, {mapped['machine']['chips']} chips): mapped in "
          f"{mapped['wall_seconds']:.1f} s; {mapped['cores']} cores used (the check predicted "
          f"{report.predicted_cores}), plus {mapped['system_cores']} of sPyNNaker's own")
    for name, cores in mapped["cores_by_population"].items():
        shifts = mapped["ring_buffer_shifts"].get(name)
        print(f"  {name:10s} {cores:3d} cores" + (f", ring-buffer shifts exc/inh {shifts[0]}/{shifts[1]}" if shifts else ""))
    for source, cores in mapped["delay_extension_cores"].items():
        print(f"  delay extension of {source}: {cores} cores")
    print("placements (x, y, core: vertex): " + "; ".join(
        f"{x},{y},{p}: {label}" for label, x, y, p, _ in mapped["placements"] if not label.startswith("SYSTEM:")))


def _export_nir(args) -> int:
    from spikelab.backends.nir import write_nir
    from spikelab.export import load_run

    run = load_run(args.run_dir)
    graph = write_nir(run.model, args.out, run.dt, beta_convention=args.beta_convention,
                      input_shape=run.input_shape)
    print(f"wrote {args.out}: {len(graph.nodes)} NIR nodes, dt {run.dt:g} ms, tau from beta by the "
          f"{args.beta_convention} convention (reset mode and dt are in the graph's metadata)")
    return 0


def _import_nir(args) -> int:
    from spikelab.backends.nir import from_nir, read_nir, time_step
    from spikelab.datasets import DATASET_DEFAULTS
    from spikelab.spec import spec_of
    from spikelab.training import save_checkpoint

    out = Path(args.out)
    if (out / "best.pt").exists():
        raise ConfigError(f"{out} already holds a run; choose another folder")
    graph = read_nir(args.file)
    model = from_nir(graph, dt=args.graph_dt, reset=args.reset, beta_convention=args.beta_convention)
    # beta per step came from the producer's own dt; the run's dt is the bin width the model is fed with
    dt = args.dt or (DATASET_DEFAULTS[args.dataset]["dt"] if args.dataset else time_step(graph, args.graph_dt))
    run = {"binning": {"dt": dt, "binarize": True}, "imported_from": str(args.file)}
    inputs = [node for node in graph.nodes.values() if type(node).__name__ == "Input"]
    if inputs:
        run["input_shape"] = [int(n) for n in inputs[0].input_type["input"]]
    if args.dataset is not None:   # lets `spikelab eval` and `spikelab export nest` read its test split
        run.update(dataset=args.dataset, data_dir=args.data_dir or "data", skip_bad=False, trainer={"loss": args.loss},
                   binning={**DATASET_DEFAULTS[args.dataset], "dt": dt, "binarize": True})
    checkpoint = {"epoch": 0, "model_name": "nir", "model_spec": spec_of(model), "model_state": model.state_dict(),
                  "config": {"run": run}, "metrics": []}
    for name in ("best.pt", "last.pt"):
        save_checkpoint(out / name, checkpoint)
    print(f"imported {args.file} as a spikelab model (dt {dt:g} ms) into {out}:")
    print(model)
    return 0


def _export_pynn_script(args) -> int:
    from spikelab.backends.pynn import write_script
    from spikelab.backends.spinnaker import check
    from spikelab.export import load_run, load_test_spikes

    run = load_run(args.run_dir)
    inputs = None
    if args.samples:
        x, _ = load_test_spikes(run, args.data_dir, args.samples)
        inputs = x.flatten(2).transpose(0, 1).numpy()
    network = run.network()
    summed = run.config.get("spinnaker", {}).get("max_expected_summed_weight")   # the grid it was fine-tuned on
    if summed is None:
        summed = check(network).max_expected_summed_weight
    paths = write_script(network, args.out, decode=run.loss, inputs=inputs, max_expected_summed_weight=summed)
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"run it on SpiNNaker: python {paths[0]} --simulator spiNNaker"
          + ("" if inputs is not None else " --inputs YOUR_SPIKES.npz") + "  (or --simulator nest)")
    return 0


def _add_export_parser(commands) -> None:
    export = commands.add_parser("export", help="run or describe a trained network on other simulators and hardware",
                                 description="Export a trained run (a folder from `spikelab train`).", epilog=EPILOG)
    targets = export.add_subparsers(dest="target", required=True, metavar="TARGET")

    nest = targets.add_parser("nest", help="run the test split on PyNN + NEST and compare with spikelab, spike for spike",
                              description="Accuracy on NEST next to spikelab's, and the count of spikes that differ.")
    nest.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (its best.pt) or a checkpoint file")
    _add_export_data_options(nest)
    nest.add_argument("--limit", type=int, default=None, help="only the first N test samples (default: all)")
    nest.add_argument("--json", action="store_true", help="print the result as JSON")
    nest.add_argument("--no-progress", action="store_true", help="no progress bar")
    nest.set_defaults(run=_export_nest)

    spinnaker = targets.add_parser(
        "spinnaker", help="what the network needs on SpiNNaker: cores, weight grid, delays, violated limits",
        description="Check a trained run against SpiNNaker's limits (no board needed); optionally map it on a "
                    "virtual SpiNN-5 board with sPyNNaker and measure accuracy under SpiNNaker's fixed-point arithmetic. "
                    "Exit status 1 when a limit is violated.")
    spinnaker.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (its best.pt) or a checkpoint file")
    spinnaker.add_argument("--check", action="store_true", help="the constraint report (always printed; the default)")
    spinnaker.add_argument("--virtual-board", action="store_true",
                           help="also map it with sPyNNaker on a virtual SpiNN-5 board: placements and cores used")
    spinnaker.add_argument("--fixed-point", action="store_true",
                           help="also run the test split in SpiNNaker's arithmetic (16-bit weights, s16.15 state) "
                                "and report its accuracy next to float64")
    spinnaker.add_argument("--neurons-per-core", type=int, default=256, help="neurons per core, at most 256 (default 256)")
    spinnaker.add_argument("--summed-weight", choices=("worst", "observed"), default=None,
                           help="ring-buffer range: worst case (never saturates) or the largest input per step seen "
                                "on the training data (finer weight grid); default: the grid a fine-tuned run was "
                                "tuned on, else worst")
    spinnaker.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                           help="fine-tune a copy with every weight on SpiNNaker's grid (quantisation-aware), into --out")
    spinnaker.add_argument("--finetune-lr", type=float, default=1e-4, help="learning rate of --finetune (default 1e-4)")
    spinnaker.add_argument("--out", default=None, help="run folder for --finetune")
    spinnaker.add_argument("--no-progress", action="store_true", help="no progress bar while fine-tuning")
    spinnaker.add_argument("--limit", type=int, default=None,
                           help="samples used for --fixed-point and --summed-weight observed (default: all)")
    _add_export_data_options(spinnaker)
    spinnaker.add_argument("--json", action="store_true", help="print the result as JSON")
    spinnaker.set_defaults(run=_export_spinnaker)

    nir_export = targets.add_parser("nir", help="a NIR graph any NIR reader can load (snnTorch, Norse, Lava, SpiNNaker2...)",
                                    description="Write the trained network as a NIR file (HDF5).")
    nir_export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (its best.pt) or a checkpoint file")
    nir_export.add_argument("out", help="the .nir file to write")
    nir_export.add_argument("--beta-convention", choices=("exact", "euler"), default="exact",
                            help="tau from beta: exact, beta = exp(-dt/tau) (NEST, SpiNNaker2 EXACT; default), or euler, "
                                 "beta = 1 - dt/tau (snnTorch's reader)")
    nir_export.set_defaults(run=_export_nir)

    script = targets.add_parser("pynn-script", help="a standalone PyNN script and weights file (for SpiNNaker)",
                                description="Write run_pynn.py + network.npz (+ inputs.npz): needs only PyNN and numpy.")
    script.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (its best.pt) or a checkpoint file")
    script.add_argument("out", help="folder to write into")
    _add_export_data_options(script)
    script.add_argument("--samples", type=int, default=10,
                        help="test samples to write as inputs.npz (default 10; 0: none)")
    script.set_defaults(run=_export_pynn_script)


def _add_import_parser(commands) -> None:
    importing = commands.add_parser("import", help="a network from another framework as a spikelab run",
                                    description="Read a NIR graph (e.g. from snnTorch's export_to_nir) into a run "
                                                "folder that spikelab can evaluate and export.", epilog=EPILOG)
    formats = importing.add_subparsers(dest="format", required=True, metavar="FORMAT")
    nir_import = formats.add_parser("nir", help="a NIR file (a chain of Affine/Conv/Flatten/AvgPool/LIF/LI nodes)",
                                    description="Import a NIR file into a run folder (best.pt).")
    nir_import.add_argument("file", help="the .nir file")
    nir_import.add_argument("out", help="run folder to write")
    nir_import.add_argument("--graph-dt", type=float, default=None,
                            help="the time step (ms) the producer wrote tau for (default: the file's spikelab metadata, "
                                 "else 0.1 ms as snnTorch writes)")
    nir_import.add_argument("--dt", type=float, default=None,
                            help="the time step (ms) of one input bin when the model runs: what exporters use (default: "
                                 "--dataset's bin width, else the graph's time step)")
    nir_import.add_argument("--reset", choices=("zero", "subtract"), default=None,
                            help="reset of the LIF layers (default: the file's metadata, else zero; NIR has no reset field)")
    nir_import.add_argument("--beta-convention", choices=("exact", "euler"), default=None,
                            help="beta from tau (default: the file's metadata, else euler as snnTorch writes)")
    nir_import.add_argument("--dataset", choices=("demo", "nmnist", "shd"), default=None,
                            help="the data it runs on, binned at its dt, so that eval and export can use the test split")
    nir_import.add_argument("--data-dir", default=None, help="folder with that dataset's files")
    nir_import.add_argument("--loss", choices=("mean_membrane", "per_step", "spike_count", "summed_softmax"),
                            default="mean_membrane", help="how its output decodes to a class (default mean_membrane)")
    nir_import.set_defaults(run=_import_nir)


def _add_export_data_options(parser) -> None:
    parser.add_argument("--data-dir", default=None, help="where the run's dataset is, if not where it was trained")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikelab", description="Spiking neural networks: train, evaluate, benchmark.",
                                     epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(commands).set_defaults(run=train)

    evaluation = commands.add_parser("eval", help="evaluate a trained run on its test split", epilog=EPILOG,
                                     description="Print test accuracy and the confusion matrix of a trained model.")
    evaluation.add_argument("checkpoint", help="a run folder (uses its best.pt) or a checkpoint file")
    _add_data_options(evaluation, for_eval=True)
    evaluation.add_argument("--batch-size", type=int, default=128, help="samples per batch (default 128)")
    evaluation.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluation.set_defaults(run=evaluate)

    models = commands.add_parser("models", help="list the named architectures", description="List named architectures.")
    models.set_defaults(run=list_models)

    benchmark = commands.add_parser("bench", help="speed and memory benchmarks against snnTorch and SpikingJelly",
                                    description="Interleaved side-by-side benchmark in one process; medians and ratios.")
    benchmark.add_argument("target", choices=("lif", "delays"),
                           help="lif: 700-256-256-20 LIF net, batch 32, T=100, forward+backward time; then BPTT vs "
                                "SLTT peak memory at T=100 and 500. delays: DelayedLinear vs the DCLS package's Dcls1d "
                                "in the SHD setting (140->256 and 256->256, 25 taps), time and peak memory")
    benchmark.add_argument("--json", action="store_true", help="print the full result as JSON")
    benchmark.add_argument("--rounds", type=int, default=30, help="timed iterations per variant (default 30)")
    benchmark.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    benchmark.add_argument("--reset", choices=("zero", "subtract"), default="zero",
                           help="reset of every variant (default zero: the same equations in all three frameworks; "
                                "subtract leaves SpikingJelly out)")
    benchmark.set_defaults(run=bench)

    data = commands.add_parser("data", help="write data sets spikelab generates",
                               description="Write generated data sets in the real on-disk formats.")
    data.add_argument("kind", choices=("synth-shd",),
                      help="synth-shd: SHD-layout .h5 files whose classes differ only in spike timing (needs delays)")
    data.add_argument("folder", help="where to write shd_train.h5 and shd_test.h5")
    data.add_argument("--train", type=int, default=2000, help="training samples (default 2000)")
    data.add_argument("--test", type=int, default=500, help="test samples (default 500)")
    data.add_argument("--classes", type=int, default=20, help="classes, 2 to 20; class c is a gap of c x 10 ms (default 20)")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.set_defaults(run=make_data)

    inspect = commands.add_parser("inspect", help="the learned synaptic delays of a trained run", epilog=EPILOG,
                                  description="Print a histogram summary of every delay layer's integer delays and "
                                              "save one histogram per layer as a PNG.")
    inspect.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (uses its best.pt) or a checkpoint file")
    inspect.add_argument("--out", metavar="FILE.png", help="where to save the histograms (default RUN_DIR/delays.png)")
    inspect.set_defaults(run=inspect_run)
    _add_export_parser(commands)
    _add_import_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SpikelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with the same command and --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
