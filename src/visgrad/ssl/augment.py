"""SimCLR's data augmentations, drawn per image and applied to a whole batch at once on its device.

``Augment(x)`` returns one random view of every image of a normalised batch x (N, C, H, W):

1. a random resized crop (SimCLR's): a region of ``crop_scale`` of the image's area and aspect ratio in
   ``ratio`` (log-uniform), anywhere inside the image, resized back to H x W; optionally flipped left-right
   and rotated by up to ``rotate`` degrees; all one affine resampling (``grid_sample``, bilinear, the
   background value outside the image);
2. with probability ``jitter_p``, colour jitter of strength s = ``jitter``: brightness and contrast factors
   in [1 - 0.8 s, 1 + 0.8 s], saturation in [1 - 0.8 s, 1 + 0.8 s] and a hue rotation by up to 0.2 s turns
   (in YIQ space) for colour images (SimCLR's 0.8 s, 0.8 s, 0.8 s, 0.2 s);
3. with probability ``gray_p``, grey (colour images).

Colour operations work on pixels in [0, 1]: the batch is un-normalised with ``mean`` and ``std`` (scalars or
one per channel: 0.5, 0.5 for images in [-1, 1]), changed, clamped and normalised again. Randomness comes
from the global torch generator (seeded by ``train.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# RGB -> YIQ (NTSC); a hue rotation turns the (I, Q) plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = (0.299, 0.587, 0.114)


def _pair(value: Sequence[float], name: str, low: float, high: float) -> tuple[float, float]:
    a, b = (float(v) for v in value)
    if not low <= a <= b <= high:
        raise ValueError(f"{name} must be a pair low <= high within [{low}, {high}], got {list(value)}")
    return a, b


def _uniform(n: int, low: float, high: float, device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(n, device=device)


class Augment:
    """Random SimCLR views of normalised image batches (see the module docstring).

    Args:
        crop_scale: (min, max) fraction of the image area kept by the crop.
        ratio: (min, max) aspect ratio (width / height) of the crop.
        flip: flip half of the views left-right.
        rotate: rotate by a uniform angle in [-rotate, rotate] degrees.
        jitter: colour-jitter strength s (0: none); jitter_p: its probability per view.
        gray_p: probability of a grey view (colour images).
        mean, std: the batch's normalisation (pixels = x std + mean).
    """

    def __init__(self, crop_scale: Sequence[float] = (0.2, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 flip: bool = True, rotate: float = 0.0, jitter: float = 0.5, jitter_p: float = 0.8,
                 gray_p: float = 0.2, mean: float | Sequence[float] = 0.5,
                 std: float | Sequence[float] = 0.5) -> None:
        self.crop_scale = _pair(crop_scale, "crop_scale", 1e-3, 1.0)
        self.ratio = _pair(ratio, "ratio", 1e-2, 1e2)
        for name, value in (("jitter_p", jitter_p), ("gray_p", gray_p)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if jitter < 0 or rotate < 0:
            raise ValueError(f"jitter and rotate must be >= 0, got jitter={jitter}, rotate={rotate}")
        self.flip, self.rotate, self.jitter = flip, rotate, jitter
        self.jitter_p, self.gray_p = jitter_p, gray_p
        self.mean = torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        """One random view of each image of x (N, C, H, W): (N, C, H, W)."""
        mean, std = self.mean.to(x), self.std.to(x)
        pixels = self.crop(x * std + mean)
        if self.jitter > 0 and self.jitter_p > 0:
            pixels = self.colour(pixels)
        if self.gray_p > 0 and x.shape[1] == 3:
            gray = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.gray_p)
            pixels = torch.where(gray, _luma(pixels).expand_as(pixels), pixels)
        return (pixels.clamp(0, 1) - mean) / std

    def crop(self, pixels: Tensor) -> Tensor:
        """Random resized crops (flipped, rotated) of pixels (N, C, H, W) in [0, 1]; outside the image: 0."""
        n, device = pixels.shape[0], pixels.device
        area = _uniform(n, *self.crop_scale, device)
        log_ratio = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), device)
        # half-sizes in the [-1, 1] coordinates of grid_sample, at most the whole image
        w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
        h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
        cx = (2 * torch.rand(n, device=device) - 1) * (1 - w)
        cy = (2 * torch.rand(n, device=device) - 1) * (1 - h)
        angle = _uniform(n, -self.rotate, self.rotate, device) * math.pi / 180
        sx = torch.where(torch.rand(n, device=device) < 0.5, -w, w) if self.flip else w
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([sx * cos, -h * sin, cx], 1),
                             torch.stack([sx * sin, h * cos, cy], 1)], 1)
        grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
        return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def colour(self, pixels: Tensor) -> Tensor:
        """Colour jitter (applied to each view with probability ``jitter_p``) of pixels (N, C, H, W)."""
        n, device, s = pixels.shape[0], pixels.device, self.jitter
        apply = (torch.rand(n, 1, 1, 1, device=device) < self.jitter_p)
        factor = lambda: _uniform(n, max(0.0, 1 - 0.8 * s), 1 + 0.8 * s, device).view(n, 1, 1, 1)  # noqa: E731
        out = pixels * factor()  # brightness
        mean = _luma(out).mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * factor() + mean).clamp(0, 1)  # contrast
        if pixels.shape[1] == 3:
            gray = _luma(out)
            out = ((out - gray) * factor() + gray).clamp(0, 1)  # saturation
            out = _hue_rotate(out, _uniform(n, -0.2 * s, 0.2 * s, device) * 2 * math.pi)
        return torch.where(apply, out, pixels)


def _luma(pixels: Tensor) -> Tensor:
    """Grey level (N, 1, H, W) of RGB pixels (N, 3, H, W), or the single channel itself."""
    if pixels.shape[1] == 1:
        return pixels
    weights = torch.tensor(_LUMA, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels * weights).sum(dim=1, keepdim=True)


def _hue_rotate(pixels: Tensor, angle: Tensor) -> Tensor:
    """RGB pixels (N, 3, H, W) with their hue turned by ``angle`` (N,) radians (a rotation of YIQ's I, Q)."""
    yiq = _YIQ.to(pixels)
    cos, sin, one, zero = angle.cos(), angle.sin(), torch.ones_like(angle), torch.zeros_like(angle)
    turn = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                        torch.stack([zero, sin, cos], 1)], 1)  # (N, 3, 3)
    matrix = torch.linalg.inv(yiq) @ turn @ yiq
    return torch.einsum("nij,njhw->nihw", matrix, pixels).clamp(0, 1)
