"""The offline classifier: a small CNN that visgrad trains itself on the `shapes` images.

Its class is the kind of the largest object (circle, square, triangle, diamond). Inputs are preprocessed
like ImageNet images (:func:`visgrad.images.normalize`), so every task treats it like SqueezeNet.

- ``python train.py experiment=shapes_classifier`` trains it through the generic Lightning ``train.py``
  (:class:`ShapesImagesDataModule` + :class:`ShapesClassifierModule`) and exports it with
  :class:`ExportClassifier` to the canonical file ``${paths.data_dir}/classifiers/shapes_cnn.pt``.
- ``classifier=shapes`` in ``visualize.py`` (:func:`shapes_classifier`) loads that file, training it first
  (about a minute on a CPU) when it does not exist.

An existing file is only ever replaced by a new export if it is an export itself (``not_an_export``): a
captioner checkpoint or any other file given as ``classifier.checkpoint`` is refused, never overwritten.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from visgrad.data.shapes import ensure_shapes, load_shapes_images
from visgrad.errors import CheckpointError
from visgrad.images import normalize
from visgrad.models.classifier import Classifier

FORMAT_VERSION = 1


class ShapesCNN(nn.Module):
    """A stride-2 conv block, then three conv blocks (the first two after 2x2 max-pooling), global
    max-pooling over positions and a linear layer; conv blocks are 3x3 conv, BatchNorm, ReLU.

    (N, 3, S, S) normalised images -> (N, num_classes) logits. Features are at S/8 before pooling.
    """

    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()

        def block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(3, width, stride=2), nn.MaxPool2d(2),
            *block(width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 4 * width),
            *block(4 * width, 4 * width),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).amax(dim=(2, 3)))


class ShapesImagesDataModule(pl.LightningDataModule):
    """`shapes` images and labels for classification (generated into ``root`` if needed).

    Batches are (images FloatTensor (B, 3, S, S) normalised, labels LongTensor (B,)); training batches
    are randomly flipped left-right (which keeps every shape's kind).
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


class ShapesClassifierModule(pl.LightningModule):
    """Cross-entropy training of :class:`ShapesCNN` with AdamW and a one-cycle learning rate.

    Logs ``train/loss``, ``train/acc``, ``val/loss`` and ``val/acc``.
    """

    def __init__(self, class_names: list[str], image_size: int = 64, width: int = 16, lr: float = 3e-3,
                 weight_decay: float = 1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.net = ShapesCNN(len(class_names), width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

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
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = self.trainer.estimated_stepping_batches
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.hparams.lr, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def not_an_export(path: Path) -> str | None:
    """None if ``path`` does not exist or is an exported shapes classifier (of any format version, so a
    stale export may be replaced); else what it is instead, for the error that refuses to replace it."""
    if not path.exists():
        return None
    if path.is_dir():
        return "a folder"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a training checkpoint (configs inside), or no torch file at all
        return "not an exported shapes classifier (e.g. a training checkpoint, or another kind of file)"
    if isinstance(payload, dict) and {"format", "state_dict"} <= payload.keys():
        return None
    return "not an exported shapes classifier (no format and state_dict entries)"


def _refuse_foreign(path: Path) -> None:
    foreign = not_an_export(path)
    if foreign:
        raise CheckpointError(f"classifier.checkpoint={path} is {foreign}; it is never overwritten. Point "
                              "classifier.checkpoint at an exported shapes classifier, or at a new file to "
                              "train one there (e.g. classifier.checkpoint=data/classifiers/shapes_cnn.pt)")


def save_classifier(module: ShapesClassifierModule, path: str | Path, val_acc: float | None) -> Path:
    """Write the network and its metadata to ``path`` atomically (temp file + rename); ``CheckpointError``
    if ``path`` holds something other than an export (see ``not_an_export``)."""
    path = Path(path)
    _refuse_foreign(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in module.net.state_dict().items()},
        "class_names": list(module.hparams.class_names),
        "image_size": int(module.hparams.image_size),
        "width": int(module.hparams.width),
        "val_acc": val_acc,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class ExportClassifier(pl.Callback):
    """At the end of a (non fast-dev-run) fit, export the trained network to ``path`` for ``visualize.py``."""

    def __init__(self, path: str):
        self.path = path

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        acc = trainer.callback_metrics.get("val/acc")
        path = save_classifier(pl_module, self.path, None if acc is None else float(acc))
        message = f"exported the shapes classifier (val/acc {float(acc or 0):.3f}) to {path}"
        Console().print(message, soft_wrap=True)


def load_shapes_cnn(path: str | Path) -> Classifier:
    """Load an exported classifier file as a frozen :class:`Classifier` in eval mode."""
    path = Path(path)
    _refuse_foreign(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {payload.get('format')!r}, expected {FORMAT_VERSION}")
        net = ShapesCNN(len(payload["class_names"]), payload["width"])
        net.load_state_dict(payload["state_dict"])
    except Exception as err:  # an export of another format version, or a damaged one
        reason = str(err).splitlines()[0][:160]
        raise CheckpointError(
            f"cannot load the shapes classifier {path} ({reason}); pass classifier.retrain=true to train it "
            "again (the file is replaced)"
        ) from err
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    return Classifier(name="shapes", model=net, class_names=list(payload["class_names"]),
                      image_size=int(payload["image_size"]))


def train_shapes_classifier(checkpoint: str, data_root: str, dataset: dict, model: dict, train: dict) -> Path:
    """Train :class:`ShapesCNN` with a Lightning Trainer (progress bar, no logger) and export it."""
    pl.seed_everything(train.get("seed", 0), verbose=False)
    datamodule = ShapesImagesDataModule(data_root, dataset, batch_size=train["batch_size"])
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = ShapesClassifierModule(**datamodule.model_kwargs(), **model, lr=train["lr"])
    trainer = pl.Trainer(
        max_epochs=train["max_epochs"], accelerator=train.get("accelerator", "auto"), devices=1, logger=False,
        enable_checkpointing=False, enable_model_summary=False,
        callbacks=[pl.callbacks.RichProgressBar(), ExportClassifier(checkpoint)],
    )
    quiet = logging.getLogger("pytorch_lightning.utilities.rank_zero")  # GPU/TPU availability notes and tips
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        quiet.setLevel(level)
    return Path(checkpoint)


def shapes_classifier(
    checkpoint: str, data_root: str, dataset: dict, model: dict, train: dict, retrain: bool = False
) -> Classifier:
    """Loader of ``classifier=shapes``: reuse ``checkpoint``, or train it first if absent or ``retrain``."""
    console = Console()
    path = Path(checkpoint).expanduser()
    _refuse_foreign(path)  # before training: never replace a file that is not an export
    if retrain or not path.is_file():
        reason = "retraining" if retrain else f"no shapes classifier at {path} yet"
        console.print(f"{reason}: training one on the shapes images in {data_root} "
                      f"({train['max_epochs']} epochs, about a minute on a CPU)", soft_wrap=True)
        train_shapes_classifier(str(path), data_root, dataset, model, train)
    else:
        console.print(f"using the shapes classifier {path} (classifier.retrain=true retrains it)",
                      soft_wrap=True)
    return load_shapes_cnn(path)
