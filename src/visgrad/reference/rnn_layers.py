"""NumPy recurrent layers with the CS231n (assignment 3, ``rnn_layers.py``) signatures.

Batch-first layout: sequences are (N, T, D), hidden states (N, T, H). LSTM gates are ordered
i, f, o, g along the 4H axis and ``lstm_forward`` starts from c0 = 0. Every ``*_forward`` returns
``(out, cache)`` and the matching ``*_backward`` takes the upstream gradient and that cache.
"""

from __future__ import annotations

import numpy as np

from visgrad.reference._checks import (
    check_embedding,
    check_recurrent,
    check_softmax_loss,
    check_temporal_affine,
    check_word_ids,
)


def sigmoid(x):
    """Numerically stable logistic function, elementwise; never overflows in ``exp``."""
    pos = x >= 0
    z = np.exp(np.where(pos, -x, x))
    return np.where(pos, 1.0 / (1.0 + z), z / (1.0 + z))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One vanilla-RNN step: next_h = tanh(x Wx + prev_h Wh + b).

    Inputs: x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns: next_h (N, H), cache for ``rnn_step_backward``.
    """
    check_recurrent(x.shape, prev_h.shape, Wx.shape, Wh.shape, b.shape, 1, False, "RNN", "prev_h")
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Backward of ``rnn_step_forward``.

    Inputs: dnext_h (N, H), cache.
    Returns: dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Vanilla RNN over a whole sequence.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns: h (N, T, H) hidden states of all steps, cache for ``rnn_backward``.
    """
    check_recurrent(x.shape, h0.shape, Wx.shape, Wh.shape, b.shape, 1, True, "RNN")
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx, Wh, b))
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def rnn_backward(dh, cache):
    """Backward of ``rnn_forward``.

    Inputs: dh (N, T, H) upstream gradient of all hidden states, cache.
    Returns: dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    N, T, _ = dh.shape
    x0, h0, Wx, Wh, _ = cache[0]
    dx = np.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], dtype=dh.dtype)
    dprev_h = np.zeros_like(h0)
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def word_embedding_forward(x, W):
    """Look up word vectors.

    Inputs: x (N, T) integer word ids in [0, V), W (V, D) word vectors.
    Returns: out (N, T, D) with out[n, t] = W[x[n, t]], cache for ``word_embedding_backward``.
    """
    check_embedding(x.shape, W.shape)
    if x.size:
        check_word_ids("x", int(x.min()), int(x.max()), W.shape[0], lambda: _first_bad(x, W.shape[0]))
    return W[x], (x, W.shape)


def _first_bad(ids, vocab_size):
    where = np.argwhere((ids < 0) | (ids >= vocab_size))[0]
    return int(ids[tuple(where)]), tuple(int(i) for i in where)


def word_embedding_backward(dout, cache):
    """Backward of ``word_embedding_forward``.

    Inputs: dout (N, T, D), cache.
    Returns: dW (V, D), the rows of dout summed into the rows of the words they came from.
    """
    x, W_shape = cache
    dW = np.zeros(W_shape, dtype=dout.dtype)
    np.add.at(dW, x.reshape(-1), dout.reshape(-1, W_shape[1]))
    return dW


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step (gates i, f, o, g along the 4H axis).

    Inputs: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns: next_h (N, H), next_c (N, H), cache for ``lstm_step_backward``.
    """
    check_recurrent(x.shape, prev_h.shape, Wx.shape, Wh.shape, b.shape, 4, False, "LSTM", "prev_h",
                    prev_c.shape)
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward of ``lstm_step_forward``.

    Inputs: dnext_h (N, H), dnext_c (N, H), cache.
    Returns: dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    da = np.concatenate([
        dc * g * i * (1.0 - i),
        dc * prev_c * f * (1.0 - f),
        dnext_h * tanh_c * o * (1.0 - o),
        dc * i * (1.0 - g**2),
    ], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """LSTM over a whole sequence, starting from c0 = 0.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns: h (N, T, H) hidden states of all steps, cache for ``lstm_backward``.
    """
    check_recurrent(x.shape, h0.shape, Wx.shape, Wh.shape, b.shape, 4, True, "LSTM")
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx, Wh, b))
    prev_h, prev_c = h0, np.zeros_like(h0)
    caches = []
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    """Backward of ``lstm_forward``.

    Inputs: dh (N, T, H) upstream gradient of all hidden states, cache.
    Returns: dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    N, T, H = dh.shape
    x0, h0, _, Wx, Wh = cache[0][:5]
    dx = np.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H, dtype=dh.dtype)
    dprev_h, dprev_c = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c,
                                                                           cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    """Affine layer applied at every time step.

    Inputs: x (N, T, D), w (D, M), b (M,).
    Returns: out (N, T, M) = x w + b, cache for ``temporal_affine_backward``.
    """
    check_temporal_affine(x.shape, w.shape, b.shape)
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, -1)
    return out, (x, w, b, out)


def temporal_affine_backward(dout, cache):
    """Backward of ``temporal_affine_forward``.

    Inputs: dout (N, T, M), cache.
    Returns: dx (N, T, D), dw (D, M), db (M,).
    """
    x, w, _, _ = cache
    N, T, D = x.shape
    dout2 = dout.reshape(N * T, -1)
    return (dout2 @ w.T).reshape(N, T, D), x.reshape(N * T, D).T @ dout2, dout2.sum(axis=0)


def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy at every time step, summed over time, averaged over the batch.

    Inputs: x (N, T, V) scores, y (N, T) target ids in [0, V), mask (N, T) bool (True where the
    target counts; ``<NULL>`` padding is False and contributes neither loss nor gradient).
    Returns: loss (float), dx (N, T, V) gradient of the loss with respect to x.
    """
    check_softmax_loss(x.shape, y.shape, mask.shape)
    N, T, V = x.shape
    if y.size:
        check_word_ids("y", int(y.min()), int(y.max()), V, lambda: _first_bad(y, V))
    x_flat, y_flat, mask_flat = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T).astype(bool)
    shifted = x_flat - x_flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N * T)
    loss = -np.where(mask_flat, log_probs[rows, y_flat], 0.0).sum() / N
    dx = np.exp(log_probs)
    dx[rows, y_flat] -= 1.0
    dx *= mask_flat[:, None] / N
    return loss, dx.reshape(N, T, V)
