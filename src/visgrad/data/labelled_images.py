"""``LabelledImagesDataModule``: small labelled image sets held in memory, for GANs (digits, MNIST).

Batches are ``(images, labels)``: float32 (B, C, H, W) in [-1, 1] (the range of a tanh generator) and
int64 (B,). Subclasses implement ``load()``. The training order depends only on ``seed`` and the epoch
(a ``DistributedSampler``, which Lightning tells the epoch), so a resumed run replays the order of an
uninterrupted one; ``repeat`` passes over the training images several times per epoch (in one shuffled
order), which gives a 1,500-image set epochs long enough for per-epoch sample grids and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from visgrad.data.datamodule import seeded_loader


@dataclass(frozen=True)
class LabelledImages:
    """``images`` float32 (N, C, H, W) in [-1, 1]; ``labels`` int64 (N,) indexing ``class_names``."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]


class _Repeated(Dataset):
    """``data`` repeated ``times`` times: item i is ``data[i % len(data)]``."""

    def __init__(self, data: LabelledImages, times: int) -> None:
        self.data, self.times = data, times

    def __len__(self) -> int:
        return self.times * len(self.data.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index %= len(self.data.labels)
        return self.data.images[index], self.data.labels[index]


class LabelledImagesDataModule(pl.LightningDataModule):
    """Train/val splits of ``load()``'s images for Lightning; ``model_kwargs()`` gives ``image_shape``."""

    def __init__(self, batch_size: int = 64, num_workers: int = 0, repeat: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.repeat, self.seed = batch_size, num_workers, repeat, seed
        self.splits: dict[str, LabelledImages] = {}

    def load(self) -> dict[str, LabelledImages]:
        """``{"train": ..., "val": ...}``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load()

    def model_kwargs(self) -> dict:
        return {"image_shape": list(self.splits["train"].images.shape[1:])}

    def train_dataloader(self) -> DataLoader:
        return self._loader(_Repeated(self.splits["train"], self.repeat), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(_Repeated(self.splits["val"], 1), shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return seeded_loader(dataset, self.trainer, self.batch_size, shuffle, self.seed, self.num_workers)
