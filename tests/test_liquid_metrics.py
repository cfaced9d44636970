"""Liquid metrics on hand-built spike trains and matrices whose values are known by hand."""
import numpy as np
import pytest
import scipy.sparse as sparse
import torch

from spikelab.errors import ConfigError
from spikelab.liquid import metrics
from spikelab.liquid.metrics import (branching_factor, class_separation, firing_rates, kernel_quality,
                                     neuron_branching_factors, spectral_radius, state_distance, state_rank)


def _chain():
    """Neurons 0 -> 1 -> 2 ([post, pre] mask) and a silent neuron 3; 10 steps; counted steps [2, 8) with window
    2 and margin 0. Neuron 1 fires at 3 (two ancestor spikes of neuron 0 at 1 and 2, one descendant spike of
    neuron 2 at 4: bf 1/2) and at 6 (no ancestor spike, denominator 1; descendant at 7: bf 1), so its mean is 0.75.
    Neuron 0 fires at 1 (not counted: before step 2), 2 (no ancestors; descendant 1 at 3: bf 1) and 9 (not
    counted). Neuron 2 has no postsynaptic neuron: bf 0 at 4 and 7."""
    mask = np.zeros((4, 4))
    mask[1, 0] = mask[2, 1] = 1
    spikes = np.zeros((10, 4))
    for step, neuron in [(1, 0), (2, 0), (9, 0), (3, 1), (6, 1), (4, 2), (7, 2)]:
        spikes[step, neuron] = 1
    return spikes, mask


def test_branching_factor_per_neuron_matches_the_hand_count():
    spikes, mask = _chain()
    values = neuron_branching_factors(spikes, mask, window=2, margin=0)
    np.testing.assert_allclose(values[:3], [1.0, 0.75, 0.0])
    assert np.isnan(values[3])       # silent: left out of the mean, as NALSM's nanmean does
    assert branching_factor(spikes, mask, window=2, margin=0) == pytest.approx((1.0 + 0.75 + 0.0) / 3)


def test_branching_factor_margin_drops_edge_spikes_and_weights_only_mark_synapses():
    spikes, mask = _chain()
    # margin 1: counted steps [3, 7); neuron 0's spike at 2 no longer counts (NaN), neuron 1 keeps both spikes
    values = neuron_branching_factors(spikes, mask, window=2, margin=1)
    assert np.isnan(values[0])
    np.testing.assert_allclose(values[1:3], [0.75, 0.0])
    # signed weights of any size count as synapses; counts > 1 in a bin are one spike; torch input works
    weights = torch.tensor(mask * -3.0)
    np.testing.assert_allclose(neuron_branching_factors(torch.tensor(spikes * 2), weights, window=2, margin=0)[:3],
                               [1.0, 0.75, 0.0])


def test_branching_factor_averages_over_samples_that_fired():
    spikes, mask = _chain()
    silent = np.zeros_like(spikes)
    one = branching_factor(spikes, mask, window=2, margin=0)
    assert branching_factor(np.stack([spikes, silent, spikes]), mask, window=2, margin=0) == pytest.approx(one)
    assert np.isnan(branching_factor(silent, mask, window=2, margin=0))


def _literal_branching_factor(spikes, mask, window, margin):
    """The definition event by event, with explicit pre/post lists (NALSM's procedure, written independently)."""
    steps, n = spikes.shape
    per_neuron = []
    for neuron in range(n):
        pre, post = np.flatnonzero(mask[neuron]), np.flatnonzero(mask[:, neuron])
        ratios = []
        for t in range(margin + window, steps - margin - window):
            if spikes[t, neuron]:
                ancestors = sum(spikes[s, j] for s in range(t - window, t) for j in pre)
                descendants = sum(spikes[s, i] for s in range(t + 1, t + 1 + window) for i in post)
                ratios.append(descendants / max(1, ancestors))
        if ratios:
            per_neuron.append(np.mean(ratios))
    return np.mean(per_neuron)


def test_branching_factor_equals_the_event_by_event_definition_on_a_random_liquid():
    rng = np.random.default_rng(3)
    mask = (rng.random((30, 30)) < 0.15).astype(float)
    np.fill_diagonal(mask, 0)
    spikes = (rng.random((80, 30)) < 0.08).astype(float)
    expected = _literal_branching_factor(spikes, mask, window=4, margin=10)
    assert branching_factor(spikes, sparse.csr_matrix(mask), margin=10) == pytest.approx(expected, rel=1e-12)


def test_branching_factor_bad_input_is_a_config_error():
    spikes, mask = _chain()
    with pytest.raises(ConfigError, match="record at least"):
        branching_factor(spikes, mask)                     # 10 steps cannot hold margin 25 and window 4
    with pytest.raises(ConfigError, match="shape"):
        branching_factor(spikes, np.zeros((3, 3)), window=2, margin=0)


def test_firing_rates_in_hertz():
    spikes = np.zeros((2, 100, 3))
    spikes[:, ::10, 0] = 1          # every 10 ms: 100 Hz
    spikes[0, 0, 1] = 1             # 1 spike in 200 ms: 5 Hz
    np.testing.assert_allclose(firing_rates(spikes), [100.0, 5.0, 0.0])
    np.testing.assert_allclose(firing_rates(spikes, dt=2.0), [50.0, 2.5, 0.0])


def test_state_rank_and_kernel_quality():
    eye = np.eye(5)
    assert state_rank(np.vstack([eye[:3], eye[0] + eye[1]])) == 3
    # every sample of class c is the same vector e_c: any draw has rank = number of classes
    labels = np.repeat(np.arange(3), 4)
    assert kernel_quality(eye[labels], labels, per_class=2, draws=5) == 3.0
    # random states: rank = min(samples drawn, neurons)
    states = np.random.default_rng(0).random((12, 20))
    assert kernel_quality(states, labels, per_class=3, draws=4) == 9.0
    with pytest.raises(ConfigError, match="per_class"):
        kernel_quality(states, labels, per_class=5)


def test_state_distance_and_class_separation():
    assert state_distance([3.0, 0.0], [0.0, 4.0]) == pytest.approx(5.0)
    over_time = state_distance(np.zeros((4, 2)), np.array([[0, 1], [0, 2], [3, 4], [0, 0.0]]))
    np.testing.assert_allclose(over_time, [1, 2, 5, 0])
    # centroids (1, 0) and (11, 0): between 10; every sample 1 from its centroid: 10 / (1 + 1)
    states = np.array([[0, 0], [2, 0], [10, 0], [12, 0.0]])
    assert class_separation(states, [0, 0, 1, 1]) == pytest.approx(5.0)
    with pytest.raises(ConfigError, match="two classes"):
        class_separation(states, [0, 0, 0, 0])


def test_spectral_radius_dense_sparse_and_torch(monkeypatch):
    assert spectral_radius(np.array([[0.0, 2.0], [0.5, 0.0]])) == pytest.approx(1.0)     # eigenvalues +-1
    assert spectral_radius(torch.tensor([[3.0, 7.0], [0.0, -4.0]])) == pytest.approx(4.0)  # triangular
    rng = np.random.default_rng(1)
    matrix = sparse.random(300, 300, density=0.02, random_state=2, data_rvs=lambda k: rng.choice([-3.0, 3.0], k))
    exact = np.abs(np.linalg.eigvals(matrix.toarray())).max()
    monkeypatch.setattr(metrics, "_DENSE_EIGEN_LIMIT", 10)     # force the ARPACK path
    assert spectral_radius(matrix) == pytest.approx(exact, rel=1e-6)
    assert spectral_radius(matrix.toarray()) == pytest.approx(exact, rel=1e-6)
    with pytest.raises(ConfigError, match="square"):
        spectral_radius(np.zeros((2, 3)))


def test_recurrent_connectivity_of_a_liquid():
    from spikelab.liquid import grid_liquid
    from spikelab.liquid.metrics import recurrent_connectivity

    topology = grid_liquid((3, 3, 3), n_input=5, seed=0)
    mask = recurrent_connectivity(topology).toarray()
    weights = recurrent_connectivity(topology, topology.weight * 0.5).toarray()
    dense = np.zeros((27, 27))
    for pre, post, w in zip(topology.pre, topology.post, topology.weight):
        if pre >= 5:
            dense[post, pre - 5] = w
    np.testing.assert_array_equal(mask, dense != 0)
    np.testing.assert_allclose(weights, 0.5 * dense)
    # excitatory presynaptic columns are positive, inhibitory ones negative
    excitatory = topology.excitatory
    assert (weights[:, excitatory] >= 0).all() and (weights[:, ~excitatory] <= 0).all()
