"""Word embedding, temporal affine and temporal softmax loss as Functions with hand-written backward."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from visgrad.ops._autocast import follows_autocast
from visgrad.ops._checks import check_floating, check_ids
from visgrad.reference._checks import check_embedding, check_softmax_loss, check_temporal_affine


class WordEmbedding(torch.autograd.Function):
    """out[n, t] = W[x[n, t]]: x (N, T) integer ids, W (V, D) -> out (N, T, D)."""

    @staticmethod
    def forward(ctx, x, W):
        ctx.save_for_backward(x)
        ctx.vocab_size = W.shape[0]
        return W.index_select(0, x.reshape(-1)).view(*x.shape, W.shape[1])  # = W[x], 10x faster on CPU

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        D = dout.shape[-1]
        if dout.dim() == 3 and not dout.is_contiguous() and dout.transpose(0, 1).is_contiguous():
            x, dout = x.t(), dout.transpose(0, 1)  # time-major gradient (as from ops.lstm/rnn): no copy
        dW = dout.new_zeros(ctx.vocab_size, D).index_add_(0, x.reshape(-1), dout.reshape(-1, D))
        return None, dW


class TemporalAffine(torch.autograd.Function):
    """out = x w + b at every step: x (N, T, D), w (D, M), b (M,) -> out (N, T, M).

    The products use w transposed, (M, D) contiguous, as ``nn.Linear`` stores its weight: BLAS runs them
    2-3x faster than with w (D, M) when M (the vocabulary) is small.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        N, T, D = x.shape
        w_t = w.t().clone(memory_format=torch.contiguous_format)  # (M, D)
        ctx.save_for_backward(x, w_t)
        return torch.addmm(b, x.reshape(N * T, D), w_t.t()).view(N, T, w.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        x, w_t = ctx.saved_tensors
        need = ctx.needs_input_grad
        N, T, D = x.shape
        dout2 = dout.reshape(N * T, w_t.shape[0])
        return (
            (dout2 @ w_t).view(N, T, D) if need[0] else None,
            (dout2.t() @ x.reshape(N * T, D)).t() if need[1] else None,  # dw^T (M, D), returned as a view
            dout2.sum(0) if need[2] else None,
        )


class TemporalSoftmaxLoss(torch.autograd.Function):
    """Masked softmax cross-entropy summed over time, averaged over the batch: x (N, T, V) -> scalar."""

    @staticmethod
    def forward(ctx, x, y, mask):
        N = x.shape[0]
        log_probs = torch.log_softmax(x, dim=2)
        picked = log_probs.gather(2, y.unsqueeze(2)).squeeze(2)
        loss = picked.masked_fill_(~mask, 0).sum().neg_().div_(N)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(log_probs.exp_(), y, mask)  # probabilities, reusing the buffer
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, dloss):
        probs, y, mask = ctx.saved_tensors
        weight = mask.to(probs.dtype).mul_(dloss / probs.shape[0]).unsqueeze(2)  # (N, T, 1)
        dx = probs * weight
        dx.scatter_add_(2, y.unsqueeze(2), -weight)
        return dx, None, None


def word_embedding(x, W):
    """Word vectors of ids: x (N, T) integer ids in [0, V), W (V, D) -> out (N, T, D)."""
    check_floating(W=W)
    check_embedding(tuple(x.shape), tuple(W.shape))
    check_ids("x", x, W.shape[0])
    return WordEmbedding.apply(x.to(W.device), W)


@follows_autocast()
def temporal_affine(x, w, b):
    """Affine layer at every time step: x (N, T, D), w (D, M), b (M,) -> out (N, T, M)."""
    check_floating(x=x, w=w, b=b)
    check_temporal_affine(tuple(x.shape), tuple(w.shape), tuple(b.shape))
    return TemporalAffine.apply(x, w, b)


@follows_autocast(float32=True)
def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy summed over time and averaged over the batch (CS231n).

    x (N, T, V) scores, y (N, T) target ids in [0, V), mask (N, T) bool or 0/1 (True where the target
    counts; ``<NULL>`` padding contributes neither loss nor gradient) -> scalar loss tensor.
    An all-masked batch gives a loss of 0 and a zero gradient.
    """
    check_floating(x=x)
    check_softmax_loss(tuple(x.shape), tuple(y.shape), tuple(mask.shape))
    check_ids("y", y, x.shape[2])
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one sequence (N >= 1) to average the loss over the batch")
    mask = mask.to(device=x.device, dtype=torch.bool)
    return TemporalSoftmaxLoss.apply(x, y.to(x.device), mask)
