"""Figures of generative models (GANs and diffusion): a grid of samples, interpolation strips between noise
vectors, and writing a grid to a PNG or to TensorBoard."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image


def sample_grid(images: torch.Tensor, nrow: int = 8, scale: int = 1) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] -> one float (3, H', W') grid in [0, 1], ``nrow`` images per row,
    each pixel repeated ``scale`` times in both directions (small digits stay visible)."""
    images = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    return make_grid(images, nrow=nrow, padding=2, pad_value=1.0)


def interpolation_noise(starts: torch.Tensor, ends: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Noise on straight lines from each row of ``starts`` (R, Z) to the same row of ``ends`` (R, Z):
    (R * steps, Z), row r's points at positions ``r*steps .. r*steps + steps - 1`` (both ends included)."""
    weights = torch.linspace(0, 1, steps, dtype=starts.dtype, device=starts.device).view(1, steps, 1)
    return (starts.unsqueeze(1) * (1 - weights) + ends.unsqueeze(1) * weights).reshape(-1, starts.shape[1])


def save_png(grid: torch.Tensor, path: str | Path) -> Path:
    """Write a (3, H, W) grid in [0, 1] as a PNG (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path


def log_image(trainer: pl.Trainer, tag: str, grid: torch.Tensor) -> None:
    """Add a (3, H, W) grid in [0, 1] to the run's TensorBoard loggers under ``tag`` at the global step."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=trainer.global_step)
