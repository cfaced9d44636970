r"""A liquid after learning, exported with static weights as a :class:`spikelab.graph.Network` (then PyNN: NEST,
sPyNNaker / the SpiNNaker virtual board, through :mod:`backends.pynn`), and its STDP rule as a PyNN
``STDPMechanism`` where PyNN can express it.

**The network** (:func:`liquid_to_network`): population ``"input"`` is the input *units*' spikes (NALSM's
input LIF units, a fixed function of the events: :func:`input_unit_spikes`), population ``"liquid"`` the liquid
as ``IF_curr_delta`` cells (``beta = 1 - 1/tau_v``, threshold 20, ``refractory_steps = 2``). The exponential
synapse becomes ``taps`` delayed copies of each synapse with weights ``W k(d) = W exp(-d/tau_u) / tau_u``,
``d = 0 .. taps - 1``: from an input unit with delay ``d`` steps, from a liquid neuron with delay ``d + 1``
(a liquid spike is emitted one step after its membrane crossed the threshold, where NALSM registers it at the
start of the next step). So the network's liquid spike at step ``t`` is the liquid's spike at ``t + 1``.

The float64 reference of that network is :func:`spikelab.graph.simulate` and :func:`backends.pynn.run_nest`
gives the same spikes (the same float64 operations; tested on a small liquid). Against the liquid itself the
export changes three things, listed in ``network.approximations``:

* the kernel sums over every earlier spike (an exponential synapse, as on any PyNN simulator) instead of the latest
  one only: they differ when a unit spikes again within ``taps`` steps (with refractory 2 ms the leftover
  ``exp(-3)`` = 5 %);
* the kernel stops after ``taps`` steps (``taps = 8``: ``k(8) = 3.4e-4`` per unit weight);
* refractory neurons hold their membrane at 0 and drop their input (NEST's ``t_ref``) where NALSM keeps
  integrating and only blocks firing.

With ``tau_u`` short enough that ``k(1)`` vanishes, ``taps = 1`` and no refractory period the export is exact
(tested).

**Plasticity** (:func:`liquid_stdp_rule`, :func:`stdp_mechanism`): with a fixed depression rate ``A = eta_+``
(no astrocyte), NALSM's pair rule on the liquid -> liquid synapses is an :class:`~spikelab.STDP` with
``tau_plus = tau_minus = trace_tau``, additive, one rule per presynaptic type:

* excitatory (``W in [0, w_max]``): ``a_plus = eta_+ a``, ``a_minus = A a``;
* inhibitory (``W in [-w_max, 0]``, ``W <- W - A x_j s_i + eta_+ x_i s_j``): ``a_plus = -A a``,
  ``a_minus = -eta_+ a``, which PyNN runs as the excitatory rule on the magnitude ``|W|`` of an inhibitory
  projection (``receptor_type="inhibitory"``; see :mod:`spikelab.plasticity.pynn`).

A pair at ``dt = +-1`` ms changes a weight by ``a exp(-1/tau)`` of the rate, NALSM's ``eta_+ a m``.
:func:`spikelab.plasticity.stdp_to_pynn` maps the rule to PyNN's ``SpikePairRule`` with additive bounds. One
difference remains: NALSM applies a step's LTP and LTD to a synapse together and clips once, PyNN's simulators
(and :func:`spikelab.functional.stdp_online`) apply them as two events, each clipped; they differ only when a
synapse's two neurons spike in the same step with the weight within one change of a bound. What PyNN cannot
express is refused by name (:class:`~spikelab.errors.ExportError`): the astrocyte (a depression rate that follows
the network's activity: no PyNN synapse reads a global state), rates that decay during a sample
(``rate_decay < 1``), and the input synapses (``[-3, 3]``: a PyNN synapse is excitatory or inhibitory, it cannot
change sign).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from spikelab.errors import ExportError
from spikelab.graph import Network, Population, Projection
from spikelab.liquid.machine import LiquidStateMachine
from spikelab.liquid.topology import EXCITATORY, INHIBITORY

LIQUID = "liquid"
INPUT_UNITS = "input"
#: presynaptic type -> the kind in ``LiquidTopology.kind``
SYNAPSE_KINDS = {"excitatory": EXCITATORY, "inhibitory": INHIBITORY}


def input_unit_spikes(x: Tensor, lsm: LiquidStateMachine) -> Tensor:
    """The spikes ``(T, B, n_input)`` of NALSM's input units driven by events ``x`` ``(T, B, n_input)``: each
    event adds ``input_current`` to its unit's membrane, which follows the liquid neuron's update (no synapses)."""
    p = lsm.neuron
    x = x.double()
    v = torch.zeros(x.shape[1:], dtype=torch.float64)
    refractory = torch.zeros(x.shape[1:], dtype=torch.long)
    out = torch.zeros(x.shape, dtype=torch.float64)
    for t in range(x.shape[0]):
        s = (v >= p.threshold) & (refractory <= 0)
        v = v * (1 - s.double())
        v = v - v / p.tau_v + p.input_current * x[t] + p.bias
        refractory = torch.where(s, p.refractory, (refractory - 1).clamp(min=0))
        out[t] = s.double()
    return out


def liquid_to_network(lsm: LiquidStateMachine, taps: int = 8) -> Network:
    """The liquid with its current weights as a static :class:`~spikelab.graph.Network` (module docstring)."""
    if not isinstance(taps, int) or taps < 1:
        raise ExportError(f"taps must be a whole number of steps >= 1, got {taps!r}")
    topology, p = lsm.topology, lsm.neuron
    if p.bias:
        raise ExportError("a liquid with a bias cannot be exported (the bias would also drive the input units)")
    n_in, n_liquid = topology.n_input, topology.n_liquid
    weight = lsm.weight.detach().double().numpy()
    from_input = topology.pre < n_in
    kernel = np.exp(-np.arange(taps) / p.tau_u) / p.tau_u
    projections = []
    for name, select, shift in (("input", from_input, 0), ("recurrent", ~from_input, 1)):
        pre = topology.pre[select].astype(np.int64) - (0 if shift == 0 else n_in)
        post = topology.post[select].astype(np.int64)
        order = np.lexsort((post, pre))
        pre, post, w = pre[order], post[order], weight[select][order]
        keep = w != 0
        pre, post, w = pre[keep], post[keep], w[keep]
        projections.append(Projection(
            pre=INPUT_UNITS if shift == 0 else LIQUID, post=LIQUID, pre_index=np.repeat(pre, taps),
            post_index=np.repeat(post, taps), weight=(w[:, None] * kernel[None, :]).reshape(-1),
            delay=np.tile(np.arange(taps) + shift, len(w)), source=f"liquid {name} synapses x {taps} taps"))
    populations = [
        Population(INPUT_UNITS, "input", (n_in,), source="NALSM input units"),
        Population(LIQUID, "lif", (n_liquid,), beta=np.full(n_liquid, 1.0 - 1.0 / p.tau_v),
                   threshold=np.full(n_liquid, float(p.threshold)), bias=np.zeros(n_liquid),
                   refractory_steps=int(p.refractory), latency=1, source=repr(lsm))]
    approximations = []
    if taps > 1:
        approximations.append("exponential synapse summed over every earlier spike (NALSM: the latest only)")
    tail = math.exp(-taps / p.tau_u) / p.tau_u
    if tail > 1e-30:
        approximations.append(f"synaptic kernel cut after {taps} steps (k({taps}) = {tail:.2g} per unit weight)")
    if p.refractory:
        approximations.append(f"refractory {p.refractory} ms holds the membrane at 0 and drops input (NALSM "
                              "integrates and only blocks firing)")
    return Network(dt=1.0, populations=populations, projections=projections, approximations=approximations)


def liquid_stdp_rule(lsm: LiquidStateMachine, synapses: str = "excitatory"):
    """NALSM's STDP on the liquid's ``synapses`` (``"excitatory"`` or ``"inhibitory"``: the presynaptic type) as an
    :class:`~spikelab.STDP`, with the depression rate fixed at ``eta_+`` (module docstring).

    Raises:
        ExportError: naming the astrocyte, decaying rates, a frozen liquid, or a type the liquid lacks.
    """
    from spikelab.plasticity import STDP

    if synapses not in SYNAPSE_KINDS:
        raise ExportError(f"synapses must be one of {', '.join(SYNAPSE_KINDS)} (the presynaptic neurons' type), "
                          f"got {synapses!r}; the input synapses ([-3, 3]) are not exported: a PyNN synapse is "
                          "excitatory or inhibitory and cannot change sign")
    p = lsm.plasticity
    problems = []
    if not p.stdp:
        problems.append("the liquid is frozen (plasticity.stdp is False): export it with static weights only")
    if p.astrocyte:
        problems.append("the astrocyte (its state is the depression rate and follows the whole liquid's activity; "
                        "no PyNN synapse reads a global state): export AstroSTDPParameters(astrocyte=False) for "
                        "the rule with a fixed depression rate eta_+")
    if p.rate_decay != 1.0:
        problems.append(f"rates that decay during a sample (rate_decay = {p.rate_decay})")
    if problems:
        raise ExportError("PyNN cannot run this liquid's plasticity: " + "; ".join(problems))
    kind = SYNAPSE_KINDS[synapses]
    of_kind = lsm.topology.kind == kind
    if not of_kind.any():
        raise ExportError(f"the liquid has no {synapses} neurons whose synapses the rule could learn")
    rate = p.eta_plus * p.trace_increment
    if kind == EXCITATORY:
        return STDP(tau_plus=p.trace_tau, tau_minus=p.trace_tau, a_plus=rate, a_minus=rate, w_min=0.0,
                    w_max=float(lsm.topology.w_max[of_kind].max()))
    return STDP(tau_plus=p.trace_tau, tau_minus=p.trace_tau, a_plus=-rate, a_minus=-rate,
                w_min=float(lsm.topology.w_min[of_kind].min()), w_max=0.0)


def stdp_mechanism(lsm: LiquidStateMachine, sim, synapses: str = "excitatory", weight=0.0, delay=None):
    """:func:`liquid_stdp_rule` as ``sim.STDPMechanism`` (``pyNN.nest`` or ``pyNN.spiNNaker``), for a projection
    from the liquid's ``synapses`` neurons (inhibitory: give it ``receptor_type="inhibitory"``).

    Raises:
        ExportError: naming the astrocyte, decaying rates, or anything ``stdp_to_pynn`` refuses.
    """
    from spikelab.plasticity import stdp_to_pynn

    return stdp_to_pynn(liquid_stdp_rule(lsm, synapses), sim, dt=1.0, weight=weight, delay=delay)
