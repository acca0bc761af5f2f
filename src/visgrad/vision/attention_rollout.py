"""Attention rollout (Abnar & Zuidema, 2020): where a Vision Transformer's class token gathers its
information from, as an attribution method of ``task=saliency`` (``task.methods=[...,attention_rollout]``).

Each layer's attention weights (N, h, L, L) are fused over the heads (``head_fusion``: mean, as the paper, or
max), the residual connection is accounted for as A' = (A + I) / 2 (rows renormalised), and the layers are
multiplied in order: R = A'_L ... A'_1. The row of the class token (``pool="cls"``; with mean pooling the mean
of the patch rows) over the patch columns, a (S / P) x (S / P) grid, is upsampled bilinearly to the image.
The map is the same for every class: rollout explains what the network looks at, not why it picks ``y``.

It needs a classifier whose model has ``attention_maps(images) -> [(N, h, L, L)] * layers``, ``pool`` and
``grid_size``, as :class:`visgrad.models.vit.ViT` (``classifier=vit_shapes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visgrad.models.classifier import Classifier
from visgrad.options import one_of, option

HEAD_FUSIONS = ("mean", "max")


@dataclass
class AttentionRolloutOptions:
    """``task.attention_rollout``: how the heads of a layer are fused."""

    head_fusion: str = option("mean", one_of(*HEAD_FUSIONS), f"one of {', '.join(HEAD_FUSIONS)}")


def rollout(maps: list[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """The attention rollout R (N, L, L) of the layers' attention weights ``maps`` (each (N, h, L, L)):
    R = A'_L ... A'_1 with A' = (fuse_heads(A) + I) / 2, rows renormalised to sum to 1."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")
    result = None
    for weights in maps:
        fused = weights.mean(dim=1) if head_fusion == "mean" else weights.amax(dim=1)
        fused = fused + torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        fused = fused / fused.sum(dim=-1, keepdim=True)
        result = fused if result is None else fused @ result
    return result


def attention_rollout(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                      generator: torch.Generator | None = None, head_fusion: str = "mean") -> torch.Tensor:
    """Attention-rollout maps (N, H, W) of images X (N, 3, H, W) for a ViT classifier (``y`` is not used:
    the map is class-agnostic)."""
    model = classifier.model
    if not callable(getattr(model, "attention_maps", None)):
        raise ValueError(f"attention_rollout needs a Vision Transformer (a model with "
                         f"attention_maps(images), as visgrad.models.vit.ViT); {classifier.name}'s "
                         f"{type(model).__name__} has none: use classifier=vit_shapes")
    R = rollout(model.attention_maps(X), head_fusion)
    if model.pool == "cls":
        relevance = R[:, 0, 1:]
    else:
        relevance = R.mean(dim=1)
    grid = model.grid_size
    maps = relevance.reshape(-1, 1, grid, grid)
    return F.interpolate(maps, size=X.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
