"""Torch ops: forward and backward against the NumPy reference, gradcheck, float32 against naive autograd,
the masked loss, and edge cases (N = 1, T = 1, h0 without grad, non-contiguous inputs, CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visgrad.ops as ops
import visgrad.reference as ref

F64 = torch.float64


def _randn(*shape, dtype=F64, device="cpu", grad=True, seed=None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.randn(*shape, dtype=dtype, generator=g).to(device).requires_grad_(grad)


def _recurrent_args(cell, N, T, D, H, sequence=True, **kw):
    m = 4 if cell == "lstm" else 1
    xs = (N, T, D) if sequence else (N, D)
    hs = [(N, H), (N, H)] if (cell == "lstm" and not sequence) else [(N, H)]
    return [_randn(*s, **kw) for s in [xs, *hs, (D, m * H), (H, m * H), (m * H,)]]


def _np(ts):
    return [t.detach().cpu().numpy() for t in ts]


def _grads(args):
    return [a.grad for a in args]


# ------------------------------------------------------------------ torch vs NumPy reference (float64)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize(("N", "T"), [(3, 4), (1, 1), (1, 5), (4, 1)])
def test_sequence_matches_reference(cell, N, T):
    args = _recurrent_args(cell, N, T, 5, 6)
    h = getattr(ops, cell)(*args)
    h_ref, cache = getattr(ref, f"{cell}_forward")(*_np(args))
    np.testing.assert_allclose(h.detach().numpy(), h_ref, rtol=1e-12, atol=1e-14)
    dh = torch.randn_like(h)
    h.backward(dh)
    for got, want in zip(_grads(args), getattr(ref, f"{cell}_backward")(dh.numpy(), cache), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_rnn_step_matches_reference():
    args = _recurrent_args("rnn", 3, 1, 4, 5, sequence=False)
    out = ops.rnn_step(*args)
    out_ref, cache = ref.rnn_step_forward(*_np(args))
    np.testing.assert_allclose(out.detach().numpy(), out_ref, rtol=1e-12, atol=1e-14)
    dout = torch.randn_like(out)
    out.backward(dout)
    for got, want in zip(_grads(args), ref.rnn_step_backward(dout.numpy(), cache), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_lstm_step_matches_reference():
    args = _recurrent_args("lstm", 3, 1, 4, 5, sequence=False)
    next_h, next_c = ops.lstm_step(*args)
    h_ref, c_ref, cache = ref.lstm_step_forward(*_np(args))
    np.testing.assert_allclose(next_h.detach().numpy(), h_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(next_c.detach().numpy(), c_ref, rtol=1e-12, atol=1e-14)
    dh, dc = torch.randn_like(next_h), torch.randn_like(next_c)
    torch.autograd.backward([next_h, next_c], [dh, dc])
    for got, want in zip(_grads(args), ref.lstm_step_backward(dh.numpy(), dc.numpy(), cache), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_word_embedding_matches_reference():
    x = torch.tensor([[0, 3, 3, 1], [2, 0, 4, 4]])
    W = _randn(5, 6)
    out = ops.word_embedding(x, W)
    out_ref, cache = ref.word_embedding_forward(x.numpy(), W.detach().numpy())
    np.testing.assert_array_equal(out.detach().numpy(), out_ref)
    dout = torch.randn_like(out)
    out.backward(dout)
    np.testing.assert_allclose(W.grad.numpy(), ref.word_embedding_backward(dout.numpy(), cache), rtol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize(("V", "N", "T"), [(4, 3, 5), (40, 3, 5), (6, 1, 1)])  # table and direct routes
def test_word_sequence_matches_reference(cell, V, N, T):
    """word_lstm / word_rnn equal the reference embedding followed by the reference recurrent layer."""
    m = 4 if cell == "lstm" else 1
    words = torch.randint(V, (N, T), generator=torch.Generator().manual_seed(V))
    args = [_randn(V, 3), _randn(N, 5), _randn(3, m * 5), _randn(5, m * 5), _randn(m * 5)]
    h = getattr(ops, f"word_{cell}")(words, *args)
    W_embed, h0, Wx, Wh, b = _np(args)
    x, embed_cache = ref.word_embedding_forward(words.numpy(), W_embed)
    h_ref, cache = getattr(ref, f"{cell}_forward")(x, h0, Wx, Wh, b)
    np.testing.assert_allclose(h.detach().numpy(), h_ref, rtol=1e-12, atol=1e-14)
    dh = torch.randn_like(h)
    h.backward(dh)
    dx, *rest = getattr(ref, f"{cell}_backward")(dh.numpy(), cache)
    want = [ref.word_embedding_backward(dx, embed_cache), *rest]
    for got, w in zip(_grads(args), want, strict=True):
        np.testing.assert_allclose(got.numpy(), w, rtol=1e-10, atol=1e-12)


def test_temporal_affine_matches_reference():
    args = [_randn(2, 3, 4), _randn(4, 5), _randn(5)]
    out = ops.temporal_affine(*args)
    out_ref, cache = ref.temporal_affine_forward(*_np(args))
    np.testing.assert_allclose(out.detach().numpy(), out_ref, rtol=1e-12)
    dout = torch.randn_like(out)
    out.backward(dout)
    for got, want in zip(_grads(args), ref.temporal_affine_backward(dout.numpy(), cache), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_temporal_softmax_loss_matches_reference():
    x = _randn(4, 5, 7)
    y = torch.randint(7, (4, 5))
    mask = torch.rand(4, 5) > 0.3
    loss = ops.temporal_softmax_loss(x, y, mask)
    loss_ref, dx_ref = ref.temporal_softmax_loss(x.detach().numpy(), y.numpy(), mask.numpy())
    assert loss.shape == ()
    assert loss.item() == pytest.approx(loss_ref, rel=1e-12)
    (2.5 * loss).backward()  # upstream gradient is honoured
    np.testing.assert_allclose(x.grad.numpy(), 2.5 * dx_ref, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------- gradcheck (float64)


@pytest.mark.parametrize("fn", ["rnn", "lstm"])
def test_gradcheck_sequence(fn):
    args = _recurrent_args(fn, 2, 3, 3, 4)
    assert torch.autograd.gradcheck(getattr(ops, fn), args)


@pytest.mark.parametrize(("fn", "cell"), [("rnn_step", "rnn"), ("lstm_step", "lstm")])
def test_gradcheck_step(fn, cell):
    args = _recurrent_args(cell, 2, 1, 3, 4, sequence=False)
    assert torch.autograd.gradcheck(getattr(ops, fn), args)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("V", [3, 20])  # table and direct routes
def test_gradcheck_word_sequence(cell, V):
    m = 4 if cell == "lstm" else 1
    words = torch.tensor([[0, 2, 2], [1, V - 1, 0]])
    args = (_randn(V, 3), _randn(2, 4), _randn(3, m * 4), _randn(4, m * 4), _randn(m * 4))
    assert torch.autograd.gradcheck(lambda *a: getattr(ops, f"word_{cell}")(words, *a), args)


def test_gradcheck_layers():
    ids = torch.tensor([[0, 2, 2], [1, 4, 0]])
    assert torch.autograd.gradcheck(lambda W: ops.word_embedding(ids, W), (_randn(5, 3),))
    assert torch.autograd.gradcheck(ops.temporal_affine, (_randn(2, 3, 4), _randn(4, 5), _randn(5)))
    y, mask = torch.randint(6, (2, 3)), torch.tensor([[True, False, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda x: ops.temporal_softmax_loss(x, y, mask), (_randn(2, 3, 6),))


def test_double_backward_is_refused():
    args = _recurrent_args("lstm", 2, 2, 3, 4)
    h = ops.lstm(*args)
    dh = torch.randn_like(h, requires_grad=True)
    (g,) = torch.autograd.grad(h, args[0], dh, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


# ------------------------------------------------------------- float32 at realistic sizes vs autograd


def _naive_rnn(x, h0, Wx, Wh, b):
    hs, h = [], h0
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ Wx + h @ Wh + b)
        hs.append(h)
    return torch.stack(hs, 1)


def _naive_lstm(x, h0, Wx, Wh, b):
    hs, h, c = [], h0, torch.zeros_like(h0)
    for t in range(x.shape[1]):
        i, f, o, g = (x[:, t] @ Wx + h @ Wh + b).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs, 1)


@pytest.mark.parametrize(("cell", "naive"), [("rnn", _naive_rnn), ("lstm", _naive_lstm)])
def test_float32_matches_naive_autograd(cell, naive):
    torch.manual_seed(0)
    N, T, D, H = 25, 16, 256, 512
    m = 4 if cell == "lstm" else 1
    scale = [1.0, 1.0, D**-0.5, H**-0.5, 0.1]
    args = [(torch.randn(*s) * k).requires_grad_() for s, k in
            zip([(N, T, D), (N, H), (D, m * H), (H, m * H), (m * H,)], scale, strict=True)]
    h = getattr(ops, cell)(*args)
    dh = torch.randn_like(h)
    got = torch.autograd.grad(h, args, dh)
    h_naive = naive(*args)
    want = torch.autograd.grad(h_naive, args, dh)
    assert h.dtype == torch.float32
    torch.testing.assert_close(h, h_naive, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        assert ((a - b).norm() / b.norm()).item() < 1e-5


# ------------------------------------------------------------------------------------ masked loss


def test_masked_positions_give_no_loss_and_no_gradient():
    torch.manual_seed(0)
    x = _randn(3, 4, 5)
    y = torch.randint(5, (3, 4))
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    loss = ops.temporal_softmax_loss(x, y, mask)
    loss.backward()
    assert torch.all(x.grad[~mask] == 0)
    assert torch.all(x.grad[mask].abs().sum(-1) > 0)
    # Changing scores at masked positions changes nothing.
    x2 = x.detach().clone()
    x2[~mask] = 1e3 * torch.randn_like(x2[~mask])
    assert ops.temporal_softmax_loss(x2, y, mask).item() == pytest.approx(loss.item(), rel=1e-12)
    # Uniform scores: each counted step costs log V, averaged over the batch of N = 3.
    uniform = ops.temporal_softmax_loss(torch.zeros(3, 4, 5, dtype=F64), y, mask)
    assert uniform.item() == pytest.approx(np.log(5) * 7 / 3, rel=1e-12)


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int64, torch.float32])
def test_all_masked_batch_gives_zero_not_nan(mask_dtype):
    x = torch.randn(2, 3, 4, requires_grad=True)
    y, mask = torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=mask_dtype)
    loss = ops.temporal_softmax_loss(x, y, mask)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(x.grad == 0)


# ------------------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_h0_without_grad_and_partial_grads(cell):
    x, h0, Wx, Wh, b = _recurrent_args(cell, 2, 3, 4, 5)
    h0.requires_grad_(False)
    Wx.requires_grad_(False)
    h = getattr(ops, cell)(x, h0, Wx, Wh, b)
    h.sum().backward()
    assert h0.grad is None and Wx.grad is None
    _, cache = getattr(ref, f"{cell}_forward")(*_np([x, h0, Wx, Wh, b]))
    dx, _, _, dWh, db = getattr(ref, f"{cell}_backward")(np.ones(h.shape), cache)
    for got, want in [(x.grad, dx), (Wh.grad, dWh), (b.grad, db)]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", ["lstm", "word_lstm", "rnn", "word_rnn"])
def test_second_backward_through_the_same_graph(op):
    """retain_graph=True: the LSTM backward overwrites its saved gates with their gradients, so a second
    backward recomputes them; it must give the same gradients as the first (checked against the reference
    elsewhere)."""
    if op.startswith("word_"):
        m = 4 if op == "word_lstm" else 1
        inputs = [_randn(4, 5), _randn(3, 6), _randn(5, m * 6), _randn(6, m * 6), _randn(m * 6)]
        h = getattr(ops, op)(torch.tensor([[0, 2, 2, 1], [1, 3, 0, 0], [2, 2, 1, 3]]), *inputs)
    else:
        inputs = _recurrent_args(op, 3, 4, 5, 6)
        h = getattr(ops, op)(*inputs)
    dh = torch.randn_like(h)
    once = torch.autograd.grad(h, inputs, dh, retain_graph=True)
    twice = torch.autograd.grad(h, inputs, 2 * dh)
    for a, b in zip(once, twice, strict=True):
        torch.testing.assert_close(2 * a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_non_contiguous_inputs(cell):
    N, T, D, H = 3, 4, 5, 6
    m = 4 if cell == "lstm" else 1
    x = _randn(T, N, D, grad=False).transpose(0, 1).requires_grad_()  # (N, T, D) view, not contiguous
    h0 = _randn(H, N, grad=False).t().requires_grad_()
    Wx = _randn(m * H, D, grad=False).t().requires_grad_()
    Wh = _randn(m * H, H, grad=False).t().requires_grad_()
    b = _randn(2 * m * H, grad=False)[::2].requires_grad_()
    args = [x, h0, Wx, Wh, b]
    assert not any(a.is_contiguous() for a in args)
    h = getattr(ops, cell)(*args)
    h_ref, cache = getattr(ref, f"{cell}_forward")(*_np(args))
    np.testing.assert_allclose(h.detach().numpy(), h_ref, rtol=1e-12, atol=1e-14)
    dh = torch.randn(T, N, H, dtype=F64).transpose(0, 1)  # non-contiguous upstream gradient too
    h.backward(dh)
    for got, want in zip(_grads(args), getattr(ref, f"{cell}_backward")(dh.numpy(), cache), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_lstm_step_chain_equals_sequence():
    """Unrolling lstm_step from c0 = 0 reproduces lstm, values and gradients."""
    x, h0, Wx, Wh, b = _recurrent_args("lstm", 2, 3, 4, 5)
    h = ops.lstm(x, h0, Wx, Wh, b)
    g_seq = torch.autograd.grad(h.sum(), [x, h0, Wx, Wh, b])
    prev_h, prev_c, hs = h0, torch.zeros_like(h0), []
    for t in range(3):
        prev_h, prev_c = ops.lstm_step(x[:, t], prev_h, prev_c, Wx, Wh, b)
        hs.append(prev_h)
    h_steps = torch.stack(hs, 1)
    torch.testing.assert_close(h, h_steps, rtol=1e-12, atol=1e-14)
    for a, b_ in zip(g_seq, torch.autograd.grad(h_steps.sum(), [x, h0, Wx, Wh, b]), strict=True):
        torch.testing.assert_close(a, b_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_autocast_casts_mixed_inputs(cell):
    """Under CPU bf16 autocast a float32-parameter captioner pipeline runs in bfloat16 (the loss in float32),
    close to float32, with float32 gradients for float32 parameters."""
    N, T, V, W, H = 4, 5, 7, 6, 8
    m = 4 if cell == "lstm" else 1
    g = torch.Generator().manual_seed(0)
    words, y = torch.randint(V, (N, T), generator=g), torch.randint(V, (N, T), generator=g)
    params = [(0.5 * torch.randn(*s, generator=g)).requires_grad_()
              for s in [(V, W), (N, H), (W, m * H), (H, m * H), (m * H,), (H, V), (V,)]]
    W_embed, h0, Wx, Wh, b, W_vocab, b_vocab = params

    def loss_and_h():
        h = getattr(ops, f"word_{cell}")(words, W_embed, h0 @ torch.eye(H), Wx, Wh, b)
        scores = ops.temporal_affine(h, W_vocab, b_vocab)
        return ops.temporal_softmax_loss(scores, y, y != 0), h

    loss32, h32 = loss_and_h()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, h = loss_and_h()
    assert h.dtype == torch.bfloat16 and loss.dtype == torch.float32
    torch.testing.assert_close(h.float(), h32, atol=0.05, rtol=0.05)
    torch.testing.assert_close(loss, loss32, atol=0.1, rtol=0.03)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in params)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_cuda_matches_cpu(cell):
    args = _recurrent_args(cell, 3, 4, 5, 6)
    cuda_args = [a.detach().cuda().requires_grad_() for a in args]
    h, h_cuda = getattr(ops, cell)(*args), getattr(ops, cell)(*cuda_args)
    assert h_cuda.device.type == "cuda"
    dh = torch.randn_like(h)
    h.backward(dh)
    h_cuda.backward(dh.cuda())
    torch.testing.assert_close(h_cuda.cpu(), h)
    for a, c in zip(args, cuda_args, strict=True):
        torch.testing.assert_close(c.grad.cpu(), a.grad)
    y = torch.randint(6, (3, 4))
    mask = torch.rand(3, 4) > 0.5
    w, b = torch.randn(6, 6, dtype=F64, device="cuda"), torch.zeros(6, dtype=F64, device="cuda")
    scores = ops.temporal_affine(h_cuda, w, b)
    assert ops.temporal_softmax_loss(scores, y.cuda(), mask.cuda()).device.type == "cuda"


# ------------------------------------------------------------------------------- GEMM backends


@pytest.fixture
def onednn_for_all_sizes(monkeypatch):
    """Route even tiny products to oneDNN (normally only large ones go there)."""
    from visgrad.ops import _gemm

    monkeypatch.setattr(_gemm, "ONEDNN_MIN_MNK", 0)
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_MNK_TRANSPOSED_A", 0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_gemm_helper_matches_torch_mm(dtype, onednn_for_all_sizes):
    from visgrad.ops._gemm import mm

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 30, dtype=dtype, generator=g), torch.randn(20, 30, dtype=dtype, generator=g).t()
    add, bias = torch.randn(60, 40, dtype=dtype, generator=g).t()[:, ::3], torch.randn(20, dtype=dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(mm(a, b), a @ b, **tol)
    torch.testing.assert_close(mm(a.t().contiguous().t(), b), a @ b, **tol)
    torch.testing.assert_close(mm(a, b, add), add + a @ b, **tol)
    torch.testing.assert_close(mm(a, b, bias), bias + a @ b, **tol)
    out = torch.empty(40, 20, dtype=dtype)
    torch.testing.assert_close(mm(a, b, add, out=out), add + a @ b, **tol)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_same_results_with_and_without_onednn(cell, monkeypatch, onednn_for_all_sizes):
    from visgrad.ops import _gemm

    torch.manual_seed(0)
    args = [(0.3 * a.detach().float()).requires_grad_() for a in _recurrent_args(cell, 4, 5, 6, 7)]
    h = getattr(ops, cell)(*args)
    grads = torch.autograd.grad(h.sum(), args)
    monkeypatch.setattr(_gemm, "_ONEDNN", None)  # plain torch.mm everywhere
    h_mm = getattr(ops, cell)(*args)
    torch.testing.assert_close(h, h_mm, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, torch.autograd.grad(h_mm.sum(), args), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
