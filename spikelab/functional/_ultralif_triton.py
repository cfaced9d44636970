"""Triton kernels of the UltraLIF-family scans (CUDA tensors), used by
:func:`spikelab.functional.ultralif.ultra_sequence` and :func:`~spikelab.functional.ultralif.ultra_diffusive_sequence`.

The update and its gradient are documented in ``ultralif.py``; these kernels compute the numbers of the numba
kernels (``_ultralif_kernels.py``, the CPU path) with the same formulas (float rounding apart: the numba kernels
multiply by ``1 / eps`` and share exponentials to save scalar ``exp`` calls, which a GPU does not need), and are
tested against them on CPU tensors with Triton's interpreter (``TRITON_INTERPRET=1``) in
``tests/test_ultralif_triton.py``.

Layout and launches: one launch per sequence and direction. The temporal scan's neurons are independent: one
program takes ``BLOCK`` of them and loops over all T steps with their state in registers (as ``_lif_triton``).
The diffusive scan couples the units of a ring (axis F of ``(T, B, F, R)``), so one program holds whole rings: a
``(F, R-block)`` tile of one batch element. Neighbours' membranes are exchanged through a small scratch buffer in
global memory (two halves used in turn, one barrier per step; the backward pass's three gradient terms likewise,
two barriers per step), so nothing but the program's own rings is ever read.

Numerics: float32 throughout (the caller widens float16 / bfloat16); ``eps`` and ``log tau`` / the centre factor are
read from one-element tensors, so a learnable value never leaves the GPU; launched with floating-point contraction
off (``enable_fp_fusion=False``).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

BLOCK = 256        # neurons per program of the temporal scan: two per thread with four warps
NUM_WARPS = 4
RING_TILE = 1024   # units per program of the diffusive scan (whole rings; more when a ring is longer)


@triton.jit
def _spike(u, eps, thr, HARD: tl.constexpr):
    """``(s, sig, z)``: the spike (hard: ``u >= thr``), the soft spike and ``z = (u - thr) / eps``."""
    z = (u - thr) / eps
    e = tl.exp(-tl.abs(z))
    sig = tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if HARD:
        s = (u >= thr).to(tl.float32)
    else:
        s = sig
    return s, sig, z


@triton.jit
def _lse3(p, q, r, eps):
    m = tl.maximum(p, tl.maximum(q, r))
    return m + eps * tl.log(tl.exp((p - m) / eps) + tl.exp((q - m) / eps) + tl.exp((r - m) / eps))


@triton.jit(do_not_specialize=["T"])
def _forward_kernel(x_ptr, v0_ptr, eps_ptr, shift_ptr, s_ptr, u_ptr, v_last_ptr, T, N, thr,
                    HARD: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    eps = tl.load(eps_ptr)
    shift = tl.load(shift_ptr)
    v = tl.load(v0_ptr + offs, mask=live, other=0.0)
    row = offs
    for _ in range(T):
        a = v + shift
        b = tl.load(x_ptr + row, mask=live, other=0.0)
        w = tl.maximum(a, b) + eps * tl.log(1.0 + tl.exp(-tl.abs(a - b) / eps))
        s, sig, z = _spike(w, eps, thr, HARD)
        tl.store(u_ptr + row, w, mask=live)
        tl.store(s_ptr + row, s, mask=live)
        v = w * (1.0 - s)
        row += N
    tl.store(v_last_ptr + offs, v, mask=live)


@triton.jit(do_not_specialize=["T"])
def _backward_kernel(gs_ptr, gu_ptr, gv_last_ptr, u_ptr, x_ptr, v0_ptr, eps_ptr, shift_ptr,
                     gx_ptr, geps_ptr, gshift_ptr, gv0_ptr, T, N, thr,
                     HAS_GS: tl.constexpr, HAS_GU: tl.constexpr, HAS_GV: tl.constexpr, HARD: tl.constexpr,
                     BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    eps = tl.load(eps_ptr)
    shift = tl.load(shift_ptr)
    v0 = tl.load(v0_ptr + offs, mask=live, other=0.0)
    c = tl.zeros([BLOCK], dtype=tl.float32)       # dL/dv[t] (reset membrane) in total
    if HAS_GV:
        c = tl.load(gv_last_ptr + offs, mask=live, other=0.0)
    ge = tl.zeros([BLOCK], dtype=tl.float32)
    gl = tl.zeros([BLOCK], dtype=tl.float32)
    row = (T - 1).to(tl.int64) * N + offs
    for _ in range(T):
        w = tl.load(u_ptr + row, mask=live, other=0.0)
        s, sig, z = _spike(w, eps, thr, HARD)
        ds = sig * (1.0 - sig) / eps
        gs = tl.zeros([BLOCK], dtype=tl.float32)
        if HAS_GS:
            gs = tl.load(gs_ptr + row, mask=live, other=0.0)
        g = c * ((1.0 - s) - w * ds) + gs * ds
        if HAS_GU:
            g = tl.load(gu_ptr + row, mask=live, other=0.0) + g
        e = (gs - c * w) * (-ds * z)
        first = row < N
        wp = tl.load(u_ptr + row - N, mask=live & ~first, other=0.0)
        sp, sigp, zp = _spike(wp, eps, thr, HARD)
        vp = tl.where(first, v0, wp * (1.0 - sp))
        a = vp + shift
        b = tl.load(x_ptr + row, mask=live, other=0.0)
        wa = tl.exp((a - w) / eps)
        wb = tl.exp((b - w) / eps)
        ge += e + g * (w - wa * a - wb * b) / eps
        tl.store(gx_ptr + row, g * wb, mask=live)
        gl += g * wa
        c = g * wa
        row -= N
    tl.store(geps_ptr + offs, ge, mask=live)
    tl.store(gshift_ptr + offs, gl, mask=live)
    tl.store(gv0_ptr + offs, c, mask=live)


@triton.jit
def _ring_offsets(F, R, R_BLOCKS, FB: tl.constexpr, RB: tl.constexpr):
    """This program's tile: offsets of each unit, of its left and right ring neighbours, and the live mask."""
    pid = tl.program_id(0)
    batch = (pid // R_BLOCKS).to(tl.int64)
    f = tl.arange(0, FB)
    r = (pid % R_BLOCKS) * RB + tl.arange(0, RB)
    live = (f < F)[:, None] & (r < R)[None, :]
    base = batch * F * R + r[None, :]
    centre = base + f[:, None] * R
    left = base + ((f + F - 1) % F)[:, None] * R
    right = base + ((f + 1) % F)[:, None] * R
    return centre, left, right, live


@triton.jit(do_not_specialize=["T"])
def _diffusive_forward_kernel(x_ptr, buf_ptr, eps_ptr, centre_ptr, s_ptr, u_ptr, T, N, F, R, R_BLOCKS, thr,
                              HARD: tl.constexpr, FB: tl.constexpr, RB: tl.constexpr):
    """``buf`` ``(2, N)``: the reset membrane, read from one half and written to the other each step (the first
    half holds the initial state)."""
    here, left, right, live = _ring_offsets(F, R, R_BLOCKS, FB, RB)
    eps = tl.load(eps_ptr)
    factor = tl.load(centre_ptr)
    src = buf_ptr
    dst = buf_ptr + N
    row = here
    for _ in range(T):
        p = tl.load(src + left, mask=live, other=0.0)
        q = factor * tl.load(src + here, mask=live, other=0.0)
        r = tl.load(src + right, mask=live, other=0.0)
        w = _lse3(p, q, r, eps) + tl.load(x_ptr + row, mask=live, other=0.0)
        s, sig, z = _spike(w, eps, thr, HARD)
        tl.store(u_ptr + row, w, mask=live)
        tl.store(s_ptr + row, s, mask=live)
        tl.store(dst + here, w * (1.0 - s), mask=live)
        tl.debug_barrier()   # the next step reads the neighbours' new membranes
        src, dst = dst, src
        row += N


@triton.jit
def _reset_membrane(u_ptr, v0, offs, live, first, eps, thr, HARD: tl.constexpr):
    """The reset membrane of the step before: recomputed from the trace, or the initial state at step 0."""
    w = tl.load(u_ptr + offs, mask=live & ~first, other=0.0)
    s, sig, z = _spike(w, eps, thr, HARD)
    return tl.where(first, v0, w * (1.0 - s))


@triton.jit(do_not_specialize=["T"])
def _diffusive_backward_kernel(gs_ptr, gu_ptr, gv_last_ptr, u_ptr, v0_ptr, eps_ptr, centre_ptr, terms_ptr,
                               gx_ptr, geps_ptr, gcentre_ptr, gv0_ptr, T, N, F, R, R_BLOCKS, thr,
                               HAS_GS: tl.constexpr, HAS_GU: tl.constexpr, HAS_GV: tl.constexpr,
                               HARD: tl.constexpr, FB: tl.constexpr, RB: tl.constexpr):
    """``terms`` ``(3, N)``: each unit's gradient through its left, centre and right term, gathered by the
    units they came from."""
    here, left, right, live = _ring_offsets(F, R, R_BLOCKS, FB, RB)
    eps = tl.load(eps_ptr)
    factor = tl.load(centre_ptr)
    v0_here = tl.load(v0_ptr + here, mask=live, other=0.0)
    v0_left = tl.load(v0_ptr + left, mask=live, other=0.0)
    v0_right = tl.load(v0_ptr + right, mask=live, other=0.0)
    c = tl.zeros([FB, RB], dtype=tl.float32)       # dL/dv[t] (reset membrane) in total
    if HAS_GV:
        c = tl.load(gv_last_ptr + here, mask=live, other=0.0)
    ge = tl.zeros([FB, RB], dtype=tl.float32)
    gc = tl.zeros([FB, RB], dtype=tl.float32)
    step = (T - 1).to(tl.int64) * N
    for _ in range(T):
        w = tl.load(u_ptr + step + here, mask=live, other=0.0)
        s, sig, z = _spike(w, eps, thr, HARD)
        ds = sig * (1.0 - sig) / eps
        gs = tl.zeros([FB, RB], dtype=tl.float32)
        if HAS_GS:
            gs = tl.load(gs_ptr + step + here, mask=live, other=0.0)
        g = c * ((1.0 - s) - w * ds) + gs * ds
        if HAS_GU:
            g = tl.load(gu_ptr + step + here, mask=live, other=0.0) + g
        e = (gs - c * w) * (-ds * z)
        first = step + here < N   # step 0 (per element, as masks must be)
        v_here = _reset_membrane(u_ptr, v0_here, step - N + here, live, first, eps, thr, HARD)
        p = _reset_membrane(u_ptr, v0_left, step - N + left, live, first, eps, thr, HARD)
        q = factor * v_here
        r = _reset_membrane(u_ptr, v0_right, step - N + right, live, first, eps, thr, HARD)
        lse = _lse3(p, q, r, eps)
        wl = tl.exp((p - lse) / eps)
        wc = tl.exp((q - lse) / eps)
        wr = tl.exp((r - lse) / eps)
        ge += e + g * (lse - wl * p - wc * q - wr * r) / eps
        gc += g * wc * v_here
        tl.store(gx_ptr + step + here, g, mask=live)
        tl.store(terms_ptr + here, g * wl, mask=live)
        tl.store(terms_ptr + N + here, g * wc * factor, mask=live)
        tl.store(terms_ptr + 2 * N + here, g * wr, mask=live)
        tl.debug_barrier()
        c = (tl.load(terms_ptr + right, mask=live, other=0.0) + tl.load(terms_ptr + N + here, mask=live, other=0.0)
             + tl.load(terms_ptr + 2 * N + left, mask=live, other=0.0))
        tl.debug_barrier()   # every unit has read the terms before the next step overwrites them
        step -= N
    tl.store(geps_ptr + here, ge, mask=live)
    tl.store(gcentre_ptr + here, gc, mask=live)
    tl.store(gv0_ptr + here, c, mask=live)


#: the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` when Triton was imported): on CPU tensors
INTERPRETED = not isinstance(_forward_kernel, triton.runtime.JITFunction)


def _scalar(value, like: torch.Tensor) -> torch.Tensor:
    """A float or 0-dim tensor as a one-element float32 tensor on ``like``'s device (filled there: no copy)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float32).reshape(1)
    return torch.full((1,), value, dtype=torch.float32, device=like.device)


def _ring_grid(shape):
    """``(B, F, R, R_BLOCKS, FB, RB, num_warps)`` of a diffusive launch over ``shape`` ``(T, B, F, ...)``."""
    batch, ring, rest = shape[1], shape[2], math.prod(shape[3:])
    fb = triton.next_power_of_2(ring)
    rb = triton.next_power_of_2(min(rest, max(1, RING_TILE // fb)))
    return batch, ring, rest, triton.cdiv(rest, rb), fb, rb, max(NUM_WARPS, min(16, fb * rb // 256))


def triton_forward(x, v0, eps, param, diffusive, threshold, hard):
    """Forward scan of float32 ``x`` ``(T, ...)``: ``(spikes, v before reset, v after the last reset)``, float32."""
    steps, n = x.shape[0], math.prod(x.shape[1:])
    s, u = torch.empty_like(x), torch.empty_like(x)
    eps_t, param_t = _scalar(eps, x), _scalar(param, x)
    if not diffusive:
        v_last = v0.clone()
        if steps and n:
            _forward_kernel[(triton.cdiv(n, BLOCK),)](x, v0, eps_t, param_t, s, u, v_last, steps, n, threshold,
                                                      HARD=hard, BLOCK=BLOCK, num_warps=NUM_WARPS,
                                                      enable_fp_fusion=False)
        return s, u, v_last
    buf = torch.empty((2, n), dtype=torch.float32, device=x.device)
    buf[0] = v0.reshape(-1)
    if steps and n:
        batch, ring, rest, r_blocks, fb, rb, warps = _ring_grid(x.shape)
        _diffusive_forward_kernel[(batch * r_blocks,)](x, buf, eps_t, param_t, s, u, steps, n, ring, rest, r_blocks,
                                                      threshold, HARD=hard, FB=fb, RB=rb, num_warps=warps,
                                                      enable_fp_fusion=False)
    return s, u, buf[steps % 2].reshape(x.shape[1:])


def triton_backward(gs, gu, gv_last, u, x, v0, eps, param, diffusive, threshold, hard):
    """Reverse scan: ``(dL/dx, dL/deps per unit, dL/dparam per unit, dL/dv0)``, float32."""
    steps, n = u.shape[0], math.prod(u.shape[1:])
    gx = torch.empty_like(u)
    geps, gparam = torch.zeros_like(v0), torch.zeros_like(v0)
    gv0 = torch.zeros_like(v0) if gv_last is None else gv_last.clone()
    eps_t, param_t = _scalar(eps, u), _scalar(param, u)
    if not (steps and n):
        return gx, geps, gparam, gv0
    flags = dict(HAS_GS=gs is not None, HAS_GU=gu is not None, HAS_GV=gv_last is not None, HARD=hard)
    absent = lambda g: u if g is None else g  # noqa: E731  (never read: its flag is off)
    if not diffusive:
        _backward_kernel[(triton.cdiv(n, BLOCK),)](absent(gs), absent(gu), absent(gv_last), u, x, v0, eps_t, param_t,
                                                   gx, geps, gparam, gv0, steps, n, threshold, **flags, BLOCK=BLOCK,
                                                   num_warps=NUM_WARPS, enable_fp_fusion=False)
        return gx, geps, gparam, gv0
    terms = torch.empty((3, n), dtype=torch.float32, device=u.device)
    batch, ring, rest, r_blocks, fb, rb, warps = _ring_grid(u.shape)
    _diffusive_backward_kernel[(batch * r_blocks,)](absent(gs), absent(gu), absent(gv_last), u, v0, eps_t, param_t,
                                                   terms, gx, geps, gparam, gv0, steps, n, ring, rest, r_blocks,
                                                   threshold, **flags, FB=fb, RB=rb, num_warps=warps,
                                                   enable_fp_fusion=False)
    return gx, geps, gparam, gv0
