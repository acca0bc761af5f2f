"""Style-transfer losses with CS231n's signatures (Gatys et al., "Image Style Transfer Using CNNs", 2016).

All functions take preprocessed (ImageNet-normalised) images and feature maps of shape (N, C, H, W) and
return scalar tensors that autograd differentiates with respect to the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def extract_features(x: torch.Tensor, cnn: nn.Module, upto: int | None = None) -> list[torch.Tensor]:
    """Run ``x`` through the modules of ``cnn`` in order and keep every module's output.

    Inputs:
    - x: images (N, 3, H, W).
    - cnn: a sequential feature network, e.g. SqueezeNet's ``model.features`` (CS231n's indices).
    - upto: stop after module ``upto`` (inclusive); None runs every module.

    Returns a list ``feats`` with ``feats[i]`` the output of module i, of shape (N, C_i, H_i, W_i).
    A module with ``inplace=True`` (torchvision's ReLUs) overwrites the output before it; the networks of
    :func:`visgrad.models.feature_nets.load_feature_net` have that turned off.
    """
    feats = []
    for i, module in enumerate(cnn.children()):
        if upto is not None and i > upto:
            break
        x = module(x)
        feats.append(x)
    return feats


def content_loss(
    content_weight: float, content_current: torch.Tensor, content_original: torch.Tensor
) -> torch.Tensor:
    """Content loss: ``content_weight * sum((current - original) ** 2)``.

    Inputs:
    - content_weight: scalar weight of the content loss.
    - content_current: features of the current image, (1, C_l, H_l, W_l).
    - content_original: features of the content image, same shape.
    """
    return content_weight * (content_current - content_original).pow(2).sum()


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Gram matrices of feature maps.

    Inputs:
    - features: (N, C, H, W).
    - normalize: divide by the number of elements of one map, ``C * H * W``.

    Returns (N, C, C): ``gram[n, i, j] = sum_hw features[n, i, h, w] * features[n, j, h, w]``.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    return gram / (c * h * w) if normalize else gram


def style_loss(
    feats: Sequence[torch.Tensor],
    style_layers: Sequence[int],
    style_targets: Sequence[torch.Tensor],
    style_weights: Sequence[float],
) -> torch.Tensor:
    """Style loss: ``sum_i style_weights[i] * sum((gram(feats[style_layers[i]]) - style_targets[i]) ** 2)``.

    Inputs:
    - feats: the feature maps of every layer, as returned by :func:`extract_features`.
    - style_layers: indices into ``feats`` of the layers to match.
    - style_targets: Gram matrices (N, C_l, C_l) of the style image at those layers (normalised).
    - style_weights: one weight per style layer.
    """
    if not len(style_layers) == len(style_targets) == len(style_weights):
        raise ValueError(
            f"style_layers ({len(style_layers)}), style_targets ({len(style_targets)}) and style_weights "
            f"({len(style_weights)}) must have the same length"
        )
    loss = feats[0].new_zeros(())
    for layer, target, weight in zip(style_layers, style_targets, style_weights, strict=True):
        loss = loss + weight * (gram_matrix(feats[layer]) - target).pow(2).sum()
    return loss


def tv_loss(img: torch.Tensor, tv_weight: float) -> torch.Tensor:
    """Total variation: ``tv_weight`` times the sum, over channels, of the squared differences of all
    vertically and all horizontally adjacent pixels of ``img`` (N, 3, H, W)."""
    vertical = (img[..., 1:, :] - img[..., :-1, :]).pow(2).sum()
    horizontal = (img[..., :, 1:] - img[..., :, :-1]).pow(2).sum()
    return tv_weight * (vertical + horizontal)
