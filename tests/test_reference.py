"""NumPy reference layers: CS231n fixed-input forward values and centered-difference gradient checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, log_softmax

from visgrad.reference import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rel_error,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)


def _lin(lo, hi, *shape):
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)


# ---------------------------------------------------------------------------------------------- helpers


def test_numeric_gradient_helpers_on_known_functions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    h = 1e-5
    # Centered differences of z**3 give exactly 3 z**2 + h**2.
    assert rel_error(eval_numerical_gradient(lambda z: np.sum(z**3), x, h), 3 * x**2 + h**2) < 1e-8
    df = rng.standard_normal((3, 4))
    assert rel_error(eval_numerical_gradient_array(lambda z: np.sin(z), x, df), np.cos(x) * df) < 1e-8
    np.testing.assert_array_equal(x, x0)  # every perturbation undone


def test_rel_error_values():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.zeros(2), np.zeros(2)) == 0.0


def test_sigmoid_is_stable_and_exact():
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])
    with np.errstate(over="raise"):
        s = sigmoid(x)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, expit(x), rtol=1e-15, atol=0)


# ------------------------------------------------------------- forward: the course's expected outputs


def test_rnn_step_forward_cs231n_values():
    N, D, H = 3, 10, 4
    next_h, _ = rnn_step_forward(_lin(-0.4, 0.7, N, D), _lin(-0.2, 0.5, N, H), _lin(-0.1, 0.9, D, H),
                                 _lin(-0.3, 0.7, H, H), _lin(-0.2, 0.4, H))
    expected = np.array([[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
                         [0.66854692, 0.79562378, 0.87755553, 0.92795967],
                         [0.97934501, 0.99144213, 0.99646691, 0.99854353]])
    assert rel_error(expected, next_h) < 1e-8


def test_rnn_forward_cs231n_values():
    N, T, D, H = 2, 3, 4, 5
    h, _ = rnn_forward(_lin(-0.1, 0.3, N, T, D), _lin(-0.3, 0.1, N, H), _lin(-0.2, 0.4, D, H),
                       _lin(-0.4, 0.1, H, H), _lin(-0.7, 0.1, H))
    expected = np.array([
        [[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
         [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
         [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
        [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
         [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
         [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]])
    assert rel_error(expected, h) < 1e-7


def test_lstm_step_forward_cs231n_values():
    N, D, H = 3, 4, 5
    next_h, next_c, _ = lstm_step_forward(
        _lin(-0.4, 1.2, N, D), _lin(-0.3, 0.7, N, H), _lin(-0.4, 0.9, N, H),
        _lin(-2.1, 1.3, D, 4 * H), _lin(-0.7, 2.2, H, 4 * H), _lin(0.3, 0.7, 4 * H))
    expected_h = np.array([[0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
                           [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
                           [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]])
    expected_c = np.array([[0.32986176, 0.39145139, 0.451556, 0.51014116, 0.56717407],
                           [0.66382255, 0.76674007, 0.87195994, 0.97902709, 1.08751345],
                           [0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676]])
    assert rel_error(expected_h, next_h) < 1e-8
    assert rel_error(expected_c, next_c) < 1e-8


def test_lstm_forward_cs231n_values():
    N, D, H, T = 2, 5, 4, 3
    h, _ = lstm_forward(_lin(-0.4, 0.6, N, T, D), _lin(-0.4, 0.8, N, H), _lin(-0.2, 0.9, D, 4 * H),
                        _lin(-0.3, 0.6, H, 4 * H), _lin(0.2, 0.7, 4 * H))
    expected = np.array([
        [[0.01764008, 0.01823233, 0.01882671, 0.0194232],
         [0.11287491, 0.12146228, 0.13018446, 0.13902939],
         [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
        [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
         [0.6704845, 0.69350089, 0.71486014, 0.7346449],
         [0.81733511, 0.83677871, 0.85403753, 0.86935314]]])
    assert rel_error(expected, h) < 1e-7


def test_lstm_forward_matches_scalar_formula():
    """An independent element-by-element evaluation of the LSTM equations (gate order i, f, o, g)."""
    rng = np.random.default_rng(1)
    N, T, D, H = 2, 3, 3, 2
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    h, _ = lstm_forward(x, h0, Wx, Wh, b)
    for n in range(N):
        prev_h, prev_c = list(h0[n]), [0.0] * H
        for t in range(T):
            a = [sum(x[n, t, d] * Wx[d, k] for d in range(D)) + sum(prev_h[j] * Wh[j, k] for j in range(H))
                 + b[k] for k in range(4 * H)]
            c = [expit(a[H + j]) * prev_c[j] + expit(a[j]) * np.tanh(a[3 * H + j]) for j in range(H)]
            prev_h = [expit(a[2 * H + j]) * np.tanh(c[j]) for j in range(H)]
            prev_c = c
            np.testing.assert_allclose(h[n, t], prev_h, rtol=1e-12)


# ------------------------------------------------------------------------------ backward: numeric


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def test_rnn_step_backward(rng):
    N, D, H = 4, 5, 6
    x, h, Wx, Wh, b = (rng.standard_normal(s) for s in [(N, D), (N, H), (D, H), (H, H), (H,)])
    out, cache = rnn_step_forward(x, h, Wx, Wh, b)
    dnext_h = rng.standard_normal(out.shape)
    grads = rnn_step_backward(dnext_h, cache)
    args = [x, h, Wx, Wh, b]
    for k, analytic in enumerate(grads):
        f = lambda v, k=k: rnn_step_forward(*(v if j == k else a for j, a in enumerate(args)))[0]
        assert rel_error(eval_numerical_gradient_array(f, args[k], dnext_h), analytic) < 1e-8


def test_rnn_backward(rng):
    N, D, T, H = 2, 3, 10, 5
    x, h0, Wx, Wh, b = (rng.standard_normal(s) for s in [(N, T, D), (N, H), (D, H), (H, H), (H,)])
    out, cache = rnn_forward(x, h0, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    grads = rnn_backward(dout, cache)
    args = [x, h0, Wx, Wh, b]
    for k, analytic in enumerate(grads):
        f = lambda v, k=k: rnn_forward(*(v if j == k else a for j, a in enumerate(args)))[0]
        assert rel_error(eval_numerical_gradient_array(f, args[k], dout), analytic) < 1e-6


def test_word_embedding_backward(rng):
    N, T, V, D = 50, 3, 5, 6
    x = rng.integers(V, size=(N, T))
    W = rng.standard_normal((V, D))
    out, cache = word_embedding_forward(x, W)
    np.testing.assert_array_equal(out[7, 2], W[x[7, 2]])
    dout = rng.standard_normal(out.shape)
    dW_num = eval_numerical_gradient_array(lambda W: word_embedding_forward(x, W)[0], W, dout)
    assert rel_error(word_embedding_backward(dout, cache), dW_num) < 1e-8


def test_lstm_step_backward(rng):
    N, D, H = 4, 5, 6
    shapes = [(N, D), (N, H), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]
    args = [rng.standard_normal(s) for s in shapes]
    next_h, next_c, cache = lstm_step_forward(*args)
    dnext_h, dnext_c = rng.standard_normal(next_h.shape), rng.standard_normal(next_c.shape)
    grads = lstm_step_backward(dnext_h, dnext_c, cache)
    for k, analytic in enumerate(grads):
        def f(v, k=k):
            h, c, _ = lstm_step_forward(*(v if j == k else a for j, a in enumerate(args)))
            return np.concatenate([h, c], axis=1)
        numeric = eval_numerical_gradient_array(f, args[k], np.concatenate([dnext_h, dnext_c], axis=1))
        # dWx and dWh hold entries near 1e-5, where the h**2 truncation of centered differences alone
        # reaches a relative 1e-8; the course asks ~1e-7 for them.
        assert rel_error(numeric, analytic) < (1e-7 if k in (3, 4) else 1e-8)


def test_lstm_backward(rng):
    N, D, T, H = 2, 3, 10, 6
    args = [rng.standard_normal(s) for s in [(N, T, D), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]]
    out, cache = lstm_forward(*args)
    dout = rng.standard_normal(out.shape)
    grads = lstm_backward(dout, cache)
    for k, analytic in enumerate(grads):
        f = lambda v, k=k: lstm_forward(*(v if j == k else a for j, a in enumerate(args)))[0]
        assert rel_error(eval_numerical_gradient_array(f, args[k], dout), analytic) < 1e-6


def test_temporal_affine(rng):
    N, T, D, M = 2, 3, 4, 5
    x, w, b = rng.standard_normal((N, T, D)), rng.standard_normal((D, M)), rng.standard_normal(M)
    out, cache = temporal_affine_forward(x, w, b)
    np.testing.assert_allclose(out[1, 2], x[1, 2] @ w + b, rtol=1e-14)
    dout = rng.standard_normal(out.shape)
    grads = temporal_affine_backward(dout, cache)
    args = [x, w, b]
    for k, analytic in enumerate(grads):
        f = lambda v, k=k: temporal_affine_forward(*(v if j == k else a for j, a in enumerate(args)))[0]
        assert rel_error(eval_numerical_gradient_array(f, args[k], dout), analytic) < 1e-8


def test_temporal_softmax_loss_gradient(rng):
    N, T, V = 7, 8, 9
    x = rng.standard_normal((N, T, V))
    y = rng.integers(V, size=(N, T))
    mask = rng.random((N, T)) > 0.5
    loss, dx = temporal_softmax_loss(x, y, mask)
    expected = -sum(log_softmax(x[n, t])[y[n, t]] for n in range(N) for t in range(T) if mask[n, t]) / N
    assert loss == pytest.approx(expected, rel=1e-12)
    dx_num = eval_numerical_gradient(lambda x: temporal_softmax_loss(x, y, mask)[0], x)
    assert rel_error(dx, dx_num) < 1e-6


@pytest.mark.parametrize(("N", "T", "V", "p"), [(100, 1, 10, 1.0), (100, 10, 10, 1.0), (5000, 10, 10, 0.1)])
def test_temporal_softmax_loss_uniform_scores(N, T, V, p):
    """With all-zero scores each counted step costs exactly log V; the loss is log V * (#counted / N)."""
    rng = np.random.default_rng(0)
    y = rng.integers(V, size=(N, T))
    mask = rng.random((N, T)) <= p
    loss, dx = temporal_softmax_loss(np.zeros((N, T, V)), y, mask)
    assert loss == pytest.approx(np.log(V) * mask.sum() / N, rel=1e-12)
    assert np.all(dx[~mask] == 0)


# --------------------------------------------------------------------------------- shape errors


def test_reference_shape_errors_name_the_argument():
    x, h0 = np.zeros((2, 3, 4)), np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"Wh must be \(H, 4H\) = \(5, 20\) for the LSTM cell, got \(5, 5\)"):
        lstm_forward(x, h0, np.zeros((4, 20)), np.zeros((5, 5)), np.zeros(20))
    with pytest.raises(ValueError, match=r"Wx must be \(D, H\) = \(4, 5\) for the RNN cell, got \(3, 5\)"):
        rnn_forward(x, h0, np.zeros((3, 5)), np.zeros((5, 5)), np.zeros(5))
    with pytest.raises(ValueError, match=r"x holds word id 9 at position \(1, 0\), outside the vocab"):
        word_embedding_forward(np.array([[0, 1], [9, 2]]), np.zeros((4, 3)))
