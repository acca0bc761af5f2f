"""Captioner checkpoints: read the stored hyperparameters and rebuild the network they describe.

A ``CaptioningModule`` checkpoint (written by ``train.py``) holds the module's hyperparameters, among them
``net``, the network's ``{_target_: ..., **arguments}`` config, plus ``word_to_idx`` and ``input_dim``;
``load_captioner`` builds exactly that network and loads its weights. Files that are not captioner
checkpoints, and checkpoints of visgrad versions that did not store the network's config, are refused with
one line naming the file and what it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visgrad.captioning.module import CaptioningModule
from visgrad.errors import CheckpointError
from visgrad.utils.checkpoint_io import read_checkpoint

REQUIRED = ("net", "word_to_idx", "input_dim")


def captioner_hparams(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The ``CaptioningModule`` hyperparameters of a loaded checkpoint dict; ``CheckpointError`` naming
    ``path`` if it holds something else."""
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a captioner checkpoint: it holds {_keys(checkpoint)}, not the "
                              "hyper_parameters and state_dict of a Lightning checkpoint")
    if "word_to_idx" in hparams and "net" not in hparams:
        raise CheckpointError(f"{path} was written by an older visgrad whose captioner checkpoints did not "
                              "store their network's config (net); retrain it with this version")
    missing = [key for key in REQUIRED if key not in hparams]
    if missing or not isinstance(hparams["net"], dict) or "_target_" not in hparams["net"]:
        raise CheckpointError(f"{path} is not a captioner checkpoint: its hyperparameters are "
                              f"{_keys(hparams)} (a CaptioningModule stores {', '.join(REQUIRED)} with net a "
                              "_target_ config)")
    return hparams


def read_captioner_hparams(path: str | Path) -> dict[str, Any]:
    """The ``CaptioningModule`` hyperparameters stored in the checkpoint file ``path`` (the weights stay in
    the file)."""
    return captioner_hparams(read_checkpoint(path, mmap=True), path)


def load_captioner(path: str | Path, device: torch.device | str = "cpu") -> CaptioningModule:
    """The ``CaptioningModule`` of checkpoint ``path`` with its network rebuilt from the stored config and
    its weights loaded, on ``device`` in eval mode. ``CheckpointError`` for a missing or unreadable file, one
    that is not a captioner checkpoint or one of an older visgrad."""
    checkpoint = read_checkpoint(path)
    module = CaptioningModule(**captioner_hparams(checkpoint, path))
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: its weights do not fit the network of its stored config "
                              f"({str(error).splitlines()[0]})") from None
    return module.to(device).eval()


def _keys(mapping: object) -> str:
    if not isinstance(mapping, dict):
        return f"a {type(mapping).__name__}"
    keys = sorted(map(str, mapping))
    return ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "") if keys else "nothing"
