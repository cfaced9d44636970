r"""NALSM's liquid (:class:`spikelab.liquid.LiquidStateMachine`) on simulated crossbars: :class:`CrossbarLiquid`.

Importing this module registers the liquid with :func:`~.convert.register_synapse`, so
``crossbar.convert(lsm, device, periphery, seed=...)`` works on a liquid and on any model that contains one.

**Mapping.** The liquid's sparse synapses (``pre`` global index, ``post`` liquid index, ``lsm.weight`` in the
topology's order) become two dense matrices, each programmed as one :class:`~.array.CrossbarArray`::

    input      (n_liquid, n_input):   W_in[post, pre]              for pre <  n_input
    recurrent  (n_liquid, n_liquid):  W_rec[post, pre - n_input]   for pre >= n_input

Only existing synapses get a cell pair (``cells``): an absent synapse has no cells, holds 0 µS at every time and
stays exactly 0 whatever the noise, faults or drift (:func:`~.tile.remove_cells`).

**Running.** The converted liquid runs the liquid's own engine (:func:`~spikelab.functional.liquid.liquid_run`,
or ``liquid_reference`` with ``backend="torch"``), frozen, on the weights the chip holds at the clock's time: each
synapse gets the entry of its array's :meth:`~.array.CrossbarArray.effective_weight` (the noise-free read)::

    w_ij(t) = W_eff(t)[i, j],     W_eff = (G+(t) - G-(t)) / (g_max - g_min) * w_max(tile) * drift compensation

The liquid steps 1 ms, so each forward of ``T`` steps moves the clock on by ``T`` ms (all samples of a batch run
side by side); a forward uses the weights at the clock's time when it starts.

**What is simulated.** Everything fixed when the cells are written or that follows time: finite levels,
programming noise sigma(G), device-to-device g_max spread, stuck cells, drift and retention (with the simulated
clock, :func:`~.convert.set_time`), first-order IR drop (folded into the conductances, as for every array) and
global drift compensation (a digital rescale).

**What is refused** (:class:`~spikelab.errors.ExportError`): read noise, output noise, the ADC and the DAC, the
effects of each single read. The NALSM neuron's current from presynaptic ``j`` is ``w_ij exp(-(t - t_j) / tau_u)
/ tau_u`` of ``j``'s latest spike, so a crossbar would drive its rows with these analog values every millisecond
(a DAC on every row, every row with a nonzero trace active), not with 1-bit spikes; the crossbar's reads draw
their noise for spike inputs, and the liquid's event-driven engine never forms the column sums a per-read noise
or ADC would act on. Convert with the per-read effects off, e.g. ``RRAM(read_noise=0.0)`` and
``Periphery(adc_bits=None, out_noise=0.0)`` (drift compensation and IR drop may stay).

**Frozen.** On-chip STDP is not simulated: a plastic forward (``plastic=True``, :meth:`CrossbarLiquid.learn`,
``keep_weights``) raises :class:`~spikelab.errors.ExportError`; learn on the float liquid, then convert it.

Example::

    >>> import torch
    >>> from spikelab.backends import crossbar
    >>> from spikelab.liquid import LiquidStateMachine
    >>> lsm = LiquidStateMachine(size=(5, 5, 4), n_input=50, seed=0)
    >>> chip = crossbar.convert(lsm, crossbar.RRAM(read_noise=0.0), crossbar.Periphery(adc_bits=None, out_noise=0.0))
    >>> crossbar.set_time(chip, 86400.0)                       # one day after programming
    >>> chip((torch.rand(100, 8, 50) < 0.05).float()).counts.shape
    torch.Size([8, 100])
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from spikelab.errors import ExportError
from spikelab.functional.liquid import liquid_reference, liquid_run
from spikelab.liquid.machine import MODEL_NAME, LiquidStateMachine
from spikelab.spec import LAYER_TYPES

from .convert import register_synapse

DT_MS = 1.0                              # the liquid's time step (its kernel's)
SHELL_TYPE = "LiquidStateMachineShell"   # the spec type of a converted liquid's source (see source_spec)


def dense_matrices(liquid: LiquidStateMachine) -> dict[str, tuple[Tensor, Tensor]]:
    """``{"input": (matrix, cells), "recurrent": (matrix, cells)}``: the liquid's weights as dense ``(n_liquid,
    rows)`` float64 matrices (0 where no synapse) and the bool masks of the existing synapses."""
    topology = liquid.topology
    pre = torch.as_tensor(topology.pre, dtype=torch.long)
    post = torch.as_tensor(topology.post, dtype=torch.long)
    weight = liquid.weight.detach().double()
    found = {}
    for part, chosen, offset, rows in (("input", pre < topology.n_input, 0, topology.n_input),
                                       ("recurrent", pre >= topology.n_input, topology.n_input, topology.n_liquid)):
        matrix = torch.zeros(topology.n_liquid, rows, dtype=torch.float64)
        cells = torch.zeros(topology.n_liquid, rows, dtype=torch.bool)
        matrix[post[chosen], pre[chosen] - offset] = weight[chosen]
        cells[post[chosen], pre[chosen] - offset] = True
        found[part] = (matrix, cells)
    return found


def refuse_per_read_effects(device, periphery) -> None:
    """Raise :class:`~spikelab.errors.ExportError` if ``device`` / ``periphery`` have an effect of single reads
    (module docstring: why, and the fix)."""
    effects = [name for name, on in (("read_noise", device.read_noise > 0), ("out_noise", periphery.out_noise > 0),
                                     ("adc_bits", periphery.adc_bits is not None),
                                     ("dac_bits", periphery.dac_bits is not None)) if on]
    if effects:
        raise ExportError(
            f"the NALSM liquid cannot simulate per-read crossbar effects ({', '.join(effects)}): its synapses carry "
            "the analog current w * exp(-(t - t_last) / tau_u) of each presynaptic unit's latest spike, so the rows "
            "would be driven through a DAC every ms, not by 1-bit spikes, and the liquid's event-driven engine never "
            "forms the column reads such noise or an ADC would act on. Convert with them off, e.g. "
            "crossbar.RRAM(read_noise=0.0) and crossbar.Periphery(adc_bits=None, out_noise=0.0): levels, programming "
            "noise, stuck cells, g_max spread, drift, retention, IR drop and drift compensation are all simulated")


class CrossbarLiquid(nn.Module):
    """A frozen NALSM liquid whose input and recurrent weights are read from crossbar arrays (module docstring).

    ``forward(x, plastic=None, batch_mode="independent", record=True, keep_weights=False, rate_decay=None)`` takes
    and returns what :class:`~spikelab.liquid.LiquidStateMachine` does (``x`` ``(T, B, n_input)`` events per ms,
    a :class:`~spikelab.functional.liquid.LiquidOutput`); ``plastic`` must be None or False, ``rate_decay`` has
    nothing to act on. ``liquid`` is the float liquid the chip was programmed from (its software twin),
    ``input`` and ``recurrent`` the arrays.
    """

    def __init__(self, liquid: LiquidStateMachine, input_array, recurrent_array):
        super().__init__()
        frozen = liquid.plasticity._replace(stdp=False)
        self.liquid = LiquidStateMachine(liquid.topology, neuron=liquid.neuron, plasticity=frozen,
                                         backend=liquid.backend)
        self.liquid.weight.copy_(liquid.weight)
        self.input, self.recurrent = input_array, recurrent_array
        self._index = None   # (topology, flat index into each array per synapse) for synapse_weights

    @property
    def topology(self):
        return self.liquid.topology

    @property
    def n_input(self) -> int:
        return self.liquid.n_input

    @property
    def n_liquid(self) -> int:
        return self.liquid.n_liquid

    def _flat_index(self) -> tuple[Tensor, Tensor, Tensor]:
        """Which synapses are recurrent, and where each synapse sits in its flattened array (input ones, then
        recurrent ones); computed once per topology."""
        topology = self.topology
        if self._index is None or self._index[0] is not topology:
            pre = torch.as_tensor(topology.pre, dtype=torch.long)
            post = torch.as_tensor(topology.post, dtype=torch.long)
            recurrent = pre >= topology.n_input
            self._index = (topology, recurrent, post[~recurrent] * topology.n_input + pre[~recurrent],
                           post[recurrent] * topology.n_liquid + pre[recurrent] - topology.n_input)
        return self._index[1:]

    def synapse_weights(self) -> Tensor:
        """The weight of every synapse (the topology's order, ``(n_synapses,)``, the float liquid's dtype) as the
        chip holds it at the clock's time."""
        recurrent, input_index, recurrent_index = self._flat_index()
        weights = torch.empty(len(recurrent), dtype=torch.float64)
        weights[~recurrent] = self.input.effective_weight().flatten()[input_index]
        weights[recurrent] = self.recurrent.effective_weight().flatten()[recurrent_index]
        return weights.to(self.liquid.weight.dtype)

    def forward(self, x: Tensor, plastic: bool | None = None, batch_mode: str = "independent", record: bool = True,
                keep_weights: bool = False, rate_decay: float | None = None):
        if plastic or keep_weights:
            raise ExportError("a liquid on a crossbar is frozen: on-chip STDP is not simulated (the cells are "
                              "programmed once); run the plasticity on the float LiquidStateMachine, then convert the "
                              "learned liquid, and call the chip with plastic=None or False")
        x = x if x.dtype == torch.float64 else x.float()
        weights = self.synapse_weights()
        p = self.liquid
        if p.backend == "torch":
            out = liquid_reference(x, weights, p.topology, p.neuron, p.plasticity, batch_mode)
            out = out if record else out._replace(spikes=None)
        else:
            out = liquid_run(x, weights, p.topology, p.neuron, p.plasticity, batch_mode, False, record)
        for array in (self.input, self.recurrent):
            if array.time_dependent:
                array.advance(x.shape[0] * DT_MS / 1000.0)
        return out

    def learn(self, x: Tensor, record: bool = False):
        """Refused: the chip is frozen (see :meth:`forward`)."""
        return self(x, plastic=True, batch_mode="sequential", record=record)

    # saving: the topology and parameters ride in the state dict (plain data and tensors), so crossbar.save /
    # crossbar.load and load_state_dict restore the chip onto a liquid of the same sizes
    def get_extra_state(self) -> dict:
        checkpoint = self.liquid.checkpoint()
        return {"model_spec": checkpoint["model_spec"], "topology": checkpoint["model_state"]["topology"]}

    def set_extra_state(self, state: dict) -> None:
        self.liquid = LiquidStateMachine.from_checkpoint(
            {"model_name": MODEL_NAME, "model_spec": state["model_spec"],
             "model_state": {"topology": state["topology"], "weight": state["topology"]["weight"]}})
        self._index = None

    def source_spec(self) -> dict:
        """The spec :func:`~.convert.load` rebuilds before loading the state: a liquid of the same sizes (its
        topology, parameters and weights then come from the state dict)."""
        return {"type": SHELL_TYPE, "args": {"size": list(self.topology.shape), "n_input": self.n_input}}

    def extra_repr(self) -> str:
        return f"{self.liquid.extra_repr()}, on a crossbar: t={self.input.clock.item():g} s"


def liquid_shell(size, n_input: int) -> LiquidStateMachine:
    """A liquid of the given sizes (the spec :meth:`CrossbarLiquid.source_spec` names)."""
    return LiquidStateMachine(size=tuple(size), n_input=n_input)


def _convert_liquid(liquid: LiquidStateMachine, make_array, dt) -> CrossbarLiquid:
    if dt is not None and dt != DT_MS:
        raise ExportError(f"the NALSM liquid steps {DT_MS:g} ms (its kernel's step); convert it with dt=None or "
                          f"{DT_MS:g}, got {dt!r}")
    matrices = dense_matrices(liquid)
    input_array = make_array(matrices["input"][0], part="input", cells=matrices["input"][1])
    refuse_per_read_effects(input_array.device_model, input_array.periphery)
    recurrent_array = make_array(matrices["recurrent"][0], part="recurrent", cells=matrices["recurrent"][1])
    return CrossbarLiquid(liquid, input_array, recurrent_array)


register_synapse(LiquidStateMachine, _convert_liquid)
LAYER_TYPES.setdefault(SHELL_TYPE, liquid_shell)
