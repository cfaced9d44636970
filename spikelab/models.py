"""Named architectures for the CLI and experiments.

Each builder takes the input shape of one time step, the number of classes and options, and
returns a :class:`spikelab.Sequential` ending in a non-spiking leaky readout, whose membrane
sequence ``(T, B, classes)`` the losses read.

=========  ===========================================  =======================================
name       layers                                       meant for
=========  ===========================================  =======================================
``mlp``    Flatten, [Linear, LIF] x hidden, Linear, LI  any input; the demo set's default
``conv``   [Conv5x5, LIF, Pool2] x 2, Linear, LI        frames (C, H, W); with max pooling
                                                        N-MNIST's default
``rsnn``   Flatten, Linear, recurrent LIF, Linear, LI   spike trains over channels: SHD
``shd-     Flatten, [DelayedLinear, BatchNorm, LIF,      SHD (Hammouamri et al. 2024): learned
delays``   Dropout] x 2, DelayedLinear, LI              synaptic delays up to 24 steps
=========  ===========================================  =======================================

:data:`DATASET_MODELS` names the model and options ``spikelab train --dataset NAME`` uses by default.

``neuron`` is ``"lif"`` or one of the UltraLIF family (``"ultralif"``, ``"ultraplif"``, ``"ultradlif"``,
``"ultradplif"``); ``neuron_options`` (for LIF: ``beta``, ``threshold``, ``reset``, ``surrogate``,
``slope``, ``learn_beta``...; for Ultra neurons: ``tau``, ``threshold``, ``eps``, ``learn_eps``) go to every
spiking layer; ``readout_beta`` sets the readout's leak.
"""
from __future__ import annotations

import math

from .delays import DelayedLinear
from .errors import ConfigError
from .layers import AvgPool2d, BatchNorm1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Sequential
from .neurons import LIF, ULTRA_NEURONS, LeakyIntegrator, RecurrentLIF

NEURONS = ("lif", *ULTRA_NEURONS)


def _neuron(neuron: str, options: dict, features=None):
    if neuron in ULTRA_NEURONS:
        return ULTRA_NEURONS[neuron](**options)
    if neuron != "lif":
        raise ConfigError(f"unknown neuron {neuron!r}; choose one of {', '.join(NEURONS)}")
    if options.get("learn_beta") == "neuron":
        return LIF(features=features, **options)
    return LIF(**options)


def mlp(input_shape, num_classes, hidden=(256,), dropout=0.0, neuron="lif", neuron_options=None,
        readout_beta=0.9):
    """Fully connected LIF network: ``prod(input_shape) - hidden... - num_classes``."""
    options = dict(neuron_options or {})
    layers, width = [Flatten()], math.prod(input_shape)
    for size in hidden:
        layers += [Linear(width, size), _neuron(neuron, options, size)]
        if dropout:
            layers.append(Dropout(dropout))
        width = size
    layers += [Linear(width, num_classes), LeakyIntegrator(beta=readout_beta)]
    return Sequential(*layers)


POOLS = {"max": MaxPool2d, "avg": AvgPool2d}


def conv(input_shape, num_classes, channels=(12, 32), kernel_size=5, pool="max", dropout=0.0, neuron="lif",
         neuron_options=None, readout_beta=0.9):
    """Convolutional LIF network (snnTorch-tutorial style): ``[C k x k, LIF, MaxPool 2] x len(channels)``.

    ``pool``: ``"max"`` (default; spikes stay spikes: the exporters run it as one more population of OR neurons,
    :func:`spikelab.graph.from_torch.max_pool_neuron`) or ``"avg"`` (a fixed linear map, which the exporters fold
    into the next convolution's synapses). Both run on PyNN / SpiNNaker, spike for spike.
    """
    if pool not in POOLS:
        raise ConfigError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if len(input_shape) != 3:
        raise ConfigError(f"model 'conv' needs frames (C, H, W), got input shape {tuple(input_shape)}; "
                          "use --model mlp or rsnn for channel data such as SHD")
    options = dict(neuron_options or {})
    in_channels, height, width = input_shape
    layers = []
    for out_channels in channels:
        conv_shape = (out_channels, height - kernel_size + 1, width - kernel_size + 1)
        height, width = conv_shape[1] // 2, conv_shape[2] // 2
        if height < 1 or width < 1:
            raise ConfigError(f"input {tuple(input_shape)} is too small for {len(channels)} conv blocks of "
                              f"kernel {kernel_size}; use less downsampling or fewer channels")
        layers += [Conv2d(in_channels, out_channels, kernel_size), _neuron(neuron, options, conv_shape),
                   POOLS[pool](2)]
        in_channels = out_channels
    layers.append(Flatten())
    if dropout:
        layers.append(Dropout(dropout))
    layers += [Linear(in_channels * height * width, num_classes), LeakyIntegrator(beta=readout_beta)]
    return Sequential(*layers)


def rsnn(input_shape, num_classes, hidden=(256,), dropout=0.0, neuron="lif", neuron_options=None,
         readout_beta=0.9):
    """Recurrent LIF network: input weights into all-to-all recurrent LIF layers, then a readout."""
    if neuron != "lif":
        raise ConfigError(f"model 'rsnn' supports neuron 'lif' only, got {neuron!r}")
    options = dict(neuron_options or {})
    layers, width = [Flatten()], math.prod(input_shape)
    for size in hidden:
        layers += [Linear(width, size), RecurrentLIF(size, **options)]
        if dropout:
            layers.append(Dropout(dropout))
        width = size
    layers += [Linear(width, num_classes), LeakyIntegrator(beta=readout_beta)]
    return Sequential(*layers)


#: tau = 1.005 steps of the DCLS paper's SpikingJelly LIF (decay_input=False): beta = 1 - 1/tau
DCLS_BETA = 1 - 1 / 1.005
DELAYS = ("learned", "fixed", "none")


def shd_delays(input_shape, num_classes, hidden=(256, 256), max_delay=24, delays="learned", dropout=0.4,
               neuron="lif", neuron_options=None, readout_beta=DCLS_BETA):
    """Learned synaptic delays (DCLS, Hammouamri et al. 2024): ``[DelayedLinear, BatchNorm, LIF, Dropout] x hidden``.

    ``delays``: ``"learned"`` (default), ``"fixed"`` (random, not learned) or ``"none"`` (max_delay 0): the
    paper's ablations. Published SHD setting: input 700 channels grouped by 5 (140), 2 x 256 hidden,
    delays 0-24 steps of 10 ms, almost memoryless LIF (beta 0.005), dropout 0.4, summed-softmax loss. One
    departure: the last half of the epochs trains on the rounded delays that evaluation runs (DelayedLinear's
    ``round_fraction``; DCLS keeps Gaussian taps to the end and rounds only for evaluation).
    """
    if delays not in DELAYS:
        raise ConfigError(f"delays must be one of {', '.join(DELAYS)}, got {delays!r}")
    reach = 0 if delays == "none" else max_delay
    if neuron_options is None:  # the paper's LIF: tau = 1.005 steps, ATan surrogate with alpha 5
        neuron_options = dict(beta=DCLS_BETA, slope=5.0) if neuron == "lif" else {}
    options = dict(neuron_options)
    layers, width = [Flatten()], math.prod(input_shape)
    for size in hidden:
        layers += [DelayedLinear(width, size, reach, learn_delays=delays == "learned"), BatchNorm1d(size),
                   _neuron(neuron, options, size)]
        if dropout:
            layers.append(Dropout(dropout))
        width = size
    layers += [DelayedLinear(width, num_classes, reach, learn_delays=delays == "learned"),
               LeakyIntegrator(beta=readout_beta)]
    return Sequential(*layers)


MODELS = {"mlp": mlp, "conv": conv, "rsnn": rsnn, "shd-delays": shd_delays}

#: Model and training options of ``spikelab train`` where neither the command line nor the tables below set them.
GENERIC_DEFAULTS = {"hidden": (256,), "channels": (12, 32), "pool": "max", "dropout": 0.0, "beta": 0.9, "readout_beta": 0.9, "slope": None,
                    "loss": "mean_membrane", "batch_size": 64, "lr": 2e-3, "weight_decay": 0.0, "scheduler": "cosine",
                    "epochs": 20}

#: Options a model is published with, used where the command line does not set them.
MODEL_DEFAULTS = {
    "shd-delays": {"hidden": (256, 256), "dropout": 0.4, "beta": DCLS_BETA, "readout_beta": DCLS_BETA, "slope": 5.0,
                   "loss": "summed_softmax", "batch_size": 256, "epochs": 150, "lr": 1e-3, "weight_decay": 1e-5,
                   "scheduler": "onecycle", "channel_group": 5},
}

#: The model ``spikelab train --dataset NAME`` builds when ``--model`` is not given, with the options measured
#: best for it on that dataset (N-MNIST: ``experiments/nmnist_sample.py``); they apply to that model only. The
#: binning (dt, duration, pooling) is the dataset's: :data:`spikelab.datasets.DATASET_DEFAULTS`.
DATASET_MODELS = {
    "demo": {"model": "mlp", "epochs": 15},
    "nmnist": {"model": "conv", "pool": "max", "dropout": 0.3, "epochs": 20},
    "shd": {"model": "mlp"},
}


def training_defaults(dataset: str, model: str | None = None) -> dict:
    """The ``model`` (None: the dataset's default model) and the defaults of every option in
    :data:`GENERIC_DEFAULTS` for ``spikelab train --dataset dataset``: the dataset's own settings
    (:data:`DATASET_MODELS`) if the model is the dataset's default model, else the model's published ones
    (:data:`MODEL_DEFAULTS`), else the generic ones."""
    if dataset not in DATASET_MODELS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(sorted(DATASET_MODELS))}")
    tuned = DATASET_MODELS[dataset]
    model = tuned["model"] if model is None else model
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)} (see `spikelab models`)")
    return {**GENERIC_DEFAULTS, **MODEL_DEFAULTS.get(model, {}), **(tuned if model == tuned["model"] else {}),
            "model": model}


def build_model(name: str, input_shape, num_classes: int, dt: float | None = None, **options):
    """Build the named architecture; ``dt`` (ms) is the time step it runs at (kept by the model), options are the
    builder's keyword arguments."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)} (see `spikelab models`)")
    model = MODELS[name](tuple(input_shape), num_classes, **options)
    model.dt = dt
    return model
