"""``spikelab export`` and ``import``: trained runs on NEST, SpiNNaker, NIR and simulated crossbars, and NIR graphs
as runs."""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from .common import EPILOG, add_run_dir_argument


def add_commands(commands) -> None:
    _add_export_parser(commands)
    _add_import_parser(commands)


def _export_nest(args) -> int:
    from tqdm import tqdm

    from spikelab.export import compare_on_nest
    from spikelab.run import TrainedRun

    run = TrainedRun.load(args.run_dir)
    x, y = run.spikes(args.data_dir, args.limit)
    print(f"{args.run_dir}: {x.shape[1]} test samples of {run.config.dataset}, T = {x.shape[0]} steps of "
          f"{run.dt:g} ms, on PyNN + NEST (float64, on-grid spikes)")
    with tqdm(total=x.shape[1], desc="NEST", unit="sample", disable=args.no_progress) as bar:
        result = compare_on_nest(run, x, y, progress=bar.update, approximate=args.approximate)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for approximation in result["approximations"]:
        print(f"approximation: {approximation}")
    print(f"accuracy: spikelab {result['accuracy_spikelab']:.4f}, NEST {result['accuracy_nest']:.4f}; same "
          f"prediction on {result['same_predictions']:.2%} of samples ({result['nest_seconds']:.1f} s on NEST)")
    for name, counts in result["populations"].items():
        if "spikes" in counts:
            print(f"  {name}: {counts['spikes']} spikes in spikelab, {counts['mismatches']} differ on NEST")
            for tie in counts["ties"]:
                print(f"    tie (fires on one side only, decided by float rounding): sample {tie['sample']} step "
                      f"{tie['step']} neuron {tie['neuron']}, spikelab membrane {tie['membrane']!r}, "
                      f"{tie['margin']:+.3g} from the threshold")
        else:
            print(f"  {name}: membranes differ by at most {counts['max_membrane_difference']:.3g}")
    return 0


def _export_spinnaker(args) -> int:
    from spikelab.backends import spinnaker
    from spikelab.run import TrainedRun

    run = TrainedRun.load(args.run_dir)
    network = run.network(args.approximate)
    _print_approximations(network)
    summed = run.config.notes.get("spinnaker", {}).get("max_expected_summed_weight")   # fine-tuned on its grid
    if args.summed_weight == "worst":
        summed = None
    elif args.summed_weight == "observed":   # the grid the training data needs, finer than the worst case
        x_train, _ = run.spikes(args.data_dir, args.limit, train=True)
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
    import copy

    from torch.utils.data import Subset

    from spikelab.backends.fixed_point import weight_grids
    from spikelab.spec import spec_of
    from spikelab.training import Trainer, load_checkpoint, save_checkpoint
    from spikelab.training.weight_grid import bake, put_on_grid

    if args.out is None:
        raise ConfigError("--finetune needs --out DIR: the fine-tuned run is written to a new folder")
    out = Path(args.out)
    if (out / "last.pt").exists():
        raise ConfigError(f"{out} already holds a run; choose another --out")
    grids = weight_grids(network, run.model, report.shifts)
    model = put_on_grid(copy.deepcopy(run.model).float().train(), grids)   # the run loaded as a float64 copy
    tuned = {"max_expected_summed_weight": report.max_expected_summed_weight, "finetuned_from": str(args.run_dir)}
    config = dataclasses.replace(run.config.with_data_dir(args.data_dir), notes={**run.config.notes, "spinnaker": tuned})
    train_full = config.load_split(train=True)
    train_idx, val_idx = config.split_indices(train_full.targets)
    trainer = Trainer(model, loss=run.decode, lr=args.finetune_lr, epochs=args.finetune, seed=config.seed,
                      batch_size=config.trainer.get("batch_size", 64), out_dir=out,
                      model_name=run.model.run_info["model_name"],
                      config={"run": config.to_dict()}, progress=not args.no_progress)
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

    x, y = run.spikes(args.data_dir, args.limit)
    result = evaluate_fixed_point(network, x.flatten(2).numpy(), y.numpy(), shifts=report.shifts,
                                  decode=run.decode)
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
    from spikelab.run import TrainedRun

    run = TrainedRun.load(args.run_dir)
    graph = write_nir(run.model, args.out, run.dt, beta_convention=args.beta_convention,
                      input_shape=run.config.input_shape)
    print(f"wrote {args.out}: {len(graph.nodes)} NIR nodes, dt {run.dt:g} ms, tau from beta by the "
          f"{args.beta_convention} convention (reset mode and dt are in the graph's metadata)")
    return 0


def _import_nir(args) -> int:
    from spikelab.backends.nir import from_nir, read_nir, time_step
    from spikelab.datasets import DATASET_DEFAULTS
    from spikelab.run import Binning, RunConfig
    from spikelab.spec import spec_of
    from spikelab.training import save_checkpoint

    out = Path(args.out)
    if (out / "best.pt").exists():
        raise ConfigError(f"{out} already holds a run; choose another folder")
    graph = read_nir(args.file)
    model = from_nir(graph, dt=args.graph_dt, reset=args.reset, beta_convention=args.beta_convention)
    # beta per step came from the producer's own dt; the run's dt is the bin width the model is fed with
    dt = args.dt or (DATASET_DEFAULTS[args.dataset]["dt"] if args.dataset else time_step(graph, args.graph_dt))
    model.dt = dt
    inputs = [node for node in graph.nodes.values() if type(node).__name__ == "Input"]
    # with a dataset, `spikelab eval` and `spikelab export nest` can read its test split
    binning = Binning.for_dataset(args.dataset, dt=dt) if args.dataset else Binning(dt=dt)
    run = RunConfig(dataset=args.dataset, data_dir=str(Path(args.data_dir or "data").resolve()), binning=binning,
                    model="nir", trainer={"loss": args.loss}, notes={"imported_from": str(args.file)},
                    input_shape=tuple(int(n) for n in inputs[0].input_type["input"]) if inputs else None)
    checkpoint = {"epoch": 0, "model_name": "nir", "model_spec": spec_of(model), "model_state": model.state_dict(),
                  "config": {"run": run.to_dict()}, "metrics": []}
    for name in ("best.pt", "last.pt"):
        save_checkpoint(out / name, checkpoint)
    print(f"imported {args.file} as a spikelab model (dt {dt:g} ms) into {out}:")
    print(model)
    return 0


def _export_pynn_script(args) -> int:
    from spikelab.backends.pynn import write_script
    from spikelab.backends.spinnaker import max_expected_summed_weights
    from spikelab.run import TrainedRun

    run = TrainedRun.load(args.run_dir)
    inputs = None
    if args.samples:
        x, _ = run.spikes(args.data_dir, args.samples)
        inputs = x.flatten(2).transpose(0, 1).numpy()
    network = run.network(args.approximate)
    _print_approximations(network)
    summed = run.config.notes.get("spinnaker", {}).get("max_expected_summed_weight")   # grid it was tuned on
    if summed is None:
        summed = max_expected_summed_weights(network)
    paths = write_script(network, args.out, decode=run.decode, inputs=inputs, max_expected_summed_weight=summed)
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"run it on SpiNNaker: python {paths[0]} --simulator spiNNaker"
          + ("" if inputs is not None else " --inputs YOUR_SPIKES.npz") + "  (or --simulator nest)")
    return 0


def _export_crossbar(args) -> int:
    """Test accuracy of a run on simulated crossbars: the preset, one day later, and each sweep."""
    from tqdm import tqdm

    from spikelab.backends import crossbar
    from spikelab.decoding import predict as decode
    from spikelab.neurons import set_spike_mode
    from spikelab.run import TrainedRun

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    run = TrainedRun.load(args.run_dir)
    set_spike_mode(run.model, "hard")           # Ultra neurons deploy binary spikes; LIF models are unaffected
    x, y = run.spikes(args.data_dir, args.limit)
    changes = {key: getattr(args, key) for key in ("levels",) if getattr(args, key) is not None}
    device = crossbar.preset(args.preset, **changes)
    periphery = crossbar.Periphery.ideal() if args.preset == "ideal" else crossbar.Periphery()
    if args.adc_bits is not None:
        periphery = periphery.replace(adc_bits=args.adc_bits or None)

    def predict(output):
        return decode(output, run.decode)

    seeds = range(args.seeds)
    sweeps = ["noise", "drift", "levels", "adc"] if "all" in (args.sweep or []) else list(dict.fromkeys(args.sweep or []))
    total = 2 * len(seeds) + sum(len(crossbar.SWEEPS[kind][1]) for kind in sweeps) * len(seeds)
    with tqdm(total=total, desc="crossbar", unit="chip", disable=args.no_progress) as bar:
        float_accuracy = crossbar.sweep.accuracy(run.model, x, y, predict)
        result = {"run": str(args.run_dir), "samples": int(x.shape[1]), "float_accuracy": float_accuracy,
                  "device": device.to_dict(), "periphery": periphery.to_dict(), "seeds": list(seeds)}
        for label, seconds in (("programmed", 0.0), ("one_day", 86400.0)):
            accuracies = []
            for seed in seeds:
                accuracies.append(crossbar.sweep.chip_accuracy(run.model, x, y, predict, device, periphery, seconds,
                                                               seed, run.dt))
                bar.update()
            result[label] = crossbar.sweep.summarize_accuracies(accuracies)
        result["sweeps"] = [crossbar.run_sweep(run.model, x, y, predict, kind, device, periphery, seeds, run.dt,
                                               progress=bar.update) for kind in sweeps]
    if sweeps:
        out = Path(args.out) if args.out else _run_folder(args.run_dir) / f"crossbar-{args.preset}.png"
        crossbar.plot_sweeps(result["sweeps"], float_accuracy, out,
                             title=f"{args.run_dir} on {args.preset} crossbars ({x.shape[1]} test samples, "
                                   f"{len(seeds)} seed(s) per point)")
        result["plot"] = str(out)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.run_dir}: {x.shape[1]} test samples of {run.config.dataset}, T = {x.shape[0]} steps of "
          f"{run.dt:g} ms, on simulated {args.preset} crossbars ({len(seeds)} programmed chip(s) per point)")
    print(f"device: {device}\nperiphery: {periphery}")
    print(f"accuracy: float {float_accuracy:.4f}; crossbar after programming {_spread(result['programmed'])}, "
          f"one day later {_spread(result['one_day'])}")
    for sweep in result["sweeps"]:
        print("\n" + crossbar.sweep.format_sweep(sweep, float_accuracy))
    if sweeps:
        print(f"\nplot: {result['plot']}")
    return 0


def _spread(summary: dict) -> str:
    return f"{summary['mean']:.4f}" + (f" +- {summary['std']:.4f}" if len(summary["accuracies"]) > 1 else "")


def _run_folder(path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def _add_crossbar_export_parser(targets) -> None:
    from spikelab.backends.crossbar import PRESETS, SWEEPS

    parser = targets.add_parser(
        "crossbar", help="test accuracy with every synapse on simulated resistive-memory crossbars",
        description="Program the run's synapses onto simulated crossbar tiles (conductance pairs, noise, drift, "
                    "ADC) and measure test accuracy beside the float model's, after programming, one day later, and "
                    "against each non-ideality (--sweep, plotted as a PNG).")
    add_run_dir_argument(parser)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="rram",
                        help="device: rram (Wan 2022 NeuRRAM fits, 40 uS; default), pcm (aihwkit's PCM model, 25 uS, "
                             "drift), ideal (every non-ideality off, also in the periphery)")
    parser.add_argument("--sweep", action="append", choices=(*SWEEPS, "all"),
                        help="vary one non-ideality, the rest at the preset (repeatable): noise (x the preset's "
                             "programming and read noise), drift (time since programming), levels (conductance "
                             "levels), adc (ADC bits), all")
    parser.add_argument("--seeds", type=int, default=3, help="programmed chips per point, their spread reported (default 3)")
    parser.add_argument("--levels", type=int, default=None, help="conductance levels per cell (default: continuous)")
    parser.add_argument("--adc-bits", type=int, default=None, help="ADC bits per tile column (default 9; 0: ideal ADC)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test samples (default: all)")
    parser.add_argument("--out", default=None, metavar="FILE.png",
                        help="where to save the sweep plot (default RUN_DIR/crossbar-PRESET.png)")
    parser.add_argument("--data-dir", default=None, help="where the run's dataset is, if not where it was trained")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_export_crossbar)


def _add_export_parser(commands) -> None:
    from spikelab.functional.lif import BETA_CONVENTIONS

    export = commands.add_parser("export", help="run or describe a trained network on other simulators and hardware",
                                 description="Export a trained run (a folder from `spikelab train`).", epilog=EPILOG)
    targets = export.add_subparsers(dest="target", required=True, metavar="TARGET")

    nest = targets.add_parser("nest", help="run the test split on PyNN + NEST and compare with spikelab, spike for spike",
                              description="Accuracy on NEST next to spikelab's, and the count of spikes that differ.")
    add_run_dir_argument(nest)
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
    add_run_dir_argument(spinnaker)
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
    add_run_dir_argument(nir_export)
    nir_export.add_argument("out", help="the .nir file to write")
    nir_export.add_argument("--beta-convention", choices=BETA_CONVENTIONS, default="exact",
                            help="tau from beta: exact, beta = exp(-dt/tau) (NEST, SpiNNaker2 EXACT; default), or euler, "
                                 "beta = 1 - dt/tau (snnTorch's reader)")
    nir_export.set_defaults(run=_export_nir)

    script = targets.add_parser("pynn-script", help="a standalone PyNN script and weights file (for SpiNNaker)",
                                description="Write run_pynn.py + network.npz (+ inputs.npz): needs only PyNN and numpy.")
    add_run_dir_argument(script)
    script.add_argument("out", help="folder to write into")
    _add_export_data_options(script)
    script.add_argument("--samples", type=int, default=10,
                        help="test samples to write as inputs.npz (default 10; 0: none)")
    script.set_defaults(run=_export_pynn_script)

    _add_crossbar_export_parser(targets)


def _add_import_parser(commands) -> None:
    from spikelab.datasets import DATASET_DEFAULTS
    from spikelab.decoding import DECODERS
    from spikelab.functional.lif import BETA_CONVENTIONS, RESETS

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
    nir_import.add_argument("--reset", choices=[reset for reset in RESETS if reset != "none"], default=None,
                            help="reset of the LIF layers (default: the file's metadata, else zero; NIR has no reset field)")
    nir_import.add_argument("--beta-convention", choices=BETA_CONVENTIONS, default=None,
                            help="beta from tau (default: the file's metadata, else euler as snnTorch writes)")
    nir_import.add_argument("--dataset", choices=sorted(DATASET_DEFAULTS), default=None,
                            help="the data it runs on, binned at its dt, so that eval and export can use the test split")
    nir_import.add_argument("--data-dir", default=None, help="folder with that dataset's files")
    nir_import.add_argument("--loss", choices=DECODERS,
                            default="mean_membrane", help="how its output decodes to a class (default mean_membrane)")
    nir_import.set_defaults(run=_import_nir)


def _add_export_data_options(parser) -> None:
    parser.add_argument("--data-dir", default=None, help="where the run's dataset is, if not where it was trained")
    parser.add_argument("--approximate", action="store_true",
                        help="run a subtractive reset as a zero reset instead of refusing it (spikes will differ)")


def _print_approximations(network) -> None:
    for approximation in network.approximations:
        print(f"approximation: {approximation}", file=sys.stderr)
