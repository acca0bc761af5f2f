"""``ClassifierModule``: cross-entropy training of an injected image classifier network.

The network, the optimizer and the scheduler are factories (``_partial_: true`` config nodes, i.e.
``functools.partial`` objects, or ``{_target_: ...}`` mappings): the network is built with
``num_classes=len(class_names)``, the optimizer with ``params``, the scheduler with ``optimizer`` (and, if
its constructor takes ``total_steps``, as ``OneCycleLR``'s does, with the run's number of optimizer steps;
:func:`visgrad.optimizers.optimizer_config`).
Their configs are stored in the hyperparameters, so a checkpoint rebuilds the module
(``ClassifierModule.load_from_checkpoint``) and :class:`~visgrad.classification.ExportClassifier` can export
the network with the config that rebuilds it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from visgrad.optimizers import check_interval, optimizer_config
from visgrad.registry import build, partial_config

Factory = Callable[..., Any] | Mapping[str, Any]
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=3e-3, weight_decay=1e-4)


class ClassifierModule(pl.LightningModule):
    """Args:
    net: factory of the network, called with ``num_classes``; images (N, 3, S, S) -> logits (N, K).
    class_names: the K class names (from the datamodule's ``model_kwargs()``).
    image_size: the input side S (from the datamodule).
    optimizer: factory of the optimizer, called with ``params``.
    scheduler: factory of a learning-rate scheduler, called with ``optimizer`` (and ``total_steps`` if it
        takes that), or None.
    scheduler_interval: ``"epoch"`` or ``"step"``: when the scheduler steps.

    Logs ``train/loss``, ``train/acc``, ``val/loss`` and ``val/acc`` (epoch means).
    """

    def __init__(
        self,
        net: Factory,
        class_names: list[str],
        image_size: int,
        optimizer: Factory = DEFAULT_OPTIMIZER,
        scheduler: Factory | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        check_interval(scheduler_interval)
        class_names = [str(name) for name in class_names]  # a plain list in the checkpoint
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.hparams.update(net=partial_config(net), optimizer=partial_config(optimizer),
                            scheduler=None if scheduler is None else partial_config(scheduler))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.net = build(net, num_classes=len(class_names))

    @property
    def net_config(self) -> dict[str, Any]:
        """The ``_target_`` config that builds this network (with its ``num_classes``)."""
        return {**self.hparams.net, "num_classes": len(self.hparams.class_names)}

    @property
    def metric_names(self) -> list[str]:
        """Every metric this module logs: what ``monitor.metric`` can name (checked before training)."""
        return ["train/loss", "train/acc", "val/loss", "val/acc"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) -> logits (N, K)."""
        return self.net(images)

    def _step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self.net(images)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(dim=1) == labels).float().mean()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/acc": acc}, prog_bar=True, on_epoch=True,
                      on_step=False, batch_size=labels.shape[0])
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        return optimizer_config(self.parameters(), self.optimizer_factory, self.scheduler_factory,
                                self.hparams.scheduler_interval, self)
