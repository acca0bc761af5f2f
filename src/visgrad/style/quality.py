"""How well a style transfer, texture or feature inversion worked, as numbers (lower / higher is better).

- :func:`loss_ratios`: the final style loss relative to the style loss of a reference image (the content
  image itself: "how much more like the style than the photo is"), and the final content loss relative to
  that of the style image ("how much more like the photo than the painting is"). Both are ratios of the
  same objective's terms, so the loss weights cancel: 1.0 means no progress over the reference, 0 a
  perfect match. When there is no content (texture) or no style (inversion) image, the start image is the
  reference.
- :func:`reconstruction_scores`: PSNR (dB) and SSIM of a reconstruction against the original pixels
  (scikit-image's metrics), for feature inversion.
"""

from __future__ import annotations

import numpy as np
import torch

from visgrad.style.multiscale import resize_image
from visgrad.style.objective import StyleObjective


@torch.no_grad()
def loss_ratios(
    objective: StyleObjective,
    result: torch.Tensor,
    content: torch.Tensor | None,
    styles: list[torch.Tensor],
    start: torch.Tensor,
) -> dict[str, float]:
    """``{"quality/style_ratio", "quality/content_ratio"}`` of ``result`` (1, 3, H, W) under ``objective``.

    - style_ratio = style(result) / style(content), or / style(start) without a content image;
    - content_ratio = content(result) / content(first style image resized to H x W), or / content(start)
      without a style image.
    ``start`` (the first image of the optimisation, any size) is resized to H x W.
    A term the objective does not have (zero weight) gives no entry.
    """
    final = objective(result)
    shape = tuple(result.shape[-2:])
    start = resize_image(start, shape)
    ratios = {}
    if objective.style_layers:
        reference = content if content is not None else start
        ratios["quality/style_ratio"] = _ratio(final["style"], objective(reference)["style"])
    if objective.content_target is not None:
        reference = resize_image(styles[0], shape) if styles else start
        ratios["quality/content_ratio"] = _ratio(final["content"], objective(reference)["content"])
    return ratios


def _ratio(value: torch.Tensor, reference: torch.Tensor) -> float:
    return value.item() / max(reference.item(), 1e-30)


def reconstruction_scores(result: torch.Tensor, original: torch.Tensor) -> tuple[float, float]:
    """PSNR (dB) and SSIM of ``result`` against ``original``, pixels (3, H, W) in [0, 1] (same shape)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, b = (np.asarray(x.permute(1, 2, 0).double().cpu()) for x in (original, result))
    psnr = peak_signal_noise_ratio(a, b, data_range=1.0)
    ssim = structural_similarity(a, b, data_range=1.0, channel_axis=-1)
    return float(psnr), float(ssim)
