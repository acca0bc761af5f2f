"""Config printing and device selection for the Hydra apps."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from rich import print as rich_print
from rich.syntax import Syntax
from rich.tree import Tree

from visgrad.errors import ConfigError


def print_config_tree(cfg: DictConfig, order: tuple[str, ...] = ()) -> None:
    """Print the composed config as a Rich tree, one branch per top-level group (``order`` first)."""
    tree = Tree("config", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=False) if isinstance(value, DictConfig) else str(value)
        branch.add(Syntax(text, "yaml", theme="ansi_dark"))
    rich_print(tree)


def resolve_device(name: str) -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:1" | "mps"`` into a device, with a clear error for anything
    else (``device=tpu``) and when CUDA is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # torch: "Expected one of cpu, cuda, ... device type at start of ..."
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={name!r}: not a device visgrad runs on; use device=auto, cpu, cuda, "
                          "cuda:<index> or mps")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r} was requested but MPS is not available; use device=cpu or "
                          "device=auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name!r} was requested but CUDA is not available; use device=cpu or device=auto"
        )
    return device
