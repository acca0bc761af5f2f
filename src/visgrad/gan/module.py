"""``GANModule``: a generator and a discriminator trained alternately, with Lightning's manual optimisation.

The networks, the loss and the optimizer are injected: ``generator`` and ``discriminator`` are factories
(``_partial_: true`` config nodes, i.e. ``functools.partial`` objects, or ``{_target_: ...}`` mappings)
called with ``noise_dim`` and ``image_shape`` (the generator) or ``image_shape`` (the discriminator);
``loss`` is a :data:`~visgrad.gan.losses.GAN_LOSSES` name or the dotted path of a
:class:`~visgrad.gan.losses.GANLoss`; ``optimizer`` makes each network's optimizer from its ``params``.
Their configs are stored in the hyperparameters, so a checkpoint rebuilds the module
(``GANModule.load_from_checkpoint``).

Every training step updates the discriminator (critic) on one real batch and as many generated images;
every ``n_critic``-th step then updates the generator on a fresh noise batch (``n_critic=1``: the course's
alternation; 5 for WGAN-GP). The two optimizers (the course's Adam, lr 1e-3, betas (0.5, 0.999)) live in
the checkpoint with their moments. The noise and WGAN-GP's interpolation weights come from a generator
seeded by ``(seed, epoch, batch)``, so a run resumed from a checkpoint draws what the uninterrupted run drew.

Logged (:attr:`GANModule.metric_names`): ``train/d_loss``, ``train/g_loss``, ``train/d_real`` and
``train/d_fake`` (the mean of D(x) and D(G(z)) as the loss shows them: probabilities for ``vanilla``, raw
scores for ``ls`` and ``wgan_gp``), ``train/gp`` (losses with the gradient penalty), ``train/r1`` (with
``r1_weight``), and the same on the val images as ``val/*`` (without the generator loss and the penalties).

Two options for small data, beyond the course: ``augment`` shows the discriminator every image, real and
generated, in its step and in the generator's, through DiffAugment's random differentiable transforms
(:mod:`visgrad.gan.augment`); ``r1_weight`` adds Mescheder et al.'s (2018) R1 penalty
``r1_weight / 2 * E ||grad_x D(x)||^2`` on the real images to the discriminator's loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from visgrad.gan import losses
from visgrad.gan.augment import AUGMENTS, diff_augment
from visgrad.gan.losses import GAN_LOSSES, GANLoss
from visgrad.generative.ema import ema_copy
from visgrad.registry import build, partial_config

Factory = Callable[..., Any] | Mapping[str, Any]
COURSE_ADAM = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.5, 0.999))


def metric_names(loss: GANLoss, r1_weight: float = 0.0) -> list[str]:
    """What a :class:`GANModule` with ``loss`` logs (``train/*`` also as ``*_step`` and ``*_epoch``)."""
    train = ["d_loss", "g_loss", "d_real", "d_fake", *(["gp"] if loss.gradient_penalty else []),
             *(["r1"] if r1_weight else [])]
    names = [f"train/{name}{suffix}" for name in train for suffix in ("", "_step", "_epoch")]
    return names + ["val/d_loss", "val/d_real", "val/d_fake"]


class GANModule(pl.LightningModule):
    """Args:
    generator: factory of the generator, called with ``noise_dim`` and ``image_shape``; noise (N, Z) ->
        images (N, C, H, W) in [-1, 1].
    discriminator: factory of the discriminator, called with ``image_shape``; images -> scores (N, 1).
    loss: a :data:`~visgrad.gan.losses.GAN_LOSSES` name (``vanilla``, ``ls``, ``wgan_gp``) or the dotted
        path of a :class:`~visgrad.gan.losses.GANLoss` (a ``GANLoss`` object is also accepted; a checkpoint
        then stores its name).
    optimizer: factory of each network's optimizer, called with ``params``.
    n_critic: discriminator steps per generator step.
    gp_weight: the gradient penalty's weight lambda (losses with ``gradient_penalty``).
    noise_dim: Z, the size of the uniform [-1, 1] noise.
    num_fixed: size of the fixed noise batch that figures and sample grids draw from.
    seed: seed of the training noise and of the fixed noise.
    ema_decay: keep an exponential moving average of the generator's weights (:mod:`visgrad.generative.ema`)
        with this decay, updated after every generator step, and sample with it (None: sample with the
        trained generator itself, as the course does).
    augment: DiffAugment's transforms of the discriminator's inputs, names in
        :data:`~visgrad.gan.augment.AUGMENTS` (``color``, ``translation``, ``cutout``) applied in this
        order; empty: none (the course).
    r1_weight: gamma of the R1 penalty on real images (0: none).
    image_shape: (C, H, W) of the data (from the datamodule's ``model_kwargs()``).
    """

    def __init__(
        self,
        generator: Factory,
        discriminator: Factory,
        loss: str | GANLoss = "vanilla",
        optimizer: Factory = COURSE_ADAM,
        n_critic: int = 1,
        gp_weight: float = losses.GP_WEIGHT,
        noise_dim: int = 96,
        num_fixed: int = 64,
        seed: int = 0,
        ema_decay: float | None = None,
        augment: Sequence[str] = (),
        r1_weight: float = 0.0,
        image_shape: Sequence[int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        self.loss = GAN_LOSSES.get(loss)
        unknown = [name for name in augment if name not in AUGMENTS]
        if unknown:
            raise ValueError(f"augment={list(augment)}: unknown {unknown}; known: {', '.join(AUGMENTS)}")
        if r1_weight < 0:
            raise ValueError(f"r1_weight={r1_weight}: must be >= 0")
        image_shape = [int(s) for s in image_shape]  # plain ints in the checkpoint (not a Hydra ListConfig)
        augment = [str(name) for name in augment]
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.hparams.update(generator=partial_config(generator), discriminator=partial_config(discriminator),
                            loss=loss if isinstance(loss, str) else self.loss.name,
                            optimizer=partial_config(optimizer))
        self.automatic_optimization = False
        self.optimizer_factory = optimizer
        self.generator = build(generator, noise_dim=noise_dim, image_shape=tuple(image_shape))
        self.discriminator = build(discriminator, image_shape=tuple(image_shape))
        self.register_buffer("fixed_noise", losses.sample_noise(num_fixed, noise_dim, seed=seed))
        self.ema = ema_copy(self.generator, ema_decay) if ema_decay is not None else None

    @property
    def metric_names(self) -> list[str]:
        """Every metric this module logs: what ``monitor.metric`` can name (checked before training)."""
        return metric_names(self.loss, self.hparams.r1_weight)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Noise (N, Z) -> images (N, C, H, W) in [-1, 1]."""
        return self.generator(noise)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) of ``noise`` (N, Z) with the generator (its moving average with
        ``ema_decay``) in eval mode (BatchNorm's running statistics), on the CPU; the mode is restored
        afterwards."""
        generator = self.ema.module if self.ema is not None else self.generator
        was_training = generator.training
        generator.eval()
        images = generator(noise.to(self.device)).cpu()
        generator.train(was_training)
        return images

    def generate(self, n: int, seed: int) -> torch.Tensor:
        """``n`` samples (n, C, H, W) in [-1, 1] of noise drawn with ``seed`` (the sample-quality metrics)."""
        return self.sample(losses.sample_noise(n, self.hparams.noise_dim, seed=seed))

    def configure_optimizers(self):
        return (
            build(self.optimizer_factory, params=self.discriminator.parameters()),
            build(self.optimizer_factory, params=self.generator.parameters()),
        )

    def _rng(self, batch_idx: int, stage: int) -> torch.Generator:
        """A CPU generator seeded by (seed, stage, epoch, batch): the same draws after a resume."""
        state = np.random.SeedSequence([self.hparams.seed, stage, self.current_epoch, batch_idx])
        return torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def _noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return losses.sample_noise(n, self.hparams.noise_dim, generator=rng, device=self.device)

    def _augment(self, images: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        """``images`` as the discriminator sees them: through ``augment``'s transforms (from ``rng``)."""
        return diff_augment(images, self.hparams.augment, rng)

    def _d_loss(
        self, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """The discriminator's loss on ``real`` and (detached) ``fake`` images, and D(x), D(G(z)) means as
        the loss shows them. With ``rng`` (training): the inputs are augmented and the gradient penalty and
        R1 are added; without (validation): neither."""
        if rng is not None:
            real, fake = self._augment(real, rng), self._augment(fake.detach(), rng)
        if rng is not None and self.hparams.r1_weight:
            real = real.detach().requires_grad_(True)
        scores_real, scores_fake = self.discriminator(real), self.discriminator(fake.detach())
        out = {"d_loss": self.loss.discriminator(scores_real, scores_fake)}
        if self.loss.gradient_penalty and rng is not None:
            out["gp"] = losses.gradient_penalty(self.discriminator, real, fake, self.hparams.gp_weight, rng)
            out["d_loss"] = out["d_loss"] + out["gp"]
        if rng is not None and self.hparams.r1_weight:
            out["r1"] = losses.r1_penalty(scores_real, real, self.hparams.r1_weight)
            out["d_loss"] = out["d_loss"] + out["r1"]
        if self.loss.shown is not None:
            scores_real, scores_fake = self.loss.shown(scores_real), self.loss.shown(scores_fake)
        out["d_real"], out["d_fake"] = scores_real.detach().mean(), scores_fake.detach().mean()
        return out

    def training_step(self, batch, batch_idx: int) -> None:
        real, _ = batch
        opt_d, opt_g = self.optimizers()
        rng = self._rng(batch_idx, stage=0)
        d = self._d_loss(real, self.generator(self._noise(real.shape[0], rng)), rng)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d["d_loss"])
        opt_d.step()
        self.log_dict(
            {f"train/{k}": v for k, v in d.items()},
            prog_bar=False,
            on_step=True,
            on_epoch=True,
            batch_size=real.shape[0],
        )
        if (batch_idx + 1) % self.hparams.n_critic == 0:
            fake = self._augment(self.generator(self._noise(real.shape[0], rng)), rng)
            g_loss = self.loss.generator(self.discriminator(fake))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            if self.ema is not None:
                self.ema.update_parameters(self.generator)
            self.log(
                "train/g_loss",
                g_loss.detach(),
                prog_bar=True,
                on_step=True,
                on_epoch=True,
                batch_size=real.shape[0],
            )

    def validation_step(self, batch, batch_idx: int) -> None:
        real, _ = batch
        # no gradient penalty here (validation runs in inference mode): for WGAN-GP, -val/d_loss is the
        # critic's estimate of the Wasserstein distance between real and generated images
        d = self._d_loss(
            real, self.generator(self._noise(real.shape[0], self._rng(batch_idx, stage=1))), None
        )
        self.log_dict({f"val/{k}": v for k, v in d.items()}, batch_size=real.shape[0])
