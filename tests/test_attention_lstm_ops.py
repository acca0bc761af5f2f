"""The Show-Attend-Tell step: the NumPy reference against numeric gradients and a by-hand forward; the torch
``ops.attention_lstm_step`` against the reference (float64, every output and every gradient), gradcheck, and
its argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visgrad.ops as ops
import visgrad.reference as ref

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ("x", "prev_h", "prev_c", "features", "projected", "W_ha", "w_a", "W_beta", "b_beta", "Wx", "Wz",
         "Wh", "b")


def _arrays(N=2, W=3, H=4, L=5, C=6, A=3, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"x": (N, W), "prev_h": (N, H), "prev_c": (N, H), "features": (N, L, C), "projected": (N, L, A),
              "W_ha": (H, A), "w_a": (A,), "W_beta": (H, 1), "b_beta": (1,), "Wx": (W, 4 * H),
              "Wz": (C, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,)}
    return {name: rng.standard_normal(shapes[name]) for name in NAMES}


# ------------------------------------------------------------------------------------- NumPy reference


def test_soft_attention_reference_gradients_match_numeric():
    a = _arrays()
    args = [a["prev_h"], a["features"], a["projected"], a["W_ha"], a["w_a"]]
    rng = np.random.default_rng(1)
    context, alpha, cache = ref.soft_attention_forward(*args)
    dcontext, dalpha = rng.standard_normal(context.shape), rng.standard_normal(alpha.shape)
    grads = ref.soft_attention_backward(dcontext, dalpha, cache)

    def scalar_fn(i):
        def f(value):
            out = ref.soft_attention_forward(*args[:i], value, *args[i + 1:])
            return (out[0] * dcontext).sum() + (out[1] * dalpha).sum()
        return f

    for i, grad in enumerate(grads):
        numeric = ref.eval_numerical_gradient(scalar_fn(i), args[i].copy())
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9, err_msg=str(i))


def test_attention_lstm_reference_gradients_match_numeric():
    a = _arrays()
    args = [a[name] for name in NAMES]
    rng = np.random.default_rng(2)
    outputs = ref.attention_lstm_step_forward(*args)
    upstream = [rng.standard_normal(o.shape) for o in outputs[:4]]
    grads = ref.attention_lstm_step_backward(*upstream, outputs[4])
    assert len(grads) == len(NAMES)

    def scalar_fn(i):
        def f(value):
            out = ref.attention_lstm_step_forward(*args[:i], value, *args[i + 1:])
            return sum((o * u).sum() for o, u in zip(out[:4], upstream, strict=True))
        return f

    for i, grad in enumerate(grads):
        assert grad.shape == args[i].shape, NAMES[i]
        numeric = ref.eval_numerical_gradient(scalar_fn(i), args[i].copy())
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9, err_msg=NAMES[i])


def test_soft_attention_reference_by_hand():
    """Two cells, A = 1: scores tanh(p_l + h w) * v, softmax, context the weighted features."""
    h, W_ha, w_a = np.array([[0.5]]), np.array([[2.0]]), np.array([3.0])
    projected = np.array([[[0.0], [1.0]]])
    features = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    context, alpha, _ = ref.soft_attention_forward(h, features, projected, W_ha, w_a)
    scores = 3.0 * np.tanh(np.array([0.0, 1.0]) + 1.0)
    weights = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(alpha[0], weights, rtol=1e-12)
    np.testing.assert_allclose(context[0], [weights[0], 2 * weights[1]], rtol=1e-12)


def test_attention_lstm_reference_is_an_lstm_on_word_and_gated_context():
    """With the gate forced shut (b_beta -> -inf) the step is lstm_step_forward on [x, 0]."""
    a = _arrays()
    a["b_beta"] = np.array([-1e3])
    next_h, next_c, context, alpha, _ = ref.attention_lstm_step_forward(*(a[n] for n in NAMES))
    lstm_input = np.concatenate([a["x"], np.zeros((2, 6))], axis=1)
    h, c, _ = ref.lstm_step_forward(lstm_input, a["prev_h"], a["prev_c"], np.concatenate([a["Wx"], a["Wz"]]),
                                    a["Wh"], a["b"])
    np.testing.assert_allclose(next_h, h, rtol=1e-12)
    np.testing.assert_allclose(next_c, c, rtol=1e-12)
    np.testing.assert_allclose(context, 0.0, atol=1e-300)
    np.testing.assert_allclose(alpha.sum(1), 1.0, rtol=1e-12)


# ------------------------------------------------------------------------------------- torch op


def test_op_matches_reference_forward_and_backward_float64():
    a = _arrays(N=3, L=7)
    tensors = [torch.tensor(a[n], requires_grad=True) for n in NAMES]
    outputs = ops.attention_lstm_step(*tensors)
    expected = ref.attention_lstm_step_forward(*(a[n] for n in NAMES))
    rng = np.random.default_rng(3)
    upstream = [rng.standard_normal(o.shape) for o in expected[:4]]
    for out, exp in zip(outputs, expected[:4], strict=True):
        np.testing.assert_allclose(out.detach().numpy(), exp, rtol=1e-10, atol=1e-12)
    torch.autograd.backward(outputs, [torch.tensor(u) for u in upstream])
    grads = ref.attention_lstm_step_backward(*upstream, expected[4])
    for name, tensor, grad in zip(NAMES, tensors, grads, strict=True):
        np.testing.assert_allclose(tensor.grad.numpy(), grad, rtol=1e-9, atol=1e-11, err_msg=name)


def test_op_gradcheck():
    a = _arrays(N=2, W=2, H=3, L=4, C=3, A=2, seed=4)
    tensors = tuple(torch.tensor(a[n], requires_grad=True) for n in NAMES)
    assert torch.autograd.gradcheck(ops.attention_lstm_step, tensors, eps=1e-6, atol=1e-6)


def test_op_gives_only_the_gradients_asked_for():
    """Frozen features (a fixed extractor) and projections: the backward skips their gradients."""
    a = _arrays()
    tensors = [torch.tensor(a[n], requires_grad=n not in ("features", "x")) for n in NAMES]
    h, c, context, alpha = ops.attention_lstm_step(*tensors)
    (h.sum() + context.sum() + alpha[:, 0].sum()).backward()
    assert tensors[3].grad is None and tensors[0].grad is None
    assert tensors[4].grad is not None and tensors[4].grad.abs().sum() > 0


def test_op_float32_close_to_float64():
    a = _arrays(N=4, L=16, C=8)
    out64 = ops.attention_lstm_step(*(torch.tensor(a[n]) for n in NAMES))
    out32 = ops.attention_lstm_step(*(torch.tensor(a[n], dtype=torch.float32) for n in NAMES))
    for o32, o64 in zip(out32, out64, strict=True):
        assert o32.dtype == torch.float32
        torch.testing.assert_close(o32.double(), o64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "shape", "message"), [
    ("features", (2, 5), "features"),
    ("projected", (2, 4, 3), "projected"),
    ("Wz", (5, 16), "Wz"),
    ("w_a", (4,), "w_a"),
    ("W_beta", (4, 2), "W_beta"),
])
def test_op_names_the_misfit_argument(name, shape, message):
    a = _arrays()
    a[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=message):
        ops.attention_lstm_step(*(torch.tensor(a[n]) for n in NAMES))
