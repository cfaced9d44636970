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

Inhibitory synapses: a rule on weights in ``[w_min, 0]`` (``w_min < 0``, ``w_max = 0``) with ``a_plus <= 0``
and ``a_minus <= 0`` (additive) is an excitatory rule on the magnitude ``|w|`` in ``[0, -w_min]`` with rates
``-a_plus``, ``-a_minus``; that is how both simulators run STDP on an inhibitory projection (give it
``receptor_type="inhibitory"``). On NEST the weights stay negative (PyNN's current-based convention) and so does
``Wmax``, which ``stdp_synapse`` requires; on sPyNNaker the projection takes magnitudes, so ``weight`` is negated.

What PyNN cannot express, refused by name (:class:`~spikelab.errors.ExportError`): reward modulation
(:class:`~spikelab.RewardSTDP`); rates that vary per step, sample or neuron (tensor ``a_plus`` / ``a_minus``);
bounds per synapse (tensor ``w_min`` / ``w_max``: split the projection by synapse type, one bound pair each);
weights that can change sign (``w_min < 0 < w_max``: split the projection by sign); on negative weights, rates
of the wrong sign, ``w_max < 0`` or a multiplicative rule; nearest-neighbour pairing on NEST (PyNN's
``SpikePairRule`` is all-to-all there; sPyNNaker has ``SpikeNearestPairRule``); on NEST, ``w_min > 0``. A simulator runs one sample
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
        weight, delay: the synapses' initial weight (a number or array) with spikelab's sign (sPyNNaker gets
            the magnitude of an inhibitory one), and delay (ms).

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
    inhibitory = False
    if not isinstance(p.w_min, Tensor) and not isinstance(p.w_max, Tensor):
        inhibitory = p.w_min < 0 and p.w_max <= 0
        problems += _inhibitory_problems(p) if inhibitory else _excitatory_problems(p, nest)
    if problems:
        raise ExportError(f"{name} cannot run this {type(rule).__name__}: " + "; ".join(problems))

    # an inhibitory rule runs on the weights' magnitude |w| in [0, -w_min], where it is an excitatory one
    a_plus, a_minus, w_min, w_max = ((-p.a_plus, -p.a_minus, 0.0, -p.w_min) if inhibitory
                                     else (p.a_plus, p.a_minus, p.w_min, p.w_max))
    scale = 1.0 / w_max if nest and p.weight_dependence == "additive" else 1.0
    if nest:    # NEST: the projection's weights and Wmax carry the sign; w_max in the weights' unit
        w_max *= getattr(post_cell_type, "receptor_scale", 1.0) * (-1.0 if inhibitory else 1.0)
    elif inhibitory:    # sPyNNaker: an inhibitory projection takes magnitudes
        weight = -weight
    if p.pairing == "nearest":
        timing_rule = sim.extra_models.SpikeNearestPairRule
    else:
        timing_rule = sim.SpikePairRule
    timing = timing_rule(tau_plus=p.tau_plus * dt, tau_minus=p.tau_minus * dt, A_plus=a_plus * scale,
                         A_minus=a_minus * scale)
    dependence = {"additive": sim.AdditiveWeightDependence,
                  "multiplicative": sim.MultiplicativeWeightDependence}[p.weight_dependence]
    return sim.STDPMechanism(timing_dependence=timing, weight_dependence=dependence(w_min=w_min, w_max=w_max),
                             weight=weight, delay=delay, dendritic_delay_fraction=1.0)


def _excitatory_problems(p, nest: bool) -> list[str]:
    """What keeps a rule on weights in ``[w_min, w_max]``, ``w_max > 0``, from running as PyNN's."""
    if p.w_min < 0:
        return [f"weights that can change sign (w_min = {p.w_min} < 0 < w_max = {p.w_max}: a PyNN synapse is "
                "excitatory or inhibitory; split the projection by sign)"]
    if nest and p.w_min != 0:
        return [f"w_min = {p.w_min} (NEST's stdp_synapse bounds weights below by 0)"]
    if nest and p.w_max <= 0:
        return [f"w_max = {p.w_max} (NEST's stdp_synapse needs a positive maximum)"]
    return []


def _inhibitory_problems(p) -> list[str]:
    """What keeps a rule on weights in ``[w_min, w_max]``, ``w_min < 0``, ``w_max <= 0``, from running as an
    inhibitory PyNN synapse, i.e. as a rule on the magnitude ``|w|`` in ``[0, -w_min]``."""
    problems = []
    if p.w_max != 0:
        problems.append(f"w_max = {p.w_max} < 0 (an inhibitory synapse's magnitude is bounded below by 0: "
                        "set w_max = 0)")
    if p.a_plus > 0 or p.a_minus > 0:
        problems.append(f"a_plus = {p.a_plus}, a_minus = {p.a_minus} on negative weights: PyNN's rule on an "
                        "inhibitory synapse moves its magnitude, so both must be <= 0 (a_plus < 0: pre before post "
                        "makes the weight more negative)")
    if p.weight_dependence != "additive":
        problems.append("a multiplicative rule on negative weights (its factors w_max - w and w - w_min are not "
                        "those of PyNN's rule on the magnitude)")
    return problems
