"""MNIST in torchvision's on-disk format, for the GANs: ``data=mnist data.root=PATH``. Nothing downloads.

``PATH`` is the folder that ``torchvision.datasets.MNIST(PATH, download=True)`` fills on a machine with a
network: ``PATH/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (the uncompressed IDX files;
the ``.gz`` archives beside them are not read). Images become float32 (N, 1, 28, 28) in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch

from visgrad.data.labelled_images import LabelledImages, LabelledImagesDataModule

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CLASS_NAMES = tuple(str(d) for d in range(10))


class MNISTDataError(FileNotFoundError):
    """MNIST is not where ``data.root`` says."""


def check_mnist(root: str | Path) -> Path:
    """``root`` if it holds MNIST in torchvision's format, else ``MNISTDataError`` naming what is missing."""
    raw = Path(root).expanduser() / "MNIST" / "raw"
    missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing:
        listed = ", ".join(str(raw / name) for name in missing)
        raise MNISTDataError(
            f"data.root={root}: no MNIST in torchvision's format (missing {listed}"
            '). On a machine with a network run python -c "import torchvision; torchvision.datasets.MNIST('
            "'PATH', download=True)\" and pass data.root=PATH; or use the offline digits: data=digits"
        )
    return Path(root).expanduser()


def load_mnist(root: str | Path, train: bool) -> LabelledImages:
    """The MNIST training (60,000) or test (10,000) split under ``root`` as images in [-1, 1]."""
    from torchvision.datasets import MNIST

    data = MNIST(str(check_mnist(root)), train=train, download=False)
    images = data.data.unsqueeze(1).float() / 127.5 - 1
    return LabelledImages(images, data.targets.long(), CLASS_NAMES)


class MNISTDataModule(LabelledImagesDataModule):
    """MNIST's training images (a random ``max_train`` of them, or all) and its first ``num_val`` test
    images as the val split.

    Args:
        root: the folder holding ``MNIST/raw`` (see the module docstring).
        max_train: keep this many training images, drawn with ``seed`` (None: all 60,000).
        num_val: val images (the first of the 10,000 test images).
        batch_size, num_workers, repeat, seed: see :class:`LabelledImagesDataModule`.
    """

    def __init__(
        self,
        root: str,
        max_train: int | None = None,
        num_val: int = 1000,
        batch_size: int = 128,
        num_workers: int = 0,
        repeat: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, repeat, seed)
        self.root, self.max_train, self.num_val = root, max_train, num_val

    def prepare_data(self) -> None:
        check_mnist(self.root)

    def load(self) -> dict[str, LabelledImages]:
        train, test = load_mnist(self.root, train=True), load_mnist(self.root, train=False)
        for key, wanted, available in (
            ("max_train", self.max_train, len(train.labels)),
            ("num_val", self.num_val, len(test.labels)),
        ):
            if wanted is not None and wanted > available:
                raise ValueError(
                    f"data.{key}={wanted}: MNIST under {self.root} has only {available} such "
                    f"images; use data.{key}<={available}"
                )
        if self.max_train is not None:
            keep = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(self.seed))
            keep = keep[: self.max_train].sort().values
            train = LabelledImages(train.images[keep], train.labels[keep], CLASS_NAMES)
        val = LabelledImages(test.images[: self.num_val], test.labels[: self.num_val], CLASS_NAMES)
        return {"train": train, "val": val}
