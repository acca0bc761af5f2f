"""NumPy multi-head scaled dot-product attention (Vaswani et al., 2017) in the CS231n layer style.

The heads are already split: queries (N, h, S, d) attend over keys and values (N, h, T, d) of the same
batch and head. The mask is additive, as ``torch.nn.functional.scaled_dot_product_attention``'s float
mask: 0 where target i may attend to source j, ``-inf`` where it may not (``causal_mask`` builds the
decoder's). Dropout is off (the reference is for checking gradients). A target row whose sources are all
blocked has no softmax and comes out NaN.
"""

from __future__ import annotations

import numpy as np

from visgrad.reference._checks import check_attention


def causal_mask(S, T=None, dtype=np.float64):
    """Additive causal mask (S, T): 0 where j <= i (a target sees itself and earlier sources), -inf after."""
    T = S if T is None else T
    return np.where(np.tri(S, T, dtype=bool), 0.0, -np.inf).astype(dtype)


def attention_forward(q, k, v, mask=None):
    """Scaled dot-product attention of every head: out = softmax(q k^T / sqrt(d) + mask) v.

    Inputs:
    - q: queries (N, h, S, d).
    - k: keys (N, h, T, d).
    - v: values (N, h, T, d).
    - mask: additive (S, T), or any shape broadcastable to (N, h, S, T), or None.

    Returns a tuple of:
    - out: (N, h, S, d).
    - cache: values needed for ``attention_backward``.
    """
    check_attention(q.shape, k.shape, v.shape, None if mask is None else np.shape(mask))
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ v, (q, k, v, weights, scale)


def attention_backward(dout, cache):
    """Backward of ``attention_forward``.

    Inputs:
    - dout: upstream gradient (N, h, S, d).
    - cache: from ``attention_forward``.

    Returns a tuple of dq (N, h, S, d), dk (N, h, T, d), dv (N, h, T, d).
    """
    q, k, v, weights, scale = cache
    dv = np.swapaxes(weights, -1, -2) @ dout
    dweights = dout @ np.swapaxes(v, -1, -2)
    # softmax backward, row by row: dscores = P * (dP - sum_j dP_j P_j)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) * scale
    dq = dscores @ k
    dk = np.swapaxes(dscores, -1, -2) @ q
    return dq, dk, dv
