"""numba kernels of the NALSM liquid run, used by :func:`spikelab.functional.liquid.liquid_run`.

The update is documented in ``liquid.py``, whose torch loop (``liquid_reference``) is the reference these kernels
are tested against. Every scalar comes in ``params``, an array of the run's dtype, so float32 stays float32.

Event-driven over the sparse synapses: a step visits only the outgoing synapses of the units that spiked (their
current and LTD, in one pass) and the incoming synapses of the liquid neurons that spiked (LTP); the per-neuron
work (the liquid's membranes and current decay, the ``u`` of the units that have spiked) is a plain loop.
Shortcuts: the synaptic current is a running sum (see ``_sample``) where the reference sums ``w_ij u_j`` over every
synapse each step; an input unit is visited only while away from rest (an event, then its spike and refractory
steps), since without bias it stays at ``V = 0`` otherwise; the traces share one decay factor, so a step multiplies
one number instead of every trace; potentiation walks only the synapses of units that have spiked in the sample
or carry a trace over from the previous one (the others' trace and ``u`` are 0: their weights do not change and
carry no current), which a sample keeps in
blocks of its own per postsynaptic neuron (``slot_w``), so that it streams through memory. The result is the
reference's to rounding, so float64 runs give the same spikes (a membrane would have to land within about 1e-13 of
the threshold to split them) and float32 runs agree on all but rare near-threshold spikes.

Speed (NALSM1000 plastic feature extraction, float32, 250 steps, batch 16: the workload of ``spikelab bench
liquid``; ``run_liquid_benchmark(rounds=5, large_size=None)``, alternately with the kernel of commit 0534266 in one
session on a 2-core machine shared with other jobs at load average 0.8-1.9, six pairs): 2 threads 52.3, 69.2, 60.6,
63.9, 60.0, 93.0 samples/s of wall clock against 39.7, 45.6, 49.4, 47.0, 43.8, 48.7 (1.43x), 1 thread 26.5, 52.2,
30.2, 32.9, 31.5, 53.3 against 18.8, 23.0, 27.5, 22.7, 24.3, 24.2. Where a sample's time goes now (cycle counts per
phase, 1 thread, best of 5 rounds of 16 samples, about 50 million TSC cycles or 20 ms): the current and depression
of the spiking units' outgoing synapses 33 % (0.72 million visits, about 10 ns each: one scattered cache line of
``slot_w`` each), their first-spike bookkeeping 22 % (0.29 million synapses given a slot, about 16 ns each: two
scattered stores that miss L1; the same loop alone takes 12 ns per synapse, 2.4 without those two stores),
potentiation 30 % (2.0 million visits, about 3.4 ns each, streamed; 1.5-1.9 ns in a loop alone, whose blocks the
other phases have not pushed out of the cache), the per-step loops over the units about 10 %. So it is memory
traffic from beyond the 512 KB L2 (a sample's ``slot_w``, ``slot_pre`` and ``slot_of`` span 1.45 MB each), and it
varies with what the other jobs do to the shared L3 (19 to 38 ms of CPU per sample from run to run). Software
prefetching, int16 unit indices, weight and unit index side by side in one array (better by 6 % on a quiet machine,
worse under contention), two partial sums in potentiation, one loop for a first spike's bookkeeping and depression,
placing the input units' slots before the run (their spikes depend on the input alone: the cost moved to the
depression) and 2 MB pages were each measured and gained nothing (or lost); so did placing every synapse at the
start of a sample instead of at its unit's first spike (potentiation then walks all of a neuron's synapses, about
twice as many visits as the started ones in an average step, 1.3-1.4x slower). Those figures are on the
benchmark's liquid of that time, initialised on 100 samples (44 Hz); on the current one (2,000 samples, 23 Hz)
and on real N-MNIST recordings, see ``spikelab.bench.liquid`` and the README.
"""
import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(inline="always", **_JIT)
def _fire(k, t, v, refractory, fired, n_fired, fired_at, threshold, t_rfr):
    """Unit ``k``'s spike check at step ``t``: if it fires, reset it, start its refractory count and list it as
    ``fired[n_fired]``; else count its refractory steps down. True if it fired."""
    if v[k] >= threshold and refractory[k] <= 0:
        v[k] = 0
        refractory[k] = t_rfr
        fired[n_fired] = k
        fired_at[k] = t
        return True
    refractory[k] = max(refractory[k] - 1, 0)   # no branch on the count: a miss costs more than the store
    return False


@numba.njit(**_JIT)
def _give_slots(j, w_by_pre, out_post, pre_ptr, post_ptr, kind, slot_w, slot_pre, slot_of, n_excitatory,
                n_inhibitory):
    """Unit ``j``'s outgoing synapses get their slots, holding the weights they start from (see ``_sample``)."""
    inhibitory = kind[j] == 2
    for q in range(pre_ptr[j], pre_ptr[j + 1]):
        i = out_post[q]
        if inhibitory:
            n_inhibitory[i] += 1
            s = post_ptr[i + 1] - n_inhibitory[i]
        else:
            s = post_ptr[i] + n_excitatory[i]
            n_excitatory[i] += 1
        slot_of[q] = s
        slot_pre[s] = j
        slot_w[s] = w_by_pre[q]


@numba.njit(**_JIT)
def _start(j, n_active, give_slots, w_by_pre, out_post, pre_ptr, post_ptr, kind, started, active, slot_w, slot_pre,
           slot_of, n_excitatory, n_inhibitory):
    """Unit ``j`` becomes active (``active[n_active]``), and with ``give_slots`` its synapses get their slots."""
    started[j] = 1
    active[n_active] = j
    if give_slots:
        _give_slots(j, w_by_pre, out_post, pre_ptr, post_ptr, kind, slot_w, slot_pre, slot_of, n_excitatory,
                    n_inhibitory)


@numba.njit(**_JIT)
def _sample(x, b, w_by_pre, spikes, counts, astro, out_post, pre_ptr, post_ptr, kind, w_min, w_max, params, flags,
            v, refractory, unit, fired, fired_at, current, pending, unbounded, live, is_live, events, event_ptr,
            started, active, slot_w, slot_pre, slot_of, n_excitatory, n_inhibitory, carry):
    """Run sample ``b`` of ``x`` ``(T, B, n_input)`` from rest on the weights ``w_by_pre`` (in ``by_pre`` order: each
    unit's outgoing synapses side by side), which it only reads: with STDP the sample learns on its own copy of the
    weights it uses, ``slot_w`` (:func:`_write_back` puts them in synapse order). Returns how many units spiked
    (they are listed in ``active``; ``fired_at`` holds each unit's latest spike step, -1 before its first).

    ``current[i]`` is kept equal to ``sum_j w_ij u_j`` (``u_j`` = ``k0 r^d``, ``d`` steps since j's latest spike)
    without visiting every synapse: each step scales it by ``r``, swaps the term of each unit that spiked
    (``k0 - r u_j`` per unit weight) and adds ``dw u_j`` for each weight that depression changed (held in
    ``pending`` until the membranes have taken this step's current); a neuron that spiked has all its incoming
    weights potentiated, and its sum is taken afresh then.

    With STDP, the weights of the synapses from units that have spiked in the sample live in ``slot_w``, one block
    per postsynaptic neuron, so that potentiation streams through memory: liquid neuron ``i``'s slice
    ``post_ptr[i]:post_ptr[i + 1]`` holds those from excitatory and input units at its front, those from inhibitory
    units at its back (``n_excitatory[i]``, ``n_inhibitory[i]`` of them), in the order their units first spiked,
    each with its presynaptic unit in ``slot_pre``; ``slot_of[q]`` is the slot of outgoing synapse ``q`` (``by_pre``
    order). A unit's first spike gives its synapses their slots; until then their weights have not changed (its
    trace and ``u`` were 0) and carried no current. With ``flags[5]`` (``carry_traces``, sequential runs) a
    sample starts from the traces in ``carry``, the previous sample's final ones, which it then overwrites with
    its own; a unit with a carried trace gets its slots before the first step. A spiking unit's outgoing
    synapses are visited once per step, for their current and their depression together.

    Per unit ``k``, side by side in ``unit[k]`` (one cache line per presynaptic unit in the potentiation loop): its
    trace divided by ``scale`` (every trace decays by the same ``m`` per step, so a step multiplies ``scale``
    alone and a spike adds ``a / scale``), its weight bounds, and ``u_k``.
    """
    steps, _, n_in = x.shape
    n_total = kind.shape[0]
    n_liquid = n_total - n_in
    tau_v, threshold, bias, current_in = params[0], params[1], params[2], params[3]
    decay, increment, eta, a = params[4], params[5], params[6], params[7]
    w_a, b_a, tau_a, rate_decay = params[8], params[9], params[10], params[11]
    k0, r = params[12], params[13]
    t_rfr, stdp, astro_on, record, carry_traces = flags[0], flags[1], flags[2], flags[3], flags[5]
    give_slots = stdp and not flags[6]     # flags[6]: every synapse holds its slot already (run_sequential)
    zero = tau_v - tau_v
    one = zero + 1
    inf = one / zero
    # without bias an input unit at rest (V = 0, not refractory) stays there until an event: only the live ones
    # (membrane or refractory count away from rest) and this step's event units are visited
    sparse_input = bias == zero and threshold > zero
    for k in range(n_total):
        v[k] = zero
        refractory[k] = 0
        unit[k, 0] = carry[k] if carry_traces else zero
        unit[k, 1] = w_min[k]
        unit[k, 2] = w_max[k]
        unit[k, 3] = zero
        fired_at[k] = -1
        started[k] = 0
    for k in range(n_in):
        is_live[k] = 0
    for i in range(n_liquid):
        current[i] = zero
        pending[i] = zero
        unbounded[i] = zero
        if give_slots:
            n_excitatory[i] = 0
            n_inhibitory[i] = 0
    q = 0
    for t in range(steps):
        event_ptr[t] = q
        for k in range(n_in):
            if x[t, b, k] != zero:
                events[q] = k
                q += 1
    event_ptr[steps] = q
    n_live = 0
    n_active = 0
    for k in range(n_total if carry_traces else 0):
        if unit[k, 0] != zero:               # a trace carried over from the previous sample: active from the start
            _start(k, n_active, give_slots, w_by_pre, out_post, pre_ptr, post_ptr, kind, started, active, slot_w,
                   slot_pre, slot_of, n_excitatory, n_inhibitory)
            n_active += 1
    scale = one
    for t in range(steps):
        n_fired = 0
        n_liquid_spikes = zero
        n_input_spikes = zero
        for f in range(n_live if sparse_input else 0):
            if _fire(live[f], t, v, refractory, fired, n_fired, fired_at, threshold, t_rfr):
                n_fired += 1
                n_input_spikes += one
        for k in range(n_in if sparse_input else 0, n_total):
            if _fire(k, t, v, refractory, fired, n_fired, fired_at, threshold, t_rfr):
                n_fired += 1
                if k >= n_in:
                    counts[b, k - n_in] += 1
                    n_liquid_spikes += one
                    if record:
                        spikes[t, b, k - n_in] = 1
                else:
                    n_input_spikes += one
        for i in range(n_liquid):
            current[i] = r * current[i]
        if stdp and not astro_on:
            a = eta
        for f in range(n_fired if stdp else 0):
            if fired[f] >= n_in:
                unbounded[fired[f] - n_in] = inf
        for f in range(n_fired):
            j = fired[f]
            swap = k0 - r * unit[j, 3]
            if not started[j]:               # its first spike
                _start(j, n_active, give_slots, w_by_pre, out_post, pre_ptr, post_ptr, kind, started, active, slot_w,
                       slot_pre, slot_of, n_excitatory, n_inhibitory)
                n_active += 1
            if not stdp:
                for q in range(pre_ptr[j], pre_ptr[j + 1]):
                    current[out_post[q]] += w_by_pre[q] * swap
                continue
            # current and depression (j presynaptic; x_i the postsynaptic trace before this step's update), without
            # branches, which would cost the overlap of the cache misses: a neuron that spiked this step is not
            # clipped here (``unbounded``) but by its potentiation below, which also takes its current afresh
            rate = (eta if kind[j] == 2 else -a) * scale
            lo, hi = w_min[j], w_max[j]
            for q in range(pre_ptr[j], pre_ptr[j + 1]):
                i = out_post[q]
                s = slot_of[q]
                old = slot_w[s]
                current[i] += old * swap
                z = min(max(old + rate * unit[n_in + i, 0], lo - unbounded[i]), hi + unbounded[i])
                slot_w[s] = z
                pending[i] += (z - old) * k0
        for f in range(n_active):
            k = active[f]
            unit[k, 3] = r * unit[k, 3]
        for f in range(n_fired):
            unit[fired[f], 3] = k0
        if sparse_input:
            for f in range(n_live):
                k = live[f]
                z = v[k]
                v[k] = z - z / tau_v + current_in * x[t, b, k] + bias
            for q in range(event_ptr[t], event_ptr[t + 1]):
                k = events[q]
                if not is_live[k]:            # at rest: V = 0 - 0 / tau_v + I_ext + 0
                    v[k] = current_in * x[t, b, k]
                    is_live[k] = 1
                    live[n_live] = k
                    n_live += 1
            n_next = 0
            for f in range(n_live):
                k = live[f]
                if v[k] != zero or refractory[k] > 0:
                    live[n_next] = k
                    n_next += 1
                else:
                    is_live[k] = 0
            n_live = n_next
        else:
            for k in range(n_in):
                z = v[k]
                v[k] = z - z / tau_v + current_in * x[t, b, k] + bias
        for i in range(n_liquid):
            z = v[n_in + i]
            v[n_in + i] = z - z / tau_v + current[i] + bias
            current[i] += pending[i]
            pending[i] = zero
        if stdp:
            potentiate, weaken = eta * scale, -a * scale   # x_j = unit[j, 0] * scale
            for f in range(n_fired):          # potentiation: the fired neuron is postsynaptic
                g = fired[f]
                if g >= n_in:
                    # potentiate, and sum its current afresh over the updated weights (from started units only:
                    # the others' u is 0)
                    i = g - n_in
                    t0, t1 = zero, zero
                    for s in range(post_ptr[i], post_ptr[i] + n_excitatory[i]):
                        j = slot_pre[s]
                        z = min(max(slot_w[s] + potentiate * unit[j, 0], unit[j, 1]), unit[j, 2])
                        slot_w[s] = z
                        t0 += z * unit[j, 3]
                    for s in range(post_ptr[i + 1] - n_inhibitory[i], post_ptr[i + 1]):
                        j = slot_pre[s]
                        z = min(max(slot_w[s] + weaken * unit[j, 0], unit[j, 1]), unit[j, 2])
                        slot_w[s] = z
                        t1 += z * unit[j, 3]
                    current[i] = t0 + t1
                    unbounded[i] = zero
            grow = increment / scale
            for f in range(n_fired):          # x <- decay * (x + increment * s), in that order
                unit[fired[f], 0] += grow
            scale = decay * scale
            if scale < 1e-4:                  # fold the common factor back in before it underflows
                for f in range(n_active):
                    k = active[f]
                    unit[k, 0] = scale * unit[k, 0]
                scale = one
            if astro_on:
                a = a + (w_a * (n_liquid_spikes - n_input_spikes) + b_a - a) / tau_a
            eta = eta * rate_decay
            a = a * rate_decay
            w_a = w_a * rate_decay
            b_a = b_a * rate_decay
        astro[t, b] = a
    for k in range(n_total if carry_traces else 0):
        carry[k] = unit[k, 0] * scale if started[k] else zero
    return n_active


@numba.njit(**_JIT)
def _write_back(w, pre_ptr, by_pre, active, n_active, slot_w, slot_of):
    """Put a sample's learned weights (``slot_w``) into ``w`` (synapse order), which holds its start weights."""
    for f in range(n_active):
        j = active[f]
        for q in range(pre_ptr[j], pre_ptr[j + 1]):
            w[by_pre[q]] = slot_w[slot_of[q]]


@numba.njit(**_JIT)
def _buffers(x, w, kind):
    """One sample's scratch arrays (the arguments of ``_sample`` after ``flags``), reused from sample to sample."""
    steps, _, n_in = x.shape
    n_total = kind.shape[0]
    n_liquid = n_total - n_in
    n_synapses = w.shape[0]
    return (np.empty(n_total, w.dtype), np.empty(n_total, np.int32),                  # v, refractory
            np.empty((n_total, 4), w.dtype), np.empty(n_total, np.int32),              # unit, fired
            np.empty(n_total, np.int32), np.empty(n_liquid, w.dtype),                  # fired_at, current
            np.empty(n_liquid, w.dtype), np.empty(n_liquid, w.dtype),                  # pending, unbounded
            np.empty(n_in, np.int32), np.empty(n_in, np.uint8),                        # live, is_live
            np.empty(steps * n_in, np.int32), np.empty(steps + 1, np.int64),           # events, event_ptr
            np.empty(n_total, np.uint8), np.empty(n_total, np.int32),                  # started, active
            np.empty(n_synapses, w.dtype), np.empty(n_synapses, np.int32),             # slot_w, slot_pre
            np.empty(n_synapses, np.int32),                                            # slot_of
            np.empty(n_liquid, np.int32), np.empty(n_liquid, np.int32),                # n_excitatory, n_inhibitory
            np.zeros(n_total, w.dtype))                                                # carry


@numba.njit(**_JIT)
def run_sequential(x, w, weights_out, spikes, counts, astro, out_post, pre_ptr, by_pre, post_ptr, kind, w_min, w_max,
                   params, flags):
    """The samples one after the other, each starting from the weights the previous one left in ``w``.

    With STDP and carried traces (``flags[6]``) every unit keeps a trace from sample to sample, so nearly every
    synapse would be given its slot again at each sample's start: instead all synapses get theirs once, in unit
    order, and keep them and their weights in ``slot_w`` until the run ends. Potentiation then also walks the
    synapses of units without a trace, which leaves their weights as they are (the reference clips every weight
    at every step) and adds nothing to the current (their ``u`` is 0)."""
    scratch = _buffers(x, w, kind)
    active, slot_w, slot_pre, slot_of = scratch[13], scratch[14], scratch[15], scratch[16]
    n_excitatory, n_inhibitory = scratch[17], scratch[18]
    w_by_pre = w[by_pre]
    if flags[6]:
        n_excitatory[:] = 0
        n_inhibitory[:] = 0
        for j in range(kind.shape[0]):
            _give_slots(j, w_by_pre, out_post, pre_ptr, post_ptr, kind, slot_w, slot_pre, slot_of, n_excitatory,
                        n_inhibitory)
    for b in range(x.shape[1]):
        n_active = _sample(x, b, w_by_pre, spikes, counts, astro, out_post, pre_ptr, post_ptr, kind, w_min, w_max,
                           params, flags, *scratch)
        if flags[1] and not flags[6]:
            _write_back(w, pre_ptr, by_pre, active, n_active, slot_w, slot_of)
            w_by_pre = w[by_pre]
    if flags[6]:
        for q in range(by_pre.shape[0]):
            w[by_pre[q]] = slot_w[slot_of[q]]


@numba.njit(**_JIT)
def run_independent(x, w, weights_out, spikes, counts, astro, out_post, pre_ptr, by_pre, post_ptr, kind, w_min,
                    w_max, params, flags, w_by_pre, first, stride):
    """Samples ``first, first + stride, ...``, each from the weights ``w`` (left unchanged; ``w_by_pre`` is
    ``w[by_pre]``); with ``flags[4]`` each sample's final weights go to ``weights_out[b]``. One worker's share: the
    kernel releases the GIL, so ``stride`` Python threads run the shares side by side (see ``liquid_run``), each on
    its own scratch arrays and all reading the same ``w_by_pre``."""
    scratch = _buffers(x, w, kind)
    active, slot_w, slot_of = scratch[13], scratch[14], scratch[16]
    for b in range(first, x.shape[1], stride):
        n_active = _sample(x, b, w_by_pre, spikes, counts, astro, out_post, pre_ptr, post_ptr, kind, w_min, w_max,
                           params, flags, *scratch)
        if flags[4]:
            weights_out[b, :] = w
            _write_back(weights_out[b], pre_ptr, by_pre, active, n_active, slot_w, slot_of)
