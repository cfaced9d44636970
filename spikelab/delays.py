r"""Dense layer with one learnable synaptic delay per synapse (DCLS, Hammouamri et al., ICLR 2024).

:class:`DelayedLinear` is a :class:`~spikelab.layers.Linear` whose every synapse ``(o, i)`` also delays its input
by a real number of steps ``d[o, i]`` in ``[0, max_delay]``, learned by backprop through a Gaussian-interpolated
tap (see :mod:`spikelab.functional.delays`)::

    K[o, i, k] = w[o, i] * softmax_k(-((k - d[o, i]) / sigma)^2 / 2),      k = 0 .. max_delay
    y[t, b, o] = sum_i sum_k K[o, i, k] * x[t - k, b, i]  (+ bias[o]),     x[t < 0] = 0

Training recipe (SHD, DCLS paper / ``Thvnvtos/SNN-delays``, plus a rounded last phase):

* ``sigma`` starts wide (``(max_delay + 1)//2 + 0.27`` steps: 12.27 for SHD's ``max_delay = 24``) and shrinks
  every epoch, ``sigma(e) = 0.27 + (sigma_init - 0.27) * a^min(e, E)`` with ``E = epochs * sigma_fraction``
  (a quarter of the run) and ``a`` chosen so that ``sigma(E) = sigma_final = 0.5``; then it stays there. Call
  :meth:`DelayedLinear.set_epoch` (or :func:`set_epoch` on a whole model) at the start of every epoch.
* The last ``round_fraction`` of the epochs (default half: epochs ``e >= ceil(epochs * (1 - round_fraction))``,
  75-149 of SHD's 150) train on what evaluation runs: one-hot taps at the rounded delays, with a straight-through
  gradient to the delays (that of Gaussian taps of width ``sigma_final`` centred on the rounded delay). DCLS keeps
  Gaussian taps to the end and rounds only for evaluation; where the hidden neurons have almost no memory a tap
  spread over two steps cannot pass for an integer delay, and that loses what training learned (3 classes told
  apart by a spike-time gap, beta 0.05: 1.00 in train mode, 0.44 +- 0.30 after rounding over 10 seeds; 0.99 with the
  rounded phase, ``experiments/delays_rounding.py``). The phase needs learning rate left to adapt in: under
  cosine annealing the last fifth of the run has about 1 % of it, which is why it is the second half.
* After every optimiser step, :meth:`DelayedLinear.clamp_parameters` clamps the delays into ``[0, max_delay]``
  (spikelab's Trainer calls it on every module that has it).
* Positions get their own learning rate: published SHD values are Adam ``lr = 0.1`` for positions (100x the
  weights' ``1e-3``, no weight decay, cosine annealing) and Adam ``lr = 1e-3``, weight decay ``1e-5``
  (OneCycle to ``5e-3``) for the weights. :func:`delay_param_groups` builds those two groups.
* In ``eval()`` mode the delays are rounded to whole steps and the kernel is one-hot: the layer is then an exact
  integer-delay layer (all published accuracies are measured this way, and hardware runs it). The parameters are
  not modified; :meth:`DelayedLinear.round_` rounds them in place if you want that.

Speed: in training mode the convolution runs through a real DFT as matrix products whenever that needs under half
the multiply-adds of ``conv1d`` (5-6x fewer in the SHD setting; see :mod:`spikelab.functional.delays`), in the
rounded phase too (there it equals the integer-delay layer to float rounding); eval mode keeps ``conv1d`` so
integer delays stay exact. A kernel built without autograd (evaluation, ``step`` loops under ``torch.no_grad``) is
reused until the weights, delays, sigma or taps (Gaussian or rounded) change. :func:`delay_summary` describes the
learned delays (``spikelab inspect RUN_DIR`` prints it and plots one histogram per layer).

Plain PyTorch loop::

    opt = torch.optim.Adam(sl.delay_param_groups(net, lr=1e-3, position_lr=0.1))
    for epoch in range(epochs):
        sl.set_epoch(net, epoch, epochs)          # sigma schedule, rounded taps in the last phase
        net.train()
        for x, y in loader:
            opt.zero_grad(); loss_fn(net(x), y).backward(); opt.step()
            sl.clamp_parameters(net)              # keep delays in [0, max_delay]
        net.eval()                                # rounded integer delays for evaluation
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .functional.delays import delay_kernel, delayed_linear, delayed_linear_step
from .spec import configurable

SIGMA_OFFSET = 0.27  # DCLS: sigma_eff = |SIG| + 0.27; the schedule decays SIG geometrically

__all__ = ["DelayedLinear", "delay_param_groups", "delay_summary"]


@configurable
class DelayedLinear(nn.Module):
    r"""Dense weights with one learnable delay per synapse, over a time-first sequence.

    Per output step ``t`` (``x[t] = 0`` for ``t < 0``)::

        y[t] = sum_k K[:, :, k] @ x[t - k] + bias,    K[o, i, :] = w[o, i] * one Gaussian tap at d[o, i]

    Training mode uses the Gaussian tap of width ``sigma`` (the current schedule value; gradients reach the
    delays), and in the schedule's last phase (``straight_through``, set by :meth:`set_epoch`) the one-hot tap at
    ``round(d)`` with a straight-through gradient to the delays. Eval mode uses the one-hot tap at ``round(d)``:
    ``y[t, o] = sum_i w[o, i] x[t - round(d[o, i]), i]``.

    ===================  ============  ==============  ==========================================================
    parameter            unit          default         meaning
    ===================  ============  ==============  ==========================================================
    ``in_features``      --            (required)      input size
    ``out_features``     --            (required)      output size
    ``max_delay``        steps         (required)      longest delay ``D`` (>= 0); the kernel has ``D + 1`` taps.
                                                       SHD: 24 (240 ms at 10 ms steps)
    ``bias``             --            False           learn an additive bias per output
    ``extend``           --            False           True: ``forward`` returns ``T + D`` steps (the input is
                                                       followed by ``D`` zero steps so late inputs still arrive)
    ``sigma_init``       steps         None            Gaussian width at epoch 0; None: ``(D + 1)//2 + 0.27``
                                                       (DCLS: ``M//2 + 0.27`` with ``M = D + 1`` taps), at least
                                                       ``sigma_final``
    ``sigma_final``      steps         0.5             width reached after ``sigma_fraction`` of the epochs
                                                       (> 0.27, the DCLS floor)
    ``sigma_fraction``   1             0.25            fraction of the epochs over which sigma decays
    ``round_fraction``   1             0.5             fraction of the epochs, at the end, trained on the rounded
                                                       one-hot taps with a straight-through gradient to the delays
                                                       (epochs ``e >= ceil(epochs * (1 - round_fraction))``); 0:
                                                       Gaussian taps to the end, as DCLS. ``sigma_fraction +
                                                       round_fraction <= 1``
    ``learn_delays``     --            True            False: random delays, fixed (ablation "lr0")
    ===================  ============  ==============  ==========================================================

    Parameters: ``weight`` ``(out, in)`` (uniform ``+-1/sqrt(in)`` as :class:`torch.nn.Linear`), ``position``
    ``(out, in)`` = the delays in steps (initialised uniform in ``[0, D]``; a frozen parameter when
    ``learn_delays=False``), ``bias`` ``(out,)`` if requested. Buffer ``sigma`` (scalar, saved in checkpoints).

    Shapes:
        ``forward``: ``(T, B, in)`` -> ``(T, B, out)``, or ``(T + D, B, out)`` with ``extend=True``.
        ``step``: ``(B, in)`` -> ``(y_t (B, out), history (D, B, in))``, the last ``D`` inputs newest first
        (``None`` at the first step). A loop of ``step`` equals ``forward`` with ``extend=False``; for the extended
        output feed ``D`` more zero steps.

    Example::

        >>> import torch
        >>> from spikelab.delays import DelayedLinear
        >>> layer = DelayedLinear(140, 256, max_delay=24)
        >>> layer(torch.rand(100, 8, 140)).shape
        torch.Size([100, 8, 256])
        >>> layer.set_epoch(0, 150); round(layer.sigma.item(), 2)
        12.27
    """

    # fallbacks for modules pickled before the rounded phase existed: they were trained with Gaussian taps to the end
    round_fraction, straight_through = 0.0, False

    def __init__(self, in_features: int, out_features: int, max_delay: int, bias: bool = False,
                 extend: bool = False, sigma_init: float | None = None, sigma_final: float = 0.5,
                 sigma_fraction: float = 0.25, round_fraction: float = 0.5, learn_delays: bool = True):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if isinstance(max_delay, bool) or not isinstance(max_delay, int) or max_delay < 0:
            raise ConfigError(f"max_delay must be an int >= 0 (steps), got {max_delay!r}")
        if sigma_init is None:
            sigma_init = max((max_delay + 1) // 2 + SIGMA_OFFSET, sigma_final)
        if not sigma_final > SIGMA_OFFSET:
            raise ConfigError(f"sigma_final must be > {SIGMA_OFFSET} steps, got {sigma_final!r}")
        if not sigma_init >= sigma_final:
            raise ConfigError(f"sigma_init ({sigma_init}) must be >= sigma_final ({sigma_final})")
        if not 0 < sigma_fraction <= 1:
            raise ConfigError(f"sigma_fraction must be in (0, 1], got {sigma_fraction!r}")
        if not 0 <= round_fraction < 1 or sigma_fraction + round_fraction > 1:
            raise ConfigError(f"round_fraction must be in [0, 1) with sigma_fraction + round_fraction <= 1 (the "
                              f"rounded epochs follow the sigma decay), got round_fraction {round_fraction!r} and "
                              f"sigma_fraction {sigma_fraction!r}")
        self.in_features, self.out_features, self.max_delay = in_features, out_features, max_delay
        self.extend, self.learn_delays = bool(extend), bool(learn_delays)
        self.sigma_init, self.sigma_final, self.sigma_fraction = float(sigma_init), float(sigma_final), sigma_fraction
        self.round_fraction = float(round_fraction)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.position = nn.Parameter(torch.empty(out_features, in_features).uniform_(0.0, float(max_delay)),
                                     requires_grad=self.learn_delays)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        self.register_buffer("sigma", torch.tensor(self.sigma_init))
        self.straight_through = False  # set_epoch: train on rounded taps (the schedule's last phase)
        self._cache = None  # (key, sources, kernel, values) of the last kernel built without autograd, see _kernel

    # -- schedule, constraints, parameter groups ---------------------------------------------------------------
    def sigma_at(self, epoch: int, epochs: int) -> float:
        """The schedule's width at the start of ``epoch`` (0-based) of ``epochs``."""
        final_epoch = max(1, int(epochs * self.sigma_fraction))
        start, end = self.sigma_init - SIGMA_OFFSET, self.sigma_final - SIGMA_OFFSET
        fraction = min(epoch, final_epoch) / final_epoch
        return SIGMA_OFFSET + start * (end / start) ** fraction

    def rounded_at(self, epoch: int, epochs: int) -> bool:
        """Whether ``epoch`` (0-based) of ``epochs`` trains on rounded taps: the last ``round_fraction`` of them."""
        return self.round_fraction > 0 and epoch >= math.ceil(epochs * (1 - self.round_fraction))

    @torch.no_grad()
    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Set the schedule for the start of ``epoch`` (0-based) of ``epochs``: ``sigma`` decays geometrically from
        ``sigma_init`` to ``sigma_final`` over the first ``sigma_fraction`` of the epochs and stays there; the last
        ``round_fraction`` of the epochs train on rounded taps (``straight_through``). Call every epoch."""
        self.sigma.fill_(self.sigma_at(epoch, epochs))
        self.straight_through = self.rounded_at(epoch, epochs)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamp the delays into ``[0, max_delay]`` in place (after each optimiser step)."""
        self.position.clamp_(0.0, float(self.max_delay))

    @torch.no_grad()
    def round_(self) -> "DelayedLinear":
        """Round the delays to whole steps in place (e.g. before fine-tuning with frozen delays)."""
        self.position.round_().clamp_(0.0, float(self.max_delay))
        return self

    def position_parameters(self) -> list[nn.Parameter]:
        """The delay parameters (empty when ``learn_delays=False``): give them their own learning rate."""
        return [self.position] if self.learn_delays else []

    def weight_parameters(self) -> list[nn.Parameter]:
        """The weight (and bias) parameters."""
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    @property
    def rounded(self) -> bool:
        """Whether ``forward`` uses the one-hot taps at the rounded delays: in eval mode, and in training mode during
        the schedule's rounded phase."""
        return not self.training or self.straight_through

    @property
    def delays(self) -> Tensor:
        """The delays ``forward`` uses, in steps ``(out, in)`` (detached): rounded when :attr:`rounded`, else real."""
        d = self.position.detach().clamp(0.0, float(self.max_delay))
        return d.round() if self.rounded else d

    def integer_delays(self) -> Tensor:
        """The whole-step delays ``(out, in)`` (int64) that evaluation and hardware use, in any mode."""
        return self.position.detach().clamp(0.0, float(self.max_delay)).round().long()

    # -- computation ---------------------------------------------------------------------------------------------
    def kernel(self) -> Tensor:
        """The dense kernel ``(out, in, max_delay + 1)``: one-hot taps at the rounded delays in eval mode and in the
        rounded phase of training (then with a straight-through gradient to the delays), else Gaussian taps."""
        if not self.training:
            return delay_kernel(self.weight, self.position, 0.0, self.max_delay)
        return delay_kernel(self.weight, self.position, self.sigma, self.max_delay,
                            straight_through=self.straight_through)

    def _kernel(self) -> Tensor:
        """:meth:`kernel`, reused while no gradient is wanted and weights, delays, sigma and taps are unchanged
        (evaluation, ``step`` loops under ``torch.no_grad``); rebuilt whenever autograd needs its graph.

        "Unchanged": each source tensor keeps its identity, storage, dtype, device and version counter, which every
        change through torch advances (optimiser steps, :meth:`clamp_parameters`, :meth:`set_epoch`,
        ``load_state_dict``, moving or casting the module); this check reads no value on the host, so a GPU never
        waits for it. On the CPU, where reading costs no synchronisation, the values are compared too, so in-place
        edits through ``.data`` (which bypass version counters) are seen; on a GPU a forward pass with gradients
        drops the cache after such edits."""
        needs_graph = torch.is_grad_enabled() and (self.weight.requires_grad or
                                                    (self.training and self.position.requires_grad))
        if needs_graph:
            self._cache = None
            return self.kernel()
        sources = (self.weight, self.position, self.sigma)
        key = (self.rounded, tuple((t.data_ptr(), t.dtype, t.device, t._version) for t in sources))
        on_cpu = self.weight.device.type == "cpu"
        cache = getattr(self, "_cache", None)  # (modules pickled before the cache existed lack it)
        fresh = cache is not None and cache[0] == key and all(a is b for a, b in zip(cache[1], sources))
        if fresh and on_cpu:
            fresh = all(torch.equal(a, b) for a, b in zip(cache[3], sources))
        if not fresh:
            with torch.no_grad():
                # the source tensors themselves are kept: their identity is part of the key
                values = tuple(t.detach().clone() for t in sources) if on_cpu else None
                cache = self._cache = (key, sources, self.kernel(), values)
        return cache[2]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ConfigError(f"DelayedLinear({self.in_features}, {self.out_features}) expects a time-first input "
                              f"(T, B, {self.in_features}), got {tuple(x.shape)}; transpose batch-first data with "
                              "x.transpose(0, 1) and flatten the features")
        # eval: one-hot taps through conv1d, so the integer delays are exact; training: whichever is cheaper
        return delayed_linear(x, self._kernel(), self.bias, extend=self.extend,
                              method="auto" if self.training else "conv")

    def step(self, x_t: Tensor, state: Tensor | None = None):
        return delayed_linear_step(x_t, state, self._kernel(), self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, max_delay={self.max_delay}, "
                f"bias={self.bias is not None}, extend={self.extend}, sigma={self.sigma.item():.3g}, "
                f"round_fraction={self.round_fraction:g}, learn_delays={self.learn_delays}"
                + (", straight_through" if self.straight_through else ""))


def _delay_layers(model: nn.Module) -> list[DelayedLinear]:
    return [m for m in model.modules() if isinstance(m, DelayedLinear)]


def delay_param_groups(model: nn.Module, lr: float = 1e-3, position_lr: float | None = None,
                       weight_decay: float = 0.0) -> list[dict]:
    """Two optimiser parameter groups: all delay positions of ``model``, and every other trainable parameter.

    Args:
        lr: learning rate of the weights and all other parameters (published SHD: 1e-3 with Adam).
        position_lr: learning rate of the delays (default ``100 * lr``; published SHD: 0.1).
        weight_decay: weight decay of the non-delay parameters (published SHD: 1e-5); delays get none.

    Returns:
        ``[{"params": others, "lr": lr, "weight_decay": weight_decay},
        {"params": positions, "lr": position_lr, "weight_decay": 0.0}]`` for any ``torch.optim`` optimiser.
    """
    positions = [p for layer in _delay_layers(model) for p in layer.position_parameters()]
    ids = {id(p) for p in positions}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": others, "lr": lr, "weight_decay": weight_decay},
            {"params": positions, "lr": 100.0 * lr if position_lr is None else position_lr, "weight_decay": 0.0,
             "schedule": "cosine"}]


def delay_summary(model: nn.Module, dt: float | None = None) -> list[dict]:
    """The integer delays of every :class:`DelayedLinear` with ``max_delay > 0`` in ``model``, summarised.

    Args:
        model: any module; its delay layers are found with ``named_modules``.
        dt: the time step in ms, to also give the delays in ms (None: steps only).

    Returns:
        One dict per delay layer, in module order: ``name`` (module path), ``in_features``, ``out_features``,
        ``synapses``, ``max_delay`` (steps), ``learned`` (False for fixed random delays), ``delays`` (the
        rounded delays ``(out, in)`` in steps, as evaluation uses them), ``counts`` (synapses per delay
        ``0 .. max_delay``, summing to ``synapses``), ``mean`` and ``median`` (steps), ``share_zero`` and
        ``share_max`` (fraction of synapses at delay 0 and at ``max_delay``), and with ``dt`` also
        ``dt``, ``mean_ms``, ``median_ms``.
    """
    rows = []
    for name, layer in model.named_modules():
        if not isinstance(layer, DelayedLinear) or layer.max_delay == 0:
            continue
        delays = layer.integer_delays().cpu().double()
        counts = torch.bincount(delays.flatten().long(), minlength=layer.max_delay + 1)
        ordered, n = delays.flatten().sort().values, delays.numel()
        row = {"name": name, "in_features": layer.in_features, "out_features": layer.out_features,
               "synapses": delays.numel(), "max_delay": layer.max_delay, "learned": layer.learn_delays,
               "delays": delays, "counts": counts.tolist(), "mean": delays.mean().item(),
               "median": (ordered[(n - 1) // 2] + ordered[n // 2]).item() / 2, "share_zero": counts[0].item() / delays.numel(),
               "share_max": counts[-1].item() / delays.numel()}
        if dt is not None:
            row.update(dt=float(dt), mean_ms=row["mean"] * dt, median_ms=row["median"] * dt)
        rows.append(row)
    return rows
