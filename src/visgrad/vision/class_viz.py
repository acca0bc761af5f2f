"""Class visualization (Simonyan et al., 2014; Yosinski et al., 2015): synthesise an image that a
classifier scores highly for a class, by gradient ascent on ``score_y(I) - l2_reg * ||I||^2`` with
CS231n's regularisers (random jitter, clamping to valid pixels, periodic Gaussian blur).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.images import IMAGENET, Normalization, blur_image, jitter


@dataclass
class ClassVisualization:
    """The synthesised image (1, 3, H, W), snapshots ``[(iteration, image)]`` and per-step target
    score / softmax probability (of the jittered or transformed image that the step was computed on).
    Images are in the model's input normalisation (:func:`create_class_visualization`) or pixels in
    [0, 1] (:func:`visgrad.vision.feature_viz.fourier_class_visualization`)."""

    image: torch.Tensor
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)


def create_class_visualization(
    target_y: int,
    model: nn.Module,
    l2_reg: float = 1e-3,
    learning_rate: float = 25,
    num_iterations: int = 100,
    blur_every: int = 10,
    max_jitter: int = 16,
    show_every: int = 25,
    blur_sigma: float = 0.5,
    image_size: int = 224,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    progress=None,
    norm: Normalization = IMAGENET,
) -> ClassVisualization:
    """Generate an image (1, 3, image_size, image_size) that maximises the score of class ``target_y``.

    Each iteration (as CS231n): jitter by up to ``max_jitter`` pixels, step ``learning_rate * g`` up the
    gradient g of the regularised score, undo the jitter, clamp to valid pixels; blur every ``blur_every``
    iterations with std ``blur_sigma``. Images are in the model's input normalisation ``norm`` (CS231n's
    ImageNet mean/std by default), which also sets the valid range.
    Snapshots are taken at the start, every ``show_every`` iterations and at the end.
    ``progress(iteration)`` is called after each iteration (for progress bars).
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    rng = random.Random(seed)
    img = torch.randn(1, 3, image_size, image_size, generator=generator).to(device)
    img = norm.clamp(img)
    result = ClassVisualization(image=img)
    result.snapshots.append((0, img.clone()))
    for t in range(num_iterations):
        ox, oy = rng.randint(0, max_jitter), rng.randint(0, max_jitter)
        shifted = jitter(img, ox, oy).requires_grad_(True)
        with torch.enable_grad():
            scores = model(shifted)
            objective = scores[0, target_y] - l2_reg * shifted.pow(2).sum()
            (grad,) = torch.autograd.grad(objective, shifted)
        result.scores.append(scores[0, target_y].item())
        result.probs.append(scores[0].softmax(dim=0)[target_y].item())
        stepped = shifted.detach() + learning_rate * grad
        img = norm.clamp(jitter(stepped, -ox, -oy))
        if blur_every and t % blur_every == 0:
            img = blur_image(img, sigma=blur_sigma)
        if (t + 1) % show_every == 0 or t == num_iterations - 1:
            result.snapshots.append((t + 1, img.clone()))
        if progress is not None:
            progress(t + 1)
    result.image = img
    return result


@torch.no_grad()
def class_probability(image: torch.Tensor, target_y: int, model: nn.Module) -> float:
    """Softmax probability of ``target_y`` for a single image (1, 3, H, W)."""
    return model(image).softmax(dim=1)[0, target_y].item()


@dataclass
class CropRobustness:
    """The target's softmax probability under random crops: ``probs`` (num_crops,), their mean, the share
    of crops classified as the target (``top1``) and the crop boxes (num_crops, 4) as (top, left, h, w)."""

    probs: torch.Tensor
    boxes: torch.Tensor
    top1: float

    @property
    def mean_prob(self) -> float:
        return self.probs.mean().item()


def random_crop_boxes(height: int, width: int, num_crops: int, scale: tuple[float, float] = (0.5, 1.0),
                      ratio: tuple[float, float] = (3 / 4, 4 / 3),
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Boxes (num_crops, 4) as (top, left, h, w) in the style of torchvision's RandomResizedCrop: area a
    uniform fraction in ``scale`` of the image, aspect ratio log-uniform in ``ratio`` (clipped to the image),
    position uniform."""
    area = torch.empty(num_crops, dtype=torch.float64).uniform_(*scale, generator=generator) * height * width
    log_ratio = torch.empty(num_crops, dtype=torch.float64).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    h = (area / log_ratio.exp()).sqrt().round().clamp(1, height).long()
    w = (area * log_ratio.exp()).sqrt().round().clamp(1, width).long()
    top = (torch.rand(num_crops, generator=generator, dtype=torch.float64) * (height - h + 1)).long()
    left = (torch.rand(num_crops, generator=generator, dtype=torch.float64) * (width - w + 1)).long()
    return torch.stack([top, left, h, w], dim=1)


@torch.no_grad()
def crop_robustness(pixels: torch.Tensor, target_y: int, model: nn.Module,
                    normalize: Callable[[torch.Tensor], torch.Tensor], num_crops: int = 32,
                    scale: tuple[float, float] = (0.5, 1.0), output_size: int | None = None, seed: int = 0,
                    batch_size: int = 8) -> CropRobustness:
    """How well an image keeps its class when cropped and rescaled (Olah et al.'s transformation robustness,
    measured rather than trained): the softmax probability of ``target_y`` for ``num_crops`` random crops
    (:func:`random_crop_boxes`) of ``pixels`` (1, 3, H, W) in [0, 1], each resized (bilinear, antialiased) to
    ``output_size`` (default H) and passed through ``normalize`` and ``model`` in batches of ``batch_size``.
    """
    height, width = pixels.shape[-2:]
    size = output_size or height
    generator = torch.Generator().manual_seed(seed)
    boxes = random_crop_boxes(height, width, num_crops, scale, generator=generator)
    crops = torch.cat([
        F.interpolate(pixels[..., t : t + h, x : x + w], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
        for t, x, h, w in boxes.tolist()
    ])
    logits = torch.cat([model(normalize(chunk)) for chunk in crops.split(batch_size)])
    probs = logits.softmax(dim=1)[:, target_y].cpu()
    others = logits.clone()
    others[:, target_y] = -torch.inf
    top1 = (logits[:, target_y] > others.amax(dim=1)).double().mean().item()  # a tie is not a win
    return CropRobustness(probs=probs, boxes=boxes, top1=top1)
