"""numba kernels of the NALSM liquid run, used by :func:`spikelab.functional.liquid.liquid_run`.

The update is documented in ``liquid.py``, whose torch loop (``liquid_reference``) is the reference these kernels
are tested against. Every scalar comes in ``params``, an array of the run's dtype, so float32 stays float32.

Event-driven over the sparse synapses: a step visits only the outgoing synapses of the units that spiked (their
current, and LTD) and the incoming synapses of the liquid neurons that spiked (LTP); the per-neuron work
(membranes, traces, the current's decay) is a plain loop over the units. Two shortcuts: the synaptic current is a
running sum (see ``_sample``) where the reference sums ``w_ij u_j`` over every synapse each step, and potentiation
skips the synapses from input channels without an event in the sample (about 60 % of an N-MNIST sample's), whose
units never spike. The result is the reference's to rounding, so float64 runs give the same spikes (a membrane
would have to land within about 1e-13 of the threshold to split them) and float32 runs agree on all but rare
near-threshold spikes.
"""
import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def _sample(x, b, w, spikes, counts, astro, pre, out_post, pre_ptr, by_pre, post_ptr, kind, w_min, w_max, params,
            flags, v, refractory, u, spiked, trace, unit, fired, current, active, kept_ptr, kept_pre, kept_syn):
    """Run sample ``b`` of ``x`` ``(T, B, n_input)`` from rest on weights ``w`` (changed in place when plastic).

    ``current[i]`` is kept equal to ``sum_j w_ij u_j`` (``u_j`` = ``k0 r^d``, ``d`` steps since j's latest spike)
    without visiting every synapse: each step scales it by ``r``, swaps the term of each unit that spiked
    (``k0 - r u_j`` per unit weight) and adds ``dw u_j`` for each weight that depression changed; a neuron that
    spiked has all its incoming weights potentiated, and its sum is taken afresh then.
    """
    steps, _, n_in = x.shape
    n_total = kind.shape[0]
    n_liquid = n_total - n_in
    tau_v, threshold, bias, current_in = params[0], params[1], params[2], params[3]
    decay, increment, eta, a = params[4], params[5], params[6], params[7]
    w_a, b_a, tau_a, rate_decay = params[8], params[9], params[10], params[11]
    k0, r = params[12], params[13]
    t_rfr, stdp, astro_on, record = flags[0], flags[1], flags[2], flags[3]
    zero = tau_v - tau_v
    one = zero + 1
    inf = one / zero
    for k in range(n_total):
        v[k] = zero
        refractory[k] = 0
        u[k] = zero
        trace[k] = zero
        # per unit, side by side (one cache line per presynaptic unit in the potentiation loop): what its trace
        # adds to its synapses onto a neuron that fires, their bounds, its synaptic kernel u
        unit[k, 0] = zero
        unit[k, 1] = w_min[k]
        unit[k, 2] = w_max[k]
        unit[k, 3] = zero
    for i in range(n_liquid):
        current[i] = zero
    if stdp:
        # a silent input channel's unit never spikes (no bias): its synapses neither learn nor carry current in
        # this sample, so potentiation walks only the synapses from active channels and the liquid
        for k in range(n_in):
            active[k] = bias != zero
        for t in range(steps):
            for k in range(n_in):
                if x[t, b, k] != zero:
                    active[k] = 1
        q = 0
        for i in range(n_liquid):
            kept_ptr[i] = q
            for syn in range(post_ptr[i], post_ptr[i + 1]):
                j = pre[syn]
                if j >= n_in or active[j]:
                    kept_pre[q] = j
                    kept_syn[q] = syn
                    q += 1
        kept_ptr[n_liquid] = q
    for t in range(steps):
        n_fired = 0
        n_liquid_spikes = zero
        n_input_spikes = zero
        for k in range(n_total):
            spiked[k] = 0
            if v[k] >= threshold and refractory[k] <= 0:
                v[k] = zero
                refractory[k] = t_rfr
                spiked[k] = 1
                fired[n_fired] = k
                n_fired += 1
                if k >= n_in:
                    counts[b, k - n_in] += 1
                    n_liquid_spikes += one
                    if record:
                        spikes[t, b, k - n_in] = 1
                else:
                    n_input_spikes += one
            elif refractory[k] > 0:
                refractory[k] -= 1
        for i in range(n_liquid):
            current[i] = r * current[i]
        for f in range(n_fired):
            j = fired[f]
            swap = k0 - r * u[j]
            for q in range(pre_ptr[j], pre_ptr[j + 1]):
                current[out_post[q]] += w[by_pre[q]] * swap
        for k in range(n_total):
            u[k] = k0 if spiked[k] else r * u[k]
            unit[k, 3] = u[k]
        for k in range(n_in):
            z = v[k]
            v[k] = z - z / tau_v + current_in * x[t, b, k] + bias
        for i in range(n_liquid):
            z = v[n_in + i]
            v[n_in + i] = z - z / tau_v + current[i] + bias
        if stdp:
            if not astro_on:
                a = eta
            for f in range(n_fired):          # no bounds where an LTD term follows (clipped after it)
                unit[fired[f], 1] = -inf
                unit[fired[f], 2] = inf
            for f in range(n_fired):          # LTP side: the fired neuron is postsynaptic
                g = fired[f]
                if g >= n_in:
                    i = g - n_in
                    # potentiate, and sum its current afresh over the updated weights (four partial sums)
                    t0, t1, t2, t3 = zero, zero, zero, zero
                    q, last = kept_ptr[i], kept_ptr[i + 1]
                    while q + 3 < last:
                        j, syn = kept_pre[q], kept_syn[q]
                        z = min(max(w[syn] + unit[j, 0], unit[j, 1]), unit[j, 2])
                        w[syn] = z
                        t0 += z * unit[j, 3]
                        j, syn = kept_pre[q + 1], kept_syn[q + 1]
                        z = min(max(w[syn] + unit[j, 0], unit[j, 1]), unit[j, 2])
                        w[syn] = z
                        t1 += z * unit[j, 3]
                        j, syn = kept_pre[q + 2], kept_syn[q + 2]
                        z = min(max(w[syn] + unit[j, 0], unit[j, 1]), unit[j, 2])
                        w[syn] = z
                        t2 += z * unit[j, 3]
                        j, syn = kept_pre[q + 3], kept_syn[q + 3]
                        z = min(max(w[syn] + unit[j, 0], unit[j, 1]), unit[j, 2])
                        w[syn] = z
                        t3 += z * unit[j, 3]
                        q += 4
                    while q < last:
                        j, syn = kept_pre[q], kept_syn[q]
                        z = min(max(w[syn] + unit[j, 0], unit[j, 1]), unit[j, 2])
                        w[syn] = z
                        t0 += z * unit[j, 3]
                        q += 1
                    current[i] = (t0 + t1) + (t2 + t3)
            for f in range(n_fired):          # LTD side: the fired neuron is presynaptic
                j = fired[f]
                rate = eta if kind[j] == 2 else -a
                uj, lo, hi = u[j], w_min[j], w_max[j]
                for q in range(pre_ptr[j], pre_ptr[j + 1]):
                    syn = by_pre[q]
                    i = out_post[q]
                    old = w[syn]
                    z = min(max(old + rate * trace[n_in + i], lo), hi)
                    w[syn] = z
                    current[i] += (z - old) * uj
            for f in range(n_fired):          # x <- decay * (x + increment * s), in that order
                g = fired[f]
                trace[g] += increment
                unit[g, 1] = w_min[g]
                unit[g, 2] = w_max[g]
            if astro_on:
                a = a + (w_a * (n_liquid_spikes - n_input_spikes) + b_a - a) / tau_a
            eta = eta * rate_decay
            a = a * rate_decay
            w_a = w_a * rate_decay
            b_a = b_a * rate_decay
            depression = a if astro_on else eta   # the rate the next step's potentiation of inhibitory synapses uses
            for k in range(n_total):
                trace[k] = decay * trace[k]
                unit[k, 0] = (-depression if kind[k] == 2 else eta) * trace[k]
        astro[t, b] = a


@numba.njit(**_JIT)
def run_sequential(x, w, weights_out, spikes, counts, astro, pre, out_post, pre_ptr, by_pre, post_ptr, kind, w_min,
                   w_max, params, flags):
    """The samples one after the other, each starting from the weights the previous one left in ``w``."""
    n_total = kind.shape[0]
    n_liquid = n_total - x.shape[2]
    v = np.empty(n_total, w.dtype)
    refractory = np.empty(n_total, np.int64)
    u = np.empty(n_total, w.dtype)
    spiked = np.empty(n_total, np.uint8)
    trace = np.empty(n_total, w.dtype)
    unit = np.empty((n_total, 4), w.dtype)
    fired = np.empty(n_total, np.int64)
    current = np.empty(n_liquid, w.dtype)
    active = np.empty(x.shape[2], np.uint8)
    kept_ptr = np.empty(n_liquid + 1, np.int64)
    kept_pre = np.empty(pre.shape[0], np.int32)
    kept_syn = np.empty(pre.shape[0], np.int64)
    for b in range(x.shape[1]):
        _sample(x, b, w, spikes, counts, astro, pre, out_post, pre_ptr, by_pre, post_ptr, kind, w_min, w_max,
                params, flags, v, refractory, u, spiked, trace, unit, fired, current, active, kept_ptr,
                kept_pre, kept_syn)


@numba.njit(parallel=True, **_JIT)
def run_independent(x, w, weights_out, spikes, counts, astro, pre, out_post, pre_ptr, by_pre, post_ptr, kind, w_min,
                    w_max, params, flags, threads):
    """Every sample from the weights ``w`` (left unchanged), ``threads`` at a time; with ``flags[4]`` each
    sample's final weights go to ``weights_out[b]``."""
    batch = x.shape[1]
    n_total = kind.shape[0]
    n_liquid = n_total - x.shape[2]
    plastic, keep = flags[1], flags[4]
    chunks = max(1, min(batch, threads))
    for c in numba.prange(chunks):
        own = np.empty_like(w) if plastic else w
        v = np.empty(n_total, w.dtype)
        refractory = np.empty(n_total, np.int64)
        u = np.empty(n_total, w.dtype)
        spiked = np.empty(n_total, np.uint8)
        trace = np.empty(n_total, w.dtype)
        unit = np.empty((n_total, 4), w.dtype)
        fired = np.empty(n_total, np.int64)
        current = np.empty(n_liquid, w.dtype)
        active = np.empty(x.shape[2], np.uint8)
        kept_ptr = np.empty(n_liquid + 1, np.int64)
        kept_pre = np.empty(pre.shape[0], np.int32)
        kept_syn = np.empty(pre.shape[0], np.int64)
        for b in range(c, batch, chunks):
            if plastic:
                own[:] = w
            _sample(x, b, own, spikes, counts, astro, pre, out_post, pre_ptr, by_pre, post_ptr, kind, w_min, w_max,
                    params, flags, v, refractory, u, spiked, trace, unit, fired, current, active, kept_ptr,
                    kept_pre, kept_syn)
            if keep:
                weights_out[b, :] = own
