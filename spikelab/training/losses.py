"""Classification losses on a network's output sequence ``(T, B, classes)``.

Each loss is a callable ``loss(out, target) -> scalar`` on the whole sequence (BPTT), with
``per_step(out_t, target, n_steps)``: the loss of one step, whose sum over the ``n_steps`` steps
that online training (SLTT) backpropagates stands in for the sequence loss; and
``predict(out) -> class indices``.

==========================  =================================================================
name                        loss on the output sequence ``o[t]`` (T steps), label y
==========================  =================================================================
``mean_membrane``           ``CE(mean_t o[t], y)``; o is a leaky readout's membrane (default)
``spike_count``             ``CE(sum_t o[t], y)``; o are output spikes, counts act as logits
``summed_softmax``          ``CE(sum_t softmax(o[t]), y)``; the DCLS paper's loss on the readout
                            membrane (Hammouamri et al. 2024)
``per_step``                ``(1/T) sum_t CE(o[t], y)``; sums over steps, so SLTT's per-step
                            losses add up to exactly this
==========================  =================================================================

``per_step`` of every loss is ``CE(o[t], y) / n_steps`` (the SLTT paper's per-step loss);
only for ``per_step`` is that an exact decomposition of the sequence loss.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..decoding import class_scores
from ..errors import ConfigError


class SequenceLoss:
    """Base: cross-entropy on the per-class scores that :func:`spikelab.decoding.class_scores` builds from the
    output sequence under the loss's name (so training and every backend decode alike)."""

    name = ""

    def scores(self, out: Tensor) -> Tensor:
        """Per-class scores ``(B, classes)`` from the output sequence ``(T, B, classes)``."""
        return class_scores(out, self.name)

    def __call__(self, out: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(self.scores(out), target)

    def per_step(self, out_t: Tensor, target: Tensor, n_steps: int) -> Tensor:
        return F.cross_entropy(out_t, target) / n_steps

    def predict(self, out: Tensor) -> Tensor:
        return self.scores(out).argmax(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanMembraneCE(SequenceLoss):
    name = "mean_membrane"


class SpikeCountCE(SequenceLoss):
    name = "spike_count"


class SummedSoftmaxCE(SequenceLoss):
    name = "summed_softmax"


class PerStepCE(SequenceLoss):
    name = "per_step"

    def __call__(self, out, target):
        steps, batch, classes = out.shape
        return F.cross_entropy(out.reshape(steps * batch, classes), target.repeat(steps))


LOSSES = {cls.name: cls for cls in (MeanMembraneCE, SpikeCountCE, SummedSoftmaxCE, PerStepCE)}


def get_loss(loss: str | SequenceLoss) -> SequenceLoss:
    """A loss object from its name (see the table above), or the object itself."""
    if isinstance(loss, SequenceLoss):
        return loss
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[loss]()
