"""The Carlini-Wagner L2 attack (Carlini and Wagner 2017): the entry ``carlini_wagner`` of
:data:`~visgrad.vision.attacks.ATTACKS`.

It looks for the smallest perturbation that fools, with no budget: in the change of variables
``p' = (tanh(w) + 1) / 2`` (pixels always in [0, 1]), Adam minimises per image

    ||p' - p||_2^2 + c * max(margin(p'), -kappa)

where the margin is ``z_y - max_{i != y} z_i`` of the logits z (untargeted: the true class y still leads;
targeted: ``max_{i != t} z_i - z_t``, another class still leads the target t). Of the iterates that fool,
the one closest to p is kept. With ``search_steps > 1`` the constant c is then searched per image, as in
the paper: halved towards the last c that failed after a success, times 10 after a failure until one
succeeds. An image never fooled is returned unchanged (``FoolingResult.success`` False).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from visgrad.models.classifier import Classifier
from visgrad.options import non_negative_number, option, positive_int, positive_number
from visgrad.vision.fooling import FoolingResult, LogitsFn, attack_in_pixels

TANH_LIMIT = 1 - 1e-6  # |2p - 1| is clipped to this before atanh, so that pixels at 0 or 1 can still move


@dataclass
class CarliniWagnerOptions:
    """``task.carlini_wagner``: the initial trade-off ``c`` of the loss, the confidence ``kappa`` (in logits),
    Adam's steps and learning rate (on w, where pixels are ``(tanh(w) + 1) / 2``) and the rounds of the
    search for c per image (1: c fixed, as torchattacks' ``CW``)."""

    c: float = option(1.0, positive_number, "a positive number")
    kappa: float = option(0.0, non_negative_number, "a number >= 0")
    steps: int = option(50, positive_int, "a positive integer")
    lr: float = option(0.01, positive_number, "a positive number")
    search_steps: int = option(1, positive_int, "a positive integer")


def margin(scores: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """How far each image (N,) is from being fooled, in logits ``scores`` (N, K): ``z_y - max_{i != y} z_i``
    (untargeted) or ``max_{i != y} z_i - z_y`` (targeted); <= 0 once fooled."""
    own = scores.gather(1, y[:, None]).squeeze(1)
    others = scores.masked_fill(torch.nn.functional.one_hot(y, scores.shape[1]).bool(), -math.inf)
    best_other = others.amax(dim=1)
    return best_other - own if targeted else own - best_other


def carlini_wagner_pixels(logits: LogitsFn, pixels: torch.Tensor, y: torch.Tensor, c: float = 1.0,
                          kappa: float = 0.0, steps: int = 50, lr: float = 0.01, search_steps: int = 1,
                          targeted: bool = False,
                          report: Callable[[int, torch.Tensor], None] | None = None,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """C&W L2 on pixels (N, 3, H, W) in [0, 1]: the closest fooling pixels found (the input where none) and
    the step (N,) that found them, counted over all rounds (all steps where none). ``report(step, logits)``
    sees each step's images before its update."""
    w_start = torch.atanh(torch.clamp(pixels * 2 - 1, -TANH_LIMIT, TANH_LIMIT)).detach()
    best = pixels.clone().detach()
    best_l2 = torch.full((len(pixels),), math.inf, device=pixels.device)
    found_at = torch.full((len(pixels),), steps * search_steps, dtype=torch.long, device=pixels.device)
    const = torch.full_like(best_l2, c)
    lower, upper = torch.zeros_like(const), torch.full_like(const, math.inf)
    for round_ in range(search_steps):
        w = w_start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=lr)
        fooled_now = torch.zeros(len(pixels), dtype=torch.bool, device=pixels.device)
        for step in range(steps):
            with torch.enable_grad():
                adv = (torch.tanh(w) + 1) / 2
                l2 = (adv - pixels).pow(2).flatten(1).sum(dim=1)
                scores = logits(adv)
                loss = (l2 + const * margin(scores, y, targeted).clamp(min=-kappa)).sum()
                (w.grad,) = torch.autograd.grad(loss, w)  # not into the model's parameters
            optimizer.step()
            if report is not None:
                report(round_ * steps + step, scores.detach())
            fooled = (scores.argmax(dim=1) == y) == targeted
            closer = fooled & (l2.detach() < best_l2)
            best = torch.where(closer.view(-1, 1, 1, 1), adv.detach(), best)
            best_l2 = torch.where(closer, l2.detach(), best_l2)
            found_at = torch.where(closer, round_ * steps + step + 1, found_at)
            fooled_now |= fooled
        upper = torch.where(fooled_now, torch.minimum(upper, const), upper)
        lower = torch.where(fooled_now, lower, torch.maximum(lower, const))
        const = torch.where(upper < math.inf, (lower + upper) / 2, const * 10)
    return best, found_at


def carlini_wagner(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, targeted: bool = True,
                   on_step: Callable | None = None, c: float, kappa: float, steps: int, lr: float,
                   search_steps: int) -> tuple[torch.Tensor, FoolingResult]:
    """Carlini-Wagner L2 (the protocol of :mod:`visgrad.vision.attacks`)."""

    def attack(logits, pixels, labels, report):
        return carlini_wagner_pixels(logits, pixels, labels, c, kappa, steps, lr, search_steps, targeted,
                                     report)

    return attack_in_pixels(attack, X, y, classifier.model, classifier.norm, targeted, on_step)
