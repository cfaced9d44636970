"""An :class:`~spikelab.STDP` rule as a PyNN ``STDPMechanism``, for NEST and sPyNNaker.

PyNN writes the pair rule as a timing dependence (``SpikePairRule``: ``tau_plus``, ``tau_minus`` in ms,
``A_plus``, ``A_minus``) times a weight dependence (``AdditiveWeightDependence`` /
``MultiplicativeWeightDependence``: ``w_min``, ``w_max``). What ``A_plus`` means differs by simulator, so the
mapping does too (weights in the projection's PyNN unit, which the graph export keeps equal to spikelab's):

==============  ===================================================  ==========================================
simulator       additive                                             multiplicative
==============  ===================================================  ==========================================
NEST            ``stdp_synapse``: ``dw = lambda * Wmax * K``, so     ``dw+ = A_plus (w_max - w) K``,
                ``A_plus = a_plus / w_max`` (and ``A_minus``);      ``dw- = A_minus w K``: ``A = a``
                ``w_min`` must be 0
sPyNNaker       ``A_plus`` is the weight change itself: ``A = a``    ``A = a`` (as its parameter writer does;
                                                                     not run here: no board)
==============  ===================================================  ==========================================

Units on NEST: PyNN 0.13 scales an ``IF_curr_delta`` cell's weights by its ``receptor_scale`` (1e-3, weights
are mV) but not ``w_max``, so the mapping divides ``w_max`` by it when given the postsynaptic cell type (and
``Projection.get("weight")`` then reads the weights ``receptor_scale`` times too small).

Timing on NEST: ``stdp_synapse`` treats the whole delay ``d`` as dendritic, so it pairs a presynaptic spike
emitted at ``t_pre`` with a postsynaptic spike at ``t_post`` at ``dt = t_post + d - t_pre``, and applies the
changes when presynaptic spikes arrive (facilitation by the postsynaptic spikes since the last one, then
depression). spikelab's rule pairs the spikes as the layers see them; give it ``t_post + d`` to compare
(``tests/test_plasticity_pynn.py`` does, and the weight trajectories agree to float rounding).

What PyNN cannot express, refused by name (:class:`~spikelab.errors.ExportError`): reward modulation
(:class:`~spikelab.RewardSTDP`); rates that vary per step, sample or neuron (tensor ``a_plus`` / ``a_minus``);
bounds per synapse (tensor ``w_min`` / ``w_max``: split the projection by synapse type, one bound pair each);
nearest-neighbour pairing on NEST (PyNN's ``SpikePairRule`` is all-to-all there; sPyNNaker has
``SpikeNearestPairRule``); a nonzero ``w_min`` or non-positive ``w_max`` on NEST. A simulator runs one sample
at a time with the weights carried on, which is every batch mode at batch size 1; its traces run on across
samples unless the network is reset.
"""
from __future__ import annotations

from torch import Tensor

from spikelab.errors import ExportError
from spikelab.plasticity.stdp import STDP, RewardSTDP

SIMULATORS = ("pyNN.nest", "pyNN.spiNNaker")


def stdp_to_pynn(rule: STDP, sim, dt: float, post_cell_type=None, weight=0.0, delay=None):
    """``rule`` as ``sim.STDPMechanism`` (give it to ``sim.Projection(..., synapse_type=...)``).

    Args:
        rule: an :class:`~spikelab.STDP`.
        sim: the PyNN simulator module, ``pyNN.nest`` or ``pyNN.spiNNaker`` (set up or not).
        dt: the time step in ms: spikelab's time constants are in steps, PyNN's in ms.
        post_cell_type: the PyNN cell type of the postsynaptic population (e.g. ``sim.IF_curr_delta(...)``), whose
            ``receptor_scale`` NEST applies to weights but not to ``w_max``; None: no such scale.
        weight, delay: the synapses' initial weight and delay (ms), as PyNN takes them.

    Raises:
        ExportError: naming every part of the rule the simulator cannot run.
    """
    name = getattr(sim, "__name__", repr(sim))
    if name not in SIMULATORS:
        raise ExportError(f"stdp_to_pynn maps to {' or '.join(SIMULATORS)} (their A_plus conventions differ), "
                          f"not {name}")
    if not isinstance(rule, STDP):
        raise ExportError(f"stdp_to_pynn maps an sl.STDP rule, not a {type(rule).__name__}")
    nest = name == "pyNN.nest"
    p = rule.params
    problems = []
    if isinstance(rule, RewardSTDP):
        problems.append("reward modulation (PyNN has no standard three-factor rule)")
    for field in ("a_plus", "a_minus", "w_min", "w_max"):
        if isinstance(getattr(p, field), Tensor):
            problems.append(f"a tensor {field} (PyNN takes one value per projection"
                            + ("; split the projection by synapse type" if field.startswith("w_") else "") + ")")
    if p.pairing == "nearest" and nest:
        problems.append("nearest-neighbour pairing (PyNN's SpikePairRule is all-to-all on NEST)")
    if nest and not isinstance(p.w_min, Tensor) and p.w_min != 0:
        problems.append(f"w_min = {p.w_min} (NEST's stdp_synapse bounds weights below by 0)")
    if nest and not isinstance(p.w_max, Tensor) and p.w_max <= 0:
        problems.append(f"w_max = {p.w_max} (NEST's stdp_synapse needs a positive maximum)")
    if problems:
        raise ExportError(f"{name} cannot run this {type(rule).__name__}: " + "; ".join(problems))

    scale = 1.0 / p.w_max if nest and p.weight_dependence == "additive" else 1.0
    w_max = p.w_max * (getattr(post_cell_type, "receptor_scale", 1.0) if nest else 1.0)
    if p.pairing == "nearest":
        timing_rule = sim.extra_models.SpikeNearestPairRule
    else:
        timing_rule = sim.SpikePairRule
    timing = timing_rule(tau_plus=p.tau_plus * dt, tau_minus=p.tau_minus * dt, A_plus=p.a_plus * scale,
                         A_minus=p.a_minus * scale)
    dependence = {"additive": sim.AdditiveWeightDependence,
                  "multiplicative": sim.MultiplicativeWeightDependence}[p.weight_dependence]
    return sim.STDPMechanism(timing_dependence=timing, weight_dependence=dependence(w_min=p.w_min, w_max=w_max),
                             weight=weight, delay=delay, dendritic_delay_fraction=1.0)
