"""LSTM as ``torch.autograd.Function``s with hand-written backward (gates i, f, o, g along the 4H axis).

The sequence op works time-major internally: one GEMM projects the inputs of all steps, each step adds
one GEMM for the recurrence and activates its gates in place; the forward keeps the activated gates,
the cell states and tanh of the cell states, so the backward recomputes nothing. The backward runs one
GEMM per step for the recurrent gradient and whole-sequence GEMMs for dx, dWx and dWh.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._checks import check_floating
from visgrad.reference._checks import check_recurrent


def _activate(a, H):
    """Activate the (N, 4H) pre-activations ``a`` in place; return views i, f, o, g of shape (N, H)."""
    a[:, :3 * H].sigmoid_()
    a[:, 3 * H:].tanh_()
    return a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]


def _gate_grads(da, gates, dh, dc, tanh_c, prev_c):
    """Write the pre-activation gradients of one step into ``da`` (N, 4H); return dprev_c.

    ``dc`` is the gradient reaching the cell state from later steps (None for none), ``prev_c`` may be
    None for c = 0.
    """
    H = dh.shape[1]
    i, f, o, g = gates
    da_i, da_f, da_o, da_g = da[:, :H], da[:, H:2 * H], da[:, 2 * H:3 * H], da[:, 3 * H:]
    torch.mul(dh, tanh_c, out=da_o)  # do
    dc_total = (1 - tanh_c * tanh_c).mul_(o).mul_(dh)
    if dc is not None:
        dc_total += dc
    da_o.mul_(o - o * o)
    torch.mul(dc_total, g, out=da_i).mul_(i - i * i)
    if prev_c is None:
        da_f.zero_()
    else:
        torch.mul(dc_total, prev_c, out=da_f).mul_(f - f * f)
    torch.mul(dc_total, i, out=da_g).mul_(1 - g * g)
    return dc_total.mul_(f)


class LSTMStep(torch.autograd.Function):
    """One LSTM step: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)."""

    @staticmethod
    def forward(ctx, x, prev_h, prev_c, Wx, Wh, b):
        H = prev_h.shape[1]
        a = torch.addmm(b, x, Wx).addmm_(prev_h, Wh)
        i, f, o, g = _activate(a, H)
        next_c = torch.addcmul(f * prev_c, i, g)
        tanh_c = torch.tanh(next_c)
        next_h = o * tanh_c
        ctx.save_for_backward(x, prev_h, prev_c, Wx, Wh, a, tanh_c)
        return next_h, next_c

    @staticmethod
    @once_differentiable
    def backward(ctx, dnext_h, dnext_c):
        x, prev_h, prev_c, Wx, Wh, a, tanh_c = ctx.saved_tensors
        need = ctx.needs_input_grad
        H = prev_h.shape[1]
        da = torch.empty_like(a)
        gates = (a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:])
        dprev_c = _gate_grads(da, gates, dnext_h, dnext_c, tanh_c, prev_c)
        return (
            da @ Wx.t() if need[0] else None,
            da @ Wh.t() if need[1] else None,
            dprev_c if need[2] else None,
            x.t() @ da if need[3] else None,
            prev_h.t() @ da if need[4] else None,
            da.sum(0) if need[5] else None,
        )


class LSTM(torch.autograd.Function):
    """Whole-sequence LSTM from c0 = 0.

    x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,) -> h (N, T, H).
    """

    @staticmethod
    def forward(ctx, x, h0, Wx, Wh, b):
        N, T, D = x.shape
        H = h0.shape[1]
        xs = x.transpose(0, 1).reshape(T * N, D)  # time-major rows: step t is rows t*N .. t*N+N-1
        acts = torch.addmm(b, xs, Wx).view(T, N, 4 * H)  # pre-activations, activated in place per step
        hs = x.new_empty(T + 1, N, H)  # hs[0] = h0, hs[t + 1] = h_t
        hs[0] = h0
        cs = x.new_empty(T, N, H)
        tanh_cs = x.new_empty(T, N, H)
        for t in range(T):
            i, f, o, g = _activate(acts[t].addmm_(hs[t], Wh), H)
            torch.mul(i, g, out=cs[t])
            if t:
                cs[t].addcmul_(f, cs[t - 1])
            torch.mul(o, torch.tanh(cs[t], out=tanh_cs[t]), out=hs[t + 1])
        ctx.save_for_backward(xs, Wx, Wh, acts, cs, tanh_cs, hs)
        ctx.x_shape = (N, T, D)
        return hs[1:].transpose(0, 1).clone(memory_format=torch.contiguous_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        xs, Wx, Wh, acts, cs, tanh_cs, hs = ctx.saved_tensors
        need = ctx.needs_input_grad
        N, T, D = ctx.x_shape
        H = hs.shape[2]
        dh = dh.transpose(0, 1)  # (T, N, H) view
        da = torch.empty_like(acts)
        dc = None
        for t in range(T - 1, -1, -1):
            dh_t = dh[t] if t == T - 1 else torch.addmm(dh[t], da[t + 1], Wh.t())
            a = acts[t]
            gates = (a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:])
            dc = _gate_grads(da[t], gates, dh_t, dc, tanh_cs[t], cs[t - 1] if t else None)
        da2 = da.view(T * N, 4 * H)
        dx = (da2 @ Wx.t()).view(T, N, D).transpose(0, 1) if need[0] else None
        dh0 = da[0] @ Wh.t() if need[1] else None
        dWx = xs.t() @ da2 if need[2] else None
        dWh = hs[:-1].reshape(T * N, H).t() @ da2 if need[3] else None
        db = da2.sum(0) if need[4] else None
        return dx, dh0, dWx, dWh, db


def _check(x, h, Wx, Wh, b, sequence, h_name, c=None):
    extra = {} if c is None else {"prev_c": c}
    check_floating(x=x, **{h_name: h}, **extra, Wx=Wx, Wh=Wh, b=b)
    check_recurrent(tuple(x.shape), tuple(h.shape), tuple(Wx.shape), tuple(Wh.shape), tuple(b.shape),
                    4, sequence, h_name, None if c is None else tuple(c.shape))


def lstm_step(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step. x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> (next_h (N, H), next_c (N, H))."""
    _check(x, prev_h, Wx, Wh, b, False, "prev_h", prev_c)
    return LSTMStep.apply(x, prev_h, prev_c, Wx, Wh, b)


def lstm(x, h0, Wx, Wh, b):
    """LSTM over a sequence from c0 = 0. x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> h (N, T, H)."""
    _check(x, h0, Wx, Wh, b, True, "h0")
    return LSTM.apply(x, h0, Wx, Wh, b)
