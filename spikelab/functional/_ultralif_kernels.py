"""numba kernels of the UltraLIF-family scans (CPU float32 / float64), used by
:func:`spikelab.functional.ultralif.ultra_sequence` and :func:`~spikelab.functional.ultralif.ultra_diffusive_sequence`.

The update and its gradient are documented in ``ultralif.py``, whose torch loop (the step functions under
autograd) is the reference these kernels are tested against.

Layout: the temporal scan takes C-contiguous ``(T, N)`` arrays (N = batch x features) and one step's ``(N,)``; its
neurons are independent, so it runs them in chunks of ``CHUNK`` with the chunk's state in small local arrays (as
``_lif_kernels``). The diffusive scan couples the units of a ring, so it takes ``(T, B, F, R)`` arrays (the ring
axis F, R every position after it, 1 for ``(B, F)`` steps) and advances the whole step before the next.

Numerics: every scalar argument has the arrays' dtype (``shift = log tau``, ``centre``, ``eps``, ``thr``, ``one``)
and no float literal appears, so float32 stays float32. Log-sum-exps are shifted by their largest term (two terms:
``m + eps log(1 + exp(-|a - b| / eps))``), sigmoids are evaluated on the side where ``exp`` cannot overflow. The
backward pass recomputes each step's reset membrane from the saved trace with the same operations as the forward
pass, so it sees the forward's numbers exactly.

Speed: without Intel's SVML numba does not vectorise ``exp`` / ``log`` (each is a scalar libm call), so the kernels
keep their count low: per unit and step, three forward and two backward (temporal), four forward and four backward
(diffusive), by carrying each step's spike to the next iteration, skipping the largest term's ``exp(0)`` and reusing
the log-sum-exp's exponentials as its weights.
"""
import numba
import numpy as np

CHUNK = 8192
_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(inline="always", **_JIT)
def _spike(u, ie, thr, hard, one):
    """``(s, sig)``: the spike (hard: ``u >= thr``) and the soft spike ``sigmoid((u - thr) ie)``, ``ie = 1 / eps``."""
    z = (u - thr) * ie
    e = np.exp(-abs(z))
    sig = one / (one + e) if z >= 0 else e / (one + e)
    if hard:
        return (one if u >= thr else one - one), sig
    return sig, sig


@numba.njit(inline="always", **_JIT)
def _lse2(a, b, eps, ie, one):
    return (a if a >= b else b) + eps * np.log(one + np.exp(-abs(a - b) * ie))


@numba.njit(inline="always", **_JIT)
def _lse3(p, q, r, eps, ie, one):
    """``(LSE, ep, eq, er, total)``: the three-term log-sum-exp shifted by its largest term ``m``, each term's
    ``exp((X - m) / eps)`` (1 for the largest: two ``exp`` calls) and their sum (term ``k``'s weight is
    ``e_k / total``)."""
    if p >= q and p >= r:
        m, ep, eq, er = p, one, np.exp((q - p) * ie), np.exp((r - p) * ie)
    elif q >= r:
        m, ep, eq, er = q, np.exp((p - q) * ie), one, np.exp((r - q) * ie)
    else:
        m, ep, eq, er = r, np.exp((p - r) * ie), np.exp((q - r) * ie), one
    total = ep + eq + er
    return m + eps * np.log(total), ep, eq, er, total


@numba.njit(**_JIT)
def ultra_forward(x, v0, shift, eps, thr, hard, one, s, u, v_last):
    """Temporal scan: fill ``u`` (membrane before reset), ``s`` (spikes) and ``v_last`` (the final reset state)."""
    T, N = x.shape
    ie = one / eps
    vl = np.empty(CHUNK, x.dtype)
    for c0 in range(0, N, CHUNK):
        c1 = min(c0 + CHUNK, N)
        m = c1 - c0
        vl[:m] = v0[c0:c1]
        for t in range(T):
            xt, ut, st = x[t, c0:c1], u[t, c0:c1], s[t, c0:c1]
            for k in range(m):
                w = _lse2(vl[k] + shift, xt[k], eps, ie, one)
                spike = _spike(w, ie, thr, hard, one)[0]
                ut[k] = w
                st[k] = spike
                vl[k] = w * (one - spike)
        v_last[c0:c1] = vl[:m]


@numba.njit(**_JIT)
def ultra_backward(gs, gu, gv_last, u, x, v0, shift, eps, thr, hard, one, gx, geps, gshift, gv0):
    """Reverse temporal scan: fill ``gx`` (dL/dx), per neuron ``geps``, ``gshift`` (dL/d log tau) and ``gv0``.

    ``gs``, ``gu`` (gradients of spikes and membrane) are ``(T, N)`` or one row of zeros when absent; ``gv_last``
    is the gradient of the final state (zeros when absent). Each step's spike is computed once, as the reset of
    the step after it, and carried to its own step; the two log-sum-exp weights come from one ``exp``.
    """
    T, N = u.shape
    zero = one - one
    ie = one / eps
    cl = np.empty(CHUNK, u.dtype)   # dL/dv[t] (the reset membrane) in total
    ge = np.empty(CHUNK, u.dtype)
    gl = np.empty(CHUNK, u.dtype)
    sp = np.empty(CHUNK, u.dtype)   # s[t] and sig[t], carried from the step after
    sg = np.empty(CHUNK, u.dtype)
    for c0 in range(0, N, CHUNK):
        c1 = min(c0 + CHUNK, N)
        m = c1 - c0
        cl[:m] = gv_last[c0:c1]
        ge[:m] = zero
        gl[:m] = zero
        if T:
            for k in range(m):
                sp[k], sg[k] = _spike(u[T - 1, c0 + k], ie, thr, hard, one)
        for t in range(T - 1, -1, -1):
            ut, xt, gxt = u[t, c0:c1], x[t, c0:c1], gx[t, c0:c1]
            up = u[t - 1 if t else 0, c0:c1]
            gst = gs[t if gs.shape[0] > 1 else 0, c0:c1]
            gut = gu[t if gu.shape[0] > 1 else 0, c0:c1]
            for k in range(m):
                w = ut[k]
                spike, sig = sp[k], sg[k]
                ds = sig * (one - sig) * ie             # dsig/dw; -ds (w - thr) / eps is dsig/deps
                c = cl[k]
                g = gut[k] + gst[k] * ds + c * ((one - spike) - w * ds)
                e = (gst[k] - c * w) * (-ds * ((w - thr) * ie))
                if t == 0:
                    vp = v0[c0 + k]
                else:
                    sp[k], sg[k] = _spike(up[k], ie, thr, hard, one)
                    vp = up[k] * (one - sp[k])
                a = vp + shift
                b = xt[k]
                small = np.exp(-abs(a - b) * ie)
                big = one / (one + small)           # the larger term's weight
                small = small * big
                wa, wb = (big, small) if a >= b else (small, big)
                ge[k] += e + g * (w - wa * a - wb * b) * ie
                gxt[k] = g * wb
                gl[k] += g * wa
                cl[k] = g * wa
        geps[c0:c1] = ge[:m]
        gshift[c0:c1] = gl[:m]
        gv0[c0:c1] = cl[:m]


@numba.njit(**_JIT)
def ultra_diffusive_forward(x, v0, centre, eps, thr, hard, one, s, u, v_last):
    """Diffusive scan on rings along axis 2 of ``(T, B, F, R)``: fill ``u``, ``s`` and ``v_last`` ``(B, F, R)``."""
    T, B, F, R = x.shape
    ie = one / eps
    vp = v0.copy()
    vn = np.empty_like(vp)
    for t in range(T):
        for b in range(B):
            for f in range(F):
                fl, fr = (f + F - 1) % F, (f + 1) % F
                for r in range(R):
                    w = _lse3(vp[b, fl, r], centre * vp[b, f, r], vp[b, fr, r], eps, ie, one)[0] + x[t, b, f, r]
                    spike = _spike(w, ie, thr, hard, one)[0]
                    u[t, b, f, r] = w
                    s[t, b, f, r] = spike
                    vn[b, f, r] = w * (one - spike)
        vp, vn = vn, vp
    v_last[:] = vp


@numba.njit(**_JIT)
def ultra_diffusive_backward(gs, gu, gv_last, u, x, v0, centre, eps, thr, hard, one, gx, geps, gcentre, gv0):
    """Reverse diffusive scan: fill ``gx``, per unit ``geps``, ``gcentre`` (dL/d centre factor) and ``gv0``.

    ``gs``, ``gu`` are ``(T, B, F, R)`` or ``(1, B, F, R)`` zeros when absent. The carried gradient of unit ``j``
    gathers the terms where ``v_j`` entered a log-sum-exp: as the left term of ``j + 1``, the centre of ``j`` and
    the right term of ``j - 1``. Spikes are carried as in :func:`ultra_backward`.
    """
    T, B, F, R = u.shape
    zero = one - one
    ie = one / eps
    c = gv_last.copy()        # dL/dv[t] (reset membrane) in total
    vp = np.empty_like(c)     # v[t-1]
    sp, sg = np.empty_like(c), np.empty_like(c)   # s[t], sig[t]; then s[t-1], sig[t-1] for the next step
    pl, pc, pr = np.empty_like(c), np.empty_like(c), np.empty_like(c)
    geps[:] = zero
    gcentre[:] = zero
    if T:
        for b in range(B):
            for f in range(F):
                for r in range(R):
                    sp[b, f, r], sg[b, f, r] = _spike(u[T - 1, b, f, r], ie, thr, hard, one)
    for t in range(T - 1, -1, -1):
        tg = t if gs.shape[0] > 1 else 0
        tu = t if gu.shape[0] > 1 else 0
        for b in range(B):
            for f in range(F):
                for r in range(R):
                    w = u[t, b, f, r]
                    spike, sig = sp[b, f, r], sg[b, f, r]
                    ds = sig * (one - sig) * ie
                    cc = c[b, f, r]
                    g = gu[tu, b, f, r] + gs[tg, b, f, r] * ds + cc * ((one - spike) - w * ds)
                    geps[b, f, r] += (gs[tg, b, f, r] - cc * w) * (-ds * ((w - thr) * ie))
                    gx[t, b, f, r] = g
                    pc[b, f, r] = g       # g[t], kept here until the weights are known
                    if t == 0:
                        vp[b, f, r] = v0[b, f, r]
                    else:
                        wp = u[t - 1, b, f, r]
                        sp[b, f, r], sg[b, f, r] = _spike(wp, ie, thr, hard, one)
                        vp[b, f, r] = wp * (one - sp[b, f, r])
        for b in range(B):
            for f in range(F):
                fl, fr = (f + F - 1) % F, (f + 1) % F
                for r in range(R):
                    g = pc[b, f, r]
                    left, mid, right = vp[b, fl, r], centre * vp[b, f, r], vp[b, fr, r]
                    lse, el, em, er, total = _lse3(left, mid, right, eps, ie, one)
                    scale = g / total
                    gl, gm, gr = el * scale, em * scale, er * scale
                    geps[b, f, r] += (g * lse - gl * left - gm * mid - gr * right) * ie
                    gcentre[b, f, r] += gm * vp[b, f, r]
                    pl[b, f, r] = gl
                    pc[b, f, r] = gm * centre
                    pr[b, f, r] = gr
        for b in range(B):
            for f in range(F):
                fl, fr = (f + F - 1) % F, (f + 1) % F
                for r in range(R):
                    c[b, f, r] = pl[b, fr, r] + pc[b, f, r] + pr[b, fl, r]
    gv0[:] = c
