"""The exported classifier file: a trained network, the config that rebuilds it and its class names.

One ``torch.save`` dict, readable with ``weights_only=True``: ``format`` (:data:`FORMAT_VERSION`), ``net``
(the network's ``_target_`` config, with ``num_classes``), ``state_dict``, ``class_names``, ``image_size``
(the input side S) and ``val_acc``. It is written atomically (temporary file, then rename), and an existing
file is only ever replaced by a new export if it is an export itself (:func:`not_an_export`): a training
checkpoint or any other file at that path is refused, never overwritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from rich.console import Console
from torch import nn

from visgrad.errors import CheckpointError
from visgrad.registry import build

FORMAT_VERSION = 2


def not_an_export(path: str | Path) -> str | None:
    """None if ``path`` does not exist or is an exported classifier (of any format version, so a stale
    export may be replaced); else what it is instead, for the error that refuses to replace it."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        return "a folder"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a training checkpoint (configs inside), or no torch file at all
        return "not an exported classifier (e.g. a training checkpoint, or another kind of file)"
    if isinstance(payload, dict) and {"format", "state_dict"} <= payload.keys():
        return None
    return "not an exported classifier (no format and state_dict entries)"


def refuse_foreign(path: str | Path) -> None:
    """``CheckpointError`` if ``path`` holds something other than an export (see :func:`not_an_export`)."""
    foreign = not_an_export(path)
    if foreign:
        raise CheckpointError(f"{path} is {foreign}; it is never overwritten")


def save_export(path: str | Path, net: nn.Module, net_config: dict[str, Any], class_names: list[str],
                image_size: int, val_acc: float | None) -> Path:
    """Write ``net``'s weights with ``net_config`` (its ``_target_`` config) and metadata to ``path``,
    atomically; ``CheckpointError`` if ``path`` holds something other than an export."""
    path = Path(path)
    refuse_foreign(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "net": dict(net_config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "class_names": list(class_names),
        "image_size": int(image_size),
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


def load_export(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network of an exported file (rebuilt from its config, weights loaded, eval mode, frozen) and the
    file's other entries (``class_names``, ``image_size``, ``val_acc``, ...).

    ``CheckpointError`` naming the file if it is not an export, or an export that cannot be loaded (another
    format version, a damaged file, a network that no longer fits its weights).
    """
    path = Path(path)
    refuse_foreign(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {payload.get('format')!r}, expected {FORMAT_VERSION}")
        net = build(payload["net"])
        net.load_state_dict(payload["state_dict"])
    except Exception as err:  # noqa: BLE001 - an export of another format version, or a damaged one
        reason = str(err).splitlines()[0][:160]
        raise CheckpointError(f"cannot load the exported classifier {path} ({reason})") from err
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    return net, {k: v for k, v in payload.items() if k != "state_dict"}


class ExportClassifier(pl.Callback):
    """Export the trained network to ``path`` at the end of a (non fast-dev-run) fit, with ``val/acc``.

    The LightningModule must have ``net``, ``net_config`` (the network's ``_target_`` config) and
    ``hparams.class_names`` / ``hparams.image_size``, as :class:`~visgrad.classification.ClassifierModule`
    has. A ``path`` that holds something other than an export is refused when fitting starts.
    """

    def __init__(self, path: str):
        self.path = path

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        refuse_foreign(self.path)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        acc = trainer.callback_metrics.get("val/acc")
        hp = pl_module.hparams
        path = save_export(self.path, pl_module.net, pl_module.net_config, hp.class_names, hp.image_size,
                           None if acc is None else float(acc))
        score = "" if acc is None else f" (val/acc {float(acc):.3f})"  # an encoder (SimCLR) has no val/acc
        Console().print(f"exported the network{score} to {path}", soft_wrap=True)
