"""Centered-difference numeric gradients and the relative error used to compare them (CS231n helpers)."""

from __future__ import annotations

import numpy as np


def eval_numerical_gradient(f, x, h=1e-5):
    """Numeric gradient of a scalar function ``f(x)`` at ``x`` (any shape), by centered differences.

    ``x`` is perturbed in place and restored. Returns an array shaped like ``x``.
    """
    return eval_numerical_gradient_array(f, x, 1.0, h)


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numeric gradient of ``sum(f(x) * df)`` at ``x``: backward of an array-valued ``f`` for upstream ``df``.

    ``x`` is perturbed in place and restored. Returns an array shaped like ``x``.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), copy=True)
        x[ix] = old - h
        neg = np.array(f(x), copy=True)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def rel_error(x, y):
    """Largest elementwise relative error ``|x - y| / max(1e-8, |x| + |y|)``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
