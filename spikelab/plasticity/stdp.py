"""Pair STDP on a projection (:class:`STDP`) and its reward-modulated, three-factor form (:class:`RewardSTDP`)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikelab.errors import ConfigError
from spikelab.functional.plasticity import (STDPParameters, STDPState, check_stdp_parameters, discounted_reward,
                                            stdp_update)
from spikelab.layers import Linear
from spikelab.neurons.base import Neuron
from spikelab.neurons.lif import RecurrentLIF
from spikelab.plasticity.base import LocalRule

BATCH_MODES = {"sum": "sum", "mean": "mean", "independent": "none"}   # batch mode -> reduce of stdp_terms


class STDP(LocalRule):
    r"""Pair STDP on the weights of one projection: an ``sl.Linear`` feeding a neuron layer, or the recurrent
    weights of an ``sl.RecurrentLIF``.

    After each sequence (weights frozen during it), with ``x`` the traces of :mod:`spikelab.functional.plasticity`
    (increment 1, decay ``exp(-1/tau)``) taken before each step::

        LTP[i, j] = a_plus  * sum_{t, b} s_post[t, b, i] * x_pre[t-1, b, j]      (pre before post)
        LTD[i, j] = a_minus * sum_{t, b} x_post[t-1, b, i] * s_pre[t, b, j]      (post before pre)
        W <- clamp(W + f_plus(W) * LTP - f_minus(W) * LTD, w_min, w_max)

    so a pair at ``dt = t_post - t_pre`` changes a weight by ``a_plus exp(-dt/tau_plus)`` (dt > 0) or
    ``-a_minus exp(dt/tau_minus)`` (dt < 0), and same-step spikes do not pair. Pre spikes are the projection's
    input as it arrives (for a recurrent projection: the layer's spikes of the step before), post spikes the
    neuron layer's output. Both sums are matrix products over all steps and samples at once.

    =====================  ===========  ==============  =======================================================
    parameter              unit         default         meaning
    =====================  ===========  ==============  =======================================================
    ``tau_plus``           steps        20.0            presynaptic trace time constant (LTP window)
    ``tau_minus``          steps        20.0            postsynaptic trace time constant (LTD window)
    ``a_plus``             weight       0.01            LTP per pair at ``dt -> 0+`` (multiplicative: fraction
                                                        of ``w_max - w``)
    ``a_minus``            weight       0.01            LTD per pair at ``dt -> 0-`` (multiplicative: fraction
                                                        of ``w - w_min``)
    ``pairing``            --           ``"all"``       ``"all"`` (all-to-all) or ``"nearest"`` (nearest
                                                        neighbour: only the latest spike of the other side)
    ``weight_dependence``  --           ``"additive"``  ``"additive"`` (``f = 1``) or ``"multiplicative"``
                                                        (``f_plus = w_max - w``, ``f_minus = w - w_min``)
    ``w_min``, ``w_max``   weight       0.0, 1.0        hard bounds: floats, or tensors broadcastable to the
                                                        weights (bounds per synapse type,
                                                        :func:`~spikelab.functional.plasticity.bounds_by_type`)
    ``batch``              --           ``"sum"``       ``"sum"`` / ``"mean"``: one weight matrix shared by the
                                                        batch, updated by the summed / mean change;
                                                        ``"independent"``: one matrix per sample, each changed by
                                                        its own sample only (equal to ``B`` runs one after the
                                                        other); the matrices are the rule's state (saved in the
                                                        Trainer's checkpoints), not the model's weights
    ``carry_traces``       --           False           keep the traces from one update to the next (one long
                                                        stream cut into sequences); False: each sequence starts
                                                        from rest
    =====================  ===========  ==============  =======================================================

    Example::

        >>> import torch, spikelab as sl
        >>> net = sl.Sequential(sl.Linear(100, 20, bias=False), sl.LIF(), sl.Linear(20, 3), sl.LeakyIntegrator())
        >>> stdp = sl.STDP(a_plus=1e-3, a_minus=1.2e-3, w_max=0.5).attach(net[0], post=net[1])
        >>> with torch.no_grad():
        ...     net((torch.rand(100, 8, 100) < 0.05).float())    # spikes captured in training mode
        >>> stdp.update()                                         # net[0].weight changed in place
    """

    def __init__(self, tau_plus: float = 20.0, tau_minus: float = 20.0, a_plus: float = 0.01, a_minus: float = 0.01,
                 pairing: str = "all", weight_dependence: str = "additive", w_min: float | Tensor = 0.0,
                 w_max: float | Tensor = 1.0, batch: str = "sum", carry_traces: bool = False):
        super().__init__()
        self.params = check_stdp_parameters(STDPParameters(tau_plus, tau_minus, a_plus, a_minus, pairing,
                                                           weight_dependence, w_min, w_max))
        if batch not in BATCH_MODES:
            raise ConfigError(f"batch must be one of {', '.join(BATCH_MODES)}, got {batch!r}")
        self.batch, self.carry_traces = batch, bool(carry_traces)
        self.traces: STDPState | None = None
        self.projection: nn.Linear | None = None
        self.post: Neuron | None = None

    def attach(self, projection: nn.Module, post: Neuron | None = None) -> STDP:
        """Learn ``projection``'s weights from its input spikes and ``post``'s output spikes; returns the rule.

        Args:
            projection: an ``sl.Linear`` (or ``nn.Linear``) whose output drives ``post``, or an ``sl.RecurrentLIF``
                (its recurrent weights; ``post`` is the layer itself).
            post: the neuron layer the projection drives (required for a Linear).
        """
        if isinstance(projection, RecurrentLIF):
            if post is not None and post is not projection:
                raise ConfigError("the recurrent weights of a RecurrentLIF drive the layer itself: leave post out")
            projection, post = projection.recurrent, projection
        elif not isinstance(projection, nn.Linear):
            raise ConfigError(f"STDP attaches to an sl.Linear or an sl.RecurrentLIF, not a "
                              f"{type(projection).__name__}")
        elif not isinstance(post, Neuron) or not post.spiking:
            raise ConfigError("STDP on a Linear needs post=the spiking neuron layer it drives (e.g. "
                              "stdp.attach(net[0], post=net[1])): its spikes are the postsynaptic spikes")
        if self.batch == "independent" and not isinstance(projection, Linear):
            raise ConfigError("batch='independent' keeps one weight matrix per sample, which needs an sl.Linear "
                              f"(it can run per-sample weights), not a {type(projection).__name__}")
        self._register(projection)
        self.projection, self.post = projection, post
        self._watch(projection, "pre", "input")
        self._watch(post, "post", "output")
        if self.batch == "independent":
            self._hooks.append(projection.register_forward_pre_hook(self._start_samples))
        return self

    def _start_samples(self, projection, inputs) -> None:
        """Independent mode, first training forward: every sample starts from the shared weights, as its own
        matrix (so every forward of the mode runs the same per-sample product)."""
        if projection.training and projection.sample_weight is None:
            x = inputs[0]
            projection.sample_weight = projection.weight.detach().expand(x.shape[x.dim() - 2], -1, -1).clone()

    def governed_parameters(self) -> list[nn.Parameter]:
        return [] if self.projection is None else [self.projection.weight]

    def update(self, post_spikes: Tensor | None = None) -> None:
        """Apply STDP for the spikes captured since the last update.

        Args:
            post_spikes: a teacher's postsynaptic spikes ``(T, B, N_post)`` to pair with instead of the layer's own
                (supervised STDP: the neuron is "made to fire" where it should).
        """
        self._learn(post_spikes, None)

    def _learn(self, post_spikes: Tensor | None, modulation: Tensor | None) -> None:
        if self.projection is None:
            raise ConfigError(f"attach the {type(self).__name__} to a layer before update()")
        pre = self.captured("pre")
        post = self.captured("post") if post_spikes is None else post_spikes.to(pre)
        self.clear()
        p = self.params
        if modulation is not None:   # a factor per step and sample scales every pair term of that step
            factor = modulation.to(pre).unsqueeze(-1)
            p = p._replace(a_plus=p.a_plus * factor, a_minus=p.a_minus * factor)
        with torch.no_grad():
            independent = self.batch == "independent"
            weights = self._sample_weights(pre.shape[1]) if independent else self.projection.weight
            new, traces = stdp_update(weights, pre, post, p, self.traces if self.carry_traces else None,
                                      BATCH_MODES[self.batch])
            self.traces = traces if self.carry_traces else None
            if independent:
                self.projection.sample_weight = new
            else:
                weights.copy_(new)

    def _sample_weights(self, batch: int) -> Tensor:
        weights = self.projection.sample_weight
        if weights is None:   # captured without a training forward: every sample starts from the shared weights
            return self.projection.weight.detach().expand(batch, -1, -1).clone()
        if weights.shape[0] != batch:
            raise ConfigError(f"batch='independent' holds {weights.shape[0]} per-sample weight matrices but the "
                              f"last sequence had {batch} samples; keep the batch size fixed (drop_last=True), "
                              "or call reset_samples()")
        return weights

    def reset_samples(self) -> None:
        """Drop the per-sample weights (``batch="independent"``): every sample runs the shared weights again."""
        if self.projection is not None:
            self.projection.sample_weight = None

    def state_dict(self) -> dict:
        sample = None if self.projection is None else self.projection.sample_weight
        return {"pre_trace": None if self.traces is None else self.traces.pre_trace,
                "post_trace": None if self.traces is None else self.traces.post_trace,
                "sample_weights": sample}

    def load_state_dict(self, state: dict) -> None:
        unknown = set(state) - {"pre_trace", "post_trace", "sample_weights"}
        if unknown:
            raise ConfigError(f"not an {type(self).__name__} state: unexpected keys {sorted(unknown)}")
        pre, post = state.get("pre_trace"), state.get("post_trace")
        self.traces = None if pre is None else STDPState(pre, post)
        if self.projection is not None:
            self.projection.sample_weight = state.get("sample_weights")

    def __repr__(self) -> str:
        p = self.params
        return (f"{type(self).__name__}(tau_plus={p.tau_plus}, tau_minus={p.tau_minus}, a_plus={p.a_plus}, "
                f"a_minus={p.a_minus}, pairing={p.pairing!r}, weight_dependence={p.weight_dependence!r}, "
                f"w_min={p.w_min}, w_max={p.w_max}, batch={self.batch!r})")


class RewardSTDP(STDP):
    r"""Reward-modulated (three-factor) pair STDP: each step's pair terms are weighted by the reward that follows.

    With ``dw[t]`` the pair change of step ``t`` (as :class:`STDP`) and ``r[t]`` the reward, the rule of
    Florian (2007, MSTDPET) keeps an eligibility trace ``e[t] = d * e[t-1] + dw[t]`` and changes the weights by
    ``sum_t r[t] e[t]``. The same sum is ``sum_t R[t] dw[t]`` with the reward-to-go
    ``R[t] = sum_{t' >= t} d**(t' - t) r[t']``, so the rule weights each step's pair terms by ``R[t, b]``
    (:func:`~spikelab.functional.plasticity.discounted_reward`): exact, and no ``(B, N_post, N_pre)`` eligibility
    trace is kept. Zero reward changes nothing; a negative reward reverses the change.

    ===================  =====  =======  ==================================================================
    parameter            unit   default  meaning
    ===================  =====  =======  ==================================================================
    ``tau_eligibility``  steps  None     eligibility time constant: ``d = exp(-1/tau)``; None: ``d = 1``
                                         (every pair of the sequence counts the whole reward that follows);
                                         0: ``d = 0`` (MSTDP, a pair counts only its own step's reward)
    others                               as :class:`STDP`
    ===================  =====  =======  ==================================================================

    ``update(reward)``: ``reward`` is ``(B,)``, one reward per sample delivered at the last step, or ``(T, B)``.

    Example::

        >>> rstdp = sl.RewardSTDP(a_plus=1e-3, a_minus=1e-3).attach(net[0], post=net[1])
        >>> out = net(x)
        >>> rstdp.update(reward=(out.sum(0).argmax(1) == labels).float() * 2 - 1)   # +1 right, -1 wrong
    """

    signals = ("reward",)

    def __init__(self, tau_plus: float = 20.0, tau_minus: float = 20.0, a_plus: float = 0.01, a_minus: float = 0.01,
                 pairing: str = "all", weight_dependence: str = "additive", w_min: float | Tensor = 0.0,
                 w_max: float | Tensor = 1.0, batch: str = "sum", carry_traces: bool = False,
                 tau_eligibility: float | None = None):
        super().__init__(tau_plus, tau_minus, a_plus, a_minus, pairing, weight_dependence, w_min, w_max, batch,
                         carry_traces)
        if tau_eligibility is not None and (isinstance(tau_eligibility, bool) or not tau_eligibility >= 0):
            raise ConfigError(f"tau_eligibility must be None or a number of steps >= 0, got {tau_eligibility!r}")
        self.tau_eligibility = tau_eligibility
        self.eligibility_decay = (1.0 if tau_eligibility is None else
                                  0.0 if tau_eligibility == 0 else math.exp(-1.0 / tau_eligibility))

    def update(self, reward: Tensor, post_spikes: Tensor | None = None) -> None:
        """Apply the reward-weighted pair terms of the spikes captured since the last update.

        Args:
            reward: ``(B,)`` (delivered at the last step) or ``(T, B)`` (per step).
            post_spikes: a teacher's postsynaptic spikes, as :meth:`STDP.update`.
        """
        steps, batch = self.captured("pre").shape[:2]
        reward = torch.as_tensor(reward)
        reward = reward if reward.is_floating_point() else reward.float()
        if reward.shape == (batch,):
            per_step = torch.zeros(steps, batch, dtype=reward.dtype, device=reward.device)
            per_step[-1] = reward
        elif reward.shape == (steps, batch):
            per_step = reward
        else:
            raise ConfigError(f"reward must be ({batch},) (one per sample, at the last step) or ({steps}, {batch}) "
                              f"(per step), got {tuple(reward.shape)}")
        self._learn(post_spikes, discounted_reward(per_step, self.eligibility_decay))
