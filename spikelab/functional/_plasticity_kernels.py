"""numba kernel of the spike-weighted outer-product sum behind :func:`spikelab.functional.plasticity.spike_outer_sum`.

``spikes^T @ dense`` where ``spikes`` is mostly zeros (a few percent of neurons fire per step): a dense matrix
product spends its multiply-adds on the zeros, and torch's sparse formats cost more to build than they save. The
kernel visits each nonzero entry once and adds its row of ``dense`` to one output row (a contiguous vector add that
LLVM vectorises), so the work is ``nonzeros x columns`` instead of ``rows x spikes x columns``.

Summation order: rows in ascending order (time outer, batch inner), so one sample's result sums over time in the
same order whether it runs alone or inside a batch (independent per-sample updates equal sequential runs bit for
bit). Layout: ``spikes`` ``(R, n)``, ``dense`` ``(R, m)``, ``out`` ``(K, n, m)``, all C-contiguous, one dtype.
"""
import numba

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def spike_outer_sum(spikes, dense, batch, out):
    """``out[k, j, :] += spikes[r, j] * dense[r, :]`` for every row ``r`` with ``spikes[r, j] != 0``.

    ``k = r % batch`` when ``out`` has ``batch`` entries (one per sample), else 0 (summed over the batch).
    """
    rows, n = spikes.shape
    m = dense.shape[1]
    per_sample = out.shape[0] == batch and batch > 1
    for r in range(rows):
        k = r % batch if per_sample else 0
        row = dense[r]
        for j in range(n):
            v = spikes[r, j]
            if v != 0:
                o = out[k, j]
                for c in range(m):
                    o[c] += v * row[c]
