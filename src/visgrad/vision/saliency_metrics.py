"""How good is a saliency map when no object mask is known: the deletion and insertion metrics of
Petsiuk et al. 2018 (RISE).

Rank the pixels by saliency. **Deletion** replaces the most salient pixels first by a "removed" value
and follows the probability of the explained class as more and more pixels go: a map that finds the
evidence makes it fall fast, so a *low* area under the curve (AUC) is good. **Insertion** starts from a
canvas without the evidence (the image blurred, as RISE) and puts the original pixels back, most salient
first: a *high* AUC is good. A random pixel order is the baseline that a map has to beat.

RISE deletes to black; ``fill="blur"`` deletes to the insertion canvas instead (deletion and insertion then
mirror each other). Black holes add edges of their own, out of the training distribution (Rong et al.
2022, ROAD): on EfficientNet-Lite0 and the sample photos, a random order of black pixels lowers the class
probability faster than any of the three gradient maps, while with the blurred fill every map beats it.

Curves have ``steps + 1`` points at fractions 0, 1/steps, ..., 1 of the pixels; the AUC is the trapezoid
rule over the fraction axis, so it lies in [0, 1].

Pixels can be removed in square patches (``patch`` > 1, ranked by their mean saliency), as Samek et al.
2017 do: blacking out single pixels in random order sprinkles high-frequency noise over the whole image,
which alone destroys a classifier's confidence faster than removing any one region, so per-pixel deletion
favours scattered (noisy) maps and makes the random baseline look strong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from visgrad.images import IMAGENET, Normalization
from visgrad.options import one_of, option, positive_int, positive_number
from visgrad.vision.saliency import mass_in_mask, pointing_game

DELETION_FILLS = ("blur", "black")
RANDOM = "random"


@dataclass
class CurveResult:
    """Deletion or insertion curves (N, steps + 1) of class probabilities and their AUCs (N,)."""

    curves: torch.Tensor
    auc: torch.Tensor


def pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel, 0 = most salient: (N, H, W) -> (N, H, W) long. Ties keep the row-major order."""
    n = saliency.shape[0]
    order = saliency.reshape(n, -1).argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand(n, -1)
    ranks.scatter_(1, order, positions)
    return ranks.view_as(saliency)


def patch_ranks(saliency: torch.Tensor, patch: int = 1) -> tuple[torch.Tensor, int]:
    """Rank of the ``patch`` x ``patch`` square holding each pixel (squares ranked by mean saliency, 0 =
    most salient; partial squares at the borders count), and the number of squares.
    (N, H, W) -> ((N, H, W) long, int)."""
    if patch == 1:
        return pixel_ranks(saliency), saliency.shape[-2] * saliency.shape[-1]
    h, w = saliency.shape[-2:]
    pooled = F.avg_pool2d(saliency[:, None].float(), patch, ceil_mode=True)[:, 0]
    ranks = pixel_ranks(pooled).repeat_interleave(patch, dim=-2).repeat_interleave(patch, dim=-1)
    return ranks[..., :h, :w], pooled.shape[-2] * pooled.shape[-1]


def random_saliency(like: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A uniform-random map of the shape of ``like`` (N, H, W): the random-order baseline."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(like.shape, generator=generator).to(like.device)


def blurred_canvas(X: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion start: X (N, 3, H, W) blurred with a Gaussian of std ``sigma`` pixels (kernel 11
    for the default sigma 5, as RISE's ``ksize=11, sigma=5``)."""
    return TF.gaussian_blur(X, kernel_size=2 * int(sigma) + 1, sigma=sigma)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under curves (N, K + 1) sampled at fractions 0, 1/K, ..., 1 (trapezoid rule). Returns (N,)."""
    k = curves.shape[1] - 1
    return (curves[:, 1:] + curves[:, :-1]).sum(dim=1) / (2 * k)


@torch.no_grad()
def probability_curves(
    X: torch.Tensor,
    y: torch.Tensor,
    model: nn.Module,
    saliency: torch.Tensor,
    start: torch.Tensor,
    finish: torch.Tensor,
    steps: int = 16,
    batch_size: int = 32,
    patch: int = 1,
) -> CurveResult:
    """Move each image from ``start`` to ``finish`` pixel by pixel in saliency order, most salient first.

    Inputs: X (N, 3, H, W) (only its shape and device are used), y (N,) classes, model, saliency (N, H, W),
    start and finish (N, 3, H, W), normalised images. With P units (pixels, or ``patch`` x ``patch``
    squares, :func:`patch_ranks`), at step k (0..steps) the ``round(k P / steps)`` most salient units (all
    channels) come from ``finish`` and the rest from ``start``.
    Returns the probability of class y after each step, (N, steps + 1), and its AUC.
    """
    n = X.shape[0]
    ranks, units = patch_ranks(saliency, patch)
    ranks = ranks.to(X.device)
    counts = torch.round(torch.arange(steps + 1, device=X.device) * units / steps)
    curves = torch.empty(n, steps + 1, device=X.device)
    for i in range(n):
        for lo in range(0, steps + 1, batch_size):
            chunk = counts[lo : lo + batch_size]
            replaced = (ranks[i][None] < chunk.view(-1, 1, 1))[:, None]  # (K, 1, H, W)
            images = torch.where(replaced, finish[i][None], start[i][None])
            curves[i, lo : lo + len(chunk)] = model(images).softmax(dim=1)[:, int(y[i])]
    return CurveResult(curves, auc(curves))


def deletion(
    X: torch.Tensor,
    y: torch.Tensor,
    model: nn.Module,
    saliency: torch.Tensor,
    steps: int = 16,
    norm: Normalization = IMAGENET,
    patch: int = 1,
    fill: str = "black",
    sigma: float = 5.0,
    batch_size: int = 32,
) -> CurveResult:
    """Deletion curves: the most salient pixels (or patches) of X (normalised with ``norm``) are replaced
    first, by black (``fill="black"``, RISE) or by X blurred with std ``sigma`` (``fill="blur"``).
    Lower AUC = better map. See :func:`probability_curves` for shapes."""
    if fill == "black":
        removed = norm.normalize(torch.zeros_like(X))
    elif fill == "blur":
        removed = blurred_canvas(X, sigma)
    else:
        raise ValueError(f"unknown deletion fill={fill!r}; choose one of {', '.join(DELETION_FILLS)}")
    return probability_curves(X, y, model, saliency, X, removed, steps, batch_size, patch)


def insertion(
    X: torch.Tensor,
    y: torch.Tensor,
    model: nn.Module,
    saliency: torch.Tensor,
    steps: int = 16,
    sigma: float = 5.0,
    patch: int = 1,
    batch_size: int = 32,
) -> CurveResult:
    """Insertion curves: from X blurred (std ``sigma`` pixels), the most salient pixels (or patches) of X
    come back first. Higher AUC = better map. See :func:`probability_curves` for shapes."""
    return probability_curves(X, y, model, saliency, blurred_canvas(X, sigma), X, steps, batch_size, patch)


@dataclass
class ScoringOptions:
    """How maps are scored (``task.metrics``): curve points, patch size, what deletion fills in, and the
    blur (std in pixels) of the insertion canvas and of the blurred fill."""

    steps: int = option(12, positive_int, "a positive integer")
    patch: int = option(8, positive_int, "a positive integer (1: single pixels)")
    deletion_fill: str = option("blur", one_of(*DELETION_FILLS), f"one of {', '.join(DELETION_FILLS)}")
    blur: float = option(5.0, positive_number, "a positive number (pixels)")


@dataclass
class MapScores:
    """The scores of one map (or of the random order): deletion and insertion curves, and with object masks
    the pointing game (share of peaks inside the object) and the saliency mass inside it."""

    deletion: CurveResult
    insertion: CurveResult
    pointing_game: float | None = None
    mass_in_mask: float | None = None

    def metrics(self) -> dict[str, float]:
        """``{"deletion_auc", "insertion_auc"[, "pointing_game"][, "mass_in_mask"]}``, means over images."""
        values = {"deletion_auc": self.deletion.auc.mean().item(),
                  "insertion_auc": self.insertion.auc.mean().item()}
        for key in ("pointing_game", "mass_in_mask"):
            if getattr(self, key) is not None:
                values[key] = getattr(self, key)
        return values


def score_maps(
    X: torch.Tensor,
    y: torch.Tensor,
    model: nn.Module,
    maps: dict[str, torch.Tensor],
    options: ScoringOptions | None = None,
    norm: Normalization = IMAGENET,
    masks: torch.Tensor | None = None,
    seed: int = 0,
    on_scored: Callable[[str], None] | None = None,
) -> dict[str, MapScores]:
    """Score every map of ``maps`` (name -> (N, H, W)) for images X (N, 3, H, W) normalised with ``norm`` and
    classes y (N,), and the random order (:data:`RANDOM`, a :func:`random_saliency` map drawn with ``seed``):
    deletion and insertion curves as ``options`` say; with object masks (N, H, W), the pointing game and the
    mass in mask of each map, and for the random order its expected pointing game (the objects' area
    fraction). ``on_scored(name)`` is called after each. Returns ``{name: MapScores}``, the maps first."""
    options = options or ScoringOptions()
    scores: dict[str, MapScores] = {}
    for name, saliency in [*maps.items(), (RANDOM, random_saliency(X[:, 0], seed=seed))]:
        removed = deletion(X, y, model, saliency, options.steps, norm, options.patch, options.deletion_fill,
                           options.blur)
        inserted = insertion(X, y, model, saliency, options.steps, options.blur, options.patch)
        scores[name] = MapScores(CurveResult(removed.curves.cpu(), removed.auc),
                                 CurveResult(inserted.curves.cpu(), inserted.auc))
        if on_scored is not None:
            on_scored(name)
    if masks is not None:
        masks = masks.cpu()
        for name, saliency in maps.items():
            saliency = saliency.cpu()
            scores[name].pointing_game = pointing_game(saliency, masks).float().mean().item()
            scores[name].mass_in_mask = mass_in_mask(saliency, masks).mean().item()
        # a uniform-random map scores the object-area fraction in expectation
        scores[RANDOM].pointing_game = masks.flatten(1).float().mean().item()
    return scores
