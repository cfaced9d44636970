"""numba kernels of :mod:`spikelab.functional.plasticity` (CPU float32 / float64): the trace scan and the
spike-weighted outer-product sum. The torch code beside them (``trace_step``, a matrix product) is the reference
they are tested against.

``spike_outer_sum``: ``spikes^T @ dense`` where ``spikes`` is mostly zeros (a few percent of neurons fire per step).
A dense matrix product spends its multiply-adds on the zeros, and torch's sparse formats cost more to build than
they save. The kernel lists each row's nonzero entries first, then adds the row of ``dense`` to one output row
per entry (a contiguous vector add that LLVM vectorises): the work is ``nonzeros x columns``. Summation order:
rows ascending (time outer, batch inner), so one sample's result sums over time in the same order whether it runs
alone or inside a batch (independent per-sample updates equal sequential runs bit for bit).

Numerics follow ``_lif_kernels``: scalar arguments have the arrays' dtype, options enter as 0/1 multipliers, so
one compiled kernel per dtype serves every configuration. Layout: C-contiguous ``(rows, n)`` arrays, ``(n,)``
per-neuron parameters.
"""
import numba
import numpy as np

CHUNK = 8192
_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def trace_scan(spikes, decay, increment, initial, nearest, reverse, exclusive, out):
    """The trace ``x <- decay * (x - nearest * x * s + increment * s)`` over the steps, from ``initial``.

    ``nearest`` 1 (``spikes`` then 0/1): a spike sets the trace to ``decay * increment``; 0: all-to-all, a spike
    (or a count) adds ``increment * s`` before the decay. ``reverse``: run from the last step to the first.
    ``exclusive``: write each step's trace *before* its own spike (what that step's spikes pair with), else after.
    """
    steps, n = spikes.shape
    x = np.empty(CHUNK, spikes.dtype)
    for c0 in range(0, n, CHUNK):
        c1 = min(c0 + CHUNK, n)
        m = c1 - c0
        d = decay[c0:c1]
        a = increment[c0:c1]
        x[:m] = initial[c0:c1]
        for i in range(steps):
            t = steps - 1 - i if reverse else i
            st = spikes[t, c0:c1]
            ot = out[t, c0:c1]
            if exclusive:
                ot[:] = x[:m]
            for k in range(m):
                s = st[k]
                x[k] = d[k] * (x[k] - nearest * (x[k] * s) + a[k] * s)
            if not exclusive:
                ot[:] = x[:m]


@numba.njit(**_JIT)
def spike_outer_sum(spikes, dense, batch, out):
    """``out[k, j, :] += spikes[r, j] * dense[r, :]`` for every row ``r`` with ``spikes[r, j] != 0``.

    ``k = r % batch`` when ``out`` has ``batch`` entries (one per sample), else 0 (summed over the batch).
    """
    rows, n = spikes.shape
    m = dense.shape[1]
    per_sample = out.shape[0] == batch and batch > 1
    active = np.empty(n, np.int64)
    for r in range(rows):
        k = r % batch if per_sample else 0
        count = 0
        for j in range(n):
            if spikes[r, j] != 0:
                active[count] = j
                count += 1
        row = dense[r]
        for q in range(count):
            j = active[q]
            v = spikes[r, j]
            o = out[k, j]
            for c in range(m):
                o[c] += v * row[c]
