"""Class-visualization parameterisations: the registry ``PARAMETERIZATIONS`` of the ways ``task=class_viz``
can synthesise an image of a class (``task.param``), one entry each with its label and its options.

A parameterisation is a function

    fn(target_y, classifier, *, num_iterations, show_every, seed, device, progress, **options)
        -> ClassVisualization

that optimises an image for class ``target_y`` (an index) of ``classifier`` (a
:class:`~visgrad.models.classifier.Classifier`) for ``num_iterations`` steps, from a start drawn with
``seed``, on ``device``, calling ``progress(iteration)`` after each step, and returns a
:class:`~visgrad.vision.class_viz.ClassVisualization` whose ``image`` (1, 3, H, W) and ``snapshots``
(every ``show_every`` iterations, and at 0 and the end) are **pixels in [0, 1]**. ``options`` are the fields
of the entry's options dataclass (``task.<name>.*``). ``task.param`` also takes the dotted path of a
:class:`Parameterization` of your own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from visgrad.models.classifier import Classifier
from visgrad.options import (
    boolean,
    non_negative_int,
    non_negative_number,
    option,
    optional,
    positive_int,
    positive_number,
)
from visgrad.registry import Registry
from visgrad.vision.class_viz import ClassVisualization, create_class_visualization
from visgrad.vision.feature_viz import fourier_class_visualization


@dataclass(frozen=True)
class Parameterization:
    """A class-visualization method: ``name`` (file names, ``task.<name>`` options node), ``label``, ``fn``
    (the protocol of the module docstring) and ``options`` (a dataclass type, or None)."""

    name: str
    label: str
    fn: Callable[..., ClassVisualization]
    options: type | None = None


PARAMETERIZATIONS: Registry[Parameterization] = Registry("class-visualization parameterisation",
                                                         Parameterization)


@dataclass
class FourierOptions:
    """``task.fourier``: Lucid's recipe (Adam on a 1/f-scaled spectrum, decorrelated colours, random
    transforms); ``image_size`` pixels are optimised and shown to the network at ``input_size`` (null: the
    classifier's input size)."""

    learning_rate: float = option(0.02, positive_number, "a positive number")
    decay_power: float = option(1.5, non_negative_number, "a number >= 0")
    decorrelate: bool = option(True, boolean, "true or false")
    transforms: bool = option(True, boolean, "true or false")
    image_size: int = option(128, lambda v: positive_int(v) and v >= 16, "an integer >= 16")
    input_size: int | None = option(None, optional(positive_int),
                                    "null (the classifier's) or a positive integer")


def fourier(target_y: int, classifier: Classifier, *, num_iterations: int, show_every: int, seed: int | None,
            device: torch.device | str, progress: Callable[[int], None] | None, learning_rate: float,
            decay_power: float, decorrelate: bool, transforms: bool, image_size: int,
            input_size: int | None) -> ClassVisualization:
    """:func:`~visgrad.vision.feature_viz.fourier_class_visualization` on the classifier's model, inputs
    normalised as it expects."""
    return fourier_class_visualization(
        target_y, classifier.model, classifier.norm.normalize, image_size=image_size,
        input_size=input_size or classifier.image_size, num_iterations=num_iterations,
        learning_rate=learning_rate, decay_power=decay_power, decorrelate=decorrelate, transforms=transforms,
        show_every=show_every, seed=seed, device=device, progress=progress,
    )


@dataclass
class PixelOptions:
    """``task.pixel``: CS231n's gradient ascent on the pixels with L2 regularisation, jitter and blur (the
    step size is in the classifier's input units: CS231n's 25 is for ImageNet-normalised inputs)."""

    l2_reg: float = option(0.001, non_negative_number, "a number >= 0")
    learning_rate: float = option(25, positive_number, "a positive number")
    blur_every: int = option(10, non_negative_int, "an integer >= 0 (0: never)")
    blur_sigma: float = option(0.5, non_negative_number, "a number >= 0")
    max_jitter: int = option(16, non_negative_int, "an integer >= 0")


def pixel(target_y: int, classifier: Classifier, *, num_iterations: int, show_every: int, seed: int | None,
          device: torch.device | str, progress: Callable[[int], None] | None, l2_reg: float,
          learning_rate: float, blur_every: int, blur_sigma: float, max_jitter: int) -> ClassVisualization:
    """:func:`~visgrad.vision.class_viz.create_class_visualization` at the classifier's input size, its
    images turned into pixels."""
    norm = classifier.norm
    result = create_class_visualization(
        target_y, classifier.model, l2_reg=l2_reg, learning_rate=learning_rate, num_iterations=num_iterations,
        blur_every=blur_every, max_jitter=max_jitter, show_every=show_every, blur_sigma=blur_sigma,
        image_size=classifier.image_size, seed=seed, device=device, progress=progress, norm=norm,
    )
    result.image = norm.unnormalize(result.image).clamp(0, 1)
    result.snapshots = [(step, norm.unnormalize(image).clamp(0, 1)) for step, image in result.snapshots]
    return result


PARAMETERIZATIONS.add(Parameterization("fourier", "fourier", fourier, FourierOptions))
PARAMETERIZATIONS.add(Parameterization("pixel", "pixel", pixel, PixelOptions))
