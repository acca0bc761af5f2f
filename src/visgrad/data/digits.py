"""scikit-learn's handwritten digits as 28x28 MNIST look-alikes: the offline default of the GANs.

``sklearn.datasets.load_digits`` ships with scikit-learn (nothing downloads): 1,797 real handwritten
digits, the test set of UCI's "Optical Recognition of Handwritten Digits" (13 writers; each 32x32 bitmap
counted in 4x4 blocks into 8x8 images of 17 grey levels, 0..16), about 180 of each digit. Each 8x8 image
is upsampled bilinearly to 20x20 and centred on a 28x28 black canvas (MNIST's layout: a 20x20 digit
with a 4-pixel border), then scaled to [-1, 1]. They are blurrier than MNIST (64 measured pixels), but
real handwriting, and few enough for a GAN to learn in minutes on a CPU. A fixed random split (``seed``)
keeps ``num_val`` images for validation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visgrad.data.labelled_images import LabelledImages, LabelledImagesDataModule
from visgrad.errors import ConfigError

NUM_IMAGES = 1797
DIGIT_NAMES = tuple(str(d) for d in range(10))


def load_digits_28(size: int = 28, digit_size: int = 20) -> LabelledImages:
    """All 1,797 digits as float32 (1797, 1, size, size) in [-1, 1] (the digit ``digit_size`` pixels wide,
    centred) with their labels."""
    from sklearn.datasets import load_digits

    if not 8 <= digit_size <= size:
        raise ValueError(f"digit_size must be in [8, size={size}], got {digit_size}")
    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().unsqueeze(1) / 16  # (N, 1, 8, 8) in [0, 1]
    pixels = F.interpolate(pixels, size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    border = (size - digit_size) // 2
    pixels = F.pad(pixels, (border, size - digit_size - border) * 2)
    return LabelledImages(pixels.clamp(0, 1) * 2 - 1, torch.from_numpy(digits.target).long(), DIGIT_NAMES)


class DigitsDataModule(LabelledImagesDataModule):
    """The upsampled scikit-learn digits, split into ``1797 - num_val`` training and ``num_val`` val images.

    Args:
        num_val: validation images (held out of GAN and classifier training; the real-data reference
            of the sample-quality metrics).
        image_size: canvas size (28 as MNIST; 32 for a DCGAN at 32x32).
        batch_size, num_workers, repeat, seed: see :class:`LabelledImagesDataModule` (``seed`` also draws
            the split).
    """

    def __init__(
        self,
        num_val: int = 300,
        image_size: int = 28,
        batch_size: int = 64,
        num_workers: int = 0,
        repeat: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, repeat, seed)
        if not 1 <= num_val < NUM_IMAGES:
            raise ConfigError(f"data.num_val={num_val}: must be in [1, {NUM_IMAGES - 1}]")
        self.num_val, self.image_size = num_val, image_size

    def load(self) -> dict[str, LabelledImages]:
        data = load_digits_28(self.image_size, digit_size=round(self.image_size * 20 / 28))
        order = torch.randperm(NUM_IMAGES, generator=torch.Generator().manual_seed(self.seed))
        picks = {"train": order[self.num_val :], "val": order[: self.num_val]}
        return {
            split: LabelledImages(data.images[idx], data.labels[idx], data.class_names)
            for split, idx in picks.items()
        }
