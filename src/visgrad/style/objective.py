"""The style-transfer objective with precomputed targets, and the pixel optimiser (Adam or L-BFGS).

The objective runs the feature network only up to the deepest layer it needs, computes the content
features and the (blended) style Gram matrices once, and returns the loss terms as tensors, so an
optimisation step costs one forward and backward pass plus a few Gram matrices, with no host syncs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from visgrad.images import IMAGENET, Normalization
from visgrad.style.losses import content_loss, extract_features, gram_matrix, tv_loss

Losses = dict[str, torch.Tensor]
OPTIMIZERS = ("adam", "lbfgs")


class GramLoss(torch.autograd.Function):
    """``weight * sum((gram_matrix(features) - target) ** 2)`` with a one-GEMM backward.

    Autograd of ``F @ F.T`` spends two matrix products on the backward (one per operand) plus one on the
    forward; with ``D = G - T`` the gradient is ``dF = 2 * weight * (D + D^T) @ F / (C * H * W)``, one
    product that reuses the forward's ``D``. Inputs: features (N, C, H, W), target (N, C, C), weight
    (scalar tensor). Only ``features`` gets a gradient.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        flat = features.reshape(n, c, h * w)
        diff = torch.baddbmm(target, flat, flat.transpose(1, 2), beta=-1.0, alpha=1.0 / (c * h * w))
        ctx.save_for_backward(flat, diff, weight)
        ctx.shape = features.shape
        return weight * diff.pow(2).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        flat, diff, weight = ctx.saved_tensors
        n, c, h, w = ctx.shape
        scale = grad * weight * (2.0 / (c * h * w))
        return torch.bmm((diff + diff.transpose(1, 2)) * scale, flat).reshape(ctx.shape), None, None


class TVLoss(torch.autograd.Function):
    """``weight * tv_loss(img, 1)`` with a hand-written backward (a step's TV term in 6 passes over the image
    instead of autograd's ~14).

    With ``dv = img[..., 1:, :] - img[..., :-1, :]`` and ``dh = img[..., 1:] - img[..., :-1]`` the gradient
    is ``2 * weight * (dv scattered +1 below / -1 above, dh +1 right / -1 left)``. Inputs: img (N, C, H, W),
    weight (a number or a scalar tensor, not differentiated); only ``img`` gets a gradient.
    """

    @staticmethod
    def forward(ctx, img: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
        dv = img[..., 1:, :] - img[..., :-1, :]
        dh = img[..., :, 1:] - img[..., :, :-1]
        ctx.save_for_backward(dv, dh)
        ctx.weight = weight
        return weight * (torch.dot(dv.flatten(), dv.flatten()) + torch.dot(dh.flatten(), dh.flatten()))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        dv, dh = ctx.saved_tensors
        scale = 2 * grad * ctx.weight
        dv, dh = dv * scale, dh * scale
        out = dv.new_zeros(*dv.shape[:-2], dv.shape[-2] + 1, dv.shape[-1])
        out[..., 1:, :] += dv
        out[..., :-1, :] -= dv
        out[..., :, 1:] += dh
        out[..., :, :-1] -= dh
        return out, None


@dataclass
class StyleObjective:
    """``objective(img) -> {"content", "style", "tv", "total"}`` (scalar tensors) for images (1, 3, H, W)."""

    net: nn.Sequential
    content_layer: int | None
    content_weight: float | torch.Tensor
    content_target: torch.Tensor | None
    style_layers: tuple[int, ...]
    style_weights: tuple[torch.Tensor, ...]
    style_targets: list[torch.Tensor]
    tv_weight: float | torch.Tensor | None  # None: no TV term

    def __call__(self, img: torch.Tensor) -> Losses:
        feats = extract_features(img, self.net)
        zero = img.new_zeros(())
        content = (
            content_loss(self.content_weight, feats[self.content_layer], self.content_target)
            if self.content_target is not None
            else zero
        )
        style = zero
        for layer, target, weight in zip(
            self.style_layers, self.style_targets, self.style_weights, strict=True
        ):
            style = style + GramLoss.apply(feats[layer], target, weight)
        tv = TVLoss.apply(img, self.tv_weight) if self.tv_weight is not None else zero
        return {"content": content, "style": style, "tv": tv, "total": content + style + tv}


def check_layers(cnn: nn.Sequential, layers: Mapping[str, Sequence[int]]) -> None:
    """Raise a ValueError when a layer index is not a module of ``cnn``; ``layers`` maps a name for the
    message (``content_layer``, ``style_layers``) to its indices."""
    for key, indices in layers.items():
        for index in indices:
            if not 0 <= index < len(cnn):
                modules = ", ".join(f"{i} {type(m).__name__}" for i, m in enumerate(cnn))
                raise ValueError(
                    f"{key} contains layer {index}, but the feature network has modules "
                    f"0..{len(cnn) - 1}: {modules}"
                )


def check_weights(
    style_layers: Sequence[int],
    style_weights: Sequence[float],
    blend: Sequence[float] | None,
    num_styles: int,
) -> None:
    """Raise a ValueError naming the argument unless there is one style weight per style layer and
    ``blend`` (None: equal) holds one non-negative weight per style image, not all zero."""
    if len(style_layers) != len(style_weights):
        raise ValueError(
            f"style_layers={list(style_layers)} has {len(style_layers)} entries but "
            f"style_weights={list(style_weights)} has {len(style_weights)}; give one weight per layer"
        )
    blend = [1.0] * num_styles if blend is None else list(blend)
    if len(blend) != num_styles or any(b < 0 for b in blend) or (num_styles and sum(blend) <= 0):
        raise ValueError(
            f"blend={blend} must hold one non-negative weight per style image ({num_styles}), not all zero"
        )


def build_objective(
    cnn: nn.Sequential,
    content: torch.Tensor | None,
    styles: Sequence[torch.Tensor],
    content_layer: int,
    content_weight: float,
    style_layers: Sequence[int],
    style_weights: Sequence[float],
    tv_weight: float,
    blend: Sequence[float] | None = None,
    normalize_weights: bool = False,
) -> StyleObjective:
    """Precompute the targets of the style-transfer loss.

    Inputs:
    - cnn: sequential feature network (see :func:`extract_features`); only modules up to the deepest used
      layer are kept.
    - content: preprocessed content image (1, 3, H, W), or None when ``content_weight`` is 0.
    - styles: preprocessed style images (1, 3, H_s, W_s), any sizes; empty when every style weight is 0.
    - content_layer, content_weight, style_layers, style_weights, tv_weight: as CS231n's ``style_transfer``.
    - blend: one non-negative weight per style image (None: equal). The Gram targets are blended,
      ``T_l = sum_s b_s G_s,l / sum_s b_s``, which has the same gradient as the b-weighted sum of the
      separate style losses (they differ by a constant).
    - normalize_weights: divide the content weight by ``||content features||^2``, each style weight by
      ``||T_l||^2`` and the TV weight by the TV of the content image (else the first style image), so that
      weights are relative and comparable across networks, layers and image sizes (CS231n: False).
    """
    check_weights(style_layers, style_weights, blend, len(styles))
    used = [(layer, w) for layer, w in zip(style_layers, style_weights, strict=True) if w != 0]
    if used and not styles:
        raise ValueError("non-zero style_weights need a style image (styles is empty)")
    if content_weight != 0 and content is None:
        raise ValueError("a non-zero content_weight needs a content image (content is None)")
    blend = [1.0] * len(styles) if blend is None else list(blend)
    deepest = max([content_layer] * (content_weight != 0) + [layer for layer, _ in used], default=0)
    net = cnn[: deepest + 1]

    with torch.no_grad():
        content_target = extract_features(content, net)[content_layer] if content_weight != 0 else None
        style_targets = []
        if used:
            grams = [
                [gram_matrix(f[layer]) for layer, _ in used]
                for f in (extract_features(s, net) for s in styles)
            ]
            total = sum(blend)
            style_targets = [
                sum(b * g[i] for b, g in zip(blend, grams, strict=True)) / total for i in range(len(used))
            ]
    weights = [w for _, w in used]
    use_tv = tv_weight != 0
    if normalize_weights:
        if content_target is not None:
            content_weight = content_weight / content_target.pow(2).sum().clamp_min(1e-12)
        weights = [w / t.pow(2).sum().clamp_min(1e-12) for w, t in zip(weights, style_targets, strict=True)]
        reference = content if content is not None else (styles[0] if styles else None)
        if use_tv and reference is not None:
            tv_weight = tv_weight / tv_loss(reference, 1.0).clamp_min(1e-12)
    weights = [torch.as_tensor(w, dtype=styles[0].dtype, device=styles[0].device) for w in weights]
    return StyleObjective(
        net=net,
        content_layer=content_layer if content_target is not None else None,
        content_weight=content_weight,
        content_target=content_target,
        style_layers=tuple(layer for layer, _ in used),
        style_weights=tuple(weights),
        style_targets=style_targets,
        tv_weight=tv_weight if use_tv else None,
    )


def pixel_bounds(like: torch.Tensor, norm: Normalization = IMAGENET) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds (1, 3, 1, 1) of images normalised with ``norm`` whose pixels lie in [0, 1]."""
    mean, std = norm.stats(like)
    return (-mean / std)[None], ((1 - mean) / std)[None]


def optimize_image(
    img: torch.Tensor,
    objective: Callable[[torch.Tensor], Losses],
    optimizer: str = "adam",
    steps: int = 200,
    lr: float = 3.0,
    decayed_lr: float = 0.1,
    decay_lr_at: int = 180,
    callback: Callable[[int, torch.Tensor, Losses], None] | None = None,
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Optimise the pixels of ``img`` (1, 3, H, W) to minimise ``objective(img)["total"]``.

    ``optimizer="adam"`` follows CS231n: Adam at ``lr`` until step ``decay_lr_at``, then ``decayed_lr``.
    ``optimizer="lbfgs"``: L-BFGS with strong-Wolfe line search, one iteration per step. After every step
    the pixels are clamped to the valid range ``bounds`` (default: :func:`pixel_bounds` of ImageNet-normalised
    images). ``callback(step, img, losses)`` sees the losses (detached tensors) of the image before step
    ``step``'s update. Returns the optimised image (detached).
    """
    lo, hi = pixel_bounds(img) if bounds is None else bounds
    if bool((lo == lo.flatten()[0]).all() and (hi == hi.flatten()[0]).all()):
        lo, hi = lo.flatten()[0].item(), hi.flatten()[0].item()  # one bound for all channels: faster clamp
    img = img.detach().clone().clamp_(lo, hi).requires_grad_(True)
    if optimizer == "adam":
        opt = torch.optim.Adam([img], lr=lr, fused=img.device.type in ("cpu", "cuda"))
        schedule = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[decay_lr_at], gamma=decayed_lr / lr)
    elif optimizer == "lbfgs":
        opt = torch.optim.LBFGS([img], lr=1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
        schedule = None
    else:
        raise ValueError(f"optimizer={optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    losses: Losses = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = objective(img)
        terms["total"].backward()
        if not losses:  # keep the losses of the first evaluation of this step
            losses.update({k: v.detach() for k, v in terms.items()})
        return terms["total"]

    for step in range(steps):
        losses.clear()
        opt.step(closure)
        if schedule is not None:
            schedule.step()
        with torch.no_grad():
            img.clamp_(lo, hi)
        if callback is not None:
            callback(step, img, losses)
    return img.detach()
