"""``DiffusionModule``: a DDPM (:class:`~visgrad.diffusion.GaussianDiffusion`) trained with Lightning.

The denoising network is injected: ``net`` is a factory (a ``_partial_: true`` config node or a
``{_target_: ...}`` mapping) called with ``image_shape`` and ``num_classes``, as
:class:`~visgrad.diffusion.unet.UNet` takes them; its config is stored in the hyperparameters, so a
checkpoint rebuilds the module (``DiffusionModule.load_from_checkpoint``).

Training: images (N, C, S, S) in [-1, 1] from the datamodule (already the model's range) and their labels;
each label is replaced by "no class" with probability ``cond_drop_prob`` (drawn from a generator seeded by
``(seed, epoch, batch)``, as are the loss's times and noise: a resumed run draws what the uninterrupted run
drew), so one network learns the conditional and the unconditional model that classifier-free guidance
combines. An exponential moving average of the network's weights (:mod:`visgrad.generative.ema`) makes
every sample (``generate``, the figures and the metrics).

Logged (:attr:`DiffusionModule.metric_names`): ``train/loss`` (also ``_step`` and ``_epoch``) and
``val/loss`` (the same loss on the val images, with a fixed draw per batch, by the EMA network).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from visgrad.diffusion.gaussian_diffusion import GaussianDiffusion
from visgrad.generative.ema import ema_copy
from visgrad.generative.labels import block_labels
from visgrad.optimizers import check_interval, optimizer_config
from visgrad.registry import build, partial_config

Factory = Callable[..., Any] | Mapping[str, Any]
ADAM = functools.partial(torch.optim.Adam, lr=1e-3)


class DiffusionModule(pl.LightningModule):
    """Args:
    net: factory of the denoising network, called with ``image_shape`` and ``num_classes``;
        ``net(x_t (N, C, S, S), t (N,), y=None) -> (N, C, S, S)``.
    num_classes: K (0: unconditional; labels are then ignored).
    timesteps, objective, beta_schedule: of the :class:`GaussianDiffusion` (``objective`` and
        ``beta_schedule`` also take the dotted paths of an ``Objective`` and a ``NoiseSchedule`` of your own).
    optimizer: factory of the optimizer, called with ``params``.
    scheduler: factory of a learning-rate scheduler, called with ``optimizer`` (and ``total_steps`` if it
        takes them, as ``OneCycleLR`` does), or None (:func:`visgrad.optimizers.optimizer_config`).
    scheduler_interval: ``"step"`` or ``"epoch"``: when the scheduler steps.
    cond_drop_prob: probability that a training label is dropped ("no class"; classifier-free guidance).
    ema_decay: decay of the weights' moving average that samples.
    sampling_timesteps: DDIM steps of ``generate`` (the metrics and figures during training; None: all
        ``timesteps`` ancestral steps).
    cfg_scale: guidance scale of ``generate`` (1: the conditional model; ignored when unconditional).
    eta: DDIM's noise in ``generate`` (0: deterministic DDIM; 1: as much noise as the ancestral sampler).
    num_fixed: images of the fixed sample grid (one row per class when conditional).
    seed: seed of the training draws and of the fixed grid.
    image_shape: (C, S, S) of the data (from the datamodule's ``model_kwargs()``).
    """

    def __init__(
        self,
        net: Factory,
        num_classes: int = 10,
        timesteps: int = 1000,
        objective: str = "pred_noise",
        beta_schedule: str = "sigmoid",
        optimizer: Factory = ADAM,
        scheduler: Factory | None = None,
        scheduler_interval: str = "step",
        cond_drop_prob: float = 0.1,
        ema_decay: float = 0.999,
        sampling_timesteps: int | None = 50,
        cfg_scale: float = 1.0,
        eta: float = 0.0,
        num_fixed: int = 80,
        seed: int = 0,
        image_shape: Sequence[int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {cond_drop_prob}")
        check_interval(scheduler_interval)
        image_shape = [int(s) for s in image_shape]
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.hparams.update(net=partial_config(net), optimizer=partial_config(optimizer),
                            scheduler=None if scheduler is None else partial_config(scheduler))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        network = build(net, image_shape=tuple(image_shape), num_classes=int(num_classes))
        schedule = dict(
            image_size=image_shape[-1],
            timesteps=timesteps,
            objective=objective,
            beta_schedule=beta_schedule,
            channels=image_shape[0],
        )
        self.diffusion = GaussianDiffusion(network, **schedule)
        self.ema = ema_copy(network, ema_decay)
        self.sampler = GaussianDiffusion(self.ema.module, **schedule)  # the same diffusion on the EMA network

    metric_names = [f"train/loss{suffix}" for suffix in ("", "_step", "_epoch")] + ["val/loss"]

    @property
    def conditional(self) -> bool:
        return int(self.hparams.num_classes) > 0

    def fixed_labels(self, n: int) -> torch.Tensor | None:
        """Labels (n,) ``0, .., 0, 1, .., 1, .., K-1`` in blocks (a grid of n/K images per row shows one class
        per row); None when unconditional (:func:`~visgrad.generative.labels.block_labels`)."""
        return block_labels(n, int(self.hparams.num_classes))

    def model_kwargs(self, labels: torch.Tensor | None, cfg_scale: float | None = None) -> dict[str, Any]:
        """The sampler's ``model_kwargs`` for ``labels`` (N,) or None (unconditional)."""
        if labels is None:
            return {}
        scale = self.hparams.cfg_scale if cfg_scale is None else cfg_scale
        return {"y": labels.to(self.device), "cfg_scale": float(scale)}

    @torch.no_grad()
    def generate(
        self,
        n: int,
        seed: int,
        labels: torch.Tensor | None = None,
        *,
        sampling_timesteps: int | None = -1,
        cfg_scale: float | None = None,
        return_all_timesteps: bool = False,
        batch_size: int = 500,
    ) -> torch.Tensor:
        """``n`` images (N, C, S, S) in [-1, 1] on the CPU from the EMA network, drawn with a generator
        seeded by ``seed``, of ``labels`` (N,) (default: :meth:`fixed_labels`), with
        ``sampling_timesteps`` DDIM steps (default: the module's; None: ancestral) and guidance
        ``cfg_scale`` (default: the module's). With ``return_all_timesteps``: (N, steps + 1, C, S, S)."""
        steps = self.hparams.sampling_timesteps if sampling_timesteps == -1 else sampling_timesteps
        labels = self.fixed_labels(n) if labels is None else labels
        rng = torch.Generator().manual_seed(int(seed))
        out = []
        for start in range(0, n, batch_size):
            chunk = None if labels is None else labels[start : start + batch_size]
            size = min(batch_size, n - start)
            images = self.sampler.sample(
                size,
                return_all_timesteps,
                self.model_kwargs(chunk, cfg_scale),
                sampling_timesteps=steps,
                eta=float(self.hparams.eta),
                generator=rng,
            )
            out.append(self.sampler.normalize(images).cpu())
        return torch.cat(out)

    def configure_optimizers(self):
        params = self.diffusion.model.parameters()
        return optimizer_config(params, self.optimizer_factory, self.scheduler_factory,
                                self.hparams.scheduler_interval, self)

    def _rng(self, batch_idx: int, stage: int) -> torch.Generator:
        """A CPU generator seeded by (seed, stage, epoch, batch): the same draws after a resume."""
        epoch = self.current_epoch if stage == 0 else 0
        state = np.random.SeedSequence([self.hparams.seed, stage, epoch, batch_idx])
        return torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def _loss(self, diffusion: GaussianDiffusion, batch, rng: torch.Generator, drop: float) -> torch.Tensor:
        images, labels = batch
        kwargs = {}
        if self.conditional:
            dropped = torch.rand(labels.shape, generator=rng).to(labels.device) < drop
            kwargs["y"] = labels.masked_fill(dropped, int(self.hparams.num_classes))
        return diffusion.p_losses(images, kwargs, generator=rng)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(self.diffusion, batch, self._rng(batch_idx, 0), self.hparams.cond_drop_prob)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch[0].shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.ema.update_parameters(self.diffusion.model)

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self._loss(self.sampler, batch, self._rng(batch_idx, 1), 0.0)
        self.log("val/loss", loss, batch_size=batch[0].shape[0])
