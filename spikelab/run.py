"""A training run as one object: which data, binned how (with the model's time step ``dt``), which model, trained how.

================  =================================================================================================
class             what it is
================  =================================================================================================
:class:`Binning`  how event recordings become frames: bin width ``dt`` (ms), ``duration`` (ms), binary spikes or
                  counts, spatial pooling (N-MNIST, demo) or channel grouping (SHD)
:class:`RunConfig`  everything that defines a run, as plain data: ``spikelab train`` writes it into every
                  checkpoint (``config["run"]``); the CLI, the exporters and the tools read it only through here
:class:`TrainedRun`  a run folder loaded back: the trained model and its :class:`RunConfig`, with what exporting
                  it needs (``dt``, how its output decodes to a class, its splits as binary spikes)
================  =================================================================================================

Example::

    >>> from spikelab.run import TrainedRun
    >>> run = TrainedRun.load("runs/demo-mlp-seed0")          # best.pt, float64, eval mode
    >>> run.dt, run.decode                                    # (10.0, 'mean_membrane')
    >>> x, y = run.spikes(limit=20)                           # the first 20 test samples, (T, 20, ...) binary
    >>> network = run.network()                               # spikelab.graph.Network, for the backends
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ConfigError, ExportError

#: Binning options and which datasets have them (``dt`` and ``duration`` all do).
_DATASET_OPTIONS = {"downsample": ("demo", "nmnist"), "channel_group": ("shd",)}


@dataclass(frozen=True)
class Binning:
    """How a dataset's events become frames ``(T, ...)`` of ``T = duration / dt`` fixed-width bins.

    =================  ====  ==========================================================================
    field              unit  meaning
    =================  ====  ==========================================================================
    ``dt``             ms    bin width: the model's time step, what every exporter runs it at
    ``duration``       ms    how much of each recording is used (None: not known, e.g. an imported model)
    ``binarize``       --    True: a bin holds a spike (0/1), as hardware takes it; False: event counts
    ``downsample``     --    N-MNIST / demo: sum k x k pixels into one (34 x 34 -> ceil(34 / k)); else None
    ``channel_group``  --    SHD: sum groups of this many adjacent channels (700 -> ceil(700 / g)); else None
    =================  ====  ==========================================================================
    """

    dt: float
    duration: float | None = None
    binarize: bool = True
    downsample: int | None = None
    channel_group: int | None = None

    @classmethod
    def for_dataset(cls, dataset: str, **overrides) -> "Binning":
        """The dataset's default binning (:data:`spikelab.datasets.DATASET_DEFAULTS`) with ``overrides`` (None:
        keep the default); a ConfigError for an option the dataset does not have."""
        from spikelab.datasets import DATASET_DEFAULTS

        if dataset not in DATASET_DEFAULTS:
            raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(sorted(DATASET_DEFAULTS))}")
        values = dict(DATASET_DEFAULTS[dataset])
        for name, value in overrides.items():
            if value is None:
                continue
            if name in _DATASET_OPTIONS and dataset not in _DATASET_OPTIONS[name]:
                raise ConfigError(f"--{name.replace('_', '-')} does not apply to dataset {dataset!r}")
            values[name] = value
        return cls(**values)

    def options(self) -> dict:
        """The dataset class's keyword arguments (options a dataset does not have are left out)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


@dataclass
class RunConfig:
    """Everything that defines a training run, as plain data (see the module docstring).

    ================  ============================================================================================
    field             meaning
    ================  ============================================================================================
    ``dataset``       ``"demo"``, ``"nmnist"``, ``"shd"``, or None (a model imported without data)
    ``data_dir``      folder with the dataset's files (absolute; ignored for the demo set)
    ``binning``       :class:`Binning`, ``dt`` included
    ``model``         named architecture (:mod:`spikelab.models`) or a label
    ``model_options`` the architecture's keyword arguments
    ``trainer``       the Trainer's settings: ``loss`` (also how the output decodes), ``mode``, ``lr``, ``seed``...
    ``input_shape``   one step's input shape, e.g. ``(2, 34, 34)`` (exporters need it for conv models)
    ``val_fraction``  share of the training set held out (stratified, seeded) to choose the best epoch
    ``skip_bad``      skip corrupt data files instead of stopping
    ``position_lr``   learning rate of learnable delays (their own parameter group)
    ``notes``         what later steps recorded: ``imported_from``, ``spinnaker`` (the weight grid a run was
                      fine-tuned on)
    ================  ============================================================================================
    """

    dataset: str | None
    data_dir: str | None
    binning: Binning
    model: str = "custom"
    model_options: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)
    input_shape: tuple | None = None
    val_fraction: float = 0.1
    skip_bad: bool = False
    position_lr: float = 0.1
    notes: dict = field(default_factory=dict)

    @property
    def dt(self) -> float:
        return self.binning.dt

    @property
    def decode(self) -> str:
        """How the model's output sequence becomes a class (:mod:`spikelab.decoding`): the training loss's name."""
        return self.trainer.get("loss", "mean_membrane")

    @property
    def seed(self) -> int:
        return self.trainer.get("seed", 0)

    def to_dict(self) -> dict:
        """Plain nested dicts and lists: what a weights-only checkpoint can hold."""
        data = dataclasses.asdict(self)
        data["input_shape"] = None if self.input_shape is None else list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """Read :meth:`to_dict`'s output (also the layout of runs saved before ``notes`` existed)."""
        data = dict(data)
        notes = dict(data.pop("notes", {}) or {})
        for legacy in ("spinnaker", "imported_from"):
            if legacy in data:
                notes[legacy] = data.pop(legacy)
        binning = dict(data.pop("binning", {}) or {})
        if "dt" not in binning:
            raise ConfigError("the run does not record its time step dt (binning.dt): exporters and evaluation need "
                              "it; train it with `spikelab train`, or import it with `spikelab import nir --dt MS`")
        shape = data.pop("input_shape", None)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(binning=Binning(**binning), input_shape=None if shape is None else tuple(shape), notes=notes,
                   **{key: value for key, value in data.items() if key in known})

    def with_data_dir(self, data_dir) -> "RunConfig":
        """The same run reading its data from ``data_dir`` (None: unchanged)."""
        if data_dir is None:
            return self
        return dataclasses.replace(self, data_dir=str(Path(data_dir).resolve()))

    def load_split(self, train: bool):
        """The training (True) or test split of the run's dataset, binned as the run was trained."""
        from spikelab.datasets import load_dataset

        if self.dataset is None:
            raise ConfigError("this run names no dataset (an imported NIR graph, say): import it again with "
                              "--dataset NAME to evaluate or export it on data")
        return load_dataset(self.dataset, self.data_dir, train=train, skip_bad=self.skip_bad,
                            **self.binning.options())

    def split_indices(self, targets) -> tuple[list[int], list[int]]:
        """The run's stratified (train, validation) indices of its training split (seeded by the run's seed)."""
        from spikelab.datasets import stratified_split

        return stratified_split(targets, self.val_fraction, self.seed)


@dataclass
class TrainedRun:
    """A trained model with its :class:`RunConfig` (see the module docstring)."""

    model: torch.nn.Module
    config: RunConfig
    checkpoint: str

    @classmethod
    def load(cls, path, dtype: torch.dtype = torch.float64) -> "TrainedRun":
        """A run folder (its ``best.pt``) or a checkpoint file, the model in ``dtype`` and eval mode."""
        from .training import load

        model = load(path).to(dtype)
        run = (model.run_info.get("config") or {}).get("run")
        if run is None:
            raise ConfigError(f"{path} holds no run description (it was not written by `spikelab train` or "
                              "`spikelab import nir`); build the model in Python and pass dt yourself")
        return cls(model, RunConfig.from_dict(run), model.run_info["checkpoint"])

    @property
    def dt(self) -> float:
        return self.model.dt

    @property
    def decode(self) -> str:
        return self.config.decode

    def network(self, approximate: bool = False):
        """The model as a :class:`spikelab.graph.Network` (refuses what hardware cannot run)."""
        from .graph import Network

        if not self.config.binning.binarize:
            raise ExportError(f"{self.checkpoint} was trained on event counts (--counts); hardware takes binary "
                              "spikes: retrain without --counts")
        return Network.from_model(self.model, self.dt, self.config.input_shape, approximate=approximate)

    def spikes(self, data_dir=None, limit: int | None = None, train: bool = False):
        """The test split (or the training split) as float64 frames ``(T, N, ...)`` and labels ``(N,)``: the
        first ``limit`` samples, or all; shaped as the model takes them."""
        dataset = self.config.with_data_dir(data_dir).load_split(train)
        count = len(dataset) if limit is None else min(limit, len(dataset))
        frames, labels = zip(*(dataset[i] for i in range(count)))
        x = torch.stack(frames, 1).double()
        if self.config.input_shape is not None:   # e.g. an imported model that takes the frames flattened
            x = x.reshape(*x.shape[:2], *self.config.input_shape)
        return x, torch.tensor(labels)
