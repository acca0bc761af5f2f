"""CIFAR-10 as image-classification data for ``train.py`` (the ViT, SimCLR and the linear probe, when it is
present; the offline default is the digits, :class:`visgrad.data.digits_images.DigitsImagesDataModule`).

:class:`CIFAR10DataModule` reads CIFAR-10 in torchvision's on-disk format (``ROOT/cifar-10-batches-py``, the
python pickles that ``torchvision.datasets.CIFAR10(ROOT, download=True)`` writes), (N, 3, 32, 32) in
[-1, 1]; read directly (no checksum pass), so nothing downloads and a clear error says what is missing.
Batches are ``(images, labels)`` as :class:`~visgrad.data.labelled_images.LabelledImagesDataModule`'s;
``model_kwargs()`` gives the classifier's ``class_names`` and ``image_size``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from visgrad.data.labelled_images import LabelledImages, LabelledImagesDataModule
from visgrad.errors import UserError

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*CIFAR_TRAIN, "test_batch", "batches.meta")


class _ClassesMixin:
    """``model_kwargs()`` for a classifier: the class names and the (square) image side."""

    splits: dict[str, LabelledImages]

    def model_kwargs(self) -> dict:
        train = self.splits["train"]
        return {"class_names": list(train.class_names), "image_size": int(train.images.shape[-1])}


class CIFAR10DataError(UserError, FileNotFoundError):
    """CIFAR-10 is not where ``data.root`` says."""


def check_cifar10(root: str | Path) -> Path:
    """``root/cifar-10-batches-py`` if it holds every CIFAR-10 file, else ``CIFAR10DataError`` naming the
    missing ones and how to get them."""
    folder = Path(root).expanduser() / CIFAR_FOLDER
    missing = [name for name in CIFAR_FILES if not (folder / name).is_file()]
    if missing:
        raise CIFAR10DataError(
            f"data.root={root}: no CIFAR-10 in torchvision's format (missing {', '.join(missing)} in {folder}"
            '). On a machine with a network run python -c "import torchvision; torchvision.datasets.CIFAR10('
            "'PATH', download=True)\" and pass data.root=PATH; or use the offline digits: data=digits_grey")
    return folder


def _read_batch(path: Path) -> dict:
    with path.open("rb") as handle:
        return pickle.load(handle, encoding="latin1")


def load_cifar10(root: str | Path, train: bool) -> LabelledImages:
    """CIFAR-10's 50,000 training or 10,000 test images under ``root``: float32 (N, 3, 32, 32) in [-1, 1]."""
    folder = check_cifar10(root)
    batches = [_read_batch(folder / name) for name in (CIFAR_TRAIN if train else ("test_batch",))]
    pixels = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
    names = tuple(_read_batch(folder / "batches.meta")["label_names"])
    return LabelledImages(torch.from_numpy(pixels).float() / 127.5 - 1, torch.from_numpy(labels), names)


class CIFAR10DataModule(_ClassesMixin, LabelledImagesDataModule):
    """CIFAR-10's training images (a random ``max_train`` of them, or all) and its first ``num_val`` test
    images as the val split.

    Args:
        root: the folder holding ``cifar-10-batches-py``.
        max_train: keep this many training images, drawn with ``seed`` (None: all 50,000).
        num_val: val images (the first of the 10,000 test images).
        batch_size, num_workers, repeat, seed: see :class:`LabelledImagesDataModule`.
    """

    def __init__(self, root: str, max_train: int | None = None, num_val: int = 10000, batch_size: int = 256,
                 num_workers: int = 0, repeat: int = 1, seed: int = 0) -> None:
        super().__init__(batch_size, num_workers, repeat, seed)
        self.root, self.max_train, self.num_val = root, max_train, num_val

    def prepare_data(self) -> None:
        check_cifar10(self.root)

    def load(self) -> dict[str, LabelledImages]:
        train, test = load_cifar10(self.root, train=True), load_cifar10(self.root, train=False)
        for key, wanted, available in (("max_train", self.max_train, len(train.labels)),
                                       ("num_val", self.num_val, len(test.labels))):
            if wanted is not None and not 1 <= wanted <= available:
                raise ValueError(f"data.{key}={wanted}: CIFAR-10 under {self.root} has {available} such "
                                 f"images; use 1 <= data.{key} <= {available}")
        if self.max_train is not None:
            keep = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(self.seed))
            keep = keep[: self.max_train].sort().values
            train = LabelledImages(train.images[keep], train.labels[keep], train.class_names)
        val = LabelledImages(test.images[: self.num_val], test.labels[: self.num_val], test.class_names)
        return {"train": train, "val": val}
