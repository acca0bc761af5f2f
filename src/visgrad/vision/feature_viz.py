"""Feature visualization as in Olah, Mordvintsev & Schubert, "Feature Visualization" (Distill, 2017) and
its libraries Lucid (TensorFlow) and Lucent (PyTorch): optimise an image for a class logit in a
*decorrelated* parameterisation, under random transformations, with Adam.

- :class:`FourierImage`: the image is the inverse real FFT of a learned spectrum whose frequencies are
  scaled by 1/f (``decay_power``), so every frequency learns at the rate natural images have energy in it;
  gradient steps no longer pile into high-frequency noise.
- :func:`decorrelate_colors`: the three channels are coordinates along the principal axes of ImageNet's
  colour distribution (Lucid's SVD square root of the colour covariance); one channel is luminance.
- :class:`ImageParam`: spectrum -> decorrelated colours -> RGB -> sigmoid, pixels (N, 3, H, W) in (0, 1).
- :func:`random_transforms`: Lucid's ``standard_transforms`` (pad 12 with grey, jitter 8, scale 0.9-1.1,
  rotate -10..10 degrees, jitter 4), differentiable, drawn from a ``torch.Generator``.
- :func:`fourier_class_visualization`: the loop (Adam on the spectrum, maximise the target logit of the
  transformed image mapped into the classifier's own input normalisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.vision.class_viz import ClassVisualization

# Lucid's square root (U sqrt(S) of the SVD) of the ImageNet RGB covariance; columns are orthogonal, the
# first is luminance. Normalised so that the largest column has unit norm, as in Lucid.
_COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)
COLOR_CORRELATION = _COLOR_CORRELATION_SVD_SQRT / _COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()

# Lucid's transformation robustness: angles -10..10 plus five extra zeros, scales 0.9..1.1 in steps of 0.02.
ROTATIONS = tuple(range(-10, 11)) + (0,) * 5
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))


def decorrelate_colors(x: torch.Tensor) -> torch.Tensor:
    """Decorrelated colour coordinates (N, 3, H, W) -> RGB coordinates (N, 3, H, W): ``rgb = C @ x`` per
    pixel with C = :data:`COLOR_CORRELATION`, so white noise in ``x`` has the colour covariance C C^T."""
    matrix = COLOR_CORRELATION.to(dtype=x.dtype, device=x.device)
    return torch.einsum("ij,njhw->nihw", matrix, x)


def correlate_colors(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`decorrelate_colors`: RGB coordinates (N, 3, H, W) -> decorrelated (N, 3, H, W)."""
    inverse = torch.linalg.inv(COLOR_CORRELATION).to(dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("ij,njhw->nihw", inverse, rgb)


def rfft2d_freqs(height: int, width: int) -> torch.Tensor:
    """Frequency magnitude (cycles per pixel) of each ``rfft2`` coefficient: (height, width // 2 + 1)."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FourierImage(nn.Module):
    """An image (batch, channels, H, W) parameterised by its scaled 2-D real spectrum (Lucid's ``fft_image``).

    ``spectrum`` (batch, channels, H, W // 2 + 1, 2) holds real and imaginary parts; the image is
    ``irfft2(spectrum * scale, norm="ortho") / 4`` with ``scale = 1 / max(f, 1 / max(H, W)) ** decay_power``.
    The orthonormal inverse keeps step sizes comparable to pixel space; 4 is Lucid's constant that keeps
    the initial image away from the sigmoid's saturation.
    """

    MAGIC = 4.0

    def __init__(self, height: int, width: int, batch: int = 1, channels: int = 3, sd: float = 0.01,
                 decay_power: float = 1.0, generator: torch.Generator | None = None):
        super().__init__()
        if height < 2 or width < 2:
            raise ValueError(f"FourierImage needs at least 2x2 pixels, got {height}x{width}")
        self.size = (height, width)
        freqs = rfft2d_freqs(height, width)
        scale = 1.0 / freqs.clamp_min(1.0 / max(height, width)) ** decay_power
        self.register_buffer("scale", scale.float()[None, None, :, :, None])
        shape = (batch, channels, *freqs.shape, 2)
        self.spectrum = nn.Parameter(torch.randn(shape, generator=generator) * sd)

    def forward(self) -> torch.Tensor:
        """The image (batch, channels, H, W), unbounded."""
        spectrum = torch.view_as_complex((self.spectrum * self.scale).contiguous())
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / self.MAGIC


class ImageParam(nn.Module):
    """Pixels (batch, 3, H, W) in (0, 1): Fourier spectrum -> :func:`decorrelate_colors` -> sigmoid."""

    def __init__(self, height: int, width: int, batch: int = 1, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        self.fourier = FourierImage(height, width, batch, 3, sd, decay_power, generator)
        self.decorrelate = decorrelate

    def forward(self) -> torch.Tensor:
        image = self.fourier()
        if self.decorrelate:
            image = decorrelate_colors(image)
        return torch.sigmoid(image)


def _choice(options: tuple, generator: torch.Generator | None):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def _random_crop(x: torch.Tensor, d: int, generator: torch.Generator | None) -> torch.Tensor:
    """Lucid's ``jitter(d)``: a random (H - d, W - d) crop of (N, C, H, W)."""
    dy, dx = (int(v) for v in torch.randint(d, (2,), generator=generator))
    height, width = x.shape[-2:]
    return x[..., dy : dy + height - d, dx : dx + width - d]


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate (N, C, H, W) about its centre (bilinear; border pixels extend into the uncovered corners)."""
    if degrees == 0:
        return x
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_transforms(pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lucid's ``standard_transforms`` on pixels (N, 3, H, W) -> (N, 3, H', W'), differentiable: pad by 12
    with grey 0.5, random crop by up to 8 pixels, scale by one of :data:`SCALES`, rotate by one of
    :data:`ROTATIONS` degrees, random crop by up to 4: H' = round((H + 16) * scale) - 4."""
    x = F.pad(pixels, (12, 12, 12, 12), value=0.5)
    x = _random_crop(x, 8, generator)
    scale = _choice(SCALES, generator)
    if scale != 1:
        size = [max(1, round(scale * s)) for s in x.shape[-2:]]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    x = _rotate(x, _choice(ROTATIONS, generator))
    return _random_crop(x, 4, generator)


def fourier_class_visualization(
    target_y: int,
    model: nn.Module,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    image_size: int = 224,
    input_size: int | None = None,
    num_iterations: int = 256,
    learning_rate: float = 0.05,
    decay_power: float = 1.0,
    decorrelate: bool = True,
    transforms: bool = True,
    show_every: int = 64,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> ClassVisualization:
    """Maximise the logit of class ``target_y`` over a :class:`ImageParam` image with Adam (Lucid's recipe).

    ``model`` maps normalised images (N, 3, H, W) to logits (N, C); ``normalize`` maps pixels in [0, 1]
    to the model's input normalisation. Each step applies :func:`random_transforms` (if ``transforms``)
    to the pixels, so the image must keep the class under shifts, scales and rotations, and resizes them to
    ``input_size`` (if given; Lucent optimises 128-pixel images seen by the network at 224).
    Returns pixels in (0, 1): ``image`` (1, 3, image_size, image_size), snapshots every ``show_every``
    iterations (and at 0 and the end), per-step target score and probability of the transformed image.
    ``progress(iteration)`` is called after each iteration.
    """
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # a fresh random start, like create_class_visualization without a seed
    else:
        generator.manual_seed(seed)
    param = ImageParam(image_size, image_size, decay_power=decay_power, decorrelate=decorrelate,
                       generator=generator).to(device)
    optimizer = torch.optim.Adam(param.parameters(), lr=learning_rate)
    with torch.no_grad():
        result = ClassVisualization(image=param())
    result.snapshots.append((0, result.image.clone()))
    for t in range(num_iterations):
        with torch.enable_grad():
            pixels = param()
            if transforms:
                pixels = random_transforms(pixels, generator)
            if input_size is not None:
                pixels = F.interpolate(pixels, size=(input_size, input_size), mode="bilinear",
                                       align_corners=False)
            logits = model(normalize(pixels))
            optimizer.zero_grad(set_to_none=True)
            (-logits[0, target_y]).backward()
        optimizer.step()
        result.scores.append(logits[0, target_y].item())
        result.probs.append(logits[0].detach().softmax(dim=0)[target_y].item())
        if (t + 1) % show_every == 0 or t == num_iterations - 1:
            with torch.no_grad():
                result.snapshots.append((t + 1, param()))
        if progress is not None:
            progress(t + 1)
    with torch.no_grad():
        result.image = param()
    return result
