"""Vanilla RNN (tanh) as ``torch.autograd.Function``s with hand-written backward.

The sequence op works time-major internally: one GEMM projects the inputs of all steps, each step adds
one GEMM for the recurrence, and the backward accumulates the weight gradients with whole-sequence GEMMs.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._checks import check_floating
from visgrad.ops._gemm import mm
from visgrad.reference._checks import check_recurrent


def _check(x, h, Wx, Wh, b, sequence, h_name):
    check_floating(x=x, **{h_name: h}, Wx=Wx, Wh=Wh, b=b)
    check_recurrent(tuple(x.shape), tuple(h.shape), tuple(Wx.shape), tuple(Wh.shape), tuple(b.shape),
                    1, sequence, h_name)


class RNNStep(torch.autograd.Function):
    """next_h = tanh(x Wx + prev_h Wh + b); x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,)."""

    @staticmethod
    def forward(ctx, x, prev_h, Wx, Wh, b):
        next_h = mm(prev_h, Wh, mm(x, Wx, b)).tanh_()
        ctx.save_for_backward(x, prev_h, Wx, Wh, next_h)
        return next_h

    @staticmethod
    @once_differentiable
    def backward(ctx, dnext_h):
        x, prev_h, Wx, Wh, next_h = ctx.saved_tensors
        need = ctx.needs_input_grad
        da = dnext_h * (1 - next_h * next_h)
        return (
            mm(da, Wx.t()) if need[0] else None,
            mm(da, Wh.t()) if need[1] else None,
            mm(x.t(), da) if need[2] else None,
            mm(prev_h.t(), da) if need[3] else None,
            da.sum(0) if need[4] else None,
        )


class RNN(torch.autograd.Function):
    """Whole-sequence tanh RNN: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,) -> h (N, T, H)."""

    @staticmethod
    def forward(ctx, x, h0, Wx, Wh, b):
        N, T, D = x.shape
        H = h0.shape[1]
        xs = x.transpose(0, 1).reshape(T * N, D)  # time-major rows: step t is rows t*N .. t*N+N-1
        xw = mm(xs, Wx, b).view(T, N, H)  # x Wx + b of every step
        hs = x.new_empty(T + 1, N, H)  # hs[0] = h0, hs[t + 1] = h_t
        hs[0] = h0
        for t in range(T):
            torch.tanh(mm(hs[t], Wh, xw[t]), out=hs[t + 1])
        ctx.save_for_backward(xs, Wx, Wh, hs)
        ctx.x_shape = (N, T, D)
        return hs[1:].transpose(0, 1).clone(memory_format=torch.contiguous_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        xs, Wx, Wh, hs = ctx.saved_tensors
        need = ctx.needs_input_grad
        N, T, D = ctx.x_shape
        H = hs.shape[2]
        dh = dh.transpose(0, 1)  # (T, N, H) view
        dtanh = hs[1:].square().neg_().add_(1)  # 1 - h_t^2
        da = torch.empty_like(dtanh)  # da[t] = (dh[t] + da[t + 1] Wh^T) * (1 - h_t^2), last step first
        for t in range(T - 1, -1, -1):
            torch.mul(dh[t] if t == T - 1 else mm(da[t + 1], Wh.t(), dh[t]), dtanh[t], out=da[t])
        da2 = da.view(T * N, H)
        dx = mm(da2, Wx.t()).view(T, N, D).transpose(0, 1) if need[0] else None
        dh0 = mm(da[0], Wh.t()) if need[1] else None
        dWx = mm(xs.t(), da2) if need[2] else None
        dWh = mm(hs[:-1].view(T * N, H).t(), da2) if need[3] else None
        db = da2.sum(0) if need[4] else None
        return dx, dh0, dWx, dWh, db


def rnn_step(x, prev_h, Wx, Wh, b):
    """One tanh-RNN step. x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,) -> next_h (N, H)."""
    _check(x, prev_h, Wx, Wh, b, False, "prev_h")
    return RNNStep.apply(x, prev_h, Wx, Wh, b)


def rnn(x, h0, Wx, Wh, b):
    """Tanh RNN over a sequence. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,) -> h (N, T, H)."""
    _check(x, h0, Wx, Wh, b, True, "h0")
    return RNN.apply(x, h0, Wx, Wh, b)
