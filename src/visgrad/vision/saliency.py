"""Saliency maps: how much each pixel moves the score of a class (Simonyan et al., 2014), two less
noisy relatives, SmoothGrad (Smilkov et al., 2017) and Integrated Gradients (Sundararajan et al., 2017), and
Input x Gradient (Shrikumar et al., 2016).

The gradient maps reduce the input gradient (N, 3, H, W) to (N, H, W) by the maximum absolute value over
the colour channels, as CS231n does (:func:`max_abs`); their signed versions sum over the channels
(:func:`channel_sum`), as Input x Gradient does. ``task=saliency`` runs them through the registry of
:mod:`visgrad.vision.attribution`; the pointing game and the mass in mask score maps against object masks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision.transforms.functional as TF
from torch import nn

from visgrad.images import IMAGENET, Normalization

IG_BASELINES = ("black", "mean", "blur")


def max_abs(attribution: torch.Tensor) -> torch.Tensor:
    """CS231n's reduction of an attribution (N, C, H, W) to a map (N, H, W): the max over channels of |.|."""
    return attribution.abs().amax(dim=1)


def channel_sum(attribution: torch.Tensor) -> torch.Tensor:
    """The signed reduction of an attribution (N, C, H, W) to a map (N, H, W): the sum over channels."""
    return attribution.sum(dim=1)


def score_gradient(X: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Gradient of the unnormalised class scores ``model(X)[i, y[i]]`` w.r.t. the images.

    Inputs: X (N, 3, H, W) images, y (N,) LongTensor of classes, model in eval mode.
    Returns: (N, 3, H, W). Samples do not interact (eval mode), so summing the scores is exact.
    """
    X = X.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = model(X).gather(1, y.view(-1, 1)).squeeze(1)
        (grad,) = torch.autograd.grad(scores.sum(), X)
    return grad


def compute_saliency_maps(X: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Vanilla saliency, CS231n's ``compute_saliency_maps``.

    Inputs: X (N, 3, H, W) preprocessed images, y (N,) LongTensor labels, model (a pretrained CNN).
    Returns: saliency (N, H, W) = max over channels of |d score_y / d X|.
    """
    return max_abs(score_gradient(X, y, model))


def input_x_gradient_saliency(X: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Input x Gradient: the images times the gradient of the class score, summed over channels (signed).

    Inputs: X (N, 3, H, W) in the model's input normalisation, y (N,), model. Returns (N, H, W).
    """
    return channel_sum(X * score_gradient(X, y, model))


def smoothgrad_saliency(
    X: torch.Tensor,
    y: torch.Tensor,
    model: nn.Module,
    num_samples: int = 25,
    noise_level: float = 0.15,
    generator: torch.Generator | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] = max_abs,
) -> torch.Tensor:
    """SmoothGrad: the vanilla map averaged over ``num_samples`` noisy copies of each image.

    The noise is Gaussian with std ``noise_level * (max - min)`` of each image; ``reduce`` turns each
    gradient (N, 3, H, W) into a map (:func:`max_abs`, or :func:`channel_sum` for the signed map).
    Returns (N, H, W).
    """
    span = (X.amax(dim=(1, 2, 3), keepdim=True) - X.amin(dim=(1, 2, 3), keepdim=True)) * noise_level
    total = torch.zeros(X.shape[0], *X.shape[2:], dtype=X.dtype, device=X.device)
    for _ in range(num_samples):
        noise = torch.randn(X.shape, generator=generator, dtype=X.dtype, device="cpu").to(X.device)
        total += reduce(score_gradient(X + span * noise, y, model))
    return total / num_samples


def ig_baseline(X: torch.Tensor, kind: str = "black", norm: Normalization = IMAGENET) -> torch.Tensor:
    """The reference image of Integrated Gradients for a batch X (N, 3, H, W) normalised with ``norm``.

    ``black`` (all pixels 0, the usual choice), ``mean`` (the normalisation's mean colour) or ``blur`` (X
    blurred with sigma = H / 8, which keeps the colours but removes the shapes; Sturmfels et al., 2020).
    """
    if kind == "black":
        return norm.normalize(torch.zeros_like(X))
    if kind == "mean":
        return torch.zeros_like(X)
    if kind == "blur":
        sigma = X.shape[-2] / 8
        return TF.gaussian_blur(X, kernel_size=2 * int(2 * sigma) + 1, sigma=sigma)
    raise ValueError(f"unknown Integrated Gradients baseline kind={kind!r}; choose {', '.join(IG_BASELINES)}")


def integrated_gradients_saliency(
    X: torch.Tensor,
    y: torch.Tensor,
    model: nn.Module,
    steps: int = 32,
    baseline: torch.Tensor | str = "black",
    norm: Normalization = IMAGENET,
    reduce: Callable[[torch.Tensor], torch.Tensor] = max_abs,
) -> torch.Tensor:
    """Integrated Gradients: (X - baseline) times the mean gradient along the straight path to X.

    The path integral uses the midpoint rule with ``steps`` points; ``baseline`` is an image like X or a
    kind for :func:`ig_baseline` (with the images' ``norm``).
    Returns (N, H, W) = ``reduce`` of the attribution (N, 3, H, W): max over channels of its absolute value
    (:func:`max_abs`), or :func:`channel_sum` for the signed map.
    """
    if isinstance(baseline, str):
        baseline = ig_baseline(X, baseline, norm)
    total = torch.zeros_like(X)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += score_gradient(baseline + alpha * (X - baseline), y, model)
    return reduce((X - baseline) * total / steps)


def pointing_game(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, whether the saliency peak lies inside the object mask. (N, H, W), (N, H, W) -> (N,) bool."""
    peak = saliency.flatten(1).argmax(dim=1)
    return masks.flatten(1).gather(1, peak[:, None]).squeeze(1).bool()


def mass_in_mask(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, the share of total saliency that falls inside the mask. Returns (N,) in [0, 1].

    A uniform-random map has expected value equal to the mask's area fraction (the random baseline).
    """
    flat = saliency.flatten(1).clamp_min(0)
    inside = (flat * masks.flatten(1).to(flat.dtype)).sum(dim=1)
    return inside / flat.sum(dim=1).clamp_min(1e-12)
