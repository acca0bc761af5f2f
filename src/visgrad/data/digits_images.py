"""scikit-learn's digits as an image-classification dataset (:mod:`visgrad.data.digits`):
``data=digits_images``.

``DigitsImagesDataModule`` serves every digits classifier and encoder: ``python train.py
experiment=digits_classifier`` and ``experiment=adv_train_digits`` (the classifiers of ``visualize.py
classifier=digits`` / ``digits_adv``, RGB), ``experiment=cnn_digits``, ``vit_digits``, ``simclr_digits`` and
``visualize.py task=linear_probe`` (one grey channel, ``data=digits_grey``); :func:`digits_inputs` gives
the tasks the same validation images.
"""

from __future__ import annotations

from visgrad.data.digits import DIGIT_NAMES, DigitsDataModule
from visgrad.data.image_sets import InputBatch
from visgrad.errors import ConfigError
from visgrad.images import Normalization


class DigitsImagesDataModule(DigitsDataModule):
    """The digits split as :class:`~visgrad.data.digits.DigitsDataModule` splits them, served as images with
    ``channels`` channels: batches of (images (B, channels, S, S), the grey digit in every channel, scaled to
    [-1, 1]; labels (B,)). ``model_kwargs()`` gives the classifier's ``class_names`` and ``image_size`` S.

    Args:
        num_val, image_size, batch_size, num_workers, repeat, seed: those of ``DigitsDataModule``.
        channels: 3 (RGB, the default: the classifiers that ``visualize.py``'s image tasks attack) or 1.
    """

    def __init__(self, num_val: int = 300, image_size: int = 28, batch_size: int = 64, num_workers: int = 0,
                 repeat: int = 1, seed: int = 0, channels: int = 3) -> None:
        if channels not in (1, 3):
            raise ConfigError(f"data.channels={channels}: must be 1 (grey) or 3 (RGB)")
        super().__init__(num_val, image_size, batch_size, num_workers, repeat, seed)
        self.channels = channels

    def model_kwargs(self) -> dict:
        return {"class_names": list(DIGIT_NAMES), "image_size": self.image_size}

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        return images.repeat(1, self.channels, 1, 1), labels


def digits_inputs(size: int, limit: int | None, dataset: dict | None, norm: Normalization) -> InputBatch:
    """The first ``limit`` (None: all) validation digits of the split ``dataset`` (``num_val``, ``seed``: as
    the    classifier was trained), as 8-bit images (rounded to multiples of 1/255, as if read from PNG files)
    (N, 3, size, size) normalised with ``norm``, with their labels."""
    module = DigitsImagesDataModule(**{**(dataset or {}), "image_size": size})
    val = module.load()["val"]
    count = len(val.labels) if limit is None else min(limit, len(val.labels))
    pixels = ((val.images[:count].repeat(1, 3, 1, 1) + 1) / 2 * 255).round() / 255
    return InputBatch(norm.normalize(pixels), [f"val {i}" for i in range(count)], val.labels[:count])
