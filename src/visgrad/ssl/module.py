"""``SimCLRModule``: SimCLR pre-training (Chen et al., 2020) of an injected image network, without labels.

Each training batch of N images gives two views (``augment``, :class:`~visgrad.ssl.augment.Augment`); the
network's features h = ``net.embed(view)`` (N, E) go through the projection head g to z (N, D), and the loss
is :func:`~visgrad.ssl.losses.simclr_loss_vectorized` of the two views' z at temperature ``temperature``.
The encoder is an image classifier network (built with ``num_classes``, as for
:class:`~visgrad.classification.ClassifierModule`) that has an ``embed`` method; its linear head stays
untrained. After pre-training the encoder is read through ``embed`` (the projection head is dropped): by the
kNN monitor (:class:`~visgrad.ssl.monitor.FeatureMonitor`), by the linear probe (``task=linear_probe``), and
:class:`~visgrad.classification.ExportClassifier` exports it like a classifier.

Logs ``train/loss`` and ``val/loss`` (the loss of augmented val views), and ``train/positive_sim`` (the mean
cosine similarity of the positive pairs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from visgrad.classification.module import ClassifierModule
from visgrad.registry import build, partial_config
from visgrad.ssl.augment import Augment
from visgrad.ssl.losses import sim_positive_pairs, simclr_loss_vectorized

Factory = Callable[..., Any] | Mapping[str, Any]
DEFAULT_OPTIMIZER = functools.partial(torch.optim.Adam, lr=1e-3)


class ProjectionHead(nn.Module):
    """SimCLR's projection head g: Linear (no bias), BatchNorm, ReLU, Linear. h (N, E) -> z (N, D)."""

    def __init__(self, input_dim: int, hidden_dim: int = 128, output_dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                                 nn.ReLU(inplace=True), nn.Linear(hidden_dim, output_dim))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class SimCLRModule(pl.LightningModule):
    """Args:
    net: factory of the encoder, called with ``num_classes``; it must have ``embed(images) -> (N, E)`` and
        ``embed_dim`` = E.
    class_names, image_size: from the datamodule (the kNN monitor and the export use them).
    augment: factory (or instance) of the view augmentation, images (N, C, S, S) -> views (N, C, S, S).
    projection_dim, hidden_dim: the projection head's output D and hidden width.
    temperature: tau of the contrastive loss.
    optimizer, scheduler, scheduler_interval: as :class:`~visgrad.classification.ClassifierModule`.
    """

    def __init__(
        self,
        net: Factory,
        class_names: list[str],
        image_size: int,
        augment: Factory | Augment = Augment,
        projection_dim: int = 64,
        hidden_dim: int = 128,
        temperature: float = 0.5,
        optimizer: Factory = DEFAULT_OPTIMIZER,
        scheduler: Factory | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        class_names = [str(name) for name in class_names]
        self.save_hyperparameters(ignore=["net", "augment", "optimizer", "scheduler"])
        self.hparams.update(net=partial_config(net), optimizer=partial_config(optimizer),
                            scheduler=None if scheduler is None else partial_config(scheduler),
                            augment=partial_config(augment) if not isinstance(augment, Augment) else None)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.augment = augment if isinstance(augment, Augment) else build(augment)
        self.net = build(net, num_classes=len(class_names))
        width = getattr(self.net, "embed_dim", None)
        if not callable(getattr(self.net, "embed", None)) or not isinstance(width, int):
            raise ValueError(f"the encoder {type(self.net).__name__} needs embed(images) -> features (N, E) "
                             "and embed_dim = E")
        self.projection = ProjectionHead(width, hidden_dim, projection_dim)

    # the encoder's config and the optimizers are made as ClassifierModule's
    net_config = ClassifierModule.net_config

    @property
    def metric_names(self) -> list[str]:
        """Every metric this module logs (what ``monitor.metric`` can name, besides the callbacks')."""
        return ["train/loss", "train/positive_sim", "val/loss"]

    def forward(self, images: Tensor) -> Tensor:
        """Encoder features (N, E) of images (N, C, S, S)."""
        return self.net.embed(images)

    def _loss(self, images: Tensor) -> tuple[Tensor, Tensor]:
        z_left = self.projection(self.net.embed(self.augment(images)))
        z_right = self.projection(self.net.embed(self.augment(images)))
        loss = simclr_loss_vectorized(z_left, z_right, self.hparams.temperature)
        return loss, sim_positive_pairs(z_left, z_right).mean()

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images, _ = batch
        loss, positive = self._loss(images)
        self.log_dict({"train/loss": loss, "train/positive_sim": positive}, prog_bar=True, on_epoch=True,
                      on_step=False, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, _ = batch
        loss, _ = self._loss(images)
        self.log("val/loss", loss, on_epoch=True, batch_size=images.shape[0])

    configure_optimizers = ClassifierModule.configure_optimizers
