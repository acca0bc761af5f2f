"""LSTM as ``torch.autograd.Function``s with hand-written backward (gates i, f, o, g along the 4H axis).

The sequence ops work time-major internally: one GEMM projects the inputs of all steps (``word_lstm``:
the vocabulary, once; see ``_sequence``), each step adds one GEMM for the recurrence (its weight
reordered once for oneDNN) and activates its gates in place; the forward keeps the activated gates,
the cell states and tanh of the cell states, so the backward recomputes nothing. The backward runs one
GEMM per step (its weight reordered in the forward) and overwrites that step's gates with their
gradients while they are in cache, then whole-sequence GEMMs give dx, dWx and dWh. (A second backward
through the same graph, ``retain_graph=True``, recomputes the forward first.)
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._autocast import follows_autocast
from visgrad.ops._checks import check_floating
from visgrad.ops._gemm import mm, repeated_mm
from visgrad.ops._sequence import (
    check_words,
    hidden_grads,
    project_inputs_backward,
    project_words,
    project_words_backward,
    time_major,
)
from visgrad.reference._checks import check_recurrent


def _activate(a, out, minus_one):
    """Write sigmoid(i, f, o) and tanh(g) of the (N, 4H) pre-activations ``a`` into ``out`` (may be ``a``;
    ``a`` is overwritten). ``minus_one``: a 0-d tensor holding -1 in ``a``'s dtype.

    tanh(g) is computed as 2 sigmoid(2 g) - 1 (absolute error ~1 ulp of 1): one sigmoid over all 4H
    columns is 3x faster on CPU than a sigmoid plus torch.tanh.
    """
    H = a.shape[1] // 4
    a[:, 3 * H:].mul_(2)
    torch.sigmoid(a, out=out)
    g = out[:, 3 * H:]
    torch.add(minus_one, g, alpha=2, out=g)


def _split(gates):
    """Views i, f, o, g (N, H) of activated gates (N, 4H)."""
    H = gates.shape[1] // 4
    return gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]


def _tanh(x, out, minus_one=None):
    """tanh(x) written into ``out`` as 2 sigmoid(2 x) - 1 (see ``_activate``); returns ``out``.

    ``minus_one``: a 0-d tensor holding -1 in ``out``'s dtype (made here if None; loops pass their own)."""
    torch.mul(x, 2, out=out).sigmoid_()
    return torch.add(out.new_full((), -1) if minus_one is None else minus_one, out, alpha=2, out=out)


def _gate_grads(gates, dh, dc, tanh_c, prev_c, scratch):
    """Overwrite one step's activated gates (N, 4H) with their pre-activation gradients, in place.

    gates (N, 4H): the activated i, f, o, g; dh (N, H): gradient of h; tanh_c (N, H): tanh of c; prev_c
    (N, H): the previous cell state. dc (N, H): on entry the gradient reaching c from later steps, on return
    the gradient of prev_c (in place); scratch (N, H).

    With dc_t = dc + dh o (1 - tanh(c)^2) the whole gradient of c: da_i = dc_t g i (1 - i),
    da_f = dc_t prev_c f (1 - f), da_o = dh tanh(c) o (1 - o), da_g = dc_t i (1 - g^2), and the gradient
    of prev_c is dc_t f.
    """
    i, f, o, g = _split(gates)  # each overwritten by its gradient once no longer needed
    one = gates.new_ones(())
    torch.addcmul(one, tanh_c, tanh_c, value=-1, out=scratch).mul_(o)  # dc/dh through h = o tanh(c)
    dc.addcmul_(dh, scratch)
    torch.addcmul(o, o, o, value=-1, out=o).mul_(tanh_c).mul_(dh)  # da_o
    idc = torch.mul(i, dc, out=scratch)  # i dc_t
    torch.sub(one, i, out=i).mul_(idc).mul_(g)  # da_i = (1 - i) i dc_t g
    torch.addcmul(one, g, g, value=-1, out=g).mul_(idc)  # da_g = (1 - g^2) i dc_t
    dc.mul_(f)  # f dc_t: the gradient of prev_c
    torch.addcmul(dc, dc, f, value=-1, out=f).mul_(prev_c)  # da_f = (f dc_t - f f dc_t) prev_c


class LSTMStep(torch.autograd.Function):
    """One LSTM step: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)."""

    @staticmethod
    def forward(ctx, x, prev_h, prev_c, Wx, Wh, b):
        a = mm(prev_h, Wh, mm(x, Wx, b))
        _activate(a, a, a.new_full((), -1))
        i, f, o, g = _split(a)
        next_c = torch.addcmul(f * prev_c, i, g)
        tanh_c = _tanh(next_c, torch.empty_like(next_c))
        next_h = o * tanh_c
        ctx.save_for_backward(x, prev_h, prev_c, Wx, Wh, a, tanh_c)
        return next_h, next_c

    @staticmethod
    @once_differentiable
    def backward(ctx, dnext_h, dnext_c):
        x, prev_h, prev_c, Wx, Wh, gates, tanh_c = ctx.saved_tensors
        need = ctx.needs_input_grad
        da, dprev_c = gates.clone(), dnext_c.clone()
        _gate_grads(da, dnext_h, dprev_c, tanh_c, prev_c, torch.empty_like(dprev_c))
        return (
            mm(da, Wx.t()) if need[0] else None,
            mm(da, Wh.t()) if need[1] else None,
            dprev_c if need[2] else None,
            mm(x.t(), da) if need[3] else None,
            mm(prev_h.t(), da) if need[4] else None,
            da.sum(0) if need[5] else None,
        )


def _recurrence(gates, h0, Wh):
    """Run the LSTM recurrence from c0 = 0 over precomputed input terms.

    gates (T, N, 4H): x_t Wx + b of every step, overwritten in place by the activated gates i, f, o, g.
    h0 (N, H); Wh (H, 4H). Returns hs (T + 1, N, H) with hs[0] = h0, cs (T + 1, N, H) with cs[0] = 0,
    and tanh_cs (T, N, H). Each step runs one GEMM and few elementwise ops into preallocated buffers.
    """
    T, N, G = gates.shape
    H = G // 4
    minus_one = gates.new_full((), -1)
    hs = gates.new_empty(T + 1, N, H)
    hs[0] = h0
    cs = gates.new_empty(T + 1, N, H)
    cs[0].zero_()
    tanh_cs = gates.new_empty(T, N, H)
    # Per-step views made in a few calls up front (each Python-level slice costs about a microsecond).
    a_s, h_s, c_s, tanh_c_s = gates.unbind(), hs.unbind(), cs.unbind(), tanh_cs.unbind()
    i_s, f_s, o_s, g_s = (gates[:, :, k * H:(k + 1) * H].unbind() for k in range(4))
    recurrent_product = repeated_mm(Wh, N)
    for t in range(T):
        a = a_s[t]
        _activate(recurrent_product(h_s[t], a, out=a), a, minus_one)
        torch.mul(i_s[t], g_s[t], out=c_s[t + 1]).addcmul_(f_s[t], c_s[t])
        torch.mul(o_s[t], _tanh(c_s[t + 1], tanh_c_s[t], minus_one), out=h_s[t + 1])
    return hs, cs, tanh_cs


def _recurrence_backward(dh, gates, cs, tanh_cs, grad_product):
    """Pre-activation gradients of every step, last step first, written over ``gates``.

    dh (T, N, H): gradient of the hidden states (any strides); gates, cs, tanh_cs: from ``_recurrence``;
    grad_product: ``repeated_mm(Wh.t(), N)`` (see ``_grad_product``). Returns da (T, N, 4H) (``gates``
    itself), the gradient of x_t Wx + b (and of h_{t-1} Wh) at every step, and db (4H,), the sum of da
    over steps and batch.

    Each step works on its own (N, 4H) slice while it is in cache (whole-sequence passes would stream the
    gates from memory several times), in place or into preallocated buffers; db is summed up there too.
    """
    T, N = gates.shape[:2]
    dc = dh.new_zeros(N, dh.shape[2])  # gradient reaching c_t from later steps
    scratch, dh_buf = torch.empty_like(dc), torch.empty_like(dc)
    da_rows = torch.zeros_like(gates[0])  # da summed over steps (N, 4H)
    da_s, dh_s = gates.unbind(), dh.unbind()
    for t in range(T - 1, -1, -1):
        dh_t = dh_s[t] if t == T - 1 else grad_product(da_s[t + 1], dh_s[t], out=dh_buf)
        _gate_grads(da_s[t], dh_t, dc, tanh_cs[t], cs[t], scratch)
        da_rows.add_(da_s[t])
    return gates, da_rows.sum(0)


def _grad_product(ctx, Wh, N):
    """The product ``add + da_t @ Wh^T`` of ``_recurrence_backward`` for a batch of N, or None if the op
    needs no gradient. Made in the forward, while Wh is in cache: oneDNN's reorder of a cold Wh costs
    about three times as much."""
    return repeated_mm(Wh.t(), N) if any(ctx.needs_input_grad) else None


def _forward(ctx, gates, h0, Wh):
    """Run the recurrence over the input terms ``gates`` (T, N, 4H) and keep on ``ctx`` what the backward
    needs (see ``_backward_state``); h0 (N, H), Wh (H, 4H). Returns h (N, T, H)."""
    ctx.grad_product = _grad_product(ctx, Wh, gates.shape[1])
    hs, cs, tanh_cs = _recurrence(gates, h0, Wh)
    ctx.state = (gates, hs, cs, tanh_cs) if ctx.grad_product is not None else None
    return hs[1:].transpose(0, 1).clone(memory_format=torch.contiguous_format)


def _backward_state(ctx, input_terms, h0, Wh):
    """The forward's (gates, hs, cs, tanh_cs) for one backward.

    The backward overwrites the gates with their gradients (no second (T, N, 4H) buffer), so the first
    backward takes the state off ``ctx`` and a later one through the same graph (``retain_graph=True``,
    ``gradcheck``) recomputes it from ``input_terms()`` (the forward's x_t Wx + b), h0 and Wh. The state
    is a ctx attribute, not ``save_for_backward`` (which would refuse the in-place update), so saved-tensor
    hooks such as ``torch.autograd.graph.save_on_cpu`` do not move it.
    """
    state, ctx.state = ctx.state, None
    if state is None:
        gates = input_terms()
        state = (gates, *_recurrence(gates, h0, Wh))
    return state


class LSTM(torch.autograd.Function):
    """Whole-sequence LSTM from c0 = 0.

    x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,) -> h (N, T, H).

    Per-op overhead dominates the sequential loops at small H, so all work that does not depend on the
    recurrence is done for all steps at once, before or after the loop: one GEMM projects the inputs of
    all steps; whole-sequence GEMMs give dx, dWx and dWh.
    """

    @staticmethod
    def forward(ctx, x, h0, Wx, Wh, b):
        N, T, D = x.shape
        xs = time_major(x)
        ctx.save_for_backward(xs, h0, Wx, Wh, b)
        ctx.x_shape = (N, T, D)
        return _forward(ctx, mm(xs, Wx, b).view(T, N, -1), h0, Wh)  # input terms x Wx + b of all steps

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        xs, h0, Wx, Wh, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        N, T, _ = ctx.x_shape
        gates, hs, cs, tanh_cs = _backward_state(ctx, lambda: mm(xs, Wx, b).view(T, N, -1), h0, Wh)
        da, db = _recurrence_backward(dh.transpose(0, 1), gates, cs, tanh_cs, ctx.grad_product)
        dx, dWx, _ = project_inputs_backward(da.view(len(xs), -1), xs, Wx, ctx.x_shape,
                                             need[0], need[2], need_b=False)
        dh0, dWh = hidden_grads(da, hs, Wh, need[1], need[3])
        return dx, dh0, dWx, dWh, db if need[4] else None


class WordLSTM(torch.autograd.Function):
    """LSTM over embedded words from c0 = 0: ``LSTM(word_embedding(words, W_embed), ...)`` in one op.

    words (N, T) ids in [0, V), W_embed (V, W), h0 (N, H), Wx (W, 4H), Wh (H, 4H), b (4H,) -> h (N, T, H).
    For small vocabularies the input terms come from the projected vocabulary W_embed Wx + b (V, 4H)
    (see ``visgrad.ops._sequence``), which removes the whole-sequence input GEMMs of ``LSTM``.
    """

    @staticmethod
    def forward(ctx, words, W_embed, h0, Wx, Wh, b):
        N, T = words.shape
        ids = words.t().reshape(-1)  # time-major
        ctx.save_for_backward(ids, W_embed, h0, Wx, Wh, b)
        return _forward(ctx, project_words(ids, W_embed, Wx, b).view(T, N, -1), h0, Wh)

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        ids, W_embed, h0, Wx, Wh, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        N, T = h0.shape[0], len(ids) // h0.shape[0]
        gates, hs, cs, tanh_cs = _backward_state(
            ctx, lambda: project_words(ids, W_embed, Wx, b).view(T, N, -1), h0, Wh)
        da, db = _recurrence_backward(dh.transpose(0, 1), gates, cs, tanh_cs, ctx.grad_product)
        dW_embed, dWx, _ = project_words_backward(da.view(len(ids), -1), ids, W_embed, Wx,
                                                  need[1], need[3], need_b=False)
        dh0, dWh = hidden_grads(da, hs, Wh, need[2], need[4])
        return None, dW_embed, dh0, dWx, dWh, db if need[5] else None


def _check(x, h, Wx, Wh, b, sequence, h_name, c=None):
    extra = {} if c is None else {"prev_c": c}
    check_floating(x=x, **{h_name: h}, **extra, Wx=Wx, Wh=Wh, b=b)
    check_recurrent(tuple(x.shape), tuple(h.shape), tuple(Wx.shape), tuple(Wh.shape), tuple(b.shape),
                    4, sequence, "LSTM", h_name, None if c is None else tuple(c.shape))


@follows_autocast()
def lstm_step(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step. x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> (next_h (N, H), next_c (N, H))."""
    _check(x, prev_h, Wx, Wh, b, False, "prev_h", prev_c)
    return LSTMStep.apply(x, prev_h, prev_c, Wx, Wh, b)


@follows_autocast()
def lstm(x, h0, Wx, Wh, b):
    """LSTM over a sequence from c0 = 0. x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> h (N, T, H)."""
    _check(x, h0, Wx, Wh, b, True, "h0")
    return LSTM.apply(x, h0, Wx, Wh, b)


@follows_autocast()
def word_lstm(words, W_embed, h0, Wx, Wh, b):
    """``lstm(word_embedding(words, W_embed), h0, Wx, Wh, b)`` as one faster op (same values and gradients).

    words (N, T) integer ids in [0, V), W_embed (V, W), h0 (N, H), Wx (W, 4H), Wh (H, 4H), b (4H,)
    -> h (N, T, H).
    """
    check_words(words, W_embed, h0, Wx, Wh, b, gates=4, label="LSTM")
    return WordLSTM.apply(words.to(W_embed.device), W_embed, h0, Wx, Wh, b)
