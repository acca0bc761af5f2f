"""SimCLR's contrastive loss (NT-Xent, Chen et al., 2020) with the CS231n names and signatures.

A batch of N images gives two augmented views each; the projection head maps them to ``out_left`` and
``out_right`` (N, D), and row k of both is a positive pair. With the 2N rows z = [out_left; out_right] and
sim the cosine similarity, the loss of the pair (i, j) is

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{m != i} exp(sim(z_i, z_m) / tau) )

and the batch loss is the mean of l(k, k + N) and l(k + N, k) over k (the course divides the total of the
2N terms by 2N). ``simclr_loss_naive`` loops over the pairs as the course's; ``simclr_loss_vectorized``
computes the same from the 2N x 2N similarity matrix (its log-sum-exp taken stably).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sim(z_i: Tensor, z_j: Tensor) -> Tensor:
    """Normalised dot product (cosine similarity) of two vectors z_i, z_j (D,): a scalar tensor."""
    return torch.dot(z_i, z_j) / (torch.linalg.norm(z_i) * torch.linalg.norm(z_j))


def simclr_loss_naive(out_left: Tensor, out_right: Tensor, tau: float) -> Tensor:
    """The contrastive loss of a batch, pair by pair.

    Inputs: out_left, out_right (N, D): projection-head outputs of the two views (row k of each: a
    positive pair); tau: the temperature. Returns the scalar loss (the total over the 2N terms / 2N).
    """
    N = out_left.shape[0]
    out = torch.cat([out_left, out_right], dim=0)
    total = out.new_zeros(())
    for k in range(N):
        for i, j in ((k, k + N), (k + N, k)):
            numerator = torch.exp(sim(out[i], out[j]) / tau)
            denominator = sum(torch.exp(sim(out[i], out[m]) / tau) for m in range(2 * N) if m != i)
            total = total - torch.log(numerator / denominator)
    return total / (2 * N)


def sim_positive_pairs(out_left: Tensor, out_right: Tensor) -> Tensor:
    """Cosine similarity of each positive pair: out_left, out_right (N, D) -> (N, 1)."""
    dots = (out_left * out_right).sum(dim=1, keepdim=True)
    norms = out_left.norm(dim=1, keepdim=True) * out_right.norm(dim=1, keepdim=True)
    return dots / norms


def compute_sim_matrix(out: Tensor) -> Tensor:
    """Cosine similarity of every pair of rows: out (2N, D) -> (2N, 2N)."""
    unit = out / out.norm(dim=1, keepdim=True)
    return unit @ unit.T


def simclr_loss_vectorized(out_left: Tensor, out_right: Tensor, tau: float) -> Tensor:
    """The contrastive loss of a batch from the similarity matrix; equal to :func:`simclr_loss_naive`.

    Inputs: out_left, out_right (N, D); tau: the temperature. Returns the scalar loss.
    """
    N = out_left.shape[0]
    logits = compute_sim_matrix(torch.cat([out_left, out_right], dim=0)) / tau
    eye = torch.eye(2 * N, dtype=torch.bool, device=logits.device)
    log_denominator = torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1)
    positives = sim_positive_pairs(out_left, out_right).squeeze(1) / tau
    return (log_denominator - torch.cat([positives, positives])).mean()
