"""Black-box attribution by perturbing the input: occlusion (Zeiler & Fergus 2014) and RISE (Petsiuk et al.
2018). Neither looks at gradients; both only evaluate the model, in batches of ``batch_size`` images.

**Occlusion** slides a ``patch`` x ``patch`` square with step ``stride`` over the image (windows start at
0, stride, 2 stride, ... until one reaches the border, the last one cut at the border, as Captum's
``Occlusion``), fills it (``fill``: see below) and records the drop of the class score; a pixel's value is
the mean drop of the windows that cover it. It equals Captum's ``Occlusion`` with
``sliding_window_shapes=(3, patch, patch)``, ``strides=(3, stride, stride)`` and the fill as baseline
(tests).

**RISE** draws ``num_masks`` random masks: a ``grid`` x ``grid`` grid of cells kept with probability ``p``,
upsampled bilinearly (``F.interpolate``, ``align_corners=False``) to ``(grid + 1)`` cells of
``ceil(H / grid)`` pixels and cropped to the image at a random offset of 0 .. cell - 1 pixels per axis
(the paper's code resizes with scikit-image, which reflects at the border where torch replicates). A
masked image is ``M X + (1 - M) fill``; the map is the mask-weighted mean score,
``sum_i score(masked_i) M_i / (num_masks p)``, an estimate of ``E[score(masked) M] / E[M]`` (E[M] = p
exactly: bilinear weights average the cells). The masks are shared by the images of a call, as in RISE.

What a removed pixel becomes (``fill``) is :func:`~visgrad.vision.saliency.ig_baseline`'s choice: ``black``
(RISE's masks), ``mean`` (the normalisation's mean colour, zero input: Captum's default baseline) or
``blur`` (the image blurred). The score is the class probability (``score="probability"``, as both papers)
or the logit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.images import IMAGENET, Normalization
from visgrad.models.classifier import Classifier
from visgrad.options import one_of, option, positive_int, probability
from visgrad.vision.saliency import IG_BASELINES, ig_baseline

SCORES = ("probability", "logit")


def class_scores(model: nn.Module, images: torch.Tensor, y: torch.Tensor, score: str) -> torch.Tensor:
    """``score`` (probability or logit) of class y[k] for each image k: (K, 3, H, W), (K,) -> (K,)."""
    logits = model(images)
    values = logits.softmax(dim=1) if score == "probability" else logits
    return values.gather(1, y.view(-1, 1)).squeeze(1)


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start of each occlusion window along an axis of ``size`` pixels (Captum's positions)."""
    return [k * stride for k in range(math.ceil((size - patch) / stride) + 1)]


@torch.no_grad()
def occlusion_saliency(X: torch.Tensor, y: torch.Tensor, model: nn.Module, patch: int = 32, stride: int = 16,
                       fill: str = "mean", score: str = "probability", batch_size: int = 16,
                       norm: Normalization = IMAGENET) -> torch.Tensor:
    """Occlusion maps (N, H, W) of images X (N, 3, H, W) for classes y (N,): the mean drop of the class
    ``score`` when a ``patch`` square covering the pixel is filled (see the module docstring)."""
    n, _, h, w = X.shape
    if not 0 < patch <= min(h, w) or not 0 < stride <= patch:
        raise ValueError(f"patch={patch}, stride={stride}: need 0 < stride <= patch <= {min(h, w)} "
                         "(image size)")
    if score not in SCORES:
        raise ValueError(f"score={score!r}: choose one of {', '.join(SCORES)}")
    boxes = [(r, c) for r in window_starts(h, patch, stride) for c in window_starts(w, patch, stride)]
    windows = torch.zeros(len(boxes), h, w, dtype=torch.bool, device=X.device)
    for k, (r, c) in enumerate(boxes):
        windows[k, r : r + patch, c : c + patch] = True
    filled = ig_baseline(X, fill, norm)
    drops = torch.zeros(n, h, w, dtype=X.dtype, device=X.device)
    pairs = torch.cartesian_prod(torch.arange(n), torch.arange(len(boxes))).to(X.device)  # (image, window)
    for chunk in pairs.split(batch_size):
        image, window = chunk[:, 0], chunk[:, 1]
        masks = windows[window][:, None]
        scores = class_scores(model, torch.where(masks, filled[image], X[image]), y[image], score)
        drops.index_add_(0, image, masks[:, 0] * scores.to(X.dtype)[:, None, None])
    base = torch.cat([class_scores(model, part, y_part, score) for part, y_part in
                      zip(X.split(batch_size), y.split(batch_size), strict=True)])
    counts = windows.sum(dim=0).to(X.dtype)
    return base.to(X.dtype)[:, None, None] - drops / counts


def rise_masks(num_masks: int, size: tuple[int, int], grid: int = 7, p: float = 0.5,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The random part of RISE's masks: the kept cells (num_masks, grid, grid) bool and the crop offsets
    (num_masks, 2) long in 0 .. cell - 1, drawn from ``generator`` (on the CPU). :func:`upsample_masks`
    makes them masks of ``size``."""
    cells = torch.rand(num_masks, grid, grid, generator=generator) < p
    cell_h, cell_w = (math.ceil(s / grid) for s in size)
    offsets = torch.stack([torch.randint(0, cell_h, (num_masks,), generator=generator),
                           torch.randint(0, cell_w, (num_masks,), generator=generator)], dim=1)
    return cells, offsets


def upsample_masks(cells: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """RISE masks (K, H, W) in [0, 1] from kept cells (K, g, g) and offsets (K, 2): the cells upsampled
    bilinearly to (g + 1) cells of ceil(H / g) x ceil(W / g) pixels, cropped to ``size`` at the offsets."""
    k, grid = cells.shape[0], cells.shape[-1]
    h, w = size
    cell_h, cell_w = math.ceil(h / grid), math.ceil(w / grid)
    up = F.interpolate(cells[:, None].float(), size=((grid + 1) * cell_h, (grid + 1) * cell_w),
                       mode="bilinear", align_corners=False)[:, 0]
    rows = offsets[:, :1] + torch.arange(h, device=cells.device)  # (K, H)
    cols = offsets[:, 1:] + torch.arange(w, device=cells.device)  # (K, W)
    return up[torch.arange(k, device=cells.device)[:, None, None], rows[:, :, None], cols[:, None, :]]


@torch.no_grad()
def rise_from_masks(X: torch.Tensor, y: torch.Tensor, model: nn.Module, masks: torch.Tensor, p: float,
                    fill: str = "black", score: str = "probability", batch_size: int = 16,
                    norm: Normalization = IMAGENET) -> torch.Tensor:
    """RISE maps (N, H, W) of images X (N, 3, H, W) for classes y (N,) with the given masks (K, H, W):
    ``sum_k score(M_k X + (1 - M_k) fill) M_k / (K p)``."""
    filled = ig_baseline(X, fill, norm)
    total = torch.zeros(X.shape[0], *X.shape[-2:], dtype=X.dtype, device=X.device)
    for i in range(X.shape[0]):
        for part in masks.split(batch_size):
            m = part[:, None].to(X.dtype)
            images = m * X[i] + (1 - m) * filled[i]
            scores = class_scores(model, images, y[i].expand(len(part)), score).to(X.dtype)
            total[i] += torch.einsum("k,khw->hw", scores, part.to(X.dtype))
    return total / (masks.shape[0] * p)


def rise_saliency(X: torch.Tensor, y: torch.Tensor, model: nn.Module, num_masks: int = 500, grid: int = 7,
                  p: float = 0.5, fill: str = "black", score: str = "probability", batch_size: int = 16,
                  generator: torch.Generator | None = None, norm: Normalization = IMAGENET) -> torch.Tensor:
    """RISE maps (N, H, W) with ``num_masks`` masks drawn from ``generator`` (see the module docstring),
    upsampled ``batch_size`` at a time."""
    if score not in SCORES:
        raise ValueError(f"score={score!r}: choose one of {', '.join(SCORES)}")
    size = (X.shape[-2], X.shape[-1])
    cells, offsets = rise_masks(num_masks, size, grid, p, generator)
    total = torch.zeros(X.shape[0], *size, dtype=X.dtype, device=X.device)
    for part_cells, part_offsets in zip(cells.split(batch_size), offsets.split(batch_size), strict=True):
        masks = upsample_masks(part_cells.to(X.device), part_offsets.to(X.device), size)
        total += rise_from_masks(X, y, model, masks, p, fill, score, batch_size, norm) * len(masks)
    return total / num_masks


def check_patch(classifier: Classifier, options, prefix: str) -> list[str]:
    """``patch`` / ``grid`` of occlusion or RISE options against the classifier's input size."""
    size = classifier.image_size
    key, value = ("patch", options.patch) if hasattr(options, "patch") else ("grid", options.grid)
    if value <= size:
        return []
    return [f"{prefix}.{key}={value}: larger than the {size}-pixel inputs of {classifier.name}; use at most "
            f"{size}"]


@dataclass
class OcclusionOptions:
    """``task.occlusion``: the square's side and step in pixels, its fill, the score and the batch size."""

    patch: int = option(32, positive_int, "a positive integer (pixels)")
    stride: int = option(16, positive_int, "a positive integer (pixels), at most the patch")
    fill: str = option("mean", one_of(*IG_BASELINES), f"one of {', '.join(IG_BASELINES)}")
    score: str = option("probability", one_of(*SCORES), f"one of {', '.join(SCORES)}")
    batch_size: int = option(16, positive_int, "a positive integer")

    def problems(self) -> list[str]:
        if self.stride > self.patch:
            return [f"stride={self.stride}: larger than patch={self.patch} would leave pixels uncovered; "
                    f"use at most {self.patch}"]
        return []


def occlusion(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
              generator: torch.Generator | None = None, patch: int, stride: int, fill: str, score: str,
              batch_size: int) -> torch.Tensor:
    """Occlusion maps (N, H, W) (:func:`occlusion_saliency`) in the classifier's normalisation."""
    return occlusion_saliency(X, y, classifier.model, patch, stride, fill, score, batch_size, classifier.norm)


@dataclass
class RISEOptions:
    """``task.rise``: the number of masks, the grid, the keep probability, the fill, score and batch size."""

    num_masks: int = option(500, positive_int, "a positive integer")
    grid: int = option(7, positive_int, "a positive integer (cells per side)")
    p: float = option(0.5, probability, "a probability")
    fill: str = option("black", one_of(*IG_BASELINES), f"one of {', '.join(IG_BASELINES)}")
    score: str = option("probability", one_of(*SCORES), f"one of {', '.join(SCORES)}")
    batch_size: int = option(16, positive_int, "a positive integer")

    def problems(self) -> list[str]:
        return [] if self.p > 0 else ["p=0: no cell would ever be kept; use a probability > 0"]


def rise(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, generator: torch.Generator,
         num_masks: int, grid: int, p: float, fill: str, score: str, batch_size: int) -> torch.Tensor:
    """RISE maps (N, H, W) (:func:`rise_saliency`), masks drawn from ``generator``."""
    return rise_saliency(X, y, classifier.model, num_masks, grid, p, fill, score, batch_size, generator,
                         classifier.norm)
