"""Attacks: the registry ``ATTACKS`` that ``task=fooling`` (``task.attack``) and ``task=robustness``
(``task.attacks``) take their attacks from, one entry each with its label, its options and its norm.

An attack is a function

    fn(X, y, classifier, *, targeted=True, on_step=None, **options) -> (X_adv, result)

- ``X`` (N, 3, H, W): images in the classifier's input normalisation (``classifier.norm``);
- ``y`` (N,): the class each image should be classified as (``targeted``), or the class it should no longer
  be classified as (``targeted=False``, its true class), long on X's device;
- ``classifier``: a :class:`~visgrad.models.classifier.Classifier` (``model`` in eval mode, ``norm``);
- ``on_step(iteration, scores (N,), fooled (N,) bool)``: called after each step (or None) with the scores
  of the classes ``y``, for progress bars and TensorBoard;
- ``options``: the fields of the entry's options dataclass (``task.<attack name>.*``); an ``eps`` option is
  the attack's budget in the entry's ``norm``, in pixel units /255 (``eps=8``: 8/255), which
  ``task=robustness`` sets to each budget of its grid;
- returns the adversarial images (N, 3, H, W), pixels in [0, 1], and a
  :class:`~visgrad.vision.fooling.FoolingResult` (:func:`~visgrad.vision.fooling.fooling_result` computes
  one from the images and the step counts).

Attacks work in pixel space through the classifier's normalisation, so budgets mean the same on every
classifier (:mod:`visgrad.vision.fgsm_pgd`). ``task.attack`` also takes the dotted path of an :class:`Attack`
of your own; an attack written for ``task=fooling`` alone may leave ``targeted`` out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from visgrad.models.classifier import Classifier
from visgrad.options import boolean, option, positive_int, positive_number
from visgrad.registry import Registry
from visgrad.vision import carlini_wagner, fgsm_pgd
from visgrad.vision.fooling import FoolingResult, make_fooling_images

NORMS = ("linf", "l2")


@dataclass(frozen=True)
class Attack:
    """An attack: ``name`` (``task.<name>`` options node, metric keys), ``label`` (tables, figures,
    messages), ``fn`` (the protocol of the module docstring), ``options`` (a dataclass type, or None) and
    ``norm`` (``"linf"`` or ``"l2"``): the norm its ``eps`` budget bounds, or, for an attack without one, the
    norm it keeps small (the robustness curves read its perturbations' sizes in that norm)."""

    name: str
    label: str
    fn: Callable[..., tuple[torch.Tensor, FoolingResult]]
    options: type | None = None
    norm: str = "l2"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"Attack {self.name!r}: norm={self.norm!r}, must be one of {', '.join(NORMS)}")

    @property
    def budgeted(self) -> bool:
        """Whether the attack takes a budget (an ``eps`` option)."""
        return self.options is not None and "eps" in self.options.__dataclass_fields__


ATTACKS: Registry[Attack] = Registry("attack", Attack)


@dataclass
class NormalizedGradientOptions:
    """``task.normalized_gradient``: the step ``X += learning_rate * g / ||g||_2`` (CS231n: 1.0 on 224-pixel
    ImageNet-normalised images), at most ``max_iter`` steps, and whether pixels stay in [0, 1] (CS231n: no;
    then a fooling image is a real image)."""

    learning_rate: float = option(1.0, positive_number, "a positive number")
    max_iter: int = option(100, positive_int, "a positive integer")
    clamp: bool = option(True, boolean, "true or false")


def normalized_gradient(X: torch.Tensor, target_y: torch.Tensor, classifier: Classifier, *,
                        targeted: bool = True, on_step: Callable | None = None, learning_rate: float,
                        max_iter: int, clamp: bool) -> tuple[torch.Tensor, FoolingResult]:
    """CS231n's fooling images (:func:`~visgrad.vision.fooling.make_fooling_images`): normalised gradient
    ascent on the target score until the target is predicted (untargeted: descent on the true class's)."""
    return make_fooling_images(X, target_y, classifier.model, learning_rate, max_iter, clamp, on_step,
                               classifier.norm, targeted)


ATTACKS.add(Attack("normalized_gradient", "normalised gradient ascent (CS231n)", normalized_gradient,
                   NormalizedGradientOptions))
ATTACKS.add(Attack("fgsm", "FGSM", fgsm_pgd.fgsm, fgsm_pgd.FGSMOptions, "linf"))
ATTACKS.add(Attack("pgd", "PGD L-inf", fgsm_pgd.pgd, fgsm_pgd.PGDOptions, "linf"))
ATTACKS.add(Attack("pgd_l2", "PGD L2", fgsm_pgd.pgd_l2, fgsm_pgd.PGDL2Options, "l2"))
ATTACKS.add(Attack("carlini_wagner", "Carlini-Wagner L2", carlini_wagner.carlini_wagner,
                   carlini_wagner.CarliniWagnerOptions, "l2"))
