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

Class-conditional GANs (``num_classes`` K > 0, beyond the course): both factories are also called with
``num_classes``, and both networks take the labels, ``generator(noise, y)`` and ``discriminator(images, y)``
(:mod:`visgrad.gan.models`). Training draws the fakes of a batch with the real batch's labels; samples,
figures and metrics draw every class about equally often, in blocks (the fixed grid: one class per row).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from visgrad.gan import losses
from visgrad.gan.augment import AUGMENTS, diff_augment
from visgrad.gan.losses import GAN_LOSSES, GANLoss
from visgrad.generative.ema import ema_copy
from visgrad.generative.labels import block_labels
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
    num_classes: K, the classes both networks are conditioned on (0: unconditional, the course).
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
        num_classes: int = 0,
        image_shape: Sequence[int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        self.loss = GAN_LOSSES.get(loss)
        unknown = [name for name in augment if name not in AUGMENTS]
        if unknown:
            raise ValueError(f"augment={list(augment)}: unknown {unknown}; known: {', '.join(AUGMENTS)}")
        if r1_weight < 0:
            raise ValueError(f"r1_weight={r1_weight}: must be >= 0")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes={num_classes!r}: must be an integer >= 0 (0: unconditional)")
        image_shape = [int(s) for s in image_shape]  # plain ints in the checkpoint (not a Hydra ListConfig)
        augment = [str(name) for name in augment]
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.hparams.update(generator=partial_config(generator), discriminator=partial_config(discriminator),
                            loss=loss if isinstance(loss, str) else self.loss.name,
                            optimizer=partial_config(optimizer))
        self.automatic_optimization = False
        self.optimizer_factory = optimizer
        classes = {"num_classes": num_classes} if num_classes else {}  # unconditional nets need not take K
        self.generator = build(generator, noise_dim=noise_dim, image_shape=tuple(image_shape), **classes)
        self.discriminator = build(discriminator, image_shape=tuple(image_shape), **classes)
        self.register_buffer("fixed_noise", losses.sample_noise(num_fixed, noise_dim, seed=seed))
        self.ema = ema_copy(self.generator, ema_decay) if ema_decay is not None else None

    @property
    def metric_names(self) -> list[str]:
        """Every metric this module logs: what ``monitor.metric`` can name (checked before training)."""
        return metric_names(self.loss, self.hparams.r1_weight)

    @property
    def conditional(self) -> bool:
        return bool(self.hparams.num_classes)

    def fixed_labels(self, n: int) -> torch.Tensor | None:
        """Labels (n,) of n samples: K blocks ``0, .., 0, 1, .., K-1`` (one class per grid row of n/K images);
        None when unconditional."""
        return block_labels(n, self.hparams.num_classes)

    def _generate(self, generator: nn.Module, noise: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return generator(noise, y) if self.conditional else generator(noise)

    def _discriminate(self, images: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.discriminator(images, y) if self.conditional else self.discriminator(images)

    def forward(self, noise: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Noise (N, Z) [and labels y (N,) when conditional] -> images (N, C, H, W) in [-1, 1]."""
        return self._generate(self.generator, noise, y)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) of ``noise`` (N, Z) [and ``labels`` (N,) when conditional; default:
        :meth:`fixed_labels`] with the generator (its moving average with ``ema_decay``) in eval mode
        (BatchNorm's running statistics), on the CPU; the mode is restored afterwards."""
        generator = self.ema.module if self.ema is not None else self.generator
        if self.conditional:
            labels = (self.fixed_labels(noise.shape[0]) if labels is None else labels).to(self.device)
        elif labels is not None:
            raise ValueError("labels given to an unconditional GAN (num_classes=0)")
        was_training = generator.training
        generator.eval()
        images = self._generate(generator, noise.to(self.device), labels).cpu()
        generator.train(was_training)
        return images

    def generate(self, n: int, seed: int) -> torch.Tensor:
        """``n`` samples (n, C, H, W) in [-1, 1] of noise drawn with ``seed`` [and :meth:`fixed_labels`]
        (the sample-quality metrics)."""
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
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None, rng: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """The discriminator's loss on ``real`` and (detached) ``fake`` images (both of labels ``y`` when
        conditional), and D(x), D(G(z)) means as the loss shows them. With ``rng`` (training): the inputs are
        augmented and the gradient penalty and R1 are added; without (validation): neither."""
        if rng is not None:
            real, fake = self._augment(real, rng), self._augment(fake.detach(), rng)
        if rng is not None and self.hparams.r1_weight:
            real = real.detach().requires_grad_(True)
        scores_real, scores_fake = self._discriminate(real, y), self._discriminate(fake.detach(), y)
        out = {"d_loss": self.loss.discriminator(scores_real, scores_fake)}
        if self.loss.gradient_penalty and rng is not None:
            critic = functools.partial(self._discriminate, y=y)
            out["gp"] = losses.gradient_penalty(critic, real, fake, self.hparams.gp_weight, rng)
            out["d_loss"] = out["d_loss"] + out["gp"]
        if rng is not None and self.hparams.r1_weight:
            out["r1"] = losses.r1_penalty(scores_real, real, self.hparams.r1_weight)
            out["d_loss"] = out["d_loss"] + out["r1"]
        if self.loss.shown is not None:
            scores_real, scores_fake = self.loss.shown(scores_real), self.loss.shown(scores_fake)
        out["d_real"], out["d_fake"] = scores_real.detach().mean(), scores_fake.detach().mean()
        return out

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        y = labels if self.conditional else None
        opt_d, opt_g = self.optimizers()
        rng = self._rng(batch_idx, stage=0)
        d = self._d_loss(real, self(self._noise(real.shape[0], rng), y), y, rng)
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
            fake = self._augment(self(self._noise(real.shape[0], rng), y), rng)
            g_loss = self.loss.generator(self._discriminate(fake, y))
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
        real, labels = batch
        y = labels if self.conditional else None
        # no gradient penalty here (validation runs in inference mode): for WGAN-GP, -val/d_loss is the
        # critic's estimate of the Wasserstein distance between real and generated images
        d = self._d_loss(real, self(self._noise(real.shape[0], self._rng(batch_idx, stage=1)), y), y, None)
        self.log_dict({f"val/{k}": v for k, v in d.items()}, batch_size=real.shape[0])
