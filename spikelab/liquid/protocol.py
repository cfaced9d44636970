r"""NALSM's three-phase protocol (``reference/algorithms.md`` §3.6) as library functions, seeded.

1. :func:`initialise_liquid`: plasticity on, no readout: ``samples`` training samples, ``steps`` ms of each
   (NALSM: 50,000 samples of 20 ms) from a random start (:func:`init_window`; NALSM's N-MNIST runs), one after the
   other (batch mode ``"sequential"``): the state is reset per sample except the STDP traces, the weights carry
   over and are kept (``W_INI``).
2. :func:`extract_features`: each sample for ``steps`` ms (250) from ``W_INI``, STDP and astrocyte running
   during it with every rate multiplied by ``rate_decay`` (0.99) each ms, every sample on its own copy of the
   weights (batch mode ``"independent"``; the liquid keeps ``W_INI``); the features are the liquid's spike counts.
   ``plastic=False`` extracts from the frozen liquid instead (the plain LSM).
3. A :class:`~spikelab.liquid.readout.LinearReadout` on the normalised counts (:func:`fit_readout`): Adadelta
   (NALSM) with the epoch chosen on the validation set, or ridge regression with its penalty chosen there among
   :data:`RIDGE_PENALTIES` (or a fixed one). The test set is never looked at.

:func:`run_nalsm` runs all three from a :class:`NALSMConfig`. Data come as iterables of ``(x, labels)`` batches,
``x`` time-first ``(T, B, n_input)`` events per ms (N-MNIST binned at 1 ms: ``2 x 34 x 34 = 2312`` channels), so a
data set never has to be in memory at once.

==================  =====  ==============  =================================================================
``NALSMConfig``     unit   default         meaning
==================  =====  ==============  =================================================================
``size``            --     1000            liquid grid (1000, 8000 or a 3-tuple)
``n_input``         --     2312            input channels
``input_density``   --     0.15            probability of each input -> liquid synapse
``seed``            --     0               topology and readout seed
``astro_w``         1/spk  None            ``w_A``; None: the paper's value for the size (0.015 / 0.0075)
``stdp``            --     True            False: the plain LSM (no initialisation, frozen extraction)
``astrocyte``       --     True            False: LSM + STDP without astrocyte (``A = eta_+``)
``init_samples``    --     50000           samples of phase 1 (NALSM: 50,000)
``init_steps``      ms     20              ms of each sample in phase 1
``init_window``     --     ``"random"``    where they start: ``"random"`` (NALSM) or ``"first"`` (:func:`init_window`)
``extract_steps``   ms     250             ms of each sample in phase 2
``rate_decay``      --     0.99            per-ms factor on the rates in phase 2
``readout``         --     ``"adadelta"``  ``"adadelta"`` (NALSM) or ``"ridge"``
``epochs``          --     100             readout epochs (Adadelta)
``lr``              --     0.1             Adadelta learning rate
``weight_decay``    --     5e-10           L2 on the readout weights
``ridge``           --     None            ridge penalty (``readout="ridge"``); None: the one of
                                             :data:`RIDGE_PENALTIES` best on the validation set
``readout_batch``   --     250             readout minibatch
==================  =====  ==============  =================================================================
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import torch
from torch import Tensor

from spikelab.errors import CheckpointError, ConfigError
from spikelab.functional.liquid import AstroSTDPParameters
from spikelab.liquid.machine import ASTRO_W, LiquidStateMachine
from spikelab.liquid.readout import LinearReadout
from spikelab.liquid.topology import NMNIST_INPUTS, liquid_shape

READOUTS = ("adadelta", "ridge")
INIT_WINDOWS = ("random", "first")
#: ms a sample needs beyond a random window's own length (NALSM's starts run from 1 to T - steps - 2)
RANDOM_WINDOW_MARGIN = 3
#: Ridge penalties tried on the normalised counts when ``NALSMConfig.ridge`` is None. The best one depends on the
#: data and the liquid by orders of magnitude (N-MNIST sample, NALSM1000: validation accuracy 61 % at 1e-3, 92 % at
#: the chosen one), so one fixed default would serve some liquids badly.
RIDGE_PENALTIES = tuple(10.0 ** k for k in range(-3, 5))


@dataclass
class NALSMConfig:
    """The protocol's settings (table in :mod:`spikelab.liquid.protocol`)."""

    size: object = 1000
    n_input: int = NMNIST_INPUTS
    input_density: float = 0.15
    seed: int = 0
    astro_w: float | None = None
    stdp: bool = True
    astrocyte: bool = True
    init_samples: int = 50000
    init_steps: int = 20
    init_window: str = "random"
    extract_steps: int = 250
    rate_decay: float = 0.99
    readout: str = "adadelta"
    epochs: int = 100
    lr: float = 0.1
    weight_decay: float = 5e-10
    ridge: float | None = None
    readout_batch: int = 250

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise ConfigError(f"readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")
        if self.init_window not in INIT_WINDOWS:
            raise ConfigError(f"init_window must be one of {', '.join(INIT_WINDOWS)}, got {self.init_window!r}")
        for name in ("init_steps", "extract_steps", "epochs", "readout_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.init_samples < 0:
            raise ConfigError(f"init_samples must be >= 0, got {self.init_samples!r}")
        if self.ridge is not None and not self.ridge >= 0:
            raise ConfigError(f"ridge must be >= 0 (or None: chosen on the validation set), got {self.ridge!r}")

    def build_liquid(self) -> LiquidStateMachine:
        """The untrained liquid this configuration describes."""
        shape = liquid_shape(self.size)
        n = shape[0] * shape[1] * shape[2]
        astro_w = self.astro_w if self.astro_w is not None else ASTRO_W.get(n, AstroSTDPParameters().astro_w)
        plasticity = AstroSTDPParameters(stdp=self.stdp, astrocyte=self.astrocyte, astro_w=astro_w)
        return LiquidStateMachine(size=shape, n_input=self.n_input, input_density=self.input_density, seed=self.seed,
                                  plasticity=plasticity)


@dataclass
class NALSMResult:
    """What :func:`run_nalsm` gives: the liquid (with ``W_INI``), the readout, accuracies, the readout history,
    the config as a dict. :meth:`save` / :meth:`load`: one spikelab checkpoint file (read without running code)."""

    liquid: LiquidStateMachine
    readout: LinearReadout
    accuracy: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def predict(self, x: Tensor, steps: int | None = None) -> Tensor:
        """Classes ``(B,)`` of input events ``x`` ``(T, B, n_input)``, through phase 2 and the readout."""
        counts, _ = extract_features(self.liquid, [(x, torch.zeros(x.shape[1]))],
                                     steps=steps or self.config.get("extract_steps", x.shape[0]),
                                     rate_decay=self.config.get("rate_decay", 0.99),
                                     plastic=self.config.get("stdp", True))
        with torch.no_grad():
            return self.readout(counts).argmax(1)

    def checkpoint(self) -> dict:
        """The result as a spikelab checkpoint dict: the liquid's (:meth:`LiquidStateMachine.checkpoint`: topology
        and ``W_INI``) with the readout beside it, the config under ``config["nalsm"]`` and the accuracies and
        history under ``metrics``."""
        checkpoint = self.liquid.checkpoint()
        linear = self.readout.linear
        checkpoint["model_spec"]["readout"] = {"features": linear.in_features, "classes": linear.out_features,
                                               "normalised": self.readout.normalised}
        checkpoint["model_state"]["readout"] = {k: v.clone() for k, v in self.readout.state_dict().items()}
        checkpoint["config"] = {"nalsm": dict(self.config)}
        checkpoint["metrics"] = {"accuracy": dict(self.accuracy), "history": dict(self.history)}
        return checkpoint

    def save(self, path) -> None:
        """Write :meth:`checkpoint` to ``path`` (read back by :meth:`load`, without running code from the file)."""
        from spikelab.training.checkpoint import save_checkpoint

        save_checkpoint(path, self.checkpoint())

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, where: str = "the checkpoint") -> "NALSMResult":
        liquid = LiquidStateMachine.from_checkpoint(checkpoint)
        spec = checkpoint["model_spec"].get("readout")
        if spec is None:
            raise CheckpointError(f"{where} holds a liquid without a readout in NALSMResult's format (a saved "
                                  "liquid, or a liquid run of an older build): load the liquid alone with "
                                  "LiquidStateMachine.load, or train the run again")
        readout = LinearReadout(spec["features"], spec["classes"], spec["normalised"])
        readout.load_state_dict(checkpoint["model_state"]["readout"])
        metrics = checkpoint.get("metrics") or {}
        return cls(liquid, readout, metrics.get("accuracy", {}), metrics.get("history", {}),
                   (checkpoint.get("config") or {}).get("nalsm", {}))

    @classmethod
    def load(cls, path) -> "NALSMResult":
        from spikelab.training.checkpoint import load_checkpoint

        return cls.from_checkpoint(load_checkpoint(path), str(path))


def _inputs(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def liquid_input(dataset, indices, steps: int | None = None) -> Tensor:
    """Samples ``indices`` of a frames dataset (``dataset[i][0]`` of shape ``(T, ...)``, e.g. N-MNIST's
    ``(T, 2, 34, 34)``) as liquid input ``(T, B, n_input)``, each frame flattened (the first ``steps`` steps)."""
    return torch.stack([dataset[int(i)][0][:steps].flatten(1) for i in indices], 1)


def init_window(x: Tensor, steps: int, window: str = "random", generator: torch.Generator | None = None) -> Tensor:
    """Phase 1's input: ``steps`` ms of each sample of ``x`` ``(T, B, n_input)``, as ``(steps, B, n_input)``.

    ``"first"``: the first ``steps`` ms. ``"random"`` (NALSM's N-MNIST initialisation): each sample from its own
    start, uniform in ``1 .. T - steps - 2`` (NALSM draws ``randint(1, 300 - 1 - 20)`` on its 300 ms recordings:
    starts 1-278). It matters: an N-MNIST recording's first 20 ms hold 4 events per ms (the first saccade is just
    starting), a random 20 ms 14, and a liquid initialised on the onsets alone ends with a higher branching factor
    (``experiments/nalsm_branching.py``). For input that does not change over time (MNIST's Bernoulli pixels) the
    two are the same. ``generator`` draws the starts (torch's global one if None).
    """
    if window not in INIT_WINDOWS:
        raise ConfigError(f"window must be one of {', '.join(INIT_WINDOWS)}, got {window!r}")
    if window == "first":
        return x[:steps]
    length, batch = x.shape[0], x.shape[1]
    if length < steps + RANDOM_WINDOW_MARGIN:
        raise ConfigError(f"a random {steps} ms window needs samples of at least {steps + RANDOM_WINDOW_MARGIN} ms "
                          f"(starts 1 .. T - "
                          f"{steps} - 2), got {length} ms: give longer samples or window='first'")
    starts = torch.randint(1, length - steps - 1, (batch,), generator=generator)
    return torch.stack([x[start:start + steps, b] for b, start in enumerate(starts.tolist())], 1)


def initialise_liquid(liquid: LiquidStateMachine, batches: Iterable, samples: int, steps: int = 20,
                      window: str = "random", generator: torch.Generator | None = None) -> int:
    """Phase 1: plastic, sequential runs of ``steps`` ms (:func:`init_window` ``window``, drawn with
    ``generator``) of up to ``samples`` samples; the liquid keeps the learned weights. ``batches`` yields ``x`` or
    ``(x, labels)``, ``x`` ``(T, B, n_input)``. Returns the number of samples used. The STDP traces carry over from
    sample to sample within a batch (NALSM: over the whole phase); each batch starts them at 0."""
    used = 0
    for batch in batches:
        if used >= samples:
            break
        x = init_window(_inputs(batch)[:, :samples - used], steps, window, generator)
        liquid(x, plastic=True, batch_mode="sequential", record=False, rate_decay=1.0)
        used += x.shape[1]
    return used


def extract_features(liquid: LiquidStateMachine, batches: Iterable, steps: int = 250, rate_decay: float = 0.99,
                     plastic: bool = True) -> tuple[Tensor, Tensor]:
    """Phase 2: spike counts ``(N, n_liquid)`` (float32) and labels ``(N,)`` of every sample in ``batches``
    (``(x, labels)``), each sample run alone from the liquid's weights, which are left as they were."""
    counts, labels = [], []
    for x, y in batches:
        out = liquid(x[:steps], plastic=plastic, batch_mode="independent", record=False, rate_decay=rate_decay)
        counts.append(out.counts.float())
        labels.append(torch.as_tensor(y).long())
    if not counts:
        raise ConfigError("no samples to extract features from: the batches were empty")
    return torch.cat(counts), torch.cat(labels)


def fit_readout(train: tuple[Tensor, Tensor], valid: tuple[Tensor, Tensor] | None, classes: int,
                config: NALSMConfig) -> tuple[LinearReadout, dict]:
    """Phase 3: a readout on the counts ``(features, labels)`` by the config's method, chosen on ``valid``.

    Returns the readout and its history: ``train_accuracy`` and ``valid_accuracy`` (empty without ``valid``) per
    candidate, and ``best_epoch``, the index of the one kept. The candidates are Adadelta's epochs, or for ridge the
    penalties listed in ``history["ridge"]`` (:data:`RIDGE_PENALTIES`, or the config's one)."""
    if config.readout == "ridge":
        return _fit_ridge(train, valid, classes, config.ridge)
    readout = LinearReadout(train[0].shape[1], classes)
    history = readout.fit_gradient(*train, valid=valid, epochs=config.epochs, lr=config.lr,
                                   weight_decay=config.weight_decay, batch_size=config.readout_batch,
                                   seed=config.seed)
    return readout, history


def _fit_ridge(train, valid, classes: int, ridge: float | None) -> tuple[LinearReadout, dict]:
    """Ridge readouts for each penalty (``ridge``, or :data:`RIDGE_PENALTIES` when None); the best on ``valid``."""
    if ridge is None and valid is None:
        raise ConfigError("the ridge penalty is chosen on the validation set (ridge=None): give validation "
                          "batches, or a fixed penalty, e.g. NALSMConfig(ridge=1.0)")
    penalties = RIDGE_PENALTIES if ridge is None else (ridge,)
    history = {"ridge": list(penalties), "train_accuracy": [], "valid_accuracy": [], "best_epoch": None}
    best, best_score = None, -1.0
    for index, penalty in enumerate(penalties):
        readout = LinearReadout(train[0].shape[1], classes).fit_ridge(*train, ridge=penalty)
        history["train_accuracy"].append(readout.accuracy(*train))
        if valid is not None:
            history["valid_accuracy"].append(readout.accuracy(*valid))
        score = history["valid_accuracy"][-1] if valid is not None else 0.0
        if score > best_score:
            best, best_score, history["best_epoch"] = readout, score, index
    return best, history


def run_nalsm(config: NALSMConfig, train: Iterable, valid: Iterable | None = None, test: Iterable | None = None,
              init: Iterable | None = None, classes: int = 10, progress=None) -> NALSMResult:
    """The three phases. ``train`` / ``valid`` / ``test``: re-iterable collections (a list, a DataLoader) of
    ``(x, labels)`` batches (``valid`` and ``test`` may be None); ``init``: the batches of phase 1 (default
    ``train``; NALSM draws them at random from the training set). ``progress(phase: str)`` is called at the start
    of each phase.

    A plain LSM (``config.stdp=False``) skips phase 1 and extracts from the frozen liquid.
    """
    for name, data in (("train", train), ("valid", valid), ("test", test), ("init", init)):
        if data is not None and iter(data) is data:
            raise ConfigError(f"{name} is an iterator, which the phases would use up: give a list or a DataLoader "
                              "of (x, labels) batches (the training batches are read twice)")
    torch.manual_seed(config.seed)
    report = progress or (lambda phase: None)
    liquid = config.build_liquid()
    used = 0
    if config.stdp and config.init_samples:
        report("initialise")
        used = initialise_liquid(liquid, train if init is None else init, config.init_samples, config.init_steps,
                                 config.init_window, torch.Generator().manual_seed(config.seed))
    report("extract")
    extract = dict(steps=config.extract_steps, rate_decay=config.rate_decay, plastic=config.stdp)
    train_features = extract_features(liquid, train, **extract)
    valid_features = extract_features(liquid, valid, **extract) if valid is not None else None
    test_features = extract_features(liquid, test, **extract) if test is not None else None
    report("readout")
    readout, history = fit_readout(train_features, valid_features, classes, config)
    accuracy = {"train": readout.accuracy(*train_features)}
    if valid_features is not None:
        accuracy["valid"] = readout.accuracy(*valid_features)
    if test_features is not None:
        accuracy["test"] = readout.accuracy(*test_features)
    history["init_samples_used"] = used
    return NALSMResult(liquid=liquid, readout=readout, accuracy=accuracy, history=history, config=asdict(config))
