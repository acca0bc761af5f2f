"""The `shapes` images as an image-classification dataset: class = kind of the largest object.

``ShapesImagesDataModule`` serves ``python train.py experiment=shapes_classifier`` (the offline classifier
of ``visualize.py classifier=shapes``); it generates the dataset into ``root`` if needed
(:func:`visgrad.data.shapes.ensure_shapes`).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from visgrad.data.shapes import ensure_shapes, load_shapes_images
from visgrad.images import normalize


class ShapesImagesDataModule(pl.LightningDataModule):
    """`shapes` images and labels for classification.

    Batches are (images FloatTensor (B, 3, S, S) normalised as ImageNet inputs
    (:func:`visgrad.images.normalize`), labels LongTensor (B,)); training batches are randomly flipped
    left-right (which keeps every shape's kind). ``model_kwargs()`` gives the classifier's ``class_names``
    and ``image_size`` S.

    Args:
        root: the dataset folder.
        dataset: :func:`~visgrad.data.shapes.ensure_shapes` parameters (``num_train``, ``num_val``, ``seed``,
            ``image_size``).
        batch_size: training batch size (validation: 256).
        num_workers: data loader workers.
    """

    def __init__(self, root: str, dataset: dict | None = None, batch_size: int = 64, num_workers: int = 0):
        super().__init__()
        self.root = Path(root)
        self.dataset = dict(dataset or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.class_names: list[str] = []

    def prepare_data(self) -> None:
        ensure_shapes(self.root, **self.dataset)

    def setup(self, stage: str | None = None) -> None:
        self.splits = {}
        for split in ("train", "val"):
            data = load_shapes_images(self.root, split)
            images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
            self.splits[split] = TensorDataset(images, torch.from_numpy(data.labels).long())
            self.class_names = list(data.label_names)
        self.image_size = int(images.shape[-1])

    def model_kwargs(self) -> dict:
        return {"class_names": self.class_names, "image_size": self.image_size}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], 256, num_workers=self.num_workers)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        images = normalize(images.float() / 255)
        if self.trainer is not None and self.trainer.training:
            flip = torch.rand(images.shape[0], device=images.device) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        return images, labels
