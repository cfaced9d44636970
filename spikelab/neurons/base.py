r"""The neuron protocol: what every neuron layer shares, and what the rest of spikelab asks of one.

A neuron layer is a :class:`Neuron`. The graph export, NIR, recording, spike-rate metrics, the liquid and the
crossbar find neurons by ``isinstance(layer, Neuron)`` and ask them only for what is declared here:

=======================  =====================================================================================
member                   meaning
=======================  =====================================================================================
``spiking``              class attribute: True when the output is spikes (spike-rate metrics and the sparsity
                         penalty count it), False for a readout whose output is its membrane
``forward(x, state)``    a whole sequence ``(T, B, ...)`` -> a sequence of the same shape
``step(x_t, state)``     one step ``(B, ...)`` -> ``(y_t, new_state)``; ``state`` None means rest
``as_lif()``             the layer as an LIF simulator runs it (:class:`LIFDescription`), or an
                         :class:`~spikelab.errors.ExportError` that says why it has no LIF equivalent
``record``/``recorded``  set ``record = True`` and ``forward`` keeps its last output, detached, in
                         ``recorded`` (``{"spikes": ..., "v": ...}``; a readout has only ``"v"``)
=======================  =====================================================================================
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from spikelab.errors import ExportError


class LIFDescription(NamedTuple):
    r"""A neuron layer as an LIF simulator (PyNN, SpiNNaker, NIR, the float64 reference) runs it, per step::

        v[t] = beta * (1 - s[t-1]) * v[t-1] + mask[t] * I[t],   s[t] = v[t] >= threshold,
        mask[t] = 1 - s[t-1] if refractory_steps == 1 else 1

    ====================  ============  ===============================================================
    field                 unit          meaning
    ====================  ============  ===============================================================
    ``kind``              --            ``"lif"`` (spikes) or ``"readout"`` (never fires; its membrane
                                        is the output)
    ``beta``              1 per step    decay ``exp(-dt / tau_m)``: a float, or a tensor (learnable, per
                                        neuron)
    ``threshold``         input units   firing threshold (``inf`` for a readout)
    ``reset``             --            ``"zero"``, ``"subtract"`` or ``"none"`` (only ``"zero"`` runs
                                        exactly on PyNN / SpiNNaker)
    ``refractory_steps``  steps         0: the step after a spike integrates its input; 1: it drops it
    ====================  ============  ===============================================================
    """

    kind: str
    beta: float | Tensor
    threshold: float
    reset: str
    refractory_steps: int


class Neuron(nn.Module):
    """Base class of every neuron layer (see the module docstring for the protocol)."""

    spiking = True

    def __init__(self):
        super().__init__()
        self.record = False               # when True, forward keeps its outputs in self.recorded
        self.recorded: dict | None = None

    def step(self, x_t: Tensor, state=None):
        raise NotImplementedError

    def as_lif(self) -> LIFDescription:
        """This layer as an LIF simulator runs it; an ExportError when it is not an LIF neuron."""
        raise ExportError(f"{type(self).__name__} has no LIF equivalent, so PyNN, SpiNNaker and NIR cannot run it")

    def _keep(self, **recorded: Tensor) -> None:
        if self.record:
            self.recorded = {name: t.detach() for name, t in recorded.items()}
