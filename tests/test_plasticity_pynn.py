"""STDP against NEST's stdp_synapse through PyNN: the same spike trains give the same weight trajectory."""
import math
import types
import warnings

import numpy as np
import pytest
import torch

import spikelab as sl
from spikelab.errors import ExportError
from spikelab.functional.plasticity import stdp_online

from parts import need

need("pyNN.nest")
from spikelab.backends.pynn import _nest  # noqa: E402  (quiet pyNN.nest)
from spikelab.plasticity.pynn import stdp_to_pynn  # noqa: E402

STEPS, N_PRE, DELAY = 300, 5, 2       # steps of 1 ms; the plastic synapses' delay, in steps
W_MAX = 1e-3                          # mV: far too small to make the neuron fire; only the teacher does


def _spike_trains(seed):
    rng = np.random.default_rng(seed)
    pre = [np.sort(rng.choice(np.arange(5, STEPS - 10), size=25, replace=False)).astype(float) for _ in range(N_PRE)]
    teacher = np.sort(rng.choice(np.arange(5, STEPS - 10), size=30, replace=False)).astype(float)
    return pre, teacher


def _run_nest(rule, pre_times, teacher_times, w0, receptor_type="excitatory"):
    """The weights when each presynaptic spike time is reached (NEST applies a synapse's pending changes then),
    and the postsynaptic spike times, on PyNN + NEST."""
    sim = _nest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim.setup(timestep=1.0, min_delay=1.0, max_delay=10.0, spike_precision="on_grid")
        cell = sim.IF_curr_delta(v_thresh=10.0, v_reset=0.0, v_rest=0.0, tau_m=20.0, cm=1.0, tau_refrac=0.0)
        post = sim.Population(1, cell)
        post.record("spikes")
        teacher = sim.Population(1, sim.SpikeSourceArray(spike_times=teacher_times))
        sim.Projection(teacher, post, sim.AllToAllConnector(), sim.StaticSynapse(weight=100.0, delay=1.0))
        pre = sim.Population(N_PRE, sim.SpikeSourceArray())
        pre.set(spike_times=[sim.Sequence(times) for times in pre_times])
        synapse = stdp_to_pynn(rule, sim, dt=1.0, post_cell_type=cell, weight=w0, delay=float(DELAY))
        projection = sim.Projection(pre, post, sim.AllToAllConnector(), synapse, receptor_type=receptor_type)
        arrivals = sorted({int(t) for times in pre_times for t in times})
        weights = {}
        for t in arrivals:
            sim.run_until(float(t))
            weights[t] = projection.get("weight", format="array")[:, 0] / cell.receptor_scale
        sim.run_until(float(STEPS))
        post_times = post.get_data().segments[0].spiketrains[0].magnitude
        sim.end()
    return weights, post_times


@pytest.mark.parametrize("dependence, a_plus, a_minus, sign", [("additive", 0.3 * W_MAX, 0.35 * W_MAX, 1),
                                                                ("multiplicative", 0.2, 0.25, 1),
                                                                ("additive", -0.3 * W_MAX, -0.35 * W_MAX, -1)])
def test_weight_trajectory_equals_nests_stdp_synapse(dependence, a_plus, a_minus, sign):
    """Pre spike trains and a teacher-driven postsynaptic neuron on NEST; spikelab's online rule on the same spike
    times (post shifted by the dendritic delay, as NEST pairs them) gives the same weight after every presynaptic
    arrival, to float rounding. The additive cases hit both bounds, so clipping is compared too. ``sign = -1``: an
    inhibitory projection, the rule on weights in [-W_MAX, 0] with negative rates."""
    w_min, w_max = (0.0, W_MAX) if sign > 0 else (-W_MAX, 0.0)
    rule = sl.STDP(tau_plus=16.0, tau_minus=24.0, a_plus=a_plus, a_minus=a_minus, weight_dependence=dependence,
                   w_min=w_min, w_max=w_max)
    pre_times, teacher_times = _spike_trains(seed=1)
    w0 = 0.5 * sign * W_MAX
    nest_weights, post_times = _run_nest(rule, pre_times, teacher_times, w0,
                                         "excitatory" if sign > 0 else "inhibitory")
    assert len(post_times) == len(teacher_times)          # the neuron fires for the teacher only

    pre = torch.zeros(STEPS, 1, N_PRE, dtype=torch.float64)
    for j, times in enumerate(pre_times):
        pre[torch.as_tensor(times, dtype=torch.long), 0, j] = 1.0
    post = torch.zeros(STEPS, 1, 1, dtype=torch.float64)
    post[torch.as_tensor(post_times + DELAY, dtype=torch.long), 0, 0] = 1.0   # NEST pairs t_post + delay
    _, _, trajectory = stdp_online(torch.full((1, N_PRE), w0, dtype=torch.float64), pre, post, rule.params,
                                   record=True)
    # NEST defers the facilitation by postsynaptic spikes to the synapse's next presynaptic spike, so its weight
    # equals the online rule's at that synapse's own spike times (and only there)
    ours = np.array([trajectory[int(t), 0, j].item() for j, times in enumerate(pre_times) for t in times])
    theirs = np.array([nest_weights[int(t)][j] for j, times in enumerate(pre_times) for t in times])
    assert np.abs(ours - theirs).max() <= 1e-9 * W_MAX
    if dependence == "additive":      # both bounds were reached, so the clipping was compared too
        assert (trajectory == w_min).any() and (trajectory == w_max).any()
    assert np.abs(theirs - w0).max() > 0.2 * W_MAX   # the weights moved


def test_what_pynn_cannot_express_is_refused_by_name():
    sim = _nest()
    assert stdp_to_pynn(sl.STDP(), sim, dt=1.0) is not None
    with pytest.raises(ExportError, match="nearest-neighbour"):
        stdp_to_pynn(sl.STDP(pairing="nearest"), sim, dt=1.0)
    with pytest.raises(ExportError, match="reward modulation"):
        stdp_to_pynn(sl.RewardSTDP(), sim, dt=1.0)
    with pytest.raises(ExportError, match="split the projection by synapse type"):
        stdp_to_pynn(sl.STDP(w_max=torch.ones(1, 3)), sim, dt=1.0)
    with pytest.raises(ExportError, match="change sign"):
        stdp_to_pynn(sl.STDP(w_min=-1.0), sim, dt=1.0)
    with pytest.raises(ExportError, match="w_min = 0.5"):
        stdp_to_pynn(sl.STDP(w_min=0.5), sim, dt=1.0)
    with pytest.raises(ExportError, match="both must be <= 0"):
        stdp_to_pynn(sl.STDP(w_min=-1.0, w_max=0.0), sim, dt=1.0)
    with pytest.raises(ExportError, match="set w_max = 0"):
        stdp_to_pynn(sl.STDP(a_plus=-0.01, a_minus=-0.01, w_min=-1.0, w_max=-0.5), sim, dt=1.0)
    with pytest.raises(ExportError, match="multiplicative rule on negative weights"):
        stdp_to_pynn(sl.STDP(a_plus=-0.01, a_minus=-0.01, w_min=-1.0, w_max=0.0, weight_dependence="multiplicative"),
                     sim, dt=1.0)
    with pytest.raises(ExportError, match="not brian2"):
        stdp_to_pynn(sl.STDP(), types.SimpleNamespace(__name__="brian2"), dt=1.0)


def test_analytic_exponent_of_a_single_nest_pair():
    """One pair on NEST at dt = t_post + delay - t_pre = 7 ms moves the weight by a_plus exp(-7/tau_plus)."""
    rule = sl.STDP(tau_plus=16.0, tau_minus=24.0, a_plus=0.1 * W_MAX, a_minus=0.1 * W_MAX, w_max=W_MAX)
    weights, post_times = _run_nest(rule, [[50.0, 250.0]] + [[]] * (N_PRE - 1), [54.0], 0.5 * W_MAX)
    assert list(post_times) == [55.0]
    late_depression = 0.1 * W_MAX * math.exp(-(250 - 55 - DELAY) / 24.0)    # by the presynaptic spike at 250
    change = weights[250][0] - 0.5 * W_MAX
    assert change == pytest.approx(0.1 * W_MAX * math.exp(-(55 + DELAY - 50) / 16.0) - late_depression, rel=1e-9)
