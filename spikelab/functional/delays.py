r"""Learnable synaptic delays as a temporal convolution (DCLS, Hammouamri et al., ICLR 2024).

Each synapse ``(o, i)`` has one weight ``w[o, i]`` and one real-valued delay ``d[o, i]`` in ``[0, D]`` steps
(``D = max_delay``). Its temporal kernel over the taps ``k = 0 .. D`` is one Gaussian-interpolated tap at the
delay, normalised so that the taps sum to the weight::

    g[o, i, k] = exp(-((k - d[o, i]) / sigma)^2 / 2)
    K[o, i, k] = w[o, i] * g[o, i, k] / sum_k g[o, i, k]             # sum_k K[o, i, k] == w[o, i]

With ``sigma == 0`` the tap is one-hot at ``round(d)`` (an exact integer delay; no gradient to ``d``). The
straight-through kernel (``delay_kernel(..., straight_through=True)``) is that one-hot tap forward and, backward, the
Gaussian's gradient to the delay taken at ``round(d)``: training on the integer delays that evaluation runs. The
layer output is the causal temporal convolution (zero input before ``t = 0``)::

    y[t, b, o] = sum_i sum_k K[o, i, k] * x[t - k, b, i]

so a synapse with delay ``d`` shifts its input later by ``d`` steps. In the DCLS code the kernel has
``M = D + 1`` taps, the position ``p`` lives in ``[-M//2, M//2]`` and the delay is ``d = M//2 - p``; here the
position *is* the delay, ``d = p``, and tap ``k`` is a delay of ``k`` steps (the DCLS kernel flipped in time).
Against the DCLS package (``dcls`` 0.1.1, ``Dcls1d(version="gauss")`` with ``P = M//2 - d`` and
``SIG = sigma - 0.27``; ``spikelab bench delays`` checks it): the same outputs and gradients to float32 rounding
(DCLS divides by ``sum + 1e-7``; its position gradient has the opposite sign).

Two ways to compute the convolution, the same numbers up to float rounding:

``conv``  one ``conv1d`` over time with the neurons as channels: ``B * in * out * T * (D + 1)`` multiply-adds.
          Exact for a one-hot kernel (integer delays): every output is one product plus zeros.
``dft``   the convolution theorem with a real DFT of length ``n = T + D`` (long enough that nothing wraps
          around), written as matrix products: per frequency, the complex product ``X[f] @ K[f]`` of the
          transformed input ``(B, in)`` and kernel ``(in, out)``. About ``2 n B in out + n (D + 1) in out``
          multiply-adds: 5-6x fewer than ``conv`` in the SHD setting (T = 100, D = 24, batch 32), forward and
          backward alike. Agrees with ``conv`` to float rounding (about 1e-6 of the output's scale in float32).

:func:`delayed_linear` picks ``dft`` for float32 / float64 inputs when it needs less than half of ``conv``'s
multiply-adds (``method="auto"``).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikelab.errors import ConfigError

__all__ = ["delay_kernel", "delayed_linear", "delayed_linear_step", "delayed_linear_cost"]

METHODS = ("auto", "conv", "dft")


def _taps(taps: int, position: Tensor) -> Tensor:
    """The tap indices ``k = 0 .. taps - 1`` shaped ``(taps, 1, 1)`` to broadcast over ``(taps, in, out)``."""
    return torch.arange(taps, dtype=position.dtype, device=position.device).view(taps, 1, 1)


def _one_hot(weight: Tensor, rounded: Tensor, taps: int) -> Tensor:
    """``K[k, i, o] = w[o, i] * [k == rounded[o, i]]`` ``(taps, in, out)``: whole-step delays ``rounded``."""
    return (_taps(taps, rounded) == rounded.t()).to(weight.dtype) * weight.t()


def _gaussian_softmax(centre: Tensor, sigma: float | Tensor, taps: int) -> Tensor:
    """``s[k, i, o] = softmax_k(-((k - centre[o, i]) / sigma)^2 / 2)`` ``(taps, in, out)``, underflow-safe."""
    z = (_taps(taps, centre) - centre.t().contiguous()).div_(sigma)
    return torch.softmax(z.square_().mul_(-0.5), dim=0)


def _position_grad(grad: Tensor, s: Tensor, sw: Tensor, weight: Tensor, centre: Tensor,
                   sigma: float | Tensor) -> Tensor:
    """Gradient ``(out, in)`` to the tap centres of the Gaussian taps ``w * s``, from the kernel's gradient ``grad``
    and ``sw = sum_k grad * s`` (both tap-major): ``w / sigma * sum_k s (grad - sw) (k - centre) / sigma``."""
    t = (grad - sw).mul_(s).mul_(_taps(s.shape[0], centre) - centre.t().contiguous())
    return (t.sum(0) * weight.t()).t() / (sigma * sigma)


class _GaussianTaps(torch.autograd.Function):
    """``K[k, i, o] = w[o, i] * softmax_k(-((k - d[o, i]) / sigma)^2 / 2)``, stored tap-major ``(taps, in, out)``.

    One autograd node with a hand-written backward (fewer passes over the ``taps * in * out`` kernel than the
    chain of elementwise ops autograd would record)::

        dw[o, i] = sum_k dK[k, i, o] s[k, i, o]
        dd[o, i] = w[o, i] / sigma * sum_k s[k, i, o] (dK[k, i, o] - dw[o, i]) (k - d[o, i]) / sigma
    """

    @staticmethod
    def forward(ctx, weight: Tensor, position: Tensor, sigma: float | Tensor, taps: int) -> Tensor:
        s = _gaussian_softmax(position, sigma, taps)                     # (taps, in, out), contiguous
        ctx.save_for_backward(weight, position, s)
        ctx.sigma = sigma
        return s * weight.t().contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, position, s = ctx.saved_tensors
        grad_w = grad_d = None
        sw = (grad * s).sum(0)                                           # (in, out)
        if ctx.needs_input_grad[0]:
            grad_w = sw.t()
        if ctx.needs_input_grad[1]:
            grad_d = _position_grad(grad, s, sw, weight, position, ctx.sigma)
        return grad_w, grad_d, None, None


class _RoundedTaps(torch.autograd.Function):
    """One-hot taps at the whole-step delay ``r = round(d)`` with a straight-through gradient to ``d``.

    Forward: ``K[k, i, o] = w[o, i] * [k == r[o, i]]`` (tap-major), exactly the evaluation kernel. Backward:
    ``dw[o, i] = dK[r[o, i], i, o]`` (exact), and ``dd`` is the Gaussian taps' position gradient of width
    ``sigma`` taken at the centre ``r``, the delay the forward pass used (a smoothed central difference of
    ``dK`` along the taps: it says which way moving the delay by a step lowers the loss)::

        dd[o, i] = w[o, i] / sigma * sum_k s[k, i, o] (dK[k, i, o] - sum_j s[j, i, o] dK[j, i, o]) (k - r[o, i]) / sigma
        s[k, i, o] = softmax_k(-((k - r[o, i]) / sigma)^2 / 2)
    """

    @staticmethod
    def forward(ctx, weight: Tensor, position: Tensor, sigma: float | Tensor, taps: int) -> Tensor:
        rounded = position.detach().round().clamp(0, taps - 1)
        ctx.save_for_backward(weight, rounded)
        ctx.sigma = sigma
        return _one_hot(weight, rounded, taps)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, rounded = ctx.saved_tensors
        grad_w = grad_d = None
        if ctx.needs_input_grad[0]:
            grad_w = grad.gather(0, rounded.t().long().unsqueeze(0)).squeeze(0).t()
        if ctx.needs_input_grad[1]:
            s = _gaussian_softmax(rounded, ctx.sigma, grad.shape[0])
            grad_d = _position_grad(grad, s, (grad * s).sum(0), weight, rounded, ctx.sigma)
        return grad_w, grad_d, None, None


def delay_kernel(weight: Tensor, position: Tensor, sigma: float | Tensor, max_delay: int,
                 straight_through: bool = False) -> Tensor:
    """Dense delay kernel ``(out, in, max_delay + 1)`` from weights and real delays ``(out, in)``.

    Args:
        weight: synaptic weights ``(out, in)``.
        position: delays in steps ``(out, in)``, meant to lie in ``[0, max_delay]`` (not clamped here).
        sigma: Gaussian width in steps (> 0), or 0 for a one-hot tap at ``round(position)`` (clamped into range;
            no gradient to ``position``). A one-element tensor (a layer's schedule buffer) is used as it is, on
            its device and unchecked: it must be > 0 (its value is never read on the host, so a GPU does not wait).
        max_delay: the longest delay ``D``; the kernel has ``D + 1`` taps, tap ``k`` = delay of ``k`` steps.
        straight_through: True (with ``sigma > 0``): the one-hot tap at ``round(position)`` forward, exactly as
            with ``sigma = 0``, and a straight-through gradient to ``position``: that of Gaussian taps of width
            ``sigma`` centred on the rounded delay (training on the integer delays that evaluation uses).

    Returns:
        ``K`` with ``K[o, i, k]`` the weight of input ``i`` delayed by ``k`` steps in output ``o``;
        ``K.sum(-1) == weight`` (up to rounding). ``K`` is a view of a tap-major ``(taps, in, out)`` tensor
        (``K.permute(2, 1, 0)`` is contiguous): the layout the ``dft`` method and the step function multiply with.
    """
    if isinstance(max_delay, bool) or not isinstance(max_delay, int) or max_delay < 0:
        raise ConfigError(f"max_delay must be an int >= 0 (steps), got {max_delay!r}")
    if weight.shape != position.shape or weight.dim() != 2:
        raise ConfigError(f"weight and position must both be (out, in), got {tuple(weight.shape)} and "
                          f"{tuple(position.shape)}: give one delay per synapse")
    if isinstance(sigma, Tensor):
        if sigma.numel() != 1:
            raise ConfigError(f"sigma must be one width for the whole kernel, got a tensor of shape "
                              f"{tuple(sigma.shape)}")
        sigma = sigma.detach().to(position.dtype).reshape(())
    elif not sigma >= 0 or (straight_through and sigma == 0):
        raise ConfigError(f"sigma must be {'> 0 with straight_through' if straight_through else '>= 0'} (steps), "
                          f"got {sigma!r}")
    taps = max_delay + 1
    if max_delay == 0 or not isinstance(sigma, Tensor) and sigma == 0:
        return _one_hot(weight, position.detach().round().clamp(0, max_delay), taps).permute(2, 1, 0)
    taps_function = _RoundedTaps if straight_through else _GaussianTaps
    return taps_function.apply(weight, position, sigma, taps).permute(2, 1, 0)


def delayed_linear_cost(steps: int, batch: int, n_in: int, n_out: int, max_delay: int, extend: bool = False) -> dict:
    """Multiply-adds of one forward pass by each method: ``{"conv": ..., "dft": ...}`` (``dft``: the DFTs of input
    and kernel, the per-frequency complex products and the inverse DFT)."""
    taps, out_steps = max_delay + 1, steps + (max_delay if extend else 0)
    n = steps + max_delay
    rows = 2 * (n // 2 + 1)                                              # real and imaginary part per frequency
    return {"conv": batch * n_in * n_out * out_steps * taps,
            "dft": rows * (steps * batch * n_in + taps * n_in * n_out + 2 * batch * n_in * n_out
                           + out_steps * batch * n_out)}


def _resolve_method(method: str, x: Tensor, kernel: Tensor, extend: bool) -> str:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    if x.dtype not in (torch.float32, torch.float64):                  # half precision: keep conv1d's accuracy
        return "conv"
    steps, batch, n_in = x.shape
    n_out, _, taps = kernel.shape
    cost = delayed_linear_cost(steps, batch, n_in, n_out, taps - 1, extend)
    return "dft" if 2 * cost["dft"] < cost["conv"] else "conv"


@functools.lru_cache(maxsize=32)
def _dft_matrices(steps: int, taps: int, out_steps: int, dtype: torch.dtype, device: torch.device):
    """Real DFT matrices of length ``n = steps + taps - 1``, rows interleaved (real, imaginary) per frequency:
    ``to_x (2F, steps)``, ``to_k (2F, taps)`` and the inverse ``back (out_steps, 2F)``; computed in float64."""
    n = steps + taps - 1
    freqs = torch.arange(n // 2 + 1, dtype=torch.float64)

    def forward(length):
        angle = (2 * math.pi / n) * freqs[:, None] * torch.arange(length, dtype=torch.float64)[None]
        return torch.stack([torch.cos(angle), -torch.sin(angle)], 1).reshape(-1, length)

    weight = torch.full_like(freqs, 2.0)                                 # Hermitian symmetry: count f and n - f
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    angle = (2 * math.pi / n) * torch.arange(out_steps, dtype=torch.float64)[:, None] * freqs[None]
    back = torch.stack([weight * torch.cos(angle), -weight * torch.sin(angle)], 2).reshape(out_steps, -1) / n
    return tuple(m.to(dtype=dtype, device=device) for m in (forward(steps), forward(taps), back))


def _blocks(xf: Tensor) -> Tensor:
    """``(F, 2, B, in)`` real and imaginary parts -> the block matrices ``[[Xr, -Xi], [Xi, Xr]]`` ``(F, 2B, 2in)``."""
    freqs, _, batch, n_in = xf.shape
    xb = xf.new_empty(freqs, 2 * batch, 2 * n_in)
    xb[:, :batch, :n_in] = xf[:, 0]
    torch.neg(xf[:, 1], out=xb[:, :batch, n_in:])
    xb[:, batch:, :n_in] = xf[:, 1]
    xb[:, batch:, n_in:] = xf[:, 0]
    return xb


#: the transformed kernel and its gradient are formed in frequency chunks of at most this many bytes where they
#: need not be kept whole
DFT_CHUNK_BYTES = 8 * 2**20


def _chunks(freqs: int, bytes_per_part: int):
    """``(start, stop)`` frequency ranges whose transformed kernel (real and imaginary parts of ``bytes_per_part``
    each) takes at most :data:`DFT_CHUNK_BYTES` (at least one frequency)."""
    step = max(1, DFT_CHUNK_BYTES // (2 * bytes_per_part))
    return [(a, min(a + step, freqs)) for a in range(0, freqs, step)]


class _DelayConvDFT(torch.autograd.Function):
    """``y[t] = sum_k g[k].T @ x[t - k]`` for ``t < out_steps`` through a real DFT of length ``T + taps - 1``.

    ``x (T, B, in)``, ``g (taps, in, out)`` -> ``y (out_steps, B, out)``. Per frequency ``f`` the complex product
    ``Y = X K`` is one real matrix product of the block matrix ``[[Xr, -Xi], [Xi, Xr]] (2B, 2in)`` with
    ``[Kr; Ki] (2in, out)``, which gives ``[Yr; Yi]``: one batched ``bmm`` over the frequencies. The backward pass
    is the same products transposed. Memory: the transformed kernel ``(F, 2in, out)``, about ``n / (D + 1)``
    times the kernel, is kept whole only when the input needs a gradient, and dropped as soon as that is formed
    (rebuilt from ``g`` if the graph is backpropagated again); otherwise it, and always the kernel's gradient, are
    formed in frequency chunks (:data:`DFT_CHUNK_BYTES`).
    """

    @staticmethod
    def forward(ctx, x: Tensor, g: Tensor, out_steps: int) -> Tensor:
        steps, batch, n_in = x.shape
        taps, _, n_out = g.shape
        to_x, to_k, back = _dft_matrices(steps, taps, out_steps, x.dtype, x.device)
        freqs = to_x.shape[0] // 2
        xf = (to_x @ x.reshape(steps, batch * n_in)).view(freqs, 2, batch, n_in)
        xb, g2 = _blocks(xf), g.reshape(taps, n_in * n_out)
        if ctx.needs_input_grad[0]:                                      # keep the whole transformed kernel
            kf = (to_k @ g2).view(freqs, 2 * n_in, n_out)
            yf = torch.bmm(xb, kf)                                       # (F, 2B, out): [Yr; Yi]
        else:                                                            # transform the kernel chunk by chunk
            kf, yf = None, x.new_empty(freqs, 2 * batch, n_out)
            for a, b in _chunks(freqs, n_in * n_out * x.element_size()):
                torch.bmm(xb[a:b], (to_k[2 * a:2 * b] @ g2).view(b - a, 2 * n_in, n_out), out=yf[a:b])
        del xb
        y = (back @ yf.view(2 * freqs, batch * n_out)).view(out_steps, batch, n_out)
        ctx.save_for_backward(xf if ctx.needs_input_grad[1] else None, g if ctx.needs_input_grad[0] else None)
        ctx.kf = kf                                                      # dropped once used, see backward
        ctx.shapes = (steps, batch, n_in, taps, n_out, out_steps)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        xf, g = ctx.saved_tensors
        steps, batch, n_in, taps, n_out, out_steps = ctx.shapes
        to_x, to_k, back = _dft_matrices(steps, taps, out_steps, grad.dtype, grad.device)
        freqs = to_x.shape[0] // 2
        grad_f = (back.t() @ grad.reshape(out_steps, batch * n_out)).view(freqs, 2 * batch, n_out)
        grad_x = grad_g = None
        if ctx.needs_input_grad[0]:
            kf = ctx.kf if ctx.kf is not None else (to_k @ g.reshape(taps, n_in * n_out)).view(freqs, 2 * n_in, n_out)
            ctx.kf = None
            grad_xb = torch.bmm(grad_f, kf.transpose(1, 2))              # (F, 2B, 2in)
            del kf
            grad_xf = torch.stack([grad_xb[:, :batch, :n_in] + grad_xb[:, batch:, n_in:],
                                   grad_xb[:, batch:, :n_in] - grad_xb[:, :batch, n_in:]], 1)
            del grad_xb
            grad_x = (to_x.t() @ grad_xf.view(2 * freqs, batch * n_in)).view(steps, batch, n_in)
        if ctx.needs_input_grad[1]:
            xb = _blocks(xf)
            grad_g = grad.new_zeros(taps, n_in * n_out)
            for a, b in _chunks(freqs, n_in * n_out * grad.element_size()):
                grad_kf = torch.bmm(xb[a:b].transpose(1, 2), grad_f[a:b])   # (chunk, 2in, out)
                grad_g.addmm_(to_k[2 * a:2 * b].t(), grad_kf.view(2 * (b - a), n_in * n_out))
                del grad_kf
            grad_g = grad_g.view(taps, n_in, n_out)
        return grad_x, grad_g, None


def delayed_linear(x: Tensor, kernel: Tensor, bias: Tensor | None = None, extend: bool = False,
                   method: str = "auto") -> Tensor:
    """Causal temporal convolution ``y[t] = sum_k kernel[:, :, k] @ x[t - k] (+ bias)`` over a sequence.

    Args:
        x: input ``(T, B, in)`` (time first); ``x[t] = 0`` for ``t < 0``.
        kernel: ``(out, in, D + 1)`` from :func:`delay_kernel`.
        bias: optional ``(out,)`` added at every output step.
        extend: False: ``T`` output steps; True: ``T + D`` steps (the input is followed by ``D`` zero steps, so
            an input at the last step still arrives through the longest delay).
        method: ``"conv"`` (one ``conv1d``; exact for one-hot kernels), ``"dft"`` (real DFT as matrix products,
            fewer multiply-adds for long kernels; equal up to float rounding) or ``"auto"`` (default: ``dft`` when
            :func:`delayed_linear_cost` says it needs less than half of ``conv``'s multiply-adds).

    Returns:
        ``(T, B, out)``, or ``(T + D, B, out)`` with ``extend``.

    ``conv`` layout: ``(B, in, T)``, ``D`` zeros padded on the left (and right with ``extend``), the kernel flipped
    because ``conv1d`` is a cross-correlation.
    """
    if x.dim() != 3 or kernel.dim() != 3 or kernel.shape[1] != x.shape[-1]:
        raise ConfigError(f"delayed_linear needs x (T, B, in) and a kernel (out, in, D + 1) with the same in, got "
                          f"x {tuple(x.shape)} and kernel {tuple(kernel.shape)}; build the kernel with delay_kernel "
                          "from weights (out, in)")
    steps, batch, n_in = x.shape
    max_delay = kernel.shape[-1] - 1
    if max_delay == 0:
        y = torch.matmul(x, kernel[:, :, 0].t())
        return y if bias is None else y + bias
    if _resolve_method(method, x, kernel, extend) == "dft":
        y = _DelayConvDFT.apply(x, kernel.permute(2, 1, 0).contiguous(), steps + (max_delay if extend else 0))
        return y if bias is None else y + bias
    xc = x.permute(1, 2, 0)                                          # (B, in, T)
    xc = F.pad(xc, (max_delay, max_delay if extend else 0))
    y = F.conv1d(xc, kernel.flip(-1), bias)                          # (B, out, T [+ D])
    return y.permute(2, 0, 1)


def delayed_linear_step(x_t: Tensor, history: Tensor | None, kernel: Tensor,
                        bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One step of :func:`delayed_linear`: ``y_t = sum_k kernel[:, :, k] @ x[t - k]``.

    Args:
        x_t: input at this step ``(B, in)``.
        history: the last ``D`` inputs ``(D, B, in)``, newest first (``history[j] = x[t - 1 - j]``); None: zeros.
        kernel: ``(out, in, D + 1)``.
        bias: optional ``(out,)``.

    Returns:
        ``(y_t (B, out), new history (D, B, in))``.
    """
    n_out, n_in, taps = kernel.shape
    max_delay = taps - 1
    if x_t.dim() != 2 or x_t.shape[-1] != n_in or (history is not None and history.shape != (max_delay, *x_t.shape)):
        raise ConfigError(f"delayed_linear_step needs x_t (B, {n_in}) and a history (D = {max_delay}, B, {n_in}) or "
                          f"None, got x_t {tuple(x_t.shape)} and history "
                          f"{None if history is None else tuple(history.shape)}; start with history None")
    if history is None:
        history = x_t.new_zeros((max_delay, *x_t.shape))
    window = torch.cat([x_t.unsqueeze(0), history], dim=0)          # (D + 1, B, in), window[k] = x[t - k]
    batch = x_t.shape[0]
    flat = window.transpose(0, 1).reshape(batch, taps * n_in)        # (B, (D + 1) * in), tap-major
    y = flat @ kernel.permute(2, 1, 0).reshape(taps * n_in, n_out)   # a view for delay_kernel's kernels
    if bias is not None:
        y = y + bias
    return y, window[:max_delay]
