"""Coarse-to-fine (multi-scale) pixel optimisation, as neural-style-pt's multires recipe.

Optimising a large image directly gives strokes as large as the network's receptive field, which is small
against a 512 px image: the result looks like the style seen through a magnifying glass (fine grain, no
large swirls). Coarse to fine: optimise at a fraction of the final size first (where the receptive field
covers a larger part of the picture), upsample the result and use it as the start of the next scale, with
the content and style images resized to the same fraction each time, so the large strokes found at the
coarse scale are refined, not rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visgrad.style.objective import StyleObjective


@dataclass
class ScaleInputs:
    """What one scale optimises against: the content image (1, 3, H, W) or None, the style images
    (1, 3, H_s, W_s), and the result's (H, W)."""

    content: torch.Tensor | None
    styles: list[torch.Tensor]
    shape: tuple[int, int]


def check_scales(scales: Sequence[float], steps: Sequence[int]) -> None:
    """Raise a ValueError naming the argument unless ``scales`` increase in (0, 1] ending at 1 and
    ``steps`` has one positive count per scale."""
    scales = list(scales)
    if not scales or scales[-1] != 1 or any(not 0 < s <= 1 for s in scales) or scales != sorted(set(scales)):
        raise ValueError(
            f"scales={scales} must be increasing fractions of the image size in (0, 1], ending at 1 "
            "(e.g. [0.5, 1.0])"
        )
    if len(steps) != len(scales) or any(n < 1 for n in steps):
        raise ValueError(f"steps={list(steps)} must hold one positive number per scale of scales={scales}")


def resize_image(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of images (N, 3, H, W) to ``shape`` (H', W') (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    return F.interpolate(x, size=tuple(shape), mode="bicubic", align_corners=False, antialias=True)


def optimize_multiscale(
    init: torch.Tensor,
    scales: Sequence[float],
    steps: Sequence[int],
    inputs_at: Callable[[float], ScaleInputs],
    build: Callable[[ScaleInputs], StyleObjective],
    optimize: Callable[[torch.Tensor, StyleObjective, int, int], torch.Tensor],
) -> tuple[torch.Tensor, StyleObjective, ScaleInputs]:
    """Optimise ``init`` coarse to fine.

    Inputs:
    - init: the starting image (1, 3, H, W) at any size; resized to the first scale's shape.
    - scales, steps: increasing fractions of the final size and the steps at each (:func:`check_scales`).
    - inputs_at(scale): the content and style images at that scale (:class:`ScaleInputs`).
    - build(inputs): the objective at that scale (targets recomputed from the resized images).
    - optimize(img, objective, steps, first_step): runs ``steps`` steps from ``img``, numbering them from
      ``first_step`` (for logging across scales); returns the optimised image.

    Returns the final image (1, 3, H, W), the last scale's objective and its inputs (for quality measures).
    """
    check_scales(scales, steps)
    img, done = init, 0
    for scale, count in zip(scales, steps, strict=True):
        inputs = inputs_at(scale)
        objective = build(inputs)
        img = optimize(resize_image(img, inputs.shape), objective, count, done)
        done += count
    return img, objective, inputs

