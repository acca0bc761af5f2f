"""Fooling images (Szegedy et al., 2014): nudge an image by gradient ascent on a target class score,
with a normalised step ``dX = lr * g / ||g||_2``, until the classifier predicts the target; untargeted, by
gradient descent on the true class score until another class is predicted.

What every attack shares (:mod:`visgrad.vision.attacks`): the :class:`FoolingResult` of a batch
(:func:`fooling_result`), the perturbation size in pixel units (:func:`perturbation_stats`), the 8-bit
round trip of a saved image (:func:`png_round_trip`) and the protocol around an attack written for pixels
(:func:`attack_in_pixels`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from visgrad.images import IMAGENET, Normalization


@dataclass
class FoolingResult:
    """Outcome per image of a batch; every field is a tensor of shape (N,).

    ``success``: the target is predicted (targeted) or the class aimed away from is not (untargeted);
    ``target_prob``: the probability of that class (the target, or the true class); ``linf`` and ``l2``
    measure the perturbation in pixel units [0, 255] (un-normalised images).
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
    targeted: bool = True,
) -> tuple[torch.Tensor, FoolingResult]:
    """Batched fooling: each image climbs its own target score and stops once it is classified as it
    (untargeted, ``targeted=False``: descends the score of its class ``target_y`` until it is not).

    Inputs: X (N, 3, H, W) preprocessed images, target_y (N,) LongTensor, model in eval mode;
    ``clamp`` keeps pixels in [0, 1] and ``norm`` is the images' normalisation;
    ``on_step(iteration, target_scores, fooled)`` is called with the target scores (N,) of the current
    images (kept from the last step for those already fooled) and whether each is fooled (N,).
    Returns: X_fooling (N, 3, H, W) and a :class:`FoolingResult`.
    Samples do not interact (eval mode), so each follows exactly the single-image update.
    """
    direction = 1.0 if targeted else -1.0
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
        climbing = (scores.argmax(dim=1) == target_y[index]) != targeted
        active[index] = climbing
        if on_step is not None:
            on_step(it, target_scores.clone(), ~active)
        if not climbing.any():
            break
        index, grad = index[climbing], grad[climbing]
        grad_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        stepped = X_fooling[index] + direction * learning_rate * grad / grad_norm
        X_fooling[index] = norm.clamp(stepped) if clamp else stepped
        iterations[index] += 1
    return X_fooling, fooling_result(X, X_fooling, target_y, model, iterations, original_class, norm,
                                     targeted)


@torch.no_grad()
def fooling_result(X: torch.Tensor, X_fooling: torch.Tensor, target_y: torch.Tensor, model: nn.Module,
                   iterations: torch.Tensor, original_class: torch.Tensor | None = None,
                   norm: Normalization = IMAGENET, targeted: bool = True) -> FoolingResult:
    """The :class:`FoolingResult` of an attack that turned X into X_fooling (both (N, 3, H, W), normalised
    with ``norm``) aiming at target_y (N,) (untargeted: away from it) in ``iterations`` (N,) steps;
    ``original_class`` (N,) is computed from X when not given."""
    if original_class is None:
        original_class = model(X).argmax(dim=1)
    probs = model(X_fooling).softmax(dim=1)
    final_class = probs.argmax(dim=1)
    linf, l2 = perturbation_stats(X, X_fooling, norm)
    return FoolingResult(
        success=(final_class == target_y) == targeted,
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
def still_fools(X_fooling: torch.Tensor, target_y: torch.Tensor, model: nn.Module,
                targeted: bool = True) -> torch.Tensor:
    """Whether the model classifies each image (N, 3, H, W) as its target (N,) (untargeted: not as its
    class). Returns (N,) bool."""
    return (model(X_fooling).argmax(dim=1) == target_y.to(X_fooling.device).view(-1)) == targeted


def png_round_trip(X: torch.Tensor, norm: Normalization = IMAGENET) -> torch.Tensor:
    """Images (N, 3, H, W) normalised with ``norm`` as they come back from an 8-bit PNG: pixels clamped to
    [0, 1] and rounded to multiples of 1/255 (what ``norm.deprocess`` saves and ``TF.to_tensor`` reads),
    normalised again. In memory, so that many images can be checked without writing files."""
    pixels = (norm.unnormalize(X.detach()).clamp(0, 1) * 255).round() / 255
    return norm.normalize(pixels)


LogitsFn = Callable[[torch.Tensor], torch.Tensor]
PixelAttack = Callable[[LogitsFn, torch.Tensor, torch.Tensor, Callable | None],
                       tuple[torch.Tensor, torch.Tensor]]


def attack_in_pixels(attack: PixelAttack, X: torch.Tensor, y: torch.Tensor, model: nn.Module,
                     norm: Normalization = IMAGENET, targeted: bool = True,
                     on_step=None) -> tuple[torch.Tensor, FoolingResult]:
    """Run an attack written for pixels on images normalised with ``norm``: the protocol of
    :mod:`visgrad.vision.attacks` around ``attack(logits, pixels, y, report) -> (adversarial pixels,
    iterations)``.

    ``attack`` sees the pixels p (N, 3, H, W) in [0, 1] of X (N, 3, H, W) and ``logits(p) =
    model(norm.normalize(p))``, and calls ``report(step, logits)`` (None when ``on_step`` is) with the logits
    (N, K) of its current images; ``on_step`` then gets the scores of ``y`` (N,) and whether each is fooled.
    Returns the adversarial images normalised again and their :class:`FoolingResult`.
    """
    y = y.to(X.device).view(-1)

    def logits(pixels: torch.Tensor) -> torch.Tensor:
        return model(norm.normalize(pixels))

    def report(step: int, scores: torch.Tensor) -> None:
        on_step(step, scores.gather(1, y[:, None]).squeeze(1), (scores.argmax(dim=1) == y) == targeted)

    adversarial, iterations = attack(logits, norm.unnormalize(X), y,
                                     None if on_step is None else report)
    X_adv = norm.normalize(adversarial)
    return X_adv, fooling_result(X, X_adv, y, model, iterations, None, norm, targeted)
