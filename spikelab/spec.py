"""Rebuildable modules: a model's architecture as plain data, so a checkpoint can hold it.

A spikelab layer class is decorated with :func:`configurable`, which records the arguments each
instance was built with. :func:`spec_of` turns a model made of such layers (nested in
:class:`spikelab.layers.Sequential`) into nested dicts of numbers and strings, which
``torch.load(..., weights_only=True)`` reads without running code; :func:`build` turns the dicts
back into a fresh module with the same architecture.

>>> import spikelab as sl
>>> net = sl.Sequential(sl.Linear(4, 3), sl.LIF(beta=0.8))
>>> sl.spec.build(sl.spec.spec_of(net))
Sequential(
  (0): Linear(in_features=4, out_features=3, bias=True)
  (1): LIF(beta=0.8, threshold=1.0, reset=zero, refractory_steps=0, surrogate=atan, slope=2.0)
)
"""
from __future__ import annotations

import functools
import inspect

from torch import nn

from .errors import ConfigError

LAYER_TYPES: dict[str, type] = {}


def _plain(value, where):
    """Arguments must be plain data (what a weights-only checkpoint can hold)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise ConfigError(
        f"{where}: argument value {value!r} is not plain data (number, string, list, dict); "
        "spikelab layers take plain arguments so a checkpoint can rebuild them"
    )


def configurable(cls):
    """Class decorator: remember constructor arguments in ``self.config`` and register the class by name."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        outermost = "config" not in self.__dict__
        if outermost:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = {name: value for name, value in bound.arguments.items()
                         if signature.parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                    inspect.Parameter.VAR_KEYWORD)}
            arguments.pop("self")
            object.__setattr__(self, "config", _plain(arguments, cls.__name__))
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    LAYER_TYPES[cls.__name__] = cls
    return cls


def spec_of(module: nn.Module) -> dict:
    """Describe ``module`` as plain nested dicts; raise ConfigError for modules spikelab can't rebuild."""
    from .layers import Sequential

    if isinstance(module, Sequential):
        spec = {"type": "Sequential", "layers": [spec_of(child) for child in module]}
        if module.dt is not None:
            spec["dt"] = module.dt
        return spec
    name = type(module).__name__
    if LAYER_TYPES.get(name) is type(module):
        return {"type": name, "args": dict(module.config)}
    raise ConfigError(
        f"cannot describe a {name} as plain data: build models from spikelab layers inside "
        "sl.Sequential, or keep your own class and pass model=YourModel(...) to sl.load()"
    )


def build(spec: dict) -> nn.Module:
    """Rebuild a module (untrained weights) from :func:`spec_of`'s description."""
    from .layers import Sequential

    if spec.get("type") == "Sequential":
        return Sequential(*(build(layer) for layer in spec["layers"]), dt=spec.get("dt"))
    cls = LAYER_TYPES.get(spec.get("type"))
    if cls is None:
        raise ConfigError(f"unknown layer type {spec.get('type')!r}; known: {sorted(LAYER_TYPES)}")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("args", {}).items()}
    return cls(**args)
