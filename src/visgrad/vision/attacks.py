"""Attacks that make fooling images: the registry ``ATTACKS`` that ``task=fooling`` takes its attack from
(``task.attack``), one entry each with its label and its options.

An attack is a function

    fn(X, target_y, classifier, *, on_step, **options) -> (X_fooling, result)

- ``X`` (N, 3, H, W): images in the classifier's input normalisation (``classifier.norm``);
- ``target_y`` (N,): the class each image should be classified as (long, on X's device);
- ``classifier``: a :class:`~visgrad.models.classifier.Classifier` (``model`` in eval mode, ``norm``);
- ``on_step(iteration, target_scores (N,), fooled (N,) bool)``: called after each step (or None), for
  progress bars and TensorBoard;
- ``options``: the fields of the entry's options dataclass (``task.<attack name>.*``);
- returns the fooling images (N, 3, H, W) and a :class:`~visgrad.vision.fooling.FoolingResult`
  (:func:`~visgrad.vision.fooling.fooling_result` computes one from the images and the step counts).

``task.attack`` also takes the dotted path of an :class:`Attack` of your own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from visgrad.models.classifier import Classifier
from visgrad.options import boolean, option, positive_int, positive_number
from visgrad.registry import Registry
from visgrad.vision.fooling import FoolingResult, make_fooling_images


@dataclass(frozen=True)
class Attack:
    """An attack: ``name`` (``task.<name>`` options node), ``label`` (tables, messages), ``fn`` (the protocol
    of the module docstring) and ``options`` (a dataclass type, or None)."""

    name: str
    label: str
    fn: Callable[..., tuple[torch.Tensor, FoolingResult]]
    options: type | None = None


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
                        on_step: Callable | None = None, learning_rate: float, max_iter: int,
                        clamp: bool) -> tuple[torch.Tensor, FoolingResult]:
    """CS231n's fooling images (:func:`~visgrad.vision.fooling.make_fooling_images`): normalised gradient
    ascent on the target score until the target is predicted."""
    return make_fooling_images(X, target_y, classifier.model, learning_rate, max_iter, clamp, on_step,
                               classifier.norm)


ATTACKS.add(Attack("normalized_gradient", "normalised gradient ascent (CS231n)", normalized_gradient,
                   NormalizedGradientOptions))
