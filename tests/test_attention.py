"""Attention: the NumPy reference against numeric gradients, ``ops.attention`` against the reference
(float64), gradcheck and ``scaled_dot_product_attention``; dropout against an explicit composition; the
course modules (MultiHeadAttention against ``nn.MultiheadAttention``, PositionalEncoding against its formula)
and the causal mask (a later token never changes an earlier output)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import visgrad.ops as ops
import visgrad.reference as ref
from visgrad.captioning import MultiHeadAttention, PositionalEncoding

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _qkv(N=2, h=3, S=4, T=5, d=6, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(N, h, L, d, generator=g, dtype=dtype).requires_grad_() for L in (S, T, T)]


def _masks(N, h, S, T):
    """name -> (additive float64 mask for the reference, the same mask as given to the op)."""
    g = torch.Generator().manual_seed(1)
    causal = torch.from_numpy(ref.causal_mask(S, T))
    random = torch.randn(N, 1, S, T, generator=g, dtype=F64)  # finite, broadcast over heads
    keep = torch.rand(S, T, generator=g) > 0.3
    keep[:, 0] = True  # every target keeps a source
    bool_additive = torch.zeros(S, T, dtype=F64).masked_fill(~keep, float("-inf"))
    return {"none": (None, None), "causal": (causal, causal), "random4d": (random, random),
            "bool": (bool_additive, keep)}


# ------------------------------------------------------------------------------------- NumPy reference


@pytest.mark.parametrize("mask_name", ["none", "causal", "random4d"])
def test_reference_gradients_match_numeric(mask_name):
    rng = np.random.default_rng(0)
    N, h, S, T, d = 2, 2, 3, 4, 5
    q, k, v = (rng.standard_normal((N, h, L, d)) for L in (S, T, T))
    mask = _masks(N, h, S, T)[mask_name][0]
    mask = None if mask is None else mask.numpy()
    out, cache = ref.attention_forward(q, k, v, mask)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = ref.attention_backward(dout, cache)
    numeric = [
        ref.eval_numerical_gradient_array(lambda q: ref.attention_forward(q, k, v, mask)[0], q, dout),
        ref.eval_numerical_gradient_array(lambda k: ref.attention_forward(q, k, v, mask)[0], k, dout),
        ref.eval_numerical_gradient_array(lambda v: ref.attention_forward(q, k, v, mask)[0], v, dout),
    ]
    for analytic, num in zip((dq, dk, dv), numeric, strict=True):
        assert ref.rel_error(analytic, num) < 1e-7


def test_reference_forward_by_hand():
    """One head, two keys: weights softmax([q.k0, q.k1] / sqrt(d)) by hand; causal row 0 sees k0 only."""
    q = np.array([[[[1.0, 0.0], [0.0, 2.0]]]])  # (1, 1, 2, 2)
    k = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    v = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out, _ = ref.attention_forward(q, k, v)
    s = np.array([[1.0, 0.0], [2.0, 2.0]]) / math.sqrt(2)
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    np.testing.assert_allclose(out[0, 0], p @ v[0, 0], rtol=1e-12)
    causal, _ = ref.attention_forward(q, k, v, ref.causal_mask(2))
    np.testing.assert_allclose(causal[0, 0, 0], v[0, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(causal[0, 0, 1], out[0, 0, 1], rtol=1e-12)


# ------------------------------------------------------------------------------------- torch op


@pytest.mark.parametrize("mask_name", ["none", "causal", "random4d", "bool"])
@pytest.mark.parametrize(("S", "T"), [(4, 5), (4, 4), (1, 1), (3, 1)])
def test_op_matches_reference(mask_name, S, T):
    N, h, d = 2, 3, 4
    q, k, v = _qkv(N, h, S, T, d)
    ref_mask, op_mask = _masks(N, h, S, T)[mask_name]
    out = ops.attention(q, k, v, op_mask)
    want, cache = ref.attention_forward(*(t.detach().numpy() for t in (q, k, v)),
                                        None if ref_mask is None else ref_mask.numpy())
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12, atol=1e-14)
    dout = torch.randn_like(out)
    out.backward(dout)
    want_grads = ref.attention_backward(dout.numpy(), cache)
    for got, expected in zip((q.grad, k.grad, v.grad), want_grads, strict=True):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mask_name", ["causal", "random4d"])
def test_op_gradcheck(mask_name):
    q, k, v = _qkv(1, 2, 3, 3, 2)
    mask = _masks(1, 2, 3, 3)[mask_name][1]
    assert torch.autograd.gradcheck(lambda q, k, v: ops.attention(q, k, v, mask), (q, k, v))


@pytest.mark.parametrize("mask_name", ["none", "causal", "random4d", "bool"])
def test_op_matches_scaled_dot_product_attention(mask_name):
    """Values and gradients against PyTorch's math backend (float64)."""
    N, h, S, T, d = 3, 2, 5, 5, 8
    q, k, v = _qkv(N, h, S, T, d, seed=3)
    mask = _masks(N, h, S, T)[mask_name][1]
    out = ops.attention(q, k, v, mask)
    dout = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), dout)
    with sdpa_kernel(SDPBackend.MATH):
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    want_grads = torch.autograd.grad(want, (q, k, v), dout)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-13)
    for got, expected in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_op_float32_is_close_to_float64_and_skips_unneeded_grads():
    q, k, v = _qkv(4, 2, 6, 6, 8, dtype=torch.float32)
    mask = _masks(4, 2, 6, 6)["causal"][1].float()
    out = ops.attention(q, k, v.detach(), mask)
    out.sum().backward()
    assert v.grad is None
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    out64 = ops.attention(q64, k64, v64, mask.double())
    out64.sum().backward()
    torch.testing.assert_close(out.double(), out64, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(q.grad.double(), q64.grad, rtol=1e-4, atol=1e-5)


def test_dropout_matches_explicit_composition():
    """With dropout the op keeps each weight where a uniform draw (a ``rand`` tensor of the weights' shape)
    is >= p and scales it by 1 / (1 - p); values and gradients equal that composition's."""
    N, h, S, T, d, p = 2, 2, 4, 4, 3, 0.4
    q, k, v = _qkv(N, h, S, T, d, seed=5)
    mask = torch.from_numpy(ref.causal_mask(S))
    torch.manual_seed(7)
    out = ops.attention(q, k, v, mask, p)
    grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    torch.manual_seed(7)
    keep = (torch.rand(N * h, S, T, dtype=F64) >= p).view(N, h, S, T).to(F64)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
    want = (weights * keep / (1 - p)) @ v
    want_grads = torch.autograd.grad(want, (q, k, v), torch.ones_like(want))
    assert 0 < int((keep == 0).sum()) < keep.numel()
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-13)
    for got, expected in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_autocast_runs_in_bfloat16():
    q, k, v = _qkv(2, 2, 4, 4, 8, dtype=torch.float32)
    mask = torch.from_numpy(ref.causal_mask(4)).float()
    out32 = ops.attention(q, k, v, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ops.attention(q, k, v, mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), out32, atol=0.05, rtol=0.05)
    out.float().sum().backward()
    assert q.grad.dtype == torch.float32


@pytest.mark.parametrize(("args", "message"), [
    (((2, 3, 4, 5), (2, 3, 6, 4), (2, 3, 6, 4)), r"k must be \(N, h, T, d\) = \(2, 3, 6, 5\)"),
    (((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 7, 5)), r"v must be \(N, h, T, d\) = \(2, 3, 6, 5\)"),
    (((2, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5)), r"q must be a 4-D array of shape \(N, h, S, d\)"),
    (((2, 3, 4, 5), (2, 3, 0, 5), (2, 3, 0, 5)), r"at least one source position"),
])
def test_shape_errors(args, message):
    with pytest.raises(ValueError, match=message):
        ops.attention(*(torch.zeros(s) for s in args))


def test_mask_dtype_and_dropout_errors():
    q = torch.zeros(1, 1, 2, 4)
    with pytest.raises(ValueError, match=r"mask must broadcast to \(N, h, S, T\) = \(1, 1, 2, 2\)"):
        ops.attention(q, q, q, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="mask is torch.float64 on cpu but q is torch.float32"):
        ops.attention(q, q, q, torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"dropout_p must be a probability in \[0, 1\), got 1.0"):
        ops.attention(q, q, q, None, 1.0)
    with pytest.raises(ValueError, match="k is torch.float64"):
        ops.attention(q, q.double(), q)


# ------------------------------------------------------------------------------------- course modules


def test_multihead_attention_matches_torch_multihead_attention():
    """Same weights in ``nn.MultiheadAttention``; the course mask (0 blocks) is its bool mask (True blocks)"""
    torch.manual_seed(0)
    E, heads, N, S, T = 8, 2, 3, 4, 5
    attn = MultiHeadAttention(E, heads, dropout=0.0).double()
    torch_attn = torch.nn.MultiheadAttention(E, heads, batch_first=True, dtype=F64)
    with torch.no_grad():
        torch_attn.in_proj_weight.copy_(torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]))
        torch_attn.in_proj_bias.copy_(torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]))
        torch_attn.out_proj.weight.copy_(attn.proj.weight)
        torch_attn.out_proj.bias.copy_(attn.proj.bias)
    query, key = torch.randn(N, S, E, dtype=F64), torch.randn(N, T, E, dtype=F64)
    course_mask = torch.randint(0, 2, (S, T))
    course_mask[:, 0] = 1
    for mask in (None, course_mask):
        out = attn(query, key, key, mask)
        blocked = None if mask is None else mask == 0
        want, _ = torch_attn(query, key, key, attn_mask=blocked, need_weights=False)
        torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-13)


def test_causal_mask_keeps_earlier_outputs_independent_of_later_tokens():
    torch.manual_seed(0)
    E, N, T = 8, 2, 6
    attn = MultiHeadAttention(E, 2, dropout=0.0).double()
    x = torch.randn(N, T, E, dtype=F64, requires_grad=True)
    causal = torch.tril(torch.ones(T, T))
    out = attn(x, x, x, causal)
    for i in range(T):
        (grad,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=True)
        assert grad[:, i + 1 :].abs().max() == 0 if i + 1 < T else True
        assert grad[:, : i + 1].abs().max() > 0
    changed = x.detach().clone()
    changed[:, 3:] = torch.randn(N, T - 3, E, dtype=F64)
    torch.testing.assert_close(attn(changed, changed, changed, causal)[:, :3], out[:, :3].detach(),
                               rtol=0, atol=0)


def test_multihead_attention_checks_heads():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be a multiple of num_heads \(4\)"):
        MultiHeadAttention(10, 4)


def test_positional_encoding_values():
    """pe[t, 2i] = sin(t / 10000^(2i/E)), pe[t, 2i + 1] = cos(...), added to the input (dropout off)."""
    pe = PositionalEncoding(4, dropout=0.0, max_len=10)
    out = pe(torch.zeros(1, 3, 4))
    expected = [[0.0, 1.0, 0.0, 1.0],
                [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]]
    torch.testing.assert_close(out[0], torch.tensor(expected), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(pe(torch.zeros(1, 2, 4), start=1)[0], out[0, 1:])
    with pytest.raises(ValueError, match="positions up to 11 exceed max_len = 10"):
        pe(torch.zeros(1, 11, 4))
    with pytest.raises(ValueError, match="embed_dim must be even"):
        PositionalEncoding(5)
