"""CReFF's 7x7 local attention with a hand-written backward pass, for training.

The plain definition (`creff.local_attention`) takes its gradient from autograd, which turns each of
the window's 2 x 49 shifted slices of the padded key and value into a padded zero tensor plus an add:
most of phase ar's CReFF cost on the CPU. This function computes the same forward pass and a backward
pass that accumulates into one padded gradient per input, in channels-last layout:

    logits_i = <q, k_i>, w = softmax(logits), out = sum_i w_i v_i          (k_i, v_i: shifted neighbours)
    dw_i = <g, v_i>, dlogits = w * (dw - <w, dw>), dq = sum_i dlogits_i k_i,
    dk_i += dlogits_i q, dv_i += w_i g                                      (back into the padded frames)

Neighbours outside the image are zero keys and values (logit 0) that still take part in the softmax,
as in the definition.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _shifts(window: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(window) for dx in range(window)]


def _channels_last(x: Tensor, pad: int = 0) -> Tensor:
    """(N, C, H, W) -> (N, H + 2 pad, W + 2 pad, C) contiguous: the channel sums and the per-pixel
    weights then run over contiguous memory (several times faster on the CPU than in N, C, H, W)."""
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    return x.permute(0, 2, 3, 1).contiguous()


class _LocalAttention(torch.autograd.Function):
    # Under CUDA autocast the attention runs in float32 (softmax's weights and the in-place sums must
    # share one dtype), as autocast runs softmax in float32 anyway.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, window: int) -> Tensor:  # type: ignore[override]
        r = window // 2
        height, width = q.shape[-2:]
        q_l, k_pad, v_pad = _channels_last(q), _channels_last(k, r), _channels_last(v, r)
        shifts = _shifts(window)
        logits = torch.stack([(q_l * k_pad[:, dy : dy + height, dx : dx + width]).sum(-1) for dy, dx in shifts], -1)
        weights = logits.softmax(dim=-1)
        out = torch.zeros_like(q_l)
        for i, (dy, dx) in enumerate(shifts):
            out.addcmul_(weights[..., i : i + 1], v_pad[:, dy : dy + height, dx : dx + width])
        ctx.save_for_backward(q_l, k_pad, v_pad, weights)
        ctx.window = window
        return out.permute(0, 3, 1, 2)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        q_l, k_pad, v_pad, weights = ctx.saved_tensors
        window = ctx.window
        r = window // 2
        height, width = q_l.shape[1:3]
        shifts = _shifts(window)
        grad_l = _channels_last(grad)
        d_weights = torch.stack([(grad_l * v_pad[:, dy : dy + height, dx : dx + width]).sum(-1) for dy, dx in shifts], -1)
        d_logits = weights * (d_weights - (weights * d_weights).sum(-1, keepdim=True))
        d_q = torch.zeros_like(q_l)
        d_k_pad, d_v_pad = torch.zeros_like(k_pad), torch.zeros_like(v_pad)
        for i, (dy, dx) in enumerate(shifts):
            around = (slice(None), slice(dy, dy + height), slice(dx, dx + width))
            d_q.addcmul_(d_logits[..., i : i + 1], k_pad[around])
            d_k_pad[around].addcmul_(d_logits[..., i : i + 1], q_l)
            d_v_pad[around].addcmul_(weights[..., i : i + 1], grad_l)
        inner = (slice(None), slice(r, r + height), slice(r, r + width))
        return d_q.permute(0, 3, 1, 2), d_k_pad[inner].permute(0, 3, 1, 2), d_v_pad[inner].permute(0, 3, 1, 2), None


def local_attention_for_training(q: Tensor, k: Tensor, v: Tensor, window: int = 7) -> Tensor:
    """`creff.local_attention`'s result (all (N, C, H, W)) with the hand-written backward pass above."""
    return _LocalAttention.apply(q, k, v, window)  # type: ignore[no-any-return]
