"""Triton kernels of the LIF scan (CUDA tensors), used by :func:`spikelab.functional.lif.lif_sequence`.

The update and its gradient are documented in ``lif.py``; these kernels compute the same numbers as the numba
kernels of ``_lif_kernels.py`` (the CPU path) with the same operations in the same order, and are tested against
them on CPU tensors with Triton's interpreter (``TRITON_INTERPRET=1``, which must be set before Triton is
imported), in ``tests/test_lif_triton.py``.

Layout: ``x``, ``v``, ``s`` are C-contiguous ``(T, N)`` (N = batch x features), one step's arrays ``(N,)``. One
program takes a block of ``BLOCK`` neurons and loops over all T steps with the block's state (membrane, spikes,
carried gradient) in registers: one kernel launch per sequence and direction, every load and store a coalesced
row segment. Neurons are independent, so blocks never talk to each other.

Numerics: the membrane is accumulated in float32 whatever the input's dtype: float16 / bfloat16 inputs and
incoming gradients are widened as they are loaded, the membrane trace saved for the backward pass is float32,
and spikes and ``dL/dx`` are stored in the input's dtype (spikes are exactly 0 or 1 in every dtype). The options
are compile-time constants (``tl.constexpr``), so each configuration compiles to a kernel without the unused
terms; the kernels are launched with floating-point contraction off (``enable_fp_fusion=False``), so ``beta * v +
x`` rounds twice, as in numba and in torch, and spikes agree bit for bit with the CPU path.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from spikelab.functional.lif import SURROGATE_KIND, surrogate_constants

BLOCK = 256        # neurons per program: two per thread with four warps
NUM_WARPS = 4
_RESET_CODE = {"zero": 0, "subtract": 1, "none": 2}


@triton.jit
def _block_parameters(beta_ptr, v0_ptr, s0_ptr, offs, live, beta_scalar, BETA_TENSOR: tl.constexpr,
                      HAS_STATE: tl.constexpr, BLOCK: tl.constexpr):
    """The block's ``beta`` (per neuron, or the scalar) and initial state ``v0``, ``s0`` (zeros at rest), float32."""
    if BETA_TENSOR:
        beta = tl.load(beta_ptr + offs, mask=live, other=0.0).to(tl.float32)
    else:
        beta = tl.zeros([BLOCK], dtype=tl.float32) + beta_scalar
    if HAS_STATE:
        v0 = tl.load(v0_ptr + offs, mask=live, other=0.0).to(tl.float32)
        s0 = tl.load(s0_ptr + offs, mask=live, other=0.0).to(tl.float32)
    else:
        v0 = tl.zeros([BLOCK], dtype=tl.float32)
        s0 = tl.zeros([BLOCK], dtype=tl.float32)
    return beta, v0, s0


@triton.jit(do_not_specialize=["T"])
def _forward_kernel(x_ptr, beta_ptr, v0_ptr, s0_ptr, v_ptr, s_ptr, T, N, beta_scalar, thr,
                    BETA_TENSOR: tl.constexpr, HAS_STATE: tl.constexpr, RESET: tl.constexpr,
                    REFRACTORY: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    beta, v, s = _block_parameters(beta_ptr, v0_ptr, s0_ptr, offs, live, beta_scalar, BETA_TENSOR, HAS_STATE, BLOCK)
    row = offs                                    # t * N + offs, in int64 (T * N may pass 2**31)
    for _ in range(T):
        i = tl.load(x_ptr + row, mask=live, other=0.0).to(tl.float32)
        a = beta * v
        if RESET == 0:   # zero reset: the step after a spike starts from 0
            a = a * (1.0 - s)
        if REFRACTORY:   # one refractory step: its input is dropped
            i = i * (1.0 - s)
        v = a + i
        if RESET == 1:   # subtract the threshold
            v = v - thr * s
        s = (v >= thr).to(tl.float32)
        tl.store(v_ptr + row, v.to(v_ptr.dtype.element_ty), mask=live)
        tl.store(s_ptr + row, s.to(s_ptr.dtype.element_ty), mask=live)
        row += N


@triton.jit
def _surrogate(u, thr, c1, c2, SURROGATE: tl.constexpr):
    """dH/du at ``u - thr``: atan ``c1 / (1 + (c2 u)^2)``, fast sigmoid ``1 / (c1 |u| + 1)^2``, triangle
    ``c1 max(0, 1 - c1 |u|)`` (the constants as ``_lif_kernels._surrogate_row``)."""
    if SURROGATE == 0:
        w = c2 * (u - thr)
        return c1 / (w * w + 1.0)
    elif SURROGATE == 1:
        d = c1 * tl.abs(u - thr) + 1.0
        return 1.0 / (d * d)
    else:
        return tl.maximum(1.0 - c1 * tl.abs(u - thr), 0.0) * c1


@triton.jit(do_not_specialize=["T"])
def _backward_kernel(gs_ptr, gv_ptr, v_ptr, x_ptr, beta_ptr, v0_ptr, s0_ptr, gx_ptr, gbeta_ptr, a0_ptr,
                     T, N, beta_scalar, thr, c1, c2,
                     HAS_GS: tl.constexpr, HAS_GV: tl.constexpr, BETA_TENSOR: tl.constexpr,
                     HAS_STATE: tl.constexpr, RESET: tl.constexpr, REFRACTORY: tl.constexpr,
                     DETACH: tl.constexpr, SURROGATE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    beta, v0, s0 = _block_parameters(beta_ptr, v0_ptr, s0_ptr, offs, live, beta_scalar, BETA_TENSOR, HAS_STATE,
                                     BLOCK)
    a = tl.zeros([BLOCK], dtype=tl.float32)       # dL/dv[t+1], then dL/dv[t]
    gbeta = tl.zeros([BLOCK], dtype=tl.float32)
    last = (T - 1).to(tl.int64) * N + offs       # row of the last step
    u = tl.load(v_ptr + last, mask=live, other=0.0)   # v[t]
    row = last
    for _ in range(T):
        # v[t-1] and s[t-1]; the initial state at t = 0 (row < N). Conditions are per element, as masks must be.
        first = row < N
        earlier = tl.load(v_ptr + row - N, mask=live & ~first, other=0.0)
        v_prev = tl.where(first, v0, earlier)
        s_prev = tl.where(first, s0, (earlier >= thr).to(tl.float32))
        g = tl.zeros([BLOCK], dtype=tl.float32)
        if HAS_GS:
            g = tl.load(gs_ptr + row, mask=live, other=0.0).to(tl.float32)
        if not DETACH:   # through s[t] into step t+1 (a is 0 at the last step): dv[t+1]/ds[t]
            ds = tl.zeros([BLOCK], dtype=tl.float32)
            if RESET == 0:
                ds = ds - beta * u
            if REFRACTORY:
                ds = ds - tl.load(x_ptr + row + N, mask=live & (row < last), other=0.0).to(tl.float32)
            if RESET == 1:
                ds = ds - thr
            g = g + a * ds
        direct = a * beta
        if RESET == 0:
            direct = direct * (1.0 - (u >= thr).to(tl.float32))
        a = _surrogate(u, thr, c1, c2, SURROGATE) * g + direct
        if HAS_GV:
            a = a + tl.load(gv_ptr + row, mask=live, other=0.0).to(tl.float32)
        gx = a
        if REFRACTORY:
            gx = gx * (1.0 - s_prev)
        tl.store(gx_ptr + row, gx.to(gx_ptr.dtype.element_ty), mask=live)
        if RESET == 0:
            gbeta += a * (1.0 - s_prev) * v_prev
        else:
            gbeta += a * v_prev
        u = v_prev
        row -= N
    tl.store(gbeta_ptr + offs, gbeta, mask=live)
    tl.store(a0_ptr + offs, a, mask=live)


def _step_values(value):
    """A one-step tensor as the kernels read it (contiguous), and whether it is one: floats travel as scalars."""
    if isinstance(value, torch.Tensor):
        return value.contiguous(), True
    return None, False


#: the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` when Triton was imported): on CPU tensors
INTERPRETED = not isinstance(_forward_kernel, triton.runtime.JITFunction)


def triton_forward(x, beta, v0, s0, p):
    """Forward scan: ``(v, s)``, ``v`` the float32 membrane trace and ``s`` spikes in ``x``'s dtype, ``(T, ...)``."""
    x = x.contiguous()
    steps, n = x.shape[0], math.prod(x.shape[1:])
    v = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    s = torch.empty_like(x, memory_format=torch.contiguous_format)
    beta_t, beta_tensor = _step_values(beta)
    if steps and n:
        _forward_kernel[(triton.cdiv(n, BLOCK),)](
            x, beta_t if beta_tensor else x, v if v0 is None else v0, v if s0 is None else s0, v, s, steps, n,
            0.0 if beta_tensor else float(beta), p.threshold, BETA_TENSOR=beta_tensor, HAS_STATE=v0 is not None,
            RESET=_RESET_CODE[p.reset], REFRACTORY=p.refractory_steps == 1, BLOCK=BLOCK, num_warps=NUM_WARPS,
            enable_fp_fusion=False)
    return v, s


def triton_backward(gs, gv, v, x, beta, v0, s0, p, grad_dtype):
    """Reverse scan: ``(dL/dx in grad_dtype, dL/dbeta per neuron, dL/dv[0] in total)``, the last two float32."""
    steps, n = v.shape[0], math.prod(v.shape[1:])
    gx = torch.empty(v.shape, dtype=grad_dtype, device=v.device)
    gbeta = torch.zeros(v.shape[1:], dtype=torch.float32, device=v.device)
    a0 = torch.zeros(v.shape[1:], dtype=torch.float32, device=v.device)
    beta_t, beta_tensor = _step_values(beta)
    c1, c2 = surrogate_constants(p)
    if steps and n:
        gs = None if gs is None else gs.contiguous()
        gv = None if gv is None else gv.contiguous()
        _backward_kernel[(triton.cdiv(n, BLOCK),)](
            v if gs is None else gs, v if gv is None else gv, v, v if x is None else x.contiguous(),
            beta_t if beta_tensor else v, v if v0 is None else v0, v if s0 is None else s0, gx, gbeta, a0,
            steps, n, 0.0 if beta_tensor else float(beta), p.threshold, c1, c2,
            HAS_GS=gs is not None, HAS_GV=gv is not None, BETA_TENSOR=beta_tensor, HAS_STATE=v0 is not None,
            RESET=_RESET_CODE[p.reset], REFRACTORY=p.refractory_steps == 1, DETACH=p.detach_reset,
            SURROGATE=SURROGATE_KIND[p.surrogate], BLOCK=BLOCK, num_warps=NUM_WARPS, enable_fp_fusion=False)
    return gx, gbeta, a0
