"""Image loading, pre/deprocessing and the image-space regularisers of CS231n.

Tensors are "preprocessed" images: float (N, 3, H, W), normalised per channel with a classifier's mean and
std (a :class:`Normalization`; the module-level functions use :data:`IMAGENET`, CS231n's and torchvision's).
Pixel images are PIL RGB or float in [0, 1].

``load_image`` reads any bit depth and mode as 8-bit RGB: 1-bit, 8- and 16-bit grayscale (scaled, not
clipped), palette, CMYK, transparency composited over white, JPEGs turned upright by their EXIF
orientation. ``preprocess`` refuses, before allocating, an image whose resized size would be extreme
(aspect ratio over ``MAX_ASPECT``, or more than ``MAX_PIXELS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError

from visgrad.errors import UserError, unreadable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_ASPECT = 10.0  # longer side / shorter side
MAX_PIXELS = 4096 * 4096  # after resizing: 16.8 MP, 200 MB as a float tensor, far more in a CNN's activations
_WIDE_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


class ImageError(UserError, ValueError):
    """An image file that is missing, unreadable, too large or oddly shaped, or a folder without images."""


def load_image(path_or_pil: str | Path | Image.Image) -> Image.Image:
    """Open an image as 8-bit PIL RGB, whatever its mode and bit depth (see the module docstring)."""
    if isinstance(path_or_pil, Image.Image):
        return to_rgb(path_or_pil)
    path = Path(path_or_pil).expanduser()
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image file; give an image file (JPEG, PNG, ...)")
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            return to_rgb(img)
    except Image.DecompressionBombError as err:  # PIL's guard against images that would fill the memory
        raise ImageError(f"{path} is too large to read ({err.args[0].split(', could be')[0]}); give a "
                         "smaller image (downscale it first)") from err
    except OSError as err:
        if err.errno is not None:  # permission denied, an I/O error: the file is there, maybe sound
            raise ImageError(unreadable(path, err)) from err
        if path.stat().st_size == 0:
            raise ImageError(f"{path} is empty (0 bytes); give a JPEG/PNG file") from err
        unknown = isinstance(err, UnidentifiedImageError)
        reason = "not an image format PIL knows, or corrupt" if unknown else err
        raise ImageError(f"cannot read {path} as an image ({reason}); give a JPEG/PNG file") from err


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``img``: upright (EXIF orientation), 16-bit and float values scaled to 8 bits
    (PIL's ``convert`` would clip them: a 16-bit image came out nearly white), alpha composited over white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in _WIDE_MODES or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        top = _WIDE_MODES.get(img.mode) or (1.0 if values.max(initial=0) <= 1 else 255.0)
        img = Image.fromarray(np.rint(np.clip(values / top, 0, 1) * 255).astype(np.uint8), "L")
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return img.convert("RGB")


def resized_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) of a ``width`` x ``height`` image after ``preprocess``'s resize to ``size``."""
    if size is None:
        return height, width
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    if width <= height:
        return int(size * height / width), int(size)
    return int(size), int(size * width / height)


def check_image_size(width: int, height: int, size: int | tuple[int, int] | None, name: str) -> None:
    """``ImageError`` if ``name`` (width x height) is too elongated or would be too large after resizing
    to ``size``: checked before any pixel is allocated."""
    aspect = max(width, height) / max(1, min(width, height))
    h, w = resized_size(width, height, size)
    if isinstance(size, int) and aspect > MAX_ASPECT:
        raise ImageError(f"{name} is {width}x{height} pixels, an aspect ratio of {aspect:.0f}:1 (at most "
                         f"{MAX_ASPECT:.0f}:1; at size {size} it would become {w}x{h}); crop it first")
    if h * w > MAX_PIXELS:
        raise ImageError(f"{name} ({width}x{height}) would become {w}x{h} = {h * w / 1e6:.0f} MP at size "
                         f"{size}, more than {MAX_PIXELS / 1e6:.1f} MP; use a smaller size")


def list_images(path_or_folder: str | Path) -> list[Path]:
    """The image files named by a path: the file itself, or a folder's images sorted by name."""
    path = Path(path_or_folder).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        return files
    if not path.exists():
        raise ImageError(f"image file or folder not found: {path}")
    return [path]


def preprocess(
    img: str | Path | Image.Image,
    size: int | tuple[int, int] | None = 224,
    norm: Normalization | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """A PIL image (or path) -> normalised FloatTensor (1, 3, H, W), as CS231n's ``preprocess``.

    ``size``: an int resizes the shorter side to it (aspect kept), ``(H, W)`` resizes exactly, None keeps.
    ``norm``: the classifier's :class:`Normalization` (default :data:`IMAGENET`). An extreme result
    (``check_image_size``) raises ``ImageError`` naming ``name`` (default: the path).
    """
    label = name or (str(img) if isinstance(img, (str, Path)) else "the image")
    img = load_image(img)
    check_image_size(img.width, img.height, size, label)
    if size is not None:
        img = TF.resize(img, list(size) if isinstance(size, (tuple, list)) else size)
    return (norm or IMAGENET).normalize(TF.to_tensor(img)[None])


@dataclass(frozen=True)
class Normalization:
    """How a classifier's inputs are made from pixels p in [0, 1]: x = (p - mean) / std per channel.

    :data:`IMAGENET` (CS231n, torchvision) is the default; EfficientNet-Lite0 uses mean = std = 0.5 (x in
    [-1, 1]). All methods take tensors (..., 3, H, W) on any device and dtype.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as (3, 1, 1) tensors of ``x``'s dtype and device."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return mean, std

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], (..., 3, H, W) -> normalised tensor of the same shape."""
        mean, std = self.stats(pixels)
        return (pixels - mean) / std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (..., 3, H, W) -> pixels (nominally in [0, 1]; not clamped)."""
        mean, std = self.stats(x)
        return x * std + mean

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp a normalised image (..., 3, H, W) so that every pixel lies in the valid range [0, 1]."""
        mean, std = self.stats(x)
        return torch.maximum(torch.minimum(x, (1 - mean) / std), -mean / std)

    def to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (N, 3, H, W) -> uint8 pixels (N, H, W, 3), clamped (for figures and TensorBoard)."""
        pixels = self.unnormalize(x.detach().float()).clamp(0, 1)
        return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()

    def deprocess(self, x: torch.Tensor, rescale: bool = False) -> Image.Image:
        """Inverse of :func:`preprocess`: (1, 3, H, W) or (3, H, W) -> PIL RGB image.

        Pixels are clamped to [0, 1]; ``rescale=True`` instead stretches them to [0, 1] (min-max, CS231n's
        ``deprocess(..., should_rescale=True)``), which shows faint patterns such as perturbations.
        """
        pixels = self.unnormalize(x.detach().float().cpu().reshape(-1, *x.shape[-3:])[0])
        if rescale:
            lo, hi = pixels.min(), pixels.max()
            pixels = (pixels - lo) / (hi - lo).clamp_min(1e-12)
        array = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(array)


IMAGENET = Normalization()
# CS231n's function names, for ImageNet-normalised images.
normalize = IMAGENET.normalize
unnormalize = IMAGENET.unnormalize
clamp_image = IMAGENET.clamp
to_uint8 = IMAGENET.to_uint8
deprocess = IMAGENET.deprocess


def jitter(x: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """Roll an image (..., H, W) by ``ox`` pixels right and ``oy`` pixels down (wrapping around)."""
    return torch.roll(x, shifts=(oy, ox), dims=(-2, -1))


def blur_image(x: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    """Gaussian blur of (N, 3, H, W) with std ``sigma`` pixels (kernel radius 4 sigma, as SciPy's default)."""
    if sigma <= 0:
        return x
    radius = max(1, int(4 * sigma + 0.5))
    radius = min(radius, (min(x.shape[-2:]) - 1) // 2)
    return TF.gaussian_blur(x, kernel_size=2 * radius + 1, sigma=sigma)
