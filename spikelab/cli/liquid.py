"""``spikelab train --model nalsm`` and the ``eval`` / ``inspect`` of its runs: NALSM's three-phase protocol
(``reference/algorithms.md`` §3.6) from the command line.

A liquid run folder holds what every run folder holds (``best.pt`` and ``last.pt``, ``metrics.jsonl``,
``val_indices.json``, ``test.json``), so ``spikelab eval RUN_DIR`` and ``spikelab inspect RUN_DIR`` read it like any
other. Its checkpoint is a :class:`spikelab.liquid.protocol.NALSMResult`'s (the liquid with the initialised weights
``W_INI``, the readout, the protocol's config) plus ``config["run"]``, a :class:`spikelab.run.RunConfig` with
``model="nalsm"``.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..errors import CheckpointError, ConfigError

MODEL = "nalsm"
DESCRIPTION = ("NALSM liquid state machine: 3-D LIF liquid with astrocyte-modulated STDP and a linear readout of its "
               "spike counts (three-phase protocol, not backprop)")
#: NALSM's time step: the liquid's equations are per ms.
LIQUID_DT = 1.0
#: ms of each recording used per sample (feature extraction) for datasets without their own choice
SAMPLE_MS = {"demo": 250.0, "nmnist": 250.0}
#: samples shown for branching-factor and firing-rate summaries (NALSM records 20)
SUMMARY_SAMPLES = 20


def add_train_options(parser) -> None:
    """The ``--model nalsm`` options of ``spikelab train``."""
    from spikelab.liquid.protocol import READOUTS

    group = parser.add_argument_group("liquid (model nalsm: NALSM, an astrocyte-modulated STDP liquid)")
    group.add_argument("--liquid-size", type=int, default=1000,
                       help="liquid neurons on a cubic grid: 1000 (10x10x10, NALSM1000; default), 8000 (20x20x20, "
                            "NALSM8000) or any cube n^3")
    group.add_argument("--astro-weight", type=float, default=None,
                       help="w_A, the astrocyte's weight on (liquid - input) spikes; higher w_A, lower branching "
                            "factor (default: the paper's 0.015 at 1000 neurons, 0.0075 at 8000)")
    group.add_argument("--no-astrocyte", action="store_true",
                       help="ablation LSM+STDP: the depression rate stays at eta_+ (no astrocyte)")
    group.add_argument("--no-stdp", action="store_true",
                       help="ablation LSM: fixed weights (no initialisation phase, no plasticity)")
    group.add_argument("--init-samples", type=int, default=50_000,
                       help="phase 1: random training samples shown with plasticity on, weights kept (default "
                            "50000, as the paper; the training split is cycled)")
    group.add_argument("--init-ms", type=int, default=20, help="phase 1: ms of each sample shown (default 20)")
    group.add_argument("--init-window", choices=("random", "first"), default="random",
                       help="phase 1: where in each recording those ms start: random (NALSM's N-MNIST runs, start "
                            "1 .. duration - init-ms - 2; default) or first")
    group.add_argument("--readout", choices=READOUTS, default="ridge",
                       help="phase 3: ridge (closed form, penalty chosen on the validation split; default) or "
                            "adadelta (the paper's: linear layer, softmax cross-entropy, Adadelta lr 0.1, the epoch "
                            "chosen on the validation split)")
    group.add_argument("--readout-epochs", type=int, default=None,
                       help="adadelta readout: passes over the stored spike counts (default 100)")


def is_liquid_run(path) -> bool:
    """Whether ``path`` (a run folder or checkpoint) holds a liquid run (its checkpoint's ``model_name``)."""
    from spikelab.training.checkpoint import load_checkpoint

    checkpoint_path = _checkpoint_path(path)
    if checkpoint_path is None:
        return False
    try:
        return load_checkpoint(checkpoint_path).get("model_name") == MODEL
    except CheckpointError:
        return False


def _checkpoint_path(path) -> Path | None:
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        return None
    return path if path.is_file() else None


def run_config(args):
    """The :class:`spikelab.run.RunConfig` of a liquid run from ``spikelab train --model nalsm`` options."""
    from spikelab.functional.liquid import AstroSTDPParameters
    from spikelab.liquid.machine import ASTRO_W
    from spikelab.run import Binning, RunConfig

    if args.dt is not None and args.dt != LIQUID_DT:
        raise ConfigError(f"NALSM's liquid steps at 1 ms (its time constants are per ms): drop --dt {args.dt:g}")
    if args.time_bins is not None:
        raise ConfigError("--time-bins does not apply to --model nalsm (it runs at 1 ms steps): use --duration MS")
    if args.resume:
        raise ConfigError("a liquid run cannot be resumed (its phases are short): run it again without --resume")
    for name in ("liquid_size", "init_ms"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.init_samples < 0:
        raise ConfigError(f"--init-samples must be 0 or more, got {args.init_samples}")
    if args.readout_epochs is not None and args.readout_epochs < 1:
        raise ConfigError(f"--readout-epochs must be at least 1, got {args.readout_epochs}")
    if args.astro_weight is not None and args.astro_weight < 0:
        raise ConfigError(f"--astro-weight must be 0 or more (the paper scans 0.002-0.2), got {args.astro_weight}")
    if args.no_stdp and args.astro_weight is not None:
        raise ConfigError("--astro-weight has no effect with --no-stdp (the astrocyte only sets the STDP "
                          "depression rate): drop one of them")
    from spikelab.liquid import liquid_shape

    liquid_shape(args.liquid_size)          # a ConfigError for a size that is not a cube
    duration = args.duration if args.duration is not None else SAMPLE_MS.get(args.dataset)
    binning = Binning.for_dataset(args.dataset, dt=LIQUID_DT, duration=duration, downsample=args.downsample,
                                  channel_group=args.channel_group, binarize=not args.counts)
    from spikelab.liquid.protocol import RANDOM_WINDOW_MARGIN

    margin = RANDOM_WINDOW_MARGIN if args.init_window == "random" else 0
    if args.init_ms + margin > binning.duration:
        raise ConfigError(f"--init-ms {args.init_ms} is longer than the {binning.duration:g} ms used of each "
                          f"recording{f' less the {margin} ms a random window needs' if margin else ''} (--duration"
                          f"{', --init-window first' if margin else ''})")
    astro_weight = args.astro_weight
    if astro_weight is None:
        astro_weight = ASTRO_W.get(args.liquid_size, AstroSTDPParameters().astro_w)
    return RunConfig(
        dataset=args.dataset, data_dir=str(Path(args.data_dir).resolve()), binning=binning, skip_bad=args.skip_bad,
        val_fraction=args.val_fraction, model=MODEL,
        model_options=dict(liquid_size=args.liquid_size, stdp=not args.no_stdp,
                           astrocyte=not (args.no_stdp or args.no_astrocyte),
                           astro_weight=None if args.no_stdp or args.no_astrocyte else astro_weight),
        trainer=dict(loss="readout", seed=args.seed, init_samples=0 if args.no_stdp else args.init_samples,
                     init_ms=args.init_ms, init_window=args.init_window, readout=args.readout,
                     readout_epochs=args.readout_epochs))


def _describe(config) -> str:
    options = config.model_options
    if not options["stdp"]:
        rule = "LSM (fixed weights)"
    elif not options["astrocyte"]:
        rule = "LSM+STDP (no astrocyte)"
    else:
        rule = f"NALSM (w_A {options['astro_weight']:g})"
    return f"{rule}, {options['liquid_size']} liquid neurons"


def nalsm_config(config):
    """The :class:`spikelab.liquid.protocol.NALSMConfig` of a liquid run's :class:`~spikelab.run.RunConfig`."""
    from spikelab.liquid.protocol import NALSMConfig

    options, trainer = config.model_options, config.trainer
    return NALSMConfig(size=options["liquid_size"], n_input=math.prod(config.input_shape), seed=config.seed,
                       astro_w=options["astro_weight"], stdp=options["stdp"], astrocyte=options["astrocyte"],
                       init_samples=trainer["init_samples"], init_steps=trainer["init_ms"],
                       init_window=trainer.get("init_window", "first"),    # runs before the option: the first ms
                       extract_steps=round(config.binning.duration / config.dt), readout=trainer["readout"],
                       epochs=trainer["readout_epochs"] or NALSMConfig.epochs)


def train(args) -> int:
    """``spikelab train --model nalsm``: the three phases (:mod:`spikelab.liquid.protocol`), then a run folder
    that ``eval`` and ``inspect`` read."""
    import torch

    from dataclasses import asdict

    from spikelab.cli.training import _run_folder
    from spikelab.liquid.protocol import NALSMResult, fit_readout, initialise_liquid
    from spikelab.training.checkpoint import save_checkpoint

    started = time.perf_counter()
    config = run_config(args)
    out = _run_folder(args)
    if (out / "last.pt").exists():
        raise ConfigError(f"{out} already holds a run: choose another --out")
    torch.manual_seed(config.seed)
    train_full, test_set = config.load_split(train=True), config.load_split(train=False)
    config.input_shape = tuple(train_full.input_shape)
    train_idx, val_idx = config.split_indices(train_full.targets)
    nalsm = nalsm_config(config)
    lsm = nalsm.build_liquid()
    print(f"training {_describe(config)} on {config.dataset}: {len(train_idx)} train / {len(val_idx)} validation / "
          f"{len(test_set)} test samples, {lsm.n_input} inputs x {nalsm.extract_steps} ms at 1 ms, "
          f"{lsm.topology.n_synapses} synapses -> {out}")
    seconds, clock = {}, time.perf_counter()
    if nalsm.stdp and nalsm.init_samples:
        initialise_liquid(lsm, _random_batches(train_full, train_idx, nalsm.init_samples, config.seed),
                          nalsm.init_samples, nalsm.init_steps, nalsm.init_window,
                          torch.Generator().manual_seed(config.seed))
        print(f"phase 1: liquid initialised on {nalsm.init_samples} samples x {nalsm.init_steps} ms "
              f"({nalsm.init_window} windows, {time.perf_counter() - clock:.1f} s)")
    seconds["initialise"], clock = time.perf_counter() - clock, time.perf_counter()
    features = {"train": _features(lsm, nalsm, train_full, train_idx),
                "val": _features(lsm, nalsm, train_full, val_idx),
                "test": _features(lsm, nalsm, test_set, range(len(test_set)))}
    seconds["extract"] = time.perf_counter() - clock
    extracted = sum(len(labels) for _, labels in features.values())
    print(f"phase 2: spike counts of {extracted} samples ({seconds['extract']:.1f} s, "
          f"{extracted / seconds['extract']:.1f} samples/s)")
    clock = time.perf_counter()
    readout, history = fit_readout(features["train"], features["val"], train_full.num_classes, nalsm)
    seconds["readout"] = time.perf_counter() - clock
    rows = _history_rows(history)
    choice = rows[history["best_epoch"]]
    result = _evaluate(readout, *features["test"], train_full.num_classes)
    result.update(_activity(lsm, _summary_spikes(lsm, nalsm, test_set, SUMMARY_SAMPLES)),
                  val_accuracy=choice["val_accuracy"], readout_choice=choice, seconds=seconds, extracted=extracted,
                  checkpoint=str(out / "best.pt"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "val_indices.json").write_text(json.dumps({"val": list(map(int, val_idx))}))
    accuracy = {"train": choice["train_accuracy"], "valid": choice["val_accuracy"], "test": result["accuracy"]}
    checkpoint = NALSMResult(lsm, readout, accuracy, history, asdict(nalsm)).checkpoint()
    checkpoint["config"]["run"] = config.to_dict()
    for name in ("last.pt", "best.pt"):
        save_checkpoint(out / name, checkpoint)
    (out / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (out / "test.json").write_text(json.dumps(result) + "\n")
    print(f"phase 3: {nalsm.readout} readout ({seconds['readout']:.1f} s), validation accuracy "
          f"{result['val_accuracy']:.4f}")
    _print_result(result)
    print(f"done in {time.perf_counter() - started:.1f} s; run folder {out}")
    return 0


#: samples per call of the liquid: bounds the input tensor's memory (64 x 250 ms x 2312 float32: 148 MB)
CHUNK = 64


def _batches(dataset, indices):
    """``(x (T, B, n_input), labels)`` of ``indices`` in chunks of ``CHUNK`` samples."""
    from spikelab.liquid import liquid_input

    indices = list(indices)
    for start in range(0, len(indices), CHUNK):
        chunk = indices[start:start + CHUNK]
        yield liquid_input(dataset, chunk), dataset.targets[chunk]


def _features(lsm, nalsm, dataset, indices):
    """Phase 2 on samples ``indices`` of ``dataset`` as the run's config says: ``(counts, labels)``."""
    from spikelab.liquid.protocol import extract_features

    return extract_features(lsm, _batches(dataset, indices), steps=nalsm.extract_steps, rate_decay=nalsm.rate_decay,
                            plastic=nalsm.stdp)


def _random_batches(dataset, indices, samples: int, seed: int):
    """Phase 1's input: ``samples`` recordings drawn at random from ``indices`` (cycled, each pass in a new
    order), whole, in chunks of ``CHUNK`` samples (``initialise_liquid`` takes its window of each)."""
    import numpy as np

    from spikelab.liquid import liquid_input

    rng = np.random.default_rng(seed)
    pool = np.asarray(list(indices))
    order = np.concatenate([rng.permutation(pool) for _ in range(-(-samples // len(pool)))])[:samples]
    for start in range(0, samples, CHUNK):
        yield liquid_input(dataset, order[start:start + CHUNK])


def _summary_spikes(lsm, nalsm, dataset, samples: int):
    """Liquid spikes ``(T, samples, n_liquid)`` of the first ``samples`` recordings, run as in phase 2."""
    from spikelab.liquid import liquid_input

    x = liquid_input(dataset, range(min(samples, len(dataset))))[:nalsm.extract_steps]
    return lsm(x, plastic=nalsm.stdp, rate_decay=nalsm.rate_decay, record=True).spikes


def _print_result(result: dict) -> None:
    from spikelab.cli.training import _print_evaluation

    _print_evaluation(result)
    print(f"branching factor {result['branching_factor']:.3f} and mean rate {result['rate_hz']:.1f} Hz on the first "
          f"{result['summary_samples']} test samples")


def _history_rows(history: dict) -> list[dict]:
    """:func:`spikelab.liquid.protocol.fit_readout`'s history as ``metrics.jsonl`` rows, one per candidate (an
    Adadelta epoch, or a ridge penalty in the column ``ridge``)."""
    rows = []
    for index, (train, val) in enumerate(zip(history["train_accuracy"], history["valid_accuracy"])):
        rows.append({"epoch": index, "train_accuracy": train, "val_accuracy": val})
        if "ridge" in history:
            rows[-1]["ridge"] = history["ridge"][index]
    return rows


def _evaluate(readout, counts, labels, num_classes) -> dict:
    import torch

    from spikelab.training.trainer import summarize

    with torch.no_grad():
        scores = readout(counts)
    loss = torch.nn.functional.cross_entropy(scores, labels, reduction="sum").item()
    return summarize(scores.argmax(1), labels, loss, num_classes)


def _load(path):
    """A liquid run's checkpoint path, :class:`~spikelab.liquid.protocol.NALSMResult` and RunConfig."""
    from spikelab.liquid.protocol import NALSMResult
    from spikelab.run import RunConfig
    from spikelab.training.checkpoint import load_checkpoint

    checkpoint_path = _checkpoint_path(path)
    if checkpoint_path is None:
        raise CheckpointError(f"no checkpoint at {path}: give a run folder holding best.pt or a checkpoint file")
    checkpoint = load_checkpoint(checkpoint_path)
    run = (checkpoint.get("config") or {}).get("run")
    if run is None:
        raise CheckpointError(f"{checkpoint_path} holds a liquid without a run description (data, binning): train "
                              "one with `spikelab train --model nalsm`")
    return checkpoint_path, NALSMResult.from_checkpoint(checkpoint, str(checkpoint_path)), RunConfig.from_dict(run)


def evaluate(args) -> int:
    """``spikelab eval RUN_DIR`` of a liquid run: phase 2 on the test split from the stored ``W_INI``, then the
    stored readout."""
    import dataclasses

    path, nalsm_run, config = _load(args.checkpoint)
    lsm = nalsm_run.liquid
    if args.dataset is not None and args.dataset != config.dataset:
        raise ConfigError(f"this liquid was trained on {config.dataset!r}; evaluating it on {args.dataset!r} "
                          "would feed inputs of another shape")
    config = dataclasses.replace(config.with_data_dir(args.data_dir), skip_bad=args.skip_bad)
    test_set = config.load_split(train=False)
    nalsm = nalsm_config(config)
    counts, labels = _features(lsm, nalsm, test_set, range(len(test_set)))
    result = _evaluate(nalsm_run.readout, counts, labels, test_set.num_classes)
    result.update(_activity(lsm, _summary_spikes(lsm, nalsm, test_set, SUMMARY_SAMPLES)))
    print(f"{path} ({_describe(config)}, {nalsm.readout} readout) on "
          f"{config.dataset} test split")
    _print_result(result)
    return 0


def _activity(lsm, raster) -> dict:
    from spikelab.liquid.metrics import branching_factor, firing_rates, recurrent_connectivity

    spikes = raster.numpy().transpose(1, 0, 2)
    return {"branching_factor": branching_factor(spikes, recurrent_connectivity(lsm.topology)),
            "rate_hz": float(firing_rates(spikes).mean()), "summary_samples": len(spikes)}


def inspect(args) -> int:
    """``spikelab inspect RUN_DIR`` of a liquid run: branching factor, firing rates and weights, printed and
    plotted (``RUN_DIR/liquid.png``)."""
    import warnings

    import numpy as np

    from spikelab.liquid.metrics import (firing_rates, neuron_branching_factors, recurrent_connectivity,
                                         spectral_radius)
    from spikelab.liquid.topology import EXCITATORY, INHIBITORY, INPUT
    from spikelab.plots import plot_histograms

    path, nalsm_run, config = _load(args.run_dir)
    lsm = nalsm_run.liquid
    if args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {args.samples}")
    test_set = config.load_split(train=False)
    raster = _summary_spikes(lsm, nalsm_config(config), test_set, args.samples)
    activity = _activity(lsm, raster)
    spikes = raster.numpy().transpose(1, 0, 2)
    mask = recurrent_connectivity(lsm.topology)
    with warnings.catch_warnings():    # a neuron silent in every sample has no value (NaN), as in NALSM
        warnings.simplefilter("ignore", RuntimeWarning)
        per_neuron = np.nanmean(np.stack([neuron_branching_factors(s, mask) for s in spikes]), axis=0)
    rates = firing_rates(spikes, config.dt)
    topology = lsm.topology
    weights, initial = lsm.weight.numpy(), topology.weight
    pre_kind = topology.kind[topology.pre]
    print(f"{path}: {_describe(config)}, {topology.n_synapses} synapses, trained on {config.dataset}")
    shown = raster.shape[1]
    print(f"on the first {shown} test samples ({config.binning.duration:g} ms each, plastic as in "
          f"feature extraction): branching factor {activity['branching_factor']:.3f}, mean rate "
          f"{activity['rate_hz']:.1f} Hz, silent neurons {np.mean(rates == 0):.1%}, neurons above 200 Hz "
          f"{np.mean(rates > 200):.1%}")
    panels = {}
    for kind, name in ((INPUT, "input -> liquid"), (EXCITATORY, "excitatory -> liquid"),
                       (INHIBITORY, "inhibitory -> liquid")):
        chosen = pre_kind == kind
        w, bound = weights[chosen], np.abs(initial[chosen]).max() if chosen.any() else 0.0
        print(f"  {name:21s} {chosen.sum():8d} synapses, mean weight {w.mean():+.3f} (initial "
              f"{initial[chosen].mean():+.3f}), |w| at the bound {np.mean(np.abs(w) >= bound):.1%}, at 0 "
              f"{np.mean(w == 0):.1%}")
        panels[f"{name} weights"] = (w, "weight")
    radius = spectral_radius(recurrent_connectivity(topology, weights))
    initial_radius = spectral_radius(recurrent_connectivity(topology, initial))
    print(f"  spectral radius of the liquid -> liquid weights {radius:.2f} (initial {initial_radius:.2f})")
    panels["firing rates"] = (rates, "Hz")
    panels["branching factor per neuron"] = (per_neuron, "descendants / ancestors")
    out = Path(args.out) if args.out else path.parent / "liquid.png"
    plot_histograms(panels, out, title=f"{_describe(config)}: learned weights and activity on {shown} samples")
    print(f"histograms: {out}")
    return 0
