"""MNIST in torchvision's on-disk format, for the GANs: ``data=mnist data.root=PATH``. Nothing downloads.

``PATH`` is the folder that ``torchvision.datasets.MNIST(PATH, download=True)`` fills on a machine with a
network: ``PATH/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (the uncompressed IDX files;
the ``.gz`` archives beside them are not read). Images become float32 (N, 1, 28, 28) in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch

from visgrad.data.labelled_images import LabelledImages, LabelledImagesDataModule
from visgrad.errors import ConfigError, UserError, not_a_folder, unreadable

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CLASS_NAMES = tuple(str(d) for d in range(10))


class MNISTDataError(UserError, FileNotFoundError):
    """MNIST is not where ``data.root`` says, or one of its files cannot be read."""


def check_mnist(root: str | Path) -> Path:
    """``root`` if it holds MNIST in torchvision's format, else ``MNISTDataError`` naming what is missing
    (or that ``root`` is a file, or a folder stands where a file should be)."""
    raw = Path(root).expanduser() / "MNIST" / "raw"
    problem = not_a_folder(raw.parent.parent) or not_a_folder(raw)
    if problem:
        raise MNISTDataError(f"data.root={root}: {problem}; give the folder that holds MNIST/raw")
    folders = [str(raw / name) for name in RAW_FILES if (raw / name).is_dir()]
    if folders:
        raise MNISTDataError(f"data.root={root}: {', '.join(folders)} should be files (the uncompressed IDX "
                             "files), not folders")
    missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing:
        listed = ", ".join(str(raw / name) for name in missing)
        raise MNISTDataError(
            f"data.root={root}: no MNIST in torchvision's format (missing {listed}"
            '). On a machine with a network run python -c "import torchvision; torchvision.datasets.MNIST('
            "'PATH', download=True)\" and pass data.root=PATH; or use the offline digits: data=digits"
        )
    return Path(root).expanduser()


def _read_idx(path: Path, images: bool) -> torch.Tensor:
    """One IDX file: images (N, 28, 28) uint8 or labels (N,) int64; ``MNISTDataError`` naming the file if it
    cannot be read (permission denied) or is truncated or corrupt."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    try:
        return read_image_file(str(path)) if images else read_label_file(str(path))
    except OSError as err:
        raise MNISTDataError(unreadable(path, err)) from err
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as err:  # torchvision's words
        raise MNISTDataError(f"{path} is not a readable IDX file: it is truncated or corrupt ({err}); "
                             "download MNIST again") from err


def load_mnist(root: str | Path, train: bool) -> LabelledImages:
    """The MNIST training (60,000) or test (10,000) split under ``root`` as images in [-1, 1]."""
    raw = check_mnist(root) / "MNIST" / "raw"
    split = "train" if train else "t10k"
    images = _read_idx(raw / f"{split}-images-idx3-ubyte", images=True)
    labels = _read_idx(raw / f"{split}-labels-idx1-ubyte", images=False)
    if len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise MNISTDataError(f"{raw / f'{split}-images-idx3-ubyte'} holds {tuple(images.shape)} images "
                             f"but {raw / f'{split}-labels-idx1-ubyte'} {len(labels)} labels; MNIST has one "
                             "label per 28x28 image: download it again")
    return LabelledImages(images.unsqueeze(1).float() / 127.5 - 1, labels, CLASS_NAMES)


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
                raise ConfigError(
                    f"data.{key}={wanted}: MNIST under {self.root} has only {available} such "
                    f"images; use data.{key}<={available}"
                )
        if self.max_train is not None:
            keep = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(self.seed))
            keep = keep[: self.max_train].sort().values
            train = LabelledImages(train.images[keep], train.labels[keep], CLASS_NAMES)
        val = LabelledImages(test.images[: self.num_val], test.labels[: self.num_val], CLASS_NAMES)
        return {"train": train, "val": val}
