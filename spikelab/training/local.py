"""Local learning inside the Trainer (``mode="local"``): each batch, the attached rules learn from the spikes of
the forward pass, beside (or instead of) a gradient step on the other parameters.

One batch in local mode:

1. the whole sequence runs forward once; every rule captures the spikes of its layers (training mode);
2. if any parameter is left to gradient descent (a readout, say), the loss is backpropagated and the
   optimiser steps, exactly as in BPTT; the parameters a rule governs are frozen for autograd
   (``requires_grad = False``), so the gradient never touches them;
3. every rule updates its layers (in the order the model lists them), from the same forward pass; rules that
   ask for a reward (:class:`~spikelab.RewardSTDP`) get one per sample, by default +1 for a correct prediction
   and -1 for a wrong one.

The rules' state (carried traces, per-sample weights) goes into the Trainer's checkpoints beside the weights.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from spikelab.errors import CheckpointError, ConfigError
from spikelab.plasticity.base import LocalRule, local_rules


def correctness_reward(predict: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """The default reward: ``+1`` per sample whose prediction (``predict(output)``) is its target, ``-1`` otherwise."""

    def reward(output: Tensor, target: Tensor) -> Tensor:
        return (predict(output) == target).float() * 2 - 1

    return reward


class LocalLearning:
    """The rules attached inside ``model`` and the calls a training loop owes them.

    Args:
        model: a network with at least one rule attached (``sl.STDP(...).attach(layer, post=neuron)``).
        reward: ``reward(output (T, B, C), target (B,)) -> (B,) or (T, B)`` for rules that take a reward.
    """

    def __init__(self, model: nn.Module, reward: Callable[[Tensor, Tensor], Tensor]):
        self.rules: dict[str, LocalRule] = local_rules(model)
        if not self.rules:
            raise ConfigError("mode='local' found no local rule in the model: attach one first, e.g. "
                              "sl.STDP(...).attach(net[0], post=net[1]) or sl.Homeostasis().attach(neuron_layer)")
        self.reward = reward
        self.governed = [p for rule in self.rules.values() for p in rule.governed_parameters()]
        for parameter in self.governed:
            parameter.requires_grad_(False)

    def gradient_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The trainable parameters no rule governs: what the optimiser gets."""
        governed = {id(p) for p in self.governed}
        return [p for p in model.parameters() if p.requires_grad and id(p) not in governed]

    def update(self, output: Tensor, target: Tensor) -> None:
        """Let every rule learn from the batch just run (``output`` its output sequence, ``target`` its labels)."""
        reward = None
        for rule in self.rules.values():
            signals = {}
            if "reward" in rule.signals:
                reward = self.reward(output, target) if reward is None else reward
                signals["reward"] = reward
            rule.update(**signals)

    def clear(self) -> None:
        """Drop spikes captured by a forward pass that no update will use."""
        for rule in self.rules.values():
            rule.clear()

    def state_dict(self) -> dict:
        return {name: rule.state_dict() for name, rule in self.rules.items()}

    def load_state_dict(self, state: dict | None) -> None:
        if state is None or set(state) != set(self.rules):
            raise CheckpointError(f"the checkpoint's local rules {sorted(state or {})} are not the model's "
                                  f"{sorted(self.rules)}: attach the same rules to the same layers before resuming")
        for name, rule in self.rules.items():
            rule.load_state_dict(state[name])


def run_local_batch(model: nn.Module, loss_fn, x: Tensor, target: Tensor, learn_by_gradient: bool):
    """Forward one batch; backpropagate the loss when some parameters learn by gradient. Returns
    ``(loss, output)`` (a float and the detached output); the rules' updates come after the optimiser step."""
    with torch.set_grad_enabled(learn_by_gradient):
        out = model(x)
        loss = loss_fn(out, target)
        if learn_by_gradient and loss.requires_grad:
            loss.backward()
    return loss.item(), out.detach()
