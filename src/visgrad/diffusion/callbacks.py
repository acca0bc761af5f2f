"""Sample figures of diffusion runs (``conf/callbacks/diffusion.yaml``; the metrics are the GANs'
:class:`~visgrad.gan.callbacks.SampleQualityMetrics`, which scores ``DiffusionModule.generate``).

``DiffusionSampleFigures`` adds to TensorBoard, after every ``every_n_epochs``-th training epoch, a grid of
the module's fixed draw (``samples/fixed``; one class per row when conditional, same seed each time: the
grids show progress), and at the end of fitting writes into the run folder and TensorBoard:

- ``samples.png``: the fixed draw;
- ``chain.png``: the denoising chain of ``chain_samples`` images by the ancestral sampler (one image per
  row, ``chain_steps`` snapshots from the noise x_T to x_0, left to right);
- ``guidance.png`` (conditional models): one row per guidance scale of ``cfg_scales``, one class per
  column, the same noise in every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from rich.console import Console

from visgrad.gan.figures import log_image, sample_grid, save_png
from visgrad.generative.labels import grid_row_length


def chain_snapshots(chain: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced images of each chain (N, T + 1, C, S, S), first and last included, as
    (N * steps, C, S, S), chain by chain."""
    picks = torch.linspace(0, chain.shape[1] - 1, steps).round().long()
    return chain[:, picks].flatten(0, 1)


class DiffusionSampleFigures(pl.Callback):
    """Args:
    output_dir: where the PNGs go (the run folder).
    every_n_epochs: TensorBoard's sample grid after every this many training epochs (and the last).
    chain_samples, chain_steps: chains of ``chain.png`` and snapshots per chain.
    cfg_scales: the guidance scales of ``guidance.png``.
    seed: seed of the chains and of the guidance sweep.
    scale: pixel repetition of the PNGs.
    """

    def __init__(
        self,
        output_dir: str,
        every_n_epochs: int = 1,
        chain_samples: int = 4,
        chain_steps: int = 11,
        cfg_scales: Sequence[float] = (0.0, 1.0, 2.0, 4.0),
        seed: int = 0,
        scale: int = 2,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.every, self.chain_samples, self.chain_steps = every_n_epochs, chain_samples, chain_steps
        self.cfg_scales, self.seed, self.scale = [float(s) for s in cfg_scales], seed, scale

    def _fixed_grid(self, pl_module) -> torch.Tensor:
        n, classes = pl_module.hparams.num_fixed, int(pl_module.hparams.num_classes)
        images = pl_module.generate(n, pl_module.hparams.seed)
        return sample_grid(images, grid_row_length(n, classes), self.scale)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every == 0 or epoch == trainer.max_epochs:
            log_image(trainer, "samples/fixed", self._fixed_grid(pl_module))

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        figures = {"samples": self._fixed_grid(pl_module)}
        chain = pl_module.generate(
            self.chain_samples, self.seed, sampling_timesteps=None, return_all_timesteps=True
        )
        figures["chain"] = sample_grid(chain_snapshots(chain, self.chain_steps), self.chain_steps, self.scale)
        if pl_module.conditional:
            classes = int(pl_module.hparams.num_classes)
            labels = torch.arange(classes)
            rows = [pl_module.generate(classes, self.seed, labels, cfg_scale=s) for s in self.cfg_scales]
            figures["guidance"] = sample_grid(torch.cat(rows), classes, self.scale)
        paths = []
        for name, grid in figures.items():
            log_image(trainer, f"samples/{name}", grid)
            paths.append(save_png(grid, self.output_dir / f"{name}.png"))
        Console().print("\n".join(f"{p.stem}: {p}" for p in paths), soft_wrap=True)
