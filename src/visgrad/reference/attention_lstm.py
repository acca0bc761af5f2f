"""NumPy soft attention and the attention-LSTM step of Show, Attend and Tell (Xu et al., 2015), in the CS231n
layer style.

An image is a grid of L annotation vectors ``features`` (N, L, C) (a CNN's feature map, cells in row-major
order). Their attention projections ``projected = features W_fa + b_fa`` (N, L, A) do not depend on the
decoder, so a caller computes them once per image (e.g. ``temporal_affine_forward``) and every step reuses
them. One step, from the previous hidden and cell states h, c (N, H) and the previous word's vector x (N, W):

    e = tanh(projected + h W_ha)            (N, L, A)   Bahdanau's additive scores ...
    alpha = softmax(e w_a) over the L cells  (N, L)      ... and the attention weights
    beta = sigmoid(h W_beta + b_beta)        (N, 1)      the context gate
    context = beta * sum_i alpha_i features_i  (N, C)
    a = x Wx + context Wz + h Wh + b         (N, 4H)     an LSTM whose input is [x, context]
    i, f, o, g = sigmoid, sigmoid, sigmoid, tanh of a (gate order i, f, o, g as ``lstm_step_forward``)
    next_c = f * c + i * g;  next_h = o * tanh(next_c)

The step returns ``next_h``, ``next_c``, the gated ``context`` (the paper's deep output reads it) and
``alpha`` (the attention map; the doubly stochastic regulariser and the grounding score read it), so the
backward takes a gradient for each of the four.
"""

from __future__ import annotations

import numpy as np

from visgrad.reference._checks import check_attention_lstm_step, check_soft_attention
from visgrad.reference.rnn_layers import lstm_step_backward, lstm_step_forward, sigmoid


def soft_attention_forward(h, features, projected, W_ha, w_a):
    """Bahdanau soft attention over a grid of annotation vectors.

    Inputs:
    - h: the querying decoder state (N, H).
    - features: annotation vectors (N, L, C).
    - projected: their attention projections features W_fa + b_fa (N, L, A).
    - W_ha: (H, A) projection of the state.
    - w_a: (A,) scoring vector.

    Returns a tuple of:
    - context: sum_i alpha_i features_i (N, C).
    - alpha: attention weights (N, L), each row sums to 1.
    - cache: values needed for ``soft_attention_backward``.
    """
    check_soft_attention(h.shape, features.shape, projected.shape, W_ha.shape, w_a.shape)
    e = np.tanh(projected + (h @ W_ha)[:, None, :])
    scores = e @ w_a
    scores = scores - scores.max(axis=1, keepdims=True)
    alpha = np.exp(scores)
    alpha /= alpha.sum(axis=1, keepdims=True)
    context = np.einsum("nl,nlc->nc", alpha, features)
    return context, alpha, (h, features, W_ha, w_a, e, alpha)


def soft_attention_backward(dcontext, dalpha, cache):
    """Backward of ``soft_attention_forward``.

    Inputs:
    - dcontext: upstream gradient of the context (N, C).
    - dalpha: upstream gradient of the attention weights (N, L) (zeros if only the context is used).
    - cache: from ``soft_attention_forward``.

    Returns a tuple of dh (N, H), dfeatures (N, L, C), dprojected (N, L, A), dW_ha (H, A), dw_a (A,).
    """
    h, features, W_ha, w_a, e, alpha = cache
    dfeatures = alpha[:, :, None] * dcontext[:, None, :]
    dalpha = dalpha + np.einsum("nlc,nc->nl", features, dcontext)
    dscores = alpha * (dalpha - (alpha * dalpha).sum(axis=1, keepdims=True))  # softmax backward
    dw_a = np.einsum("nl,nla->a", dscores, e)
    dprojected = dscores[:, :, None] * w_a * (1.0 - e**2)
    dhW = dprojected.sum(axis=1)
    return dhW @ W_ha.T, dfeatures, dprojected, h.T @ dhW, dw_a


def attention_lstm_step_forward(x, prev_h, prev_c, features, projected, W_ha, w_a, W_beta, b_beta, Wx, Wz,
                                Wh, b):
    """One decoding step of Show, Attend and Tell (module docstring).

    Inputs:
    - x: the previous word's vector (N, W).
    - prev_h, prev_c: the previous hidden and cell states (N, H).
    - features: annotation vectors (N, L, C); projected: features W_fa + b_fa (N, L, A).
    - W_ha (H, A), w_a (A,): the attention; W_beta (H, 1), b_beta (1,): the context gate.
    - Wx (W, 4H), Wz (C, 4H), Wh (H, 4H), b (4H,): the LSTM, gates i, f, o, g.

    Returns a tuple of:
    - next_h, next_c: (N, H).
    - context: the gated context beta * sum_i alpha_i features_i (N, C).
    - alpha: the attention weights (N, L).
    - cache: values needed for ``attention_lstm_step_backward``.
    """
    arrays = (x, prev_h, prev_c, features, projected, W_ha, w_a, W_beta, b_beta, Wx, Wz, Wh, b)
    check_attention_lstm_step(*(a.shape for a in arrays))
    raw, alpha, attention_cache = soft_attention_forward(prev_h, features, projected, W_ha, w_a)
    beta = sigmoid(prev_h @ W_beta + b_beta)
    context = beta * raw
    lstm_input = np.concatenate([x, context], axis=1)
    Wxz = np.concatenate([Wx, Wz])
    next_h, next_c, lstm_cache = lstm_step_forward(lstm_input, prev_h, prev_c, Wxz, Wh, b)
    cache = (attention_cache, lstm_cache, raw, beta, W_beta, x.shape[1])
    return next_h, next_c, context, alpha, cache


def attention_lstm_step_backward(dnext_h, dnext_c, dcontext, dalpha, cache):
    """Backward of ``attention_lstm_step_forward``.

    Inputs:
    - dnext_h, dnext_c: upstream gradients of the next states (N, H).
    - dcontext: upstream gradient of the gated context (N, C).
    - dalpha: upstream gradient of the attention weights (N, L).
    - cache: from ``attention_lstm_step_forward``.

    Returns a tuple of dx (N, W), dprev_h (N, H), dprev_c (N, H), dfeatures (N, L, C),
    dprojected (N, L, A), dW_ha (H, A), dw_a (A,), dW_beta (H, 1), db_beta (1,), dWx (W, 4H), dWz (C, 4H),
    dWh (H, 4H), db (4H,).
    """
    attention_cache, lstm_cache, raw, beta, W_beta, W = cache
    prev_h = attention_cache[0]
    dinput, dprev_h, dprev_c, dWxz, dWh, db = lstm_step_backward(dnext_h, dnext_c, lstm_cache)
    dcontext = dcontext + dinput[:, W:]
    dbeta = (dcontext * raw).sum(axis=1, keepdims=True)
    dgate = dbeta * beta * (1.0 - beta)  # through the sigmoid
    dh_attention, dfeatures, dprojected, dW_ha, dw_a = soft_attention_backward(dcontext * beta, dalpha,
                                                                              attention_cache)
    dprev_h = dprev_h + dh_attention + dgate @ W_beta.T
    return (dinput[:, :W], dprev_h, dprev_c, dfeatures, dprojected, dW_ha, dw_a, prev_h.T @ dgate,
            dgate.sum(axis=0), dWxz[:W], dWxz[W:], dWh, db)
