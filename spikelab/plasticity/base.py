"""What every local learning rule shares: attaching to layers, capturing their spikes, its state, finding rules.

A local rule is to local learning what an optimiser is to gradient learning: it is not part of the network (its
weights stay plain ``Linear`` weights, so ``sl.load``, export and NIR see an ordinary network), it changes the
parameters of the layers it is attached to, and a training loop calls it after each batch and saves its state in
checkpoints (``state_dict`` / ``load_state_dict``). Attaching registers forward hooks that keep references to the
spikes a layer receives and emits while the layer is in training mode (nothing is copied; nothing is kept in
evaluation mode). ``update()`` learns from everything captured since the last update, taken as one sequence in
time order: a whole-sequence forward ``(T, B, N)``, or the steps of a recurrent projection stacked in order.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError

RULES_ATTRIBUTE = "plasticity_rules"   # the list of rules attached to a module, on the module


class LocalRule:
    """Base class of local learning rules (see the module docstring).

    Subclasses define ``attach(...)`` (calling :meth:`_watch` for the layers whose spikes they need),
    :meth:`update`, and, if they keep state between updates, :meth:`state_dict` / :meth:`load_state_dict`.
    ``signals`` names the extra inputs ``update`` takes from a training loop (``("reward",)``, say).
    """

    signals: tuple[str, ...] = ()

    def __init__(self):
        self._hooks: list = []
        self._captured: dict[str, list[Tensor]] = {}
        self.owner: nn.Module | None = None      # the module the rule is registered on

    # -- attaching ------------------------------------------------------------------------------
    def _watch(self, module: nn.Module, name: str, side: str) -> None:
        """Capture ``module``'s input (``side="input"``) or output (``"output"``) under ``name`` in training mode."""

        def hook(mod, inputs, output):
            if mod.training:
                value = inputs[0] if side == "input" else output[0] if isinstance(output, tuple) else output
                self._captured.setdefault(name, []).append(value.detach())

        self._hooks.append(module.register_forward_hook(hook))

    def _register(self, owner: nn.Module) -> None:
        if self.owner is not None:
            raise ConfigError(f"this {type(self).__name__} is already attached; make one rule per layer "
                              "(or call detach() first)")
        self.owner = owner
        rules = owner.__dict__.setdefault(RULES_ATTRIBUTE, [])
        rules.append(self)

    def detach(self) -> None:
        """Remove the hooks and unregister the rule; the layers keep the weights it gave them."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self._captured.clear()
        if self.owner is not None:
            self.owner.__dict__[RULES_ATTRIBUTE].remove(self)
            self.owner = None

    # -- captured spikes ------------------------------------------------------------------------
    def captured(self, name: str) -> Tensor:
        """What was captured under ``name`` since the last update, as one ``(T, B, N)`` sequence."""
        parts = self._captured.get(name)
        if not parts:
            raise ConfigError(f"{type(self).__name__}.update() found no {name} spikes: run a whole-sequence "
                              "forward of the network in training mode (model.train()) before each update")
        if parts[0].dim() == 2:                   # single steps (a recurrent projection): stack them in time
            return torch.stack(parts)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def clear(self) -> None:
        """Forget the captured spikes (``update`` does this itself)."""
        self._captured.clear()

    # -- learning -------------------------------------------------------------------------------
    def update(self, **signals) -> None:
        """Change the attached layers' parameters from the spikes captured since the last update."""
        raise NotImplementedError

    def governed_parameters(self) -> list[nn.Parameter]:
        """The parameters this rule changes: a training loop keeps them out of the gradient optimiser."""
        return []

    def state_dict(self) -> dict:
        """Tensors and plain data to resume the rule exactly (empty when it keeps nothing between updates)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ConfigError(f"{type(self).__name__} keeps no state, but the checkpoint holds {sorted(state)}")


def local_rules(model: nn.Module) -> dict[str, LocalRule]:
    """Every rule attached inside ``model``, keyed ``"<module name>/<class name><index>"`` (stable across runs of
    the same code, so checkpoints can name them)."""
    rules = {}
    for name, module in model.named_modules():
        for index, rule in enumerate(module.__dict__.get(RULES_ATTRIBUTE, ())):
            rules[f"{name or '<model>'}/{type(rule).__name__}{index}"] = rule
    return rules
