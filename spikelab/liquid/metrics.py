"""Liquid metrics: pure functions of recorded spikes, liquid states or weight matrices.

=============================  ==========================================================================================
function                       what it measures
=============================  ==========================================================================================
:func:`branching_factor`       descendants over ancestors per spike, averaged as NALSM's ``compute_branching_factor.py``
                               (critical ~ 1; NALSM1000 sits at 1.25 with w_A = 0.015)
:func:`neuron_branching_factors`  the same per neuron for one sample (NaN for a neuron silent in the counted window)
:func:`firing_rates`           spikes per second of every neuron
:func:`state_rank`             rank of a state matrix (samples x neurons)
:func:`kernel_quality`         NALSM's SP/AP kernel quality: mean rank over class-balanced draws of samples
:func:`state_distance`         Euclidean distance between the liquid states of two inputs (Maass 2002's separation)
:func:`class_separation`       between-class over within-class spread of states (Norton & Ventura 2010)
:func:`spectral_radius`        largest |eigenvalue| of the recurrent weight matrix, dense or scipy.sparse
:func:`recurrent_connectivity`  a liquid topology's liquid -> liquid weights as a sparse ``[post, pre]`` matrix
=============================  ==========================================================================================

Conventions: spikes are ``(T, N)`` (one sample) or ``(S, T, N)`` (S samples), any nonzero entry is one spike,
one row per 1 ms step (NALSM's ``dt``). Weight and connectivity matrices are ``[post, pre]`` (the row is the
receiving neuron, as ``torch.nn.Linear`` and NALSM's ``W``), dense (numpy or torch) or ``scipy.sparse``.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sparse
from scipy.sparse.linalg import ArpackNoConvergence, eigs

from ..errors import ConfigError

#: NALSM's branching-factor windows: 4 ms on each side of a spike, and 25 ms ignored at each end of a sample.
BF_WINDOW = 4
BF_MARGIN = 25


def _numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _adjacency(connectivity, neurons: int) -> sparse.csr_matrix:
    """0/1 ``[post, pre]`` matrix of which synapses exist (any nonzero weight is a synapse)."""
    if sparse.issparse(connectivity):
        matrix = sparse.csr_matrix(connectivity, dtype=np.float64)
    else:
        matrix = sparse.csr_matrix(_numpy(connectivity).astype(np.float64))
    if matrix.shape != (neurons, neurons):
        raise ConfigError(f"connectivity has shape {matrix.shape} but the spikes have {neurons} neurons: give the "
                          f"liquid-to-liquid [post, pre] matrix of shape ({neurons}, {neurons})")
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


def recurrent_connectivity(topology, weights=None) -> sparse.csr_matrix:
    """The liquid -> liquid synapses of a :class:`~spikelab.liquid.topology.LiquidTopology` as an
    ``(n_liquid, n_liquid)`` sparse ``[post, pre]`` matrix: without ``weights``, the 0/1 synapse mask (what the
    branching factor walks: NALSM counts a synapse depressed to 0 as a synapse); with ``weights`` (one per synapse
    of the topology, e.g. a liquid's learned ones), their values (for :func:`spectral_radius`)."""
    recurrent = topology.recurrent()
    values = np.ones(int(recurrent.sum())) if weights is None else _numpy(weights)[recurrent].astype(np.float64)
    n = topology.n_liquid
    return sparse.csr_matrix((values, (topology.post[recurrent], topology.pre[recurrent] - topology.n_input)),
                             shape=(n, n))


def neuron_branching_factors(spikes, connectivity, window: int = BF_WINDOW, margin: int = BF_MARGIN) -> np.ndarray:
    """Branching factor of every neuron in one sample, as NALSM computes it.

    For each spike of neuron n at step t with ``margin + window <= t < T - margin - window``::

        bf(n, t) = #spikes of n's postsynaptic neurons in [t + 1, t + window]
                   / max(1, #spikes of n's presynaptic neurons in [t - window, t - 1])

    and a neuron's value is the mean of bf(n, t) over its spikes (spikes at t itself count on neither side).

    Args:
        spikes: ``(T, N)`` liquid spikes of one sample (nonzero = spike).
        connectivity: ``(N, N)`` liquid-to-liquid ``[post, pre]`` weights or mask; its nonzero entries are the synapses.
        window: steps counted before and after each spike (ms at NALSM's 1 ms step; default 4).
        margin: steps ignored at each end of the sample (default 25).

    Returns:
        ``(N,)`` float64; NaN for a neuron with no spike in the counted steps.
    """
    raster = _numpy(spikes)
    if raster.ndim != 2:
        raise ConfigError(f"spikes of one sample must be (T, N), got shape {raster.shape}")
    if window < 1 or margin < 0:
        raise ConfigError(f"branching factor needs window >= 1 and margin >= 0 steps, got {window} and {margin}")
    steps, neurons = raster.shape
    first, stop = margin + window, steps - margin - window
    if stop <= first:
        raise ConfigError(f"a {steps}-step recording has no step to count with margin {margin} and window {window}: "
                          f"record at least {2 * (margin + window) + 1} steps or lower the margin")
    fired = (raster != 0).astype(np.float64)
    adjacency = _adjacency(connectivity, neurons)
    cumulative = np.zeros((steps + 1, neurons))
    np.cumsum(fired, axis=0, out=cumulative[1:])
    times = np.arange(first, stop)
    before = cumulative[times] - cumulative[times - window]                 # steps [t - window, t)
    after = cumulative[times + window + 1] - cumulative[times + 1]          # steps [t + 1, t + window]
    ancestors = np.asarray(adjacency @ before.T).T                          # sum over n's presynaptic neurons
    descendants = np.asarray(adjacency.T @ after.T).T                       # sum over n's postsynaptic neurons
    counted = fired[first:stop]
    ratio = descendants / np.maximum(ancestors, 1.0) * counted
    n_spikes = counted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ratio.sum(axis=0) / n_spikes                                 # 0/0 -> NaN for silent neurons


def branching_factor(spikes, connectivity, window: int = BF_WINDOW, margin: int = BF_MARGIN) -> float:
    """The liquid's branching factor: :func:`neuron_branching_factors` averaged over the neurons that fired,
    then over the samples that had any such neuron (NALSM records 20 samples). NaN if no neuron fired at all.

    Args:
        spikes: ``(T, N)`` or ``(S, T, N)`` liquid spikes.
        connectivity, window, margin: as :func:`neuron_branching_factors`.
    """
    raster = _numpy(spikes)
    if raster.ndim == 2:
        raster = raster[None]
    if raster.ndim != 3:
        raise ConfigError(f"spikes must be (T, N) or (samples, T, N), got shape {raster.shape}")
    per_sample = []
    for sample in raster:
        values = neuron_branching_factors(sample, connectivity, window, margin)
        per_sample.append(values[~np.isnan(values)].mean() if np.any(~np.isnan(values)) else np.nan)
    per_sample = np.asarray(per_sample)
    return float(per_sample[~np.isnan(per_sample)].mean()) if np.any(~np.isnan(per_sample)) else float("nan")


def firing_rates(spikes, dt: float = 1.0) -> np.ndarray:
    """Mean firing rate (Hz) of each neuron over all steps (and samples): spikes ``(..., T, N)``, step ``dt`` in ms."""
    raster = _numpy(spikes)
    if raster.ndim < 2:
        raise ConfigError(f"spikes must be (T, N) or (samples, T, N), got shape {raster.shape}")
    per_step = (raster != 0).reshape(-1, raster.shape[-1]).mean(axis=0)
    return per_step * 1000.0 / dt


def state_rank(states) -> int:
    """Rank of a ``(samples, neurons)`` state matrix (e.g. spike counts), from its SVD with numpy's default
    tolerance: how many input directions the liquid keeps apart. At most min(samples, neurons)."""
    matrix = _numpy(states)
    if matrix.ndim != 2:
        raise ConfigError(f"states must be (samples, neurons), got shape {matrix.shape}")
    return int(np.linalg.matrix_rank(matrix.astype(np.float64)))


def kernel_quality(states, labels, per_class: int = 100, draws: int = 10, seed: int = 0) -> float:
    """NALSM's kernel quality: the mean :func:`state_rank` of ``per_class`` random samples of every class, over
    ``draws`` random draws (NALSM: 100 per class, 1,000 draws). On clean test inputs this is the separation
    property (SP, higher is better); on noisy inputs it is the approximation property (AP, lower generalises better).

    Args:
        states: ``(samples, neurons)`` liquid states (spike counts).
        labels: ``(samples,)`` integer classes.
        per_class: samples drawn from every class (each class must have that many).
        draws: independent draws averaged.
        seed: seed of the draws.
    """
    matrix, targets = _numpy(states), _numpy(labels).reshape(-1)
    if matrix.ndim != 2 or len(targets) != len(matrix):
        raise ConfigError(f"kernel quality needs states (samples, neurons) and one label per sample, got shapes "
                          f"{matrix.shape} and {targets.shape}")
    members = [np.flatnonzero(targets == c) for c in np.unique(targets)]
    smallest = min(len(m) for m in members)
    if per_class < 1 or per_class > smallest:
        raise ConfigError(f"per_class={per_class} but the smallest class has {smallest} samples: "
                          f"use 1 <= per_class <= {smallest}")
    rng = np.random.default_rng(seed)
    ranks = [state_rank(matrix[np.concatenate([rng.permutation(m)[:per_class] for m in members])])
             for _ in range(draws)]
    return float(np.mean(ranks))


def state_distance(states_u, states_v) -> np.ndarray:
    """Euclidean distance ``||x_u - x_v||`` between the liquid states of two inputs u and v, along the last
    (neuron) axis: Maass, Natschlaeger & Markram (2002)'s separation. States ``(..., N)``: filtered spike trains
    ``(T, N)`` give the distance over time, spike counts ``(N,)`` a single number."""
    u, v = _numpy(states_u).astype(np.float64), _numpy(states_v).astype(np.float64)
    if u.shape != v.shape:
        raise ConfigError(f"states to compare must have the same shape, got {u.shape} and {v.shape}")
    return np.linalg.norm(u - v, axis=-1)


def class_separation(states, labels) -> float:
    """Norton & Ventura (2010)'s separation of a liquid: the mean distance between class centroids divided by
    one plus the mean distance of samples to their own class centroid (higher separates classes better).

    Args:
        states: ``(samples, neurons)`` liquid states.
        labels: ``(samples,)`` classes; at least two distinct.
    """
    matrix, targets = _numpy(states).astype(np.float64), _numpy(labels).reshape(-1)
    if matrix.ndim != 2 or len(targets) != len(matrix):
        raise ConfigError(f"separation needs states (samples, neurons) and one label per sample, got shapes "
                          f"{matrix.shape} and {targets.shape}")
    classes = np.unique(targets)
    if len(classes) < 2:
        raise ConfigError("separation needs samples of at least two classes")
    centroids = np.stack([matrix[targets == c].mean(axis=0) for c in classes])
    gaps = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    between = gaps[np.triu_indices(len(classes), k=1)].mean()
    within = np.mean([np.linalg.norm(matrix[targets == c] - centroids[i], axis=1).mean()
                      for i, c in enumerate(classes)])
    return float(between / (1.0 + within))


#: Above this many neurons a dense matrix is handed to ARPACK (one eigenvalue) instead of a full eigensolve.
_DENSE_EIGEN_LIMIT = 1500


def spectral_radius(weights) -> float:
    """Largest eigenvalue magnitude of a square ``[post, pre]`` weight matrix (dense numpy/torch or
    ``scipy.sparse``). Small matrices use a full eigensolve; large or sparse ones ARPACK's Arnoldi iteration for
    the one eigenvalue of largest magnitude, so an 8000-neuron liquid at 0.4 % density costs milliseconds."""
    is_sparse = sparse.issparse(weights)
    matrix = weights if is_sparse else _numpy(weights)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ConfigError(f"spectral radius needs a square matrix, got shape {matrix.shape}")
    size = matrix.shape[0]
    if size == 0:
        raise ConfigError("spectral radius of an empty matrix is undefined")
    if size <= _DENSE_EIGEN_LIMIT or (is_sparse and size < 3):
        dense = matrix.toarray() if is_sparse else matrix
        return float(np.abs(np.linalg.eigvals(dense.astype(np.float64))).max())
    operator = sparse.csr_matrix(matrix, dtype=np.float64)
    if operator.nnz == 0:
        return 0.0
    try:
        values = eigs(operator, k=1, which="LM", return_eigenvectors=False, tol=1e-10, maxiter=100 * size,
                      v0=np.random.default_rng(0).random(size))
    except ArpackNoConvergence:   # rare (clustered top eigenvalues): the exact, slow way
        warnings.warn("ARPACK did not converge; computing all eigenvalues", RuntimeWarning, stacklevel=2)
        return float(np.abs(np.linalg.eigvals(operator.toarray())).max())
    return float(np.abs(values).max())
