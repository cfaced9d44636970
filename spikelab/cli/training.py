"""``spikelab train``, ``eval``, ``models`` and ``data``: training runs and the data they read."""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from ..errors import ConfigError
from . import liquid
from .common import EPILOG


def add_commands(commands) -> None:
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


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,128, got {text!r}") from None


def _add_data_options(parser, for_eval=False):
    from spikelab.datasets import DATASET_DEFAULTS
    from spikelab.models import MODEL_DEFAULTS

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
    def per_dataset(key):
        return "default per dataset: " + ", ".join(f"{name} {_show(values[key])}" for name, values
                                                   in DATASET_DEFAULTS.items() if key in values)

    group.add_argument("--dt", type=float, help=f"time-bin width in ms ({per_dataset('dt')})")
    group.add_argument("--time-bins", type=int,
                       help="T bins of duration/T ms each instead of --dt; 1 collapses each recording into one frame")
    group.add_argument("--duration", type=float,
                       help=f"ms of each recording to use, T = duration / dt ({per_dataset('duration')})")
    group.add_argument("--downsample", type=int,
                       help=f"N-MNIST/demo spatial pooling factor, 34x34 -> ceil(34/k) ({per_dataset('downsample')})")
    group.add_argument("--channel-group", type=int,
                       help="SHD: sum groups of this many adjacent channels, e.g. 5: 700 -> 140 "
                            f"({per_dataset('channel_group')}; shd-delays {MODEL_DEFAULTS['shd-delays']['channel_group']})")
    group.add_argument("--counts", action="store_true",
                       help="feed event counts per bin instead of binary spikes (not exportable to hardware)")
    group.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training set held out, stratified, to choose the best epoch (default 0.1)")


def _add_train_parser(commands):
    from spikelab.functional.lif import REFRACTORY_STEPS, RESETS
    from spikelab.functional.surrogate import SURROGATES
    from spikelab.models import DATASET_MODELS, MODELS, NEURONS, POOLS
    from spikelab.neurons.lif import LEARN_BETA
    from spikelab.training import LOSSES, MODES
    from spikelab.training.trainer import OPTIMIZERS, PRECISIONS, SCHEDULERS

    parser = commands.add_parser(
        "train", help="train a spiking network", epilog=EPILOG,
        description="Train a spiking network; checkpoints, metrics and plots go to --out. Without --model, each "
                    "dataset trains its default model with the settings measured best for it, where the command line "
                    "sets none (spikelab.models.DATASET_MODELS; binning: spikelab.datasets.DATASET_DEFAULTS): "
                    + "; ".join(dataset_defaults()) + ".")
    _add_data_options(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=sorted([*MODELS, liquid.MODEL]),
                       help="architecture (default per dataset: " + ", ".join(
                           f"{dataset} {tuned['model']}" for dataset, tuned in DATASET_MODELS.items())
                       + "; see `spikelab models`); nalsm: a liquid state machine trained by NALSM's three-phase "
                         "protocol (options under 'liquid')")
    model.add_argument("--hidden", type=_ints, help=f"hidden layer sizes, comma-separated ({_default_help('hidden')})")
    model.add_argument("--channels", type=_ints, help=f"conv model: channels per block ({_default_help('channels')})")
    model.add_argument("--pool", choices=POOLS,
                       help=f"conv model: pooling after each block, max or avg (both export to PyNN / SpiNNaker) "
                            f"({_default_help('pool')})")
    model.add_argument("--dropout", type=float,
                       help=f"dropout after each hidden layer, one mask per sequence ({_default_help('dropout')})")
    model.add_argument("--neuron", choices=NEURONS, default="lif",
                       help="spiking neuron: lif (surrogate gradient, default) or the UltraLIF family (smooth "
                            "max-plus neurons, no surrogate): ultralif, ultraplif (learnable tau), ultradlif "
                            "(neighbour coupling), ultradplif")
    model.add_argument("--beta", type=float,
                       help=f"membrane decay per step, in [0, 1); Ultra neurons: their tau ({_default_help('beta')})")
    model.add_argument("--learn-beta", choices=["no" if mode is False else mode for mode in LEARN_BETA], default="no",
                       help="learn the decay: one per layer or one per neuron (default no)")
    model.add_argument("--threshold", type=float, default=1.0, help="firing threshold (default 1.0)")
    model.add_argument("--reset", choices=RESETS, default="zero",
                       help="after a spike: zero (default; runs on SpiNNaker), subtract the threshold, or none")
    model.add_argument("--refractory-steps", type=int, choices=REFRACTORY_STEPS, default=0,
                       help="1: the step after a spike ignores its input (default 0)")
    model.add_argument("--surrogate", choices=SURROGATES, default="atan",
                       help="surrogate gradient of the spike (default atan)")
    model.add_argument("--slope", type=float,
                       help="surrogate slope (default per surrogate: atan 2, fast_sigmoid 25, triangle 1; shd-delays 5)")
    model.add_argument("--eps", type=float, default=1.0,
                       help="Ultra neurons: initial temperature eps of the max-plus relaxation, in [0.1, 20] (default 1)")
    model.add_argument("--fixed-eps", action="store_true", help="Ultra neurons: keep eps fixed instead of learning it")
    model.add_argument("--readout-beta", type=float,
                       help="leak of the non-spiking readout; 0 makes the output the last layer averaged over T "
                            f"({_default_help('readout_beta')})")
    delays = parser.add_argument_group("delays (model shd-delays)")
    delays.add_argument("--max-delay", type=int, default=24, help="largest synaptic delay in time steps (default 24)")
    exclusive = parser.add_mutually_exclusive_group()  # (argparse deprecates nesting it in a group)
    exclusive.add_argument("--fixed-delays", action="store_true", help="random delays, not learned (ablation)")
    exclusive.add_argument("--no-delays", action="store_true", help="no delays at all (ablation)")
    delays.add_argument("--position-lr", type=float, default=0.1,
                        help="learning rate of the delays, their own parameter group (default 0.1, as published)")
    train = parser.add_argument_group("training")
    train.add_argument("--mode", choices=MODES, default="bptt",
                       help="bptt (default); sltt: per-step backprop, memory constant in T; sltt-k: at K random steps; "
                            "local: the model's local learning rules (STDP, homeostasis) plus gradient on the rest, "
                            "for models that attach rules")
    train.add_argument("--sltt-k", type=int, default=2, help="steps backpropagated per batch in sltt-k mode (default 2)")
    train.add_argument("--loss", choices=sorted(LOSSES),
                       help="mean_membrane: CE on mean readout membrane; spike_count; summed_softmax; per_step "
                            f"({_default_help('loss')})")
    train.add_argument("--epochs", type=int, help=f"epochs ({_default_help('epochs')})")
    train.add_argument("--batch-size", type=int, help=f"samples per batch ({_default_help('batch_size')})")
    train.add_argument("--lr", type=float, help=f"learning rate ({_default_help('lr')})")
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="optimiser (default adam)")
    train.add_argument("--scheduler", choices=SCHEDULERS,
                       help="learning-rate schedule over the epochs; onecycle: up to 5x --lr and down for the "
                            "weights, cosine for the delay positions, as published for shd-delays "
                            f"({_default_help('scheduler')})")
    train.add_argument("--weight-decay", type=float, help=f"L2 weight decay ({_default_help('weight_decay')})")
    train.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm (default: off)")
    train.add_argument("--train-noise", choices=("pcm", "rram"), default=None,
                       help="noise-aware training: the crossbar device's programming noise in every forward pass "
                            "(bptt mode; gradients unchanged), so the net keeps its accuracy when programmed")
    train.add_argument("--train-noise-scale", type=float, default=1.0,
                       help="multiplies --train-noise's noise (default 1)")
    train.add_argument("--sparsity", type=float, default=0.0,
                       help="add SPARSITY x mean spike rate to the loss (bptt mode; default 0)")
    train.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                       help="fp32 (default); bf16 / fp16: matrix products under torch.autocast, the LIF membrane still "
                            "in float32 (fp16 adds loss scaling); for GPUs")
    liquid.add_train_options(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation, shuffling, dropout (default 0)")
    run.add_argument("--device", default="cpu",
                     help="cpu (default) or cuda; under torchrun --nproc-per-node N, process r takes cuda:r")
    run.add_argument("--out", default=None,
                     help="run folder (default runs/DATASET-MODEL-seedSEED; a new numbered folder if it exists)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out (or the default folder) from its last checkpoint")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _default_help(key: str) -> str:
    """``default G; MODEL M; DATASET's MODEL D`` for a training option, read from the tables of spikelab.models."""
    from spikelab.models import DATASET_MODELS, GENERIC_DEFAULTS, MODEL_DEFAULTS

    generic = GENERIC_DEFAULTS[key]
    parts = [f"default {_show(generic)}"]
    parts += [f"{model} {_show(values[key])}" for model, values in MODEL_DEFAULTS.items()
              if values.get(key, generic) != generic]
    parts += [f"{dataset}'s {tuned['model']} {_show(tuned[key])}" for dataset, tuned in DATASET_MODELS.items()
              if tuned.get(key, generic) != generic]
    return "; ".join(parts)


def dataset_defaults() -> list[str]:
    """One line per dataset: the model ``spikelab train --dataset NAME`` builds without --model, the options
    the dataset sets for it, and the dataset's binning (from DATASET_MODELS and DATASET_DEFAULTS)."""
    from spikelab.datasets import DATASET_DEFAULTS
    from spikelab.models import DATASET_MODELS

    lines = []
    for dataset, tuned in DATASET_MODELS.items():
        options = "".join(f", {key.replace('_', ' ')} {_show(value)}" for key, value in tuned.items() if key != "model")
        binning = ", ".join(f"{key.replace('_', ' ')} {_show(value)}{' ms' if key in ('dt', 'duration') else ''}"
                            for key, value in DATASET_DEFAULTS[dataset].items())
        lines.append(f"{dataset}: {tuned['model']}{options} ({binning})")
    return lines


def _fill_defaults(args) -> None:
    """The model and options left unset take their default for the dataset and model (models.training_defaults)."""
    from spikelab.models import GENERIC_DEFAULTS, training_defaults

    defaults = training_defaults(args.dataset, args.model)
    args.model = defaults["model"]
    for key in GENERIC_DEFAULTS:
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if args.channel_group is None and args.dataset == "shd":
        args.channel_group = defaults.get("channel_group")
    if args.model != "shd-delays" and (args.fixed_delays or args.no_delays):
        raise ConfigError("--fixed-delays and --no-delays apply to --model shd-delays only")
    if args.train_noise is not None and args.mode != "bptt":
        raise ConfigError(f"--train-noise draws one chip's noise per forward pass of the whole sequence: use --mode "
                          f"bptt (got {args.mode})")


def _binning(args):
    from spikelab.run import Binning

    binning = Binning.for_dataset(args.dataset, dt=args.dt, duration=args.duration, downsample=args.downsample,
                                  channel_group=args.channel_group, binarize=not args.counts)
    if args.time_bins is not None:
        if args.dt is not None:
            raise ConfigError("give --dt or --time-bins, not both (--time-bins N sets dt = duration / N)")
        if args.time_bins < 1:
            raise ConfigError(f"--time-bins must be at least 1, got {args.time_bins}")
        binning = dataclasses.replace(binning, dt=binning.duration / args.time_bins)
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


def run_config(args):
    """Everything that defines a run (:class:`spikelab.run.RunConfig`, stored in every checkpoint), from parsed
    ``spikelab train`` arguments; what they leave unset takes its default (:func:`spikelab.models.training_defaults`)."""
    from spikelab.run import RunConfig

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
        model_options.update(channels=list(args.channels), pool=args.pool)
        del model_options["hidden"]
    if args.model == "shd-delays":
        model_options.update(max_delay=args.max_delay,
                             delays="fixed" if args.fixed_delays else "none" if args.no_delays else "learned")
    return RunConfig(
        dataset=args.dataset, data_dir=str(Path(args.data_dir).resolve()), binning=_binning(args),
        skip_bad=args.skip_bad, val_fraction=args.val_fraction, position_lr=args.position_lr,
        model=args.model, model_options=model_options,
        train_noise=None if args.train_noise is None else {"preset": args.train_noise,
                                                           "scale": args.train_noise_scale},
        trainer=dict(loss=args.loss, mode=args.mode, sltt_k=args.sltt_k if args.mode == "sltt-k" else None,
                     optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                     scheduler=args.scheduler, epochs=args.epochs, batch_size=args.batch_size,
                     seed=args.seed, grad_clip=args.grad_clip, sparsity=args.sparsity, precision=args.precision))


def train(args) -> int:
    import torch
    from torch.utils.data import Subset

    from spikelab.delays import DelayedLinear, delay_param_groups
    from spikelab.models import build_model
    from spikelab.run import RunConfig
    from spikelab.training import Trainer, load_checkpoint
    from spikelab.training.distributed import join_process_group, main_process_first

    if args.model == liquid.MODEL:
        return liquid.train(args)
    started = time.perf_counter()
    _fill_defaults(args)
    out = _run_folder(args)
    resume = args.resume and (out / "last.pt").exists()
    if args.resume and not resume:
        print(f"no checkpoint in {out} yet: starting from the beginning")
    if not args.resume and (out / "last.pt").exists():
        raise ConfigError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    if resume:
        config = RunConfig.from_dict(load_checkpoint(out / "last.pt")["config"]["run"])
        print(f"resuming {out} from its last checkpoint (with the options it was started with)")
    else:
        config = run_config(args)
    trainer_options = config.trainer
    torch.manual_seed(config.seed)
    with main_process_first(join_process_group(args.device)):  # under torchrun: rank 0 builds the caches
        train_full = config.load_split(train=True)
        test_set = config.load_split(train=False)
    if config.input_shape is None:   # what exporters need for conv models
        config.input_shape = tuple(train_full.input_shape)
    train_idx, val_idx = config.split_indices(train_full.targets)
    out.mkdir(parents=True, exist_ok=True)
    (out / "val_indices.json").write_text(json.dumps({"val": list(map(int, val_idx))}))
    model = build_model(config.model, train_full.input_shape, train_full.num_classes, dt=config.dt,
                        **config.model_options)
    groups = None
    if any(isinstance(m, DelayedLinear) for m in model.modules()):  # delays get their own learning rate
        groups = delay_param_groups(model, lr=trainer_options["lr"], position_lr=config.position_lr,
                                    weight_decay=trainer_options["weight_decay"])
    if config.train_noise:
        _add_training_noise(model, config.train_noise)
    trainer = Trainer(model, device=args.device, out_dir=out, model_name=config.model, progress=not args.no_progress,
                      config={"run": config.to_dict()}, param_groups=groups, **trainer_options)
    print(f"training {config.model} on {config.dataset}: {len(train_idx)} train / {len(val_idx)} validation / "
          f"{len(test_set)} test samples, input {tuple(train_full.input_shape)} x T={train_full[0][0].shape[0]} "
          f"(dt {config.dt:g} ms), {sum(p.numel() for p in model.parameters())} parameters, mode "
          f"{trainer_options['mode']} -> {out}")
    trainer.fit(Subset(train_full, train_idx), Subset(train_full, val_idx), resume=resume)
    if not trainer.is_main:  # under torchrun, rank 0 reports and tests
        return 0
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


def _add_training_noise(model, options: dict) -> None:
    from spikelab.backends import crossbar

    crossbar.add_training_noise(model, crossbar.preset(options["preset"]), scale=options["scale"])
    print(f"noise-aware training: {options['preset']} programming noise x {options['scale']:g} in every forward pass")


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
    import torch

    from spikelab.run import TrainedRun
    from spikelab.training import Trainer

    if liquid.is_liquid_run(args.checkpoint):
        return liquid.evaluate(args)
    run = TrainedRun.load(args.checkpoint, dtype=torch.float32)
    config = run.config
    if args.dataset is not None and args.dataset != config.dataset:
        raise ConfigError(f"this model was trained on {config.dataset!r}; evaluating it on {args.dataset!r} "
                          "would feed inputs of another shape")
    config = dataclasses.replace(config.with_data_dir(args.data_dir), skip_bad=args.skip_bad)
    test_set = config.load_split(train=False)
    trainer = Trainer(run.model, loss=config.decode, batch_size=args.batch_size, device=args.device,
                      progress=not args.no_progress)
    result = _evaluate_test(trainer, test_set)
    print(f"{run.checkpoint} (epoch {run.model.run_info['epoch']}) on {config.dataset} test split")
    _print_evaluation(result)
    return 0


def list_models(args) -> int:
    from spikelab.models import MODELS

    for name, builder in MODELS.items():
        print(f"{name:11s} {builder.__doc__.strip().splitlines()[0]}")
    print(f"{liquid.MODEL:11s} {liquid.DESCRIPTION}")
    print("\ndefault per dataset (`spikelab train --dataset NAME` without --model):")
    for line in dataset_defaults():
        print(f"  {line}")
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
