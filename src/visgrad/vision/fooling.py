"""Fooling images (Szegedy et al., 2014): nudge an image by gradient ascent on a target class score,
with a normalised step ``dX = lr * g / ||g||_2``, until the classifier predicts the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visgrad.images import IMAGENET, Normalization


@dataclass
class FoolingResult:
    """Outcome per image of a batch; every field is a tensor of shape (N,).

    ``linf`` and ``l2`` measure the perturbation in pixel units [0, 255] (un-normalised images).
    """

    success: torch.Tensor
    iterations: torch.Tensor
    target_prob: torch.Tensor
    original_class: torch.Tensor
    final_class: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor


@dataclass
class FoolingReport:
    """Outcome for one image (see :class:`FoolingResult`)."""

    success: bool
    iterations: int
    target_prob: float
    original_class: int
    final_class: int
    linf: float
    l2: float


def perturbation_stats(
    X: torch.Tensor, X_fooling: torch.Tensor, norm: Normalization = IMAGENET
) -> tuple[torch.Tensor, torch.Tensor]:
    """L-inf and L2 norms (N,) of the change between two batches normalised with ``norm``, in pixel
    units [0, 255]."""
    diff = (norm.unnormalize(X_fooling) - norm.unnormalize(X)).flatten(1) * 255
    return diff.abs().amax(dim=1), diff.norm(dim=1)


def make_fooling_images(
    X: torch.Tensor,
    target_y: torch.Tensor,
    model: nn.Module,
    learning_rate: float = 1.0,
    max_iter: int = 100,
    clamp: bool = False,
    on_step=None,
    norm: Normalization = IMAGENET,
) -> tuple[torch.Tensor, FoolingResult]:
    """Batched fooling: each image climbs its own target score and stops once it is classified as it.

    Inputs: X (N, 3, H, W) preprocessed images, target_y (N,) LongTensor, model in eval mode;
    ``clamp`` keeps pixels in [0, 1] and ``norm`` is the images' normalisation;
    ``on_step(iteration, target_scores, fooled)`` is called with the target scores (N,) of the current
    images (kept from the last step for those already fooled) and whether each is fooled (N,).
    Returns: X_fooling (N, 3, H, W) and a :class:`FoolingResult`.
    Samples do not interact (eval mode), so each follows exactly the single-image update.
    """
    target_y = target_y.to(X.device).view(-1)
    X_fooling = X.detach().clone()
    active = torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
    iterations = torch.zeros(X.shape[0], dtype=torch.long, device=X.device)
    target_scores = torch.zeros(X.shape[0], dtype=X.dtype, device=X.device)
    with torch.no_grad():
        original_class = model(X).argmax(dim=1)
    for it in range(max_iter):
        index = active.nonzero().squeeze(1)  # only the images still climbing go through the network
        image = X_fooling[index].requires_grad_(True)
        with torch.enable_grad():
            scores = model(image)
            chosen = scores.gather(1, target_y[index, None]).squeeze(1)
            (grad,) = torch.autograd.grad(chosen.sum(), image)
        target_scores[index] = chosen.detach()
        climbing = scores.argmax(dim=1) != target_y[index]
        active[index] = climbing
        if on_step is not None:
            on_step(it, target_scores.clone(), ~active)
        if not climbing.any():
            break
        index, grad = index[climbing], grad[climbing]
        grad_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        stepped = X_fooling[index] + learning_rate * grad / grad_norm
        X_fooling[index] = norm.clamp(stepped) if clamp else stepped
        iterations[index] += 1
    return X_fooling, fooling_result(X, X_fooling, target_y, model, iterations, original_class, norm)


@torch.no_grad()
def fooling_result(X: torch.Tensor, X_fooling: torch.Tensor, target_y: torch.Tensor, model: nn.Module,
                   iterations: torch.Tensor, original_class: torch.Tensor | None = None,
                   norm: Normalization = IMAGENET) -> FoolingResult:
    """The :class:`FoolingResult` of an attack that turned X into X_fooling (both (N, 3, H, W), normalised
    with ``norm``) aiming at target_y (N,) in ``iterations`` (N,) steps; ``original_class`` (N,) is
    computed from X when not given."""
    if original_class is None:
        original_class = model(X).argmax(dim=1)
    probs = model(X_fooling).softmax(dim=1)
    final_class = probs.argmax(dim=1)
    linf, l2 = perturbation_stats(X, X_fooling, norm)
    return FoolingResult(
        success=final_class == target_y,
        iterations=iterations,
        target_prob=probs.gather(1, target_y[:, None]).squeeze(1),
        original_class=original_class,
        final_class=final_class,
        linf=linf,
        l2=l2,
    )


def make_fooling_image(
    X: torch.Tensor,
    target_y: int,
    model: nn.Module,
    learning_rate: float = 1.0,
    max_iter: int = 100,
    clamp: bool = False,
    norm: Normalization = IMAGENET,
) -> tuple[torch.Tensor, FoolingReport]:
    """CS231n's ``make_fooling_image`` for one image X (1, 3, H, W): returns (X_fooling, report)."""
    if X.dim() != 4 or X.shape[0] != 1:
        raise ValueError(f"make_fooling_image takes one image of shape (1, 3, H, W), got {tuple(X.shape)}")
    target = torch.tensor([int(target_y)], device=X.device)
    X_fooling, result = make_fooling_images(X, target, model, learning_rate, max_iter, clamp, norm=norm)
    fields = FoolingReport.__dataclass_fields__
    report = FoolingReport(**{name: getattr(result, name)[0].item() for name in fields})
    return X_fooling, report


@torch.no_grad()
def still_fools(X_fooling: torch.Tensor, target_y: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Whether the model classifies each image (N, 3, H, W) as its target (N,). Returns (N,) bool."""
    return model(X_fooling).argmax(dim=1) == target_y.to(X_fooling.device).view(-1)
