r"""Learnable synaptic delays as a temporal convolution (DCLS, Hammouamri et al., ICLR 2024).

Each synapse ``(o, i)`` has one weight ``w[o, i]`` and one real-valued delay ``d[o, i]`` in ``[0, D]`` steps
(``D = max_delay``). Its temporal kernel over the taps ``k = 0 .. D`` is one Gaussian-interpolated tap at the
delay, normalised so that the taps sum to the weight::

    g[o, i, k] = exp(-((k - d[o, i]) / sigma)^2 / 2)
    K[o, i, k] = w[o, i] * g[o, i, k] / sum_k g[o, i, k]             # sum_k K[o, i, k] == w[o, i]

With ``sigma == 0`` the tap is one-hot at ``round(d)`` (an exact integer delay; no gradient to ``d``). The layer
output is the causal temporal convolution (zero input before ``t = 0``)::

    y[t, b, o] = sum_i sum_k K[o, i, k] * x[t - k, b, i]

so a synapse with delay ``d`` shifts its input later by ``d`` steps. In the DCLS code the kernel has
``M = D + 1`` taps, the position ``p`` lives in ``[-M//2, M//2]`` and the delay is ``d = M//2 - p``; here the
position *is* the delay, ``d = p``, and tap ``k`` is a delay of ``k`` steps (the DCLS kernel flipped in time).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["delay_kernel", "delayed_linear", "delayed_linear_step"]


def delay_kernel(weight: Tensor, position: Tensor, sigma: float | Tensor, max_delay: int) -> Tensor:
    """Dense delay kernel ``(out, in, max_delay + 1)`` from weights and real delays ``(out, in)``.

    Args:
        weight: synaptic weights ``(out, in)``.
        position: delays in steps ``(out, in)``, meant to lie in ``[0, max_delay]`` (not clamped here).
        sigma: Gaussian width in steps (> 0), or 0 for a one-hot tap at ``round(position)`` (clamped into range).
        max_delay: the longest delay ``D``; the kernel has ``D + 1`` taps, tap ``k`` = delay of ``k`` steps.

    Returns:
        ``K`` with ``K[o, i, k]`` the weight of input ``i`` delayed by ``k`` steps in output ``o``;
        ``K.sum(-1) == weight`` (up to rounding).
    """
    if max_delay < 0:
        raise ValueError(f"max_delay must be >= 0, got {max_delay}")
    taps = max_delay + 1
    if isinstance(sigma, Tensor) and sigma.numel() == 1:
        sigma_zero = bool(sigma.item() == 0)
    else:
        sigma_zero = not isinstance(sigma, Tensor) and float(sigma) == 0.0
    if sigma_zero or max_delay == 0:
        index = position.detach().round().clamp(0, max_delay).long()
        onehot = F.one_hot(index, taps).to(weight.dtype)
        return weight.unsqueeze(-1) * onehot
    k = torch.arange(taps, dtype=position.dtype, device=position.device)
    logits = -0.5 * ((k - position.unsqueeze(-1)) / sigma) ** 2
    # softmax == Gaussian / its sum over the taps, without underflow for narrow kernels or far-off centres
    return weight.unsqueeze(-1) * torch.softmax(logits, dim=-1)


def delayed_linear(x: Tensor, kernel: Tensor, bias: Tensor | None = None, extend: bool = False) -> Tensor:
    """Causal temporal convolution ``y[t] = sum_k kernel[:, :, k] @ x[t - k] (+ bias)`` over a sequence.

    Args:
        x: input ``(T, B, in)`` (time first); ``x[t] = 0`` for ``t < 0``.
        kernel: ``(out, in, D + 1)`` from :func:`delay_kernel`.
        bias: optional ``(out,)`` added at every output step.
        extend: False: ``T`` output steps; True: ``T + D`` steps (the input is followed by ``D`` zero steps, so
            an input at the last step still arrives through the longest delay).

    Returns:
        ``(T, B, out)``, or ``(T + D, B, out)`` with ``extend``.

    One ``conv1d`` over time with the neurons as channels: layout ``(B, in, T)``, ``D`` zeros padded on the left
    (and right with ``extend``), the kernel flipped because ``conv1d`` is a cross-correlation.
    """
    steps, batch, n_in = x.shape
    n_out, k_in, taps = kernel.shape
    if k_in != n_in:
        raise ValueError(f"kernel has {k_in} inputs, x has {n_in} features")
    max_delay = taps - 1
    if max_delay == 0:
        y = torch.matmul(x, kernel[:, :, 0].t())
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
    if history is None:
        history = x_t.new_zeros((max_delay, *x_t.shape))
    window = torch.cat([x_t.unsqueeze(0), history], dim=0)          # (D + 1, B, in), window[k] = x[t - k]
    batch = x_t.shape[0]
    flat = window.permute(1, 2, 0).reshape(batch, n_in * taps)       # (B, in * (D + 1))
    y = flat @ kernel.reshape(n_out, n_in * taps).t()
    if bias is not None:
        y = y + bias
    return y, window[:max_delay]
