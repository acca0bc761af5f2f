"""Vanilla RNN (tanh) as ``torch.autograd.Function``s with hand-written backward.

The sequence ops work time-major internally: one GEMM projects the inputs of all steps (``word_rnn``:
the vocabulary, once), each step adds one GEMM for the recurrence, and the backward accumulates the
weight gradients with whole-sequence GEMMs.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._autocast import follows_autocast
from visgrad.ops._checks import check_floating
from visgrad.ops._gemm import mm
from visgrad.ops._sequence import (
    check_words,
    hidden_grads,
    project_inputs_backward,
    project_words,
    project_words_backward,
    time_major,
)
from visgrad.reference._checks import check_recurrent


def _check(x, h, Wx, Wh, b, sequence, h_name):
    check_floating(x=x, **{h_name: h}, Wx=Wx, Wh=Wh, b=b)
    check_recurrent(tuple(x.shape), tuple(h.shape), tuple(Wx.shape), tuple(Wh.shape), tuple(b.shape),
                    1, sequence, "RNN", h_name)


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


def _recurrence(xw, h0, Wh):
    """h_t = tanh(xw_t + h_{t-1} Wh): xw (T, N, H) the input terms x_t Wx + b, h0 (N, H), Wh (H, H)
    -> hs (T + 1, N, H) with hs[0] = h0."""
    hs = xw.new_empty(xw.shape[0] + 1, *h0.shape)
    hs[0] = h0
    for t in range(xw.shape[0]):
        torch.tanh(mm(hs[t], Wh, xw[t]), out=hs[t + 1])
    return hs


def _recurrence_backward(dh, hs, Wh):
    """Pre-activation gradients da (T, N, H) of every step, last step first, from dh (T, N, H) (any
    strides), hs from ``_recurrence`` and Wh (H, H)."""
    T = dh.shape[0]
    dtanh = hs[1:].square().neg_().add_(1)  # 1 - h_t^2
    da = torch.empty_like(dtanh)  # da[t] = (dh[t] + da[t + 1] Wh^T) * (1 - h_t^2)
    for t in range(T - 1, -1, -1):
        torch.mul(dh[t] if t == T - 1 else mm(da[t + 1], Wh.t(), dh[t]), dtanh[t], out=da[t])
    return da


class RNN(torch.autograd.Function):
    """Whole-sequence tanh RNN: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,) -> h (N, T, H)."""

    @staticmethod
    def forward(ctx, x, h0, Wx, Wh, b):
        N, T, D = x.shape
        xs = time_major(x)
        hs = _recurrence(mm(xs, Wx, b).view(T, N, -1), h0, Wh)
        ctx.save_for_backward(xs, Wx, Wh, hs)
        ctx.x_shape = (N, T, D)
        return hs[1:].transpose(0, 1).clone(memory_format=torch.contiguous_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        xs, Wx, Wh, hs = ctx.saved_tensors
        need = ctx.needs_input_grad
        da = _recurrence_backward(dh.transpose(0, 1), hs, Wh)
        dx, dWx, db = project_inputs_backward(da.view(len(xs), -1), xs, Wx, ctx.x_shape,
                                              need[0], need[2], need[4])
        dh0, dWh = hidden_grads(da, hs, Wh, need[1], need[3])
        return dx, dh0, dWx, dWh, db


class WordRNN(torch.autograd.Function):
    """Tanh RNN over embedded words: ``RNN(word_embedding(words, W_embed), h0, Wx, Wh, b)`` in one op.

    words (N, T) ids in [0, V), W_embed (V, W), h0 (N, H), Wx (W, H), Wh (H, H), b (H,) -> h (N, T, H);
    see ``visgrad.ops._sequence`` for the input terms.
    """

    @staticmethod
    def forward(ctx, words, W_embed, h0, Wx, Wh, b):
        N, T = words.shape
        ids = words.t().reshape(-1)  # time-major
        hs = _recurrence(project_words(ids, W_embed, Wx, b).view(T, N, -1), h0, Wh)
        ctx.save_for_backward(ids, W_embed, Wx, Wh, hs)
        return hs[1:].transpose(0, 1).clone(memory_format=torch.contiguous_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        ids, W_embed, Wx, Wh, hs = ctx.saved_tensors
        need = ctx.needs_input_grad
        da = _recurrence_backward(dh.transpose(0, 1), hs, Wh)
        dW_embed, dWx, db = project_words_backward(da.view(len(ids), -1), ids, W_embed, Wx,
                                                   need[1], need[3], need[5])
        dh0, dWh = hidden_grads(da, hs, Wh, need[2], need[4])
        return None, dW_embed, dh0, dWx, dWh, db


@follows_autocast()
def rnn_step(x, prev_h, Wx, Wh, b):
    """One tanh-RNN step. x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,) -> next_h (N, H)."""
    _check(x, prev_h, Wx, Wh, b, False, "prev_h")
    return RNNStep.apply(x, prev_h, Wx, Wh, b)


@follows_autocast()
def rnn(x, h0, Wx, Wh, b):
    """Tanh RNN over a sequence. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,) -> h (N, T, H)."""
    _check(x, h0, Wx, Wh, b, True, "h0")
    return RNN.apply(x, h0, Wx, Wh, b)


@follows_autocast()
def word_rnn(words, W_embed, h0, Wx, Wh, b):
    """``rnn(word_embedding(words, W_embed), h0, Wx, Wh, b)`` as one faster op (same values and gradients).

    words (N, T) integer ids in [0, V), W_embed (V, W), h0 (N, H), Wx (W, H), Wh (H, H), b (H,)
    -> h (N, T, H).
    """
    check_words(words, W_embed, h0, Wx, Wh, b, gates=1, label="RNN")
    return WordRNN.apply(words.to(W_embed.device), W_embed, h0, Wx, Wh, b)
