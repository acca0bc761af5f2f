"""FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) in L-inf and L2: the entries ``fgsm``, ``pgd``
and ``pgd_l2`` of :data:`~visgrad.vision.attacks.ATTACKS`.

They work on pixels p in [0, 1] (N, 3, H, W) through ``logits(p)``, the classifier after its own
normalisation (:func:`~visgrad.vision.fooling.attack_in_pixels`), so a budget means the same on every
classifier and every image they make is a valid image. The loss is the batch-mean cross-entropy of ``y``,
ascended (untargeted: away from the true class) or descended (targeted: towards the target):

- FGSM: one step ``p + eps * sign(g)``, clamped to [0, 1];
- PGD L-inf: from a uniform random start in the eps-ball, ``steps`` steps ``p + alpha * sign(g)``, each
  projected back onto the ball and into [0, 1];
- PGD L2: from a random start in the L2 ball (Gaussian direction, radius uniform in [0, eps]), steps
  ``p + alpha * g / ||g||_2``, each projected back onto the ball and into [0, 1].

The pixel functions follow torchattacks 3.5.1 (``FGSM``, ``PGD``, ``PGDL2``) operation for operation and draw
the random start from torch's global generator as it does, so that after the same ``torch.manual_seed`` they
return the same images (``tests/test_attacks_torchattacks.py``); they flatten with ``reshape`` where it uses
``view``, so that channels-last gradients (EfficientNet-Lite0's) work in L2 too. The options are in pixel
units /255.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visgrad.models.classifier import Classifier
from visgrad.options import boolean, option, optional, positive_int, positive_number
from visgrad.vision.fooling import FoolingResult, LogitsFn, attack_in_pixels

EPS_FOR_DIVISION = 1e-10  # torchattacks' guard of the L2 step's division by the gradient norm
STEP_ALLOWED = "null (2.5 * eps / steps, Madry et al.) or a positive number of pixel levels (/255)"


@dataclass
class FGSMOptions:
    """``task.fgsm``: the budget ``eps`` per pixel, in pixel levels (/255)."""

    eps: float = option(8.0, positive_number, "a positive number of pixel levels (/255)")


@dataclass
class PGDOptions:
    """``task.pgd``: the L-inf budget ``eps`` and step ``alpha`` in pixel levels (/255; ``alpha`` null:
    ``2.5 * eps / steps``), the number of steps and whether to start at a random point of the ball."""

    eps: float = option(8.0, positive_number, "a positive number of pixel levels (/255)")
    alpha: float | None = option(None, optional(positive_number), STEP_ALLOWED)
    steps: int = option(10, positive_int, "a positive integer")
    random_start: bool = option(True, boolean, "true or false")


@dataclass
class PGDL2Options:
    """``task.pgd_l2``: the L2 budget ``eps`` of the whole image's perturbation and the step ``alpha``, in
    pixel levels (/255: ``eps=255`` is an L2 norm of 1.0 in [0, 1] pixels; ``alpha`` null:
    ``2.5 * eps / steps``), the number of steps and whether to start at a random point of the ball."""

    eps: float = option(255.0, positive_number, "a positive number of pixel levels (/255)")
    alpha: float | None = option(None, optional(positive_number), STEP_ALLOWED)
    steps: int = option(10, positive_int, "a positive integer")
    random_start: bool = option(True, boolean, "true or false")


def loss_gradient(logits: LogitsFn, pixels: torch.Tensor, y: torch.Tensor,
                  targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient (N, 3, H, W) of the batch-mean cross-entropy of ``y`` (N,) at ``pixels`` (negated when
    ``targeted``) and the logits (N, K) there."""
    pixels = pixels.clone().detach().requires_grad_(True)
    with torch.enable_grad():
        scores = logits(pixels)
        loss = F.cross_entropy(scores, y)
        (grad,) = torch.autograd.grad(-loss if targeted else loss, pixels)
    return grad, scores.detach()


def fgsm_pixels(logits: LogitsFn, pixels: torch.Tensor, y: torch.Tensor, eps: float,
                targeted: bool = False) -> torch.Tensor:
    """FGSM on pixels (N, 3, H, W) in [0, 1] with budget ``eps`` (in [0, 1] units): adversarial pixels."""
    grad, _ = loss_gradient(logits, pixels, y, targeted)
    return torch.clamp(pixels + eps * grad.sign(), min=0, max=1).detach()


def pgd_pixels(logits: LogitsFn, pixels: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
               steps: int, random_start: bool = True, targeted: bool = False, norm: str = "linf",
               report: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """PGD in ``norm`` (``"linf"`` or ``"l2"``) on pixels (N, 3, H, W) in [0, 1], budget ``eps`` and step
    ``alpha`` in [0, 1] units: adversarial pixels. ``report(step, logits (N, K))`` sees each step's images
    before its update."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm={norm!r}: must be 'linf' or 'l2'")
    adv = pixels.clone().detach()
    if random_start:
        adv = _random_start(adv, eps, norm)
    for step in range(steps):
        grad, scores = loss_gradient(logits, adv, y, targeted)
        if report is not None:
            report(step, scores)
        if norm == "linf":
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - pixels, min=-eps, max=eps)
        else:
            batch = len(adv)
            grad_norms = torch.norm(grad.reshape(batch, -1), p=2, dim=1) + EPS_FOR_DIVISION
            adv = adv.detach() + alpha * (grad / grad_norms.view(batch, 1, 1, 1))
            delta = adv - pixels
            delta_norms = torch.norm(delta.reshape(batch, -1), p=2, dim=1)
            factor = torch.min(eps / delta_norms, torch.ones_like(delta_norms))
            delta = delta * factor.view(-1, 1, 1, 1)
        adv = torch.clamp(pixels + delta, min=0, max=1).detach()
    return adv


def _random_start(pixels: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A random point of the ``eps``-ball around ``pixels`` (N, 3, H, W), clamped to [0, 1], drawn from the
    global generator as torchattacks draws it."""
    if norm == "linf":
        return torch.clamp(pixels + torch.empty_like(pixels).uniform_(-eps, eps), min=0, max=1).detach()
    delta = torch.empty_like(pixels).normal_()
    n = delta.reshape(pixels.size(0), -1).norm(p=2, dim=1).view(pixels.size(0), 1, 1, 1)
    r = torch.zeros_like(n).uniform_(0, 1)
    delta *= r / n * eps
    return torch.clamp(pixels + delta, min=0, max=1).detach()


def fgsm(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, targeted: bool = True,
         on_step: Callable | None = None, eps: float) -> tuple[torch.Tensor, FoolingResult]:
    """FGSM with budget ``eps`` pixel levels (the protocol of :mod:`visgrad.vision.attacks`)."""

    def attack(logits, pixels, labels, report):
        adv = fgsm_pixels(logits, pixels, labels, eps / 255, targeted)
        return adv, torch.ones_like(labels)

    return attack_in_pixels(attack, X, y, classifier.model, classifier.norm, targeted, on_step)


def pgd(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, targeted: bool = True,
        on_step: Callable | None = None, eps: float, alpha: float | None, steps: int,
        random_start: bool) -> tuple[torch.Tensor, FoolingResult]:
    """PGD in L-inf with budget ``eps`` and step ``alpha`` pixel levels (the protocol of
    :mod:`visgrad.vision.attacks`)."""
    return _pgd("linf", X, y, classifier, targeted, on_step, eps, alpha, steps, random_start)


def pgd_l2(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, targeted: bool = True,
           on_step: Callable | None = None, eps: float, alpha: float | None, steps: int,
           random_start: bool) -> tuple[torch.Tensor, FoolingResult]:
    """PGD in L2 with budget ``eps`` and step ``alpha`` pixel levels (the protocol of
    :mod:`visgrad.vision.attacks`)."""
    return _pgd("l2", X, y, classifier, targeted, on_step, eps, alpha, steps, random_start)


def _pgd(norm: str, X: torch.Tensor, y: torch.Tensor, classifier: Classifier, targeted: bool,
         on_step: Callable | None, eps: float, alpha: float | None, steps: int,
         random_start: bool) -> tuple[torch.Tensor, FoolingResult]:
    step = 2.5 * eps / steps if alpha is None else alpha

    def attack(logits, pixels, labels, report):
        adv = pgd_pixels(logits, pixels, labels, eps / 255, step / 255, steps, random_start, targeted, norm,
                         report)
        return adv, torch.full_like(labels, steps)

    return attack_in_pixels(attack, X, y, classifier.model, classifier.norm, targeted, on_step)
