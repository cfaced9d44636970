r"""``LiquidStateMachine``: a NALSM liquid as an ``nn.Module`` (plastic or frozen), saved and loaded safely.

The dynamics, the plasticity and the batch modes are those of :mod:`spikelab.functional.liquid`; the wiring is a
:class:`~spikelab.liquid.topology.LiquidTopology`. The module holds the topology, the parameters and the current
weights (the buffer ``weight``, one per synapse in the topology's order)::

    >>> import torch
    >>> from spikelab.liquid import LiquidStateMachine
    >>> lsm = LiquidStateMachine(size=(5, 5, 4), n_input=50, seed=0)
    >>> x = (torch.rand(100, 8, 50) < 0.05).float()        # (T, B, n_input) input events per ms
    >>> out = lsm(x)                                        # plastic, independent: weights left as they were
    >>> out.spikes.shape, out.counts.shape                  # (100, 8, 100) uint8, (8, 100) int32
    >>> lsm.learn(x[:20])                                   # sequential: the weights carry over and are kept

``forward(x, plastic=None, batch_mode="independent", record=True, keep_weights=False)``:

* ``plastic`` None: STDP as the plasticity parameters say (``plasticity.stdp``); False: frozen weights.
* ``batch_mode="independent"``: every sample starts from ``self.weight`` and learns alone (NALSM's feature
  extraction); ``self.weight`` does not change. ``"sequential"``: samples one after the other, the weights
  carried, and ``self.weight`` keeps the result (NALSM's initialisation; what :meth:`learn` does).
* ``record=False``: counts only (no ``(T, B, n_liquid)`` raster): faster and smaller.
* ``rate_decay``: overrides ``plasticity.rate_decay`` for this run (NALSM's feature extraction: 0.99).

``backend="numba"`` (default) runs the compiled kernel; ``"torch"`` the reference loop (slow; identical spikes).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from spikelab.errors import CheckpointError, ConfigError
from spikelab.functional.liquid import (AstroSTDPParameters, LiquidOutput, LiquidParameters, check_astro_parameters,
                                        check_liquid_parameters, liquid_reference, liquid_run)
from spikelab.liquid.topology import NMNIST_INPUTS, LiquidTopology, grid_liquid

BACKENDS = ("numba", "torch")
MODEL_NAME = "nalsm"
#: w_A per liquid size in the paper (``reference/algorithms.md`` §3.5)
ASTRO_W = {1000: 0.015, 8000: 0.0075}


class LiquidStateMachine(nn.Module):
    """A NALSM liquid (module docstring).

    Args:
        topology: the wiring; None: drawn by :func:`~spikelab.liquid.topology.grid_liquid` from ``size``,
            ``n_input``, ``input_density`` and ``seed``.
        size: liquid grid, 1000 (10x10x10), 8000 (20x20x20) or a 3-tuple.
        n_input: input channels (N-MNIST 2312).
        input_density: probability of each input -> liquid synapse (0.15).
        seed: seeds the topology.
        neuron: :class:`~spikelab.functional.liquid.LiquidParameters`.
        plasticity: :class:`~spikelab.functional.liquid.AstroSTDPParameters`; its ``astro_w`` defaults to the
            paper's value for the size (0.015 at 1000, 0.0075 at 8000) when left at the default.
        backend: ``"numba"`` or ``"torch"``.
    """

    def __init__(self, topology: LiquidTopology | None = None, *, size=1000, n_input: int = NMNIST_INPUTS,
                 input_density: float = 0.15, seed: int = 0, neuron: LiquidParameters = LiquidParameters(),
                 plasticity: AstroSTDPParameters | None = None, backend: str = "numba"):
        super().__init__()
        if topology is None:
            topology = grid_liquid(size, n_input=n_input, input_density=input_density, seed=seed)
        if not isinstance(topology, LiquidTopology):
            raise ConfigError(f"topology must be a LiquidTopology, got {type(topology).__name__}")
        if plasticity is None:
            plasticity = AstroSTDPParameters(astro_w=ASTRO_W.get(topology.n_liquid, AstroSTDPParameters().astro_w))
        self.topology = topology
        self.neuron = check_liquid_parameters(neuron)
        self.plasticity = check_astro_parameters(plasticity)
        self.backend = backend
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.register_buffer("weight", torch.as_tensor(topology.weight, dtype=torch.float32).clone())

    @property
    def n_input(self) -> int:
        return self.topology.n_input

    @property
    def n_liquid(self) -> int:
        return self.topology.n_liquid

    def forward(self, x: Tensor, plastic: bool | None = None, batch_mode: str = "independent", record: bool = True,
                keep_weights: bool = False, rate_decay: float | None = None) -> LiquidOutput:
        """Run input events ``x`` ``(T, B, n_input)`` through the liquid (options in the module docstring)."""
        plasticity = self.plasticity
        if plastic is not None:
            plasticity = plasticity._replace(stdp=bool(plastic))
        if rate_decay is not None:
            plasticity = check_astro_parameters(plasticity._replace(rate_decay=rate_decay))
        x = x if x.dtype == torch.float64 else x.float()
        with torch.no_grad():
            if self.backend == "torch":
                out = liquid_reference(x, self.weight, self.topology, self.neuron, plasticity, batch_mode,
                                       keep_weights)
                if not record:
                    out = out._replace(spikes=None)
            else:
                out = liquid_run(x, self.weight, self.topology, self.neuron, plasticity, batch_mode, keep_weights,
                                 record)
            if batch_mode == "sequential" and out.weights is not None:
                self.weight.copy_(out.weights)
        return out

    def learn(self, x: Tensor, record: bool = False) -> LiquidOutput:
        """Plastic, sequential run that keeps the learned weights (NALSM's liquid initialisation)."""
        return self(x, plastic=True, batch_mode="sequential", record=record)

    def reset_weights(self) -> None:
        """Back to the topology's initial weights (all at the largest magnitude)."""
        self.weight.copy_(torch.as_tensor(self.topology.weight))

    def extra_repr(self) -> str:
        p = self.plasticity
        rule = "frozen" if not p.stdp else ("STDP + astrocyte" if p.astrocyte else "STDP, no astrocyte")
        return (f"shape={self.topology.shape}, n_input={self.n_input}, synapses={self.topology.n_synapses}, "
                f"{rule}, backend={self.backend!r}")

    # saving: plain data and tensors only (read with torch.load(weights_only=True))
    def checkpoint(self) -> dict:
        """The liquid as a spikelab checkpoint dict (``spikelab.training.checkpoint`` format)."""
        topology = {k: (torch.as_tensor(v) if not isinstance(v, (int, list)) else v)
                    for k, v in self.topology.state_dict().items()}
        return {"model_name": MODEL_NAME,
                "model_spec": {"neuron": self.neuron._asdict(), "plasticity": self.plasticity._asdict(),
                               "backend": self.backend},
                "model_state": {"topology": topology, "weight": self.weight.clone()}}

    def save(self, path) -> None:
        """Write the liquid (topology, parameters, learned weights) to ``path``."""
        from spikelab.training.checkpoint import save_checkpoint

        save_checkpoint(path, self.checkpoint())

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "LiquidStateMachine":
        if checkpoint.get("model_name") != MODEL_NAME:
            raise CheckpointError(f"this checkpoint holds a {checkpoint.get('model_name')!r} model, not a liquid "
                                  f"({MODEL_NAME!r})")
        spec, state = checkpoint["model_spec"], checkpoint["model_state"]
        topology = LiquidTopology.from_state_dict({k: (v.numpy() if isinstance(v, Tensor) else v)
                                                   for k, v in state["topology"].items()})
        lsm = cls(topology, neuron=LiquidParameters(**spec["neuron"]),
                  plasticity=AstroSTDPParameters(**spec["plasticity"]), backend=spec["backend"])
        lsm.weight.copy_(state["weight"])
        return lsm

    @classmethod
    def load(cls, path) -> "LiquidStateMachine":
        """Read a liquid written by :meth:`save` (safely: no code runs from the file)."""
        from spikelab.training.checkpoint import load_checkpoint

        return cls.from_checkpoint(load_checkpoint(path))
