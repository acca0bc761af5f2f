"""The attention-LSTM step of Show, Attend and Tell: a ``torch.autograd.Function`` with hand-written backward.

The math is ``visgrad.reference.attention_lstm`` (its docstring): Bahdanau soft attention of the previous
hidden state over the grid ``features`` (N, L, C) through their precomputed projections ``projected``
(N, L, A), a sigmoid context gate, and an LSTM step (gates i, f, o, g) on [x, context]. The forward keeps
the attention's tanh activations, the weights, the raw context and the activated LSTM gates, so the
backward recomputes nothing: the LSTM part shares ``visgrad.ops.lstm``'s in-place gate gradients, the
softmax backward runs in place, and tanh's derivative is taken in place on the (N, L, A) buffer.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._autocast import follows_autocast
from visgrad.ops._checks import check_floating
from visgrad.ops._gemm import mm
from visgrad.ops.lstm import _activate, _gate_grads, _split, _tanh
from visgrad.reference._checks import check_attention_lstm_step

ARGUMENTS = ("x", "prev_h", "prev_c", "features", "projected", "W_ha", "w_a", "W_beta", "b_beta", "Wx", "Wz",
             "Wh", "b")


class AttentionLSTMStep(torch.autograd.Function):
    """One Show-Attend-Tell step: x (N, W), prev_h (N, H), prev_c (N, H), features (N, L, C),
    projected (N, L, A), W_ha (H, A), w_a (A,), W_beta (H, 1), b_beta (1,), Wx (W, 4H), Wz (C, 4H),
    Wh (H, 4H), b (4H,) -> next_h (N, H), next_c (N, H), context (N, C), alpha (N, L)."""

    @staticmethod
    def forward(ctx, x, prev_h, prev_c, features, projected, W_ha, w_a, W_beta, b_beta, Wx, Wz, Wh, b):
        e = torch.add(projected, mm(prev_h, W_ha)[:, None]).tanh_()  # (N, L, A)
        alpha = torch.softmax(e @ w_a, dim=1)  # (N, L)
        raw = torch.bmm(alpha[:, None], features)[:, 0]  # (N, C)
        beta = torch.addmm(b_beta, prev_h, W_beta).sigmoid_()  # (N, 1)
        context = raw * beta
        a = mm(prev_h, Wh, mm(context, Wz, mm(x, Wx, b)))
        _activate(a, a, a.new_full((), -1))
        i, f, o, g = _split(a)
        next_c = torch.addcmul(f * prev_c, i, g)
        tanh_c = _tanh(next_c, torch.empty_like(next_c))
        next_h = o * tanh_c
        ctx.save_for_backward(x, prev_h, prev_c, features, W_ha, w_a, W_beta, Wx, Wz, Wh, e, alpha, raw, beta,
                              context, a, tanh_c)
        return next_h, next_c, context, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, dnext_h, dnext_c, dcontext, dalpha):
        (x, prev_h, prev_c, features, W_ha, w_a, W_beta, Wx, Wz, Wh, e, alpha, raw, beta, context, gates,
         tanh_c) = ctx.saved_tensors
        need = ctx.needs_input_grad
        # the LSTM on [x, context]
        da, dprev_c = gates.clone(), dnext_c.clone()
        _gate_grads(da, dnext_h, dprev_c, tanh_c, prev_c, torch.empty_like(dprev_c))
        dprev_h = mm(da, Wh.t())
        dcontext = mm(da, Wz.t(), dcontext)
        # the gate: context = beta * raw
        dgate = (dcontext * raw).sum(1, keepdim=True).mul_(beta).mul_(1 - beta)  # (N, 1), through sigmoid
        dprev_h.addmm_(dgate, W_beta.t())
        draw = dcontext.mul_(beta)
        # the attention: raw = sum_i alpha_i features_i, alpha = softmax(e w_a), e = tanh(projected + h W_ha)
        dfeatures = torch.bmm(alpha[:, :, None], draw[:, None]) if need[3] else None
        dscores = torch.baddbmm(dalpha[:, :, None], features, draw[:, :, None])[:, :, 0]  # dalpha total
        dscores.sub_((dscores * alpha).sum(1, keepdim=True)).mul_(alpha)  # softmax backward, in place
        N, L, A = e.shape
        dw_a = mm(dscores.view(1, N * L), e.view(N * L, A))[0] if need[6] else None
        dprojected = torch.addcmul(e.new_ones(()), e, e, value=-1).mul_(w_a).mul_(dscores[:, :, None])
        dhW = dprojected.sum(1)  # (N, A)
        dprev_h.addmm_(dhW, W_ha.t())
        return (
            mm(da, Wx.t()) if need[0] else None,
            dprev_h if need[1] else None,
            dprev_c if need[2] else None,
            dfeatures,
            dprojected if need[4] else None,
            mm(prev_h.t(), dhW) if need[5] else None,
            dw_a,
            mm(prev_h.t(), dgate) if need[7] else None,
            dgate.sum(0) if need[8] else None,
            mm(x.t(), da) if need[9] else None,
            mm(context.t(), da) if need[10] else None,
            mm(prev_h.t(), da) if need[11] else None,
            da.sum(0) if need[12] else None,
        )


@follows_autocast()
def attention_lstm_step(x, prev_h, prev_c, features, projected, W_ha, w_a, W_beta, b_beta, Wx, Wz, Wh, b):
    """One Show-Attend-Tell decoding step (``visgrad.reference.attention_lstm_step_forward``'s arguments).

    x (N, W), prev_h and prev_c (N, H), features (N, L, C), projected = features W_fa + b_fa (N, L, A),
    W_ha (H, A), w_a (A,), W_beta (H, 1), b_beta (1,), Wx (W, 4H), Wz (C, 4H), Wh (H, 4H), b (4H,)
    -> (next_h (N, H), next_c (N, H), context (N, C) gated, alpha (N, L) attention weights).
    """
    tensors = (x, prev_h, prev_c, features, projected, W_ha, w_a, W_beta, b_beta, Wx, Wz, Wh, b)
    check_floating(**dict(zip(ARGUMENTS, tensors, strict=True)))
    check_attention_lstm_step(*(tuple(t.shape) for t in tensors))
    return AttentionLSTMStep.apply(*tensors)
