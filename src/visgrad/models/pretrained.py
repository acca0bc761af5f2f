"""Pretrained torchvision ImageNet classifiers, loaded from torchvision's cache or an explicit file.

Nothing is downloaded here: the weights file torchvision would download is looked up in its cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``) first, and a clear
:class:`WeightsNotFoundError` says where to put it when it is absent.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum, get_model, get_model_weights

from visgrad.errors import CheckpointError, ConfigError, UserError, load_failure, unreadable


class WeightsNotFoundError(UserError, FileNotFoundError):
    """The ImageNet weights of a torchvision model are neither in the cache nor at the given path."""


def classification_archs() -> list[str]:
    """Names of torchvision's ImageNet classification models (``squeezenet1_1``, ``resnet18``, ...)."""
    return torchvision.models.list_models(module=torchvision.models)


def imagenet_weights(arch: str, weights: str = "DEFAULT") -> WeightsEnum:
    """The torchvision weights entry (URL, class names, ...) of ``arch``; clear errors for unknown names."""
    archs = classification_archs()
    if arch not in archs:
        close = difflib.get_close_matches(arch, archs, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown torchvision classifier {arch!r}; {hint}known: {', '.join(archs)}")
    enum = get_model_weights(arch)
    try:
        return enum[weights]
    except KeyError:
        names = ["DEFAULT", *enum.__members__]
        raise ConfigError(f"{arch} has no weights {weights!r}; choose one of {', '.join(names)}") from None


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where ``torch.hub`` keeps (or would download) the file of ``weights``, honouring ``TORCH_HOME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _missing_weights_message(arch: str, weights: WeightsEnum, expected: Path, given: Path | None) -> str:
    filename = expected.name
    where = f"the file {given} does not exist" if given else f"not in torchvision's cache at {expected}"
    return (
        f"ImageNet weights for {arch!r} not found ({where}). visgrad never downloads at run time; "
        f"provide them in one of two ways:\n"
        f"  1. put torchvision's file {filename} into {expected.parent} (set TORCH_HOME to use another "
        f"cache folder); on a machine with network: python -c \"import torchvision; "
        f"torchvision.models.get_model('{arch}', weights='DEFAULT')\" downloads it there, "
        f"or fetch {weights.url}\n"
        f"  2. give the file explicitly: weights_path=/path/to/{filename}"
    )


def read_state_dict(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The state dict of tensors in ``path`` (``torch.load`` with ``weights_only=True``; a Lightning-style
    ``{"state_dict": ...}`` is unwrapped). A missing file raises :class:`WeightsNotFoundError`; a folder,
    an unreadable (permission denied), truncated or corrupt file, or one that holds something else a
    ``CheckpointError`` naming ``what`` and the path."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a file; give the .pth file")
    if not path.is_file():
        raise WeightsNotFoundError(f"{what} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:  # permission denied, an I/O error: the file is there, not necessarily damaged
        raise CheckpointError(f"{what}: {unreadable(path, err)}") from err
    except Exception as err:  # noqa: BLE001 - torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read {what} {path} as a PyTorch state dict (truncated or corrupt: "
                              f"{load_failure(err)})") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} {path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def load_torchvision_model(
    arch: str, weights_path: str | Path | None = None, weights: str = "DEFAULT"
) -> tuple[nn.Module, list[str]]:
    """Load a torchvision ImageNet classifier in eval mode with frozen parameters.

    Inputs:
    - arch: torchvision model name, e.g. ``"squeezenet1_1"`` (CS231n), ``"resnet18"``, ``"vgg19"``.
    - weights_path: an explicit ``.pth`` state dict; None looks in torchvision's cache (``TORCH_HOME``).
    - weights: which torchvision weights entry (``"DEFAULT"``, ``"IMAGENET1K_V1"``, ...).

    Returns ``(model, class_names)``; the model maps normalised images (N, 3, H, W) to logits (N, 1000)
    and ``class_names`` are the 1000 ImageNet names from the weights' metadata.
    Raises :class:`WeightsNotFoundError` (naming the expected file and how to provide it) when absent.
    """
    entry = imagenet_weights(arch, weights)
    class_names = list(entry.meta["categories"])
    expected = cached_weights_path(entry)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(_missing_weights_message(arch, entry, expected, path))
        model = get_model(arch, weights=None, num_classes=len(class_names))
        try:
            model.load_state_dict(read_state_dict(path))
        except RuntimeError as err:
            detail = " ".join(line.strip() for line in str(err).splitlines()[1:2])[:300]
            raise CheckpointError(f"weights file {path} does not fit torchvision's {arch}: {detail}") from err
    else:
        if not expected.is_file():
            raise WeightsNotFoundError(_missing_weights_message(arch, entry, expected, None))
        model = get_model(arch, weights=entry)  # the file is cached, so torch.hub reads it without network
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, class_names
