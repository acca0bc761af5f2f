"""Scaled dot-product attention over split heads as a ``torch.autograd.Function`` with hand-written backward.

Forward, with B = N h batched products: scores = q k^T / sqrt(d) + mask (one ``baddbmm``),
P = softmax(scores), optional dropout on P (the mask of kept entries is saved), out = P v. Backward:
dv = P^T dout, dP = dout v^T, dscores = P (dP - rowsum(dP P)) (in place), dq = dscores k / sqrt(d),
dk = dscores^T q / sqrt(d).
The mask takes no gradient.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._autocast import follows_autocast
from visgrad.ops._checks import check_floating
from visgrad.reference._checks import check_attention


def _batched(t: torch.Tensor) -> torch.Tensor:
    """(N, h, L, d) -> (N h, L, d) (a view when the strides allow)."""
    return t.reshape(-1, *t.shape[-2:])


class Attention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + mask) v: q (N, h, S, d), k and v (N, h, T, d), an additive mask broadcastable
    to (N, h, S, T) or None, dropout probability p on the attention weights -> out (N, h, S, d)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, p):
        N, h, S, d = q.shape
        T = k.shape[2]
        q3, k3, v3 = _batched(q), _batched(k), _batched(v)
        scale = 1.0 / math.sqrt(d)
        if mask is None:
            scores = torch.bmm(q3, k3.transpose(1, 2)).mul_(scale)
        else:
            bias = mask if mask.dim() <= 2 else _batched(mask.expand(N, h, S, T))
            scores = torch.baddbmm(bias, q3, k3.transpose(1, 2), alpha=scale)
        weights = torch.softmax(scores, dim=-1)
        keep = None
        if p > 0:
            # 0 or 1 / (1 - p); uniform draws compared with p are ~1.7x quicker than bernoulli_ on CPU
            keep = (torch.rand_like(weights) >= p).to(weights.dtype).mul_(1.0 / (1.0 - p))
            out = torch.bmm(weights * keep, v3)
        else:
            out = torch.bmm(weights, v3)
        ctx.save_for_backward(q3, k3, v3, weights, keep)
        ctx.shapes = (q.shape, k.shape)
        ctx.scale = scale
        return out.view(N, h, S, d)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        q3, k3, v3, weights, keep = ctx.saved_tensors
        q_shape, k_shape = ctx.shapes
        need = ctx.needs_input_grad
        dout3 = _batched(dout)
        dq = dk = dv = None
        if need[2]:
            dv = torch.bmm((weights if keep is None else weights * keep).transpose(1, 2), dout3).view(k_shape)
        if need[0] or need[1]:
            dscores = torch.bmm(dout3, v3.transpose(1, 2))  # dP (after dropout)
            if keep is not None:
                dscores.mul_(keep)
            # softmax backward in place: dscores = P * (dP - sum_j dP_j P_j)
            dscores.sub_((dscores * weights).sum(-1, keepdim=True)).mul_(weights)
            if need[0]:
                dq = torch.baddbmm(q3, dscores, k3, beta=0, alpha=ctx.scale).view(q_shape)
            if need[1]:
                dk = torch.baddbmm(k3, dscores.transpose(1, 2), q3, beta=0, alpha=ctx.scale).view(k_shape)
        return dq, dk, dv, None, None


@follows_autocast()
def _attention(q, k, v, mask, dropout_p):
    return Attention.apply(q, k, v, mask, dropout_p)


def attention(q, k, v, mask=None, dropout_p=0.0):
    """Multi-head scaled dot-product attention: softmax(q k^T / sqrt(d) + mask) v, per batch row and head.

    Inputs:
    - q: queries (N, h, S, d); k, v: keys and values (N, h, T, d); floating, one dtype and device.
    - mask: None; a float mask added to the scores, broadcastable to (N, h, S, T), 0 where target i may
      attend to source j and ``-inf`` where it may not (``visgrad.reference.causal_mask``); or a bool
      mask, True where target i may attend to source j (as ``scaled_dot_product_attention``).
    - dropout_p: probability of zeroing an attention weight (training); the rest are scaled by 1 / (1 - p).

    Returns: out (N, h, S, d). A target whose sources are all blocked gets NaN.
    """
    check_floating(q=q, k=k, v=v)
    mask_shape = None if mask is None else tuple(mask.shape)
    check_attention(tuple(q.shape), tuple(k.shape), tuple(v.shape), mask_shape)
    if not (isinstance(dropout_p, (int, float)) and 0.0 <= dropout_p < 1.0):
        raise ValueError(f"dropout_p must be a probability in [0, 1), got {dropout_p!r}")
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask.to(q.device),
                                                                                        float("-inf"))
        elif not torch.is_autocast_enabled(q.device.type):
            check_floating(q=q, mask=mask)
    return _attention(q, k, v, mask, float(dropout_p))
