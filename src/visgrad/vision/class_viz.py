"""Class visualization (Simonyan et al., 2014; Yosinski et al., 2015): synthesise an image that a
classifier scores highly for a class, by gradient ascent on ``score_y(I) - l2_reg * ||I||^2`` with
CS231n's regularisers (random jitter, clamping to valid pixels, periodic Gaussian blur).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from torch import nn

from visgrad.images import blur_image, clamp_image, jitter


@dataclass
class ClassVisualization:
    """The synthesised image (1, 3, H, W), snapshots ``[(iteration, image)]`` and per-step target
    score / softmax probability (of the jittered image that the step was computed on)."""

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
) -> ClassVisualization:
    """Generate an image (1, 3, image_size, image_size) that maximises the score of class ``target_y``.

    Each iteration (as CS231n): jitter by up to ``max_jitter`` pixels, step ``learning_rate * g`` up the
    gradient g of the regularised score, undo the jitter, clamp to valid pixels; blur every ``blur_every``
    iterations with std ``blur_sigma``.
    Snapshots are taken at the start, every ``show_every`` iterations and at the end.
    ``progress(iteration)`` is called after each iteration (for progress bars).
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    rng = random.Random(seed)
    img = torch.randn(1, 3, image_size, image_size, generator=generator).to(device)
    img = clamp_image(img)
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
        img = clamp_image(jitter(stepped, -ox, -oy))
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
