"""``GANModule``: a generator and a discriminator trained alternately, with Lightning's manual optimisation.

Every training step updates the discriminator (critic) on one real batch and as many generated images;
every ``n_critic``-th step then updates the generator on a fresh noise batch (``n_critic=1``: the course's
alternation; 5 for WGAN-GP). Two Adam optimisers (the course's lr 1e-3, betas (0.5, 0.999)) live in the
checkpoint with their moments. The noise and WGAN-GP's interpolation weights come from a generator seeded
by ``(seed, epoch, batch)``, so a run resumed from a checkpoint draws what the uninterrupted run drew.

Logged: ``train/d_loss``, ``train/g_loss``, ``train/d_real`` and ``train/d_fake`` (the mean of D(x) and
D(G(z)): probabilities for ``loss=vanilla``, raw scores for ``ls`` and ``wgan_gp``), ``train/gp``
(WGAN-GP), and the same on the val images as ``val/*`` (without the generator loss and the penalty).
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from visgrad.gan import losses
from visgrad.gan.models import build_gan

LOSSES = ("vanilla", "ls", "wgan_gp")


class GANModule(pl.LightningModule):
    """Args:
    image_shape: (C, H, W) of the data (from the datamodule's ``model_kwargs()``).
    architecture: ``"fc"`` (the course's fully connected pair) or ``"dc"`` (DCGAN).
    loss: ``"vanilla"`` (BCE, non-saturating G loss), ``"ls"`` (least squares) or ``"wgan_gp"``.
    noise_dim: Z, the size of the uniform [-1, 1] noise.
    lr, betas: both Adam optimisers'.
    n_critic: discriminator steps per generator step.
    gp_weight: WGAN-GP's penalty weight lambda.
    fc_hidden: hidden widths (generator, discriminator) of the FC pair.
    num_fixed: size of the fixed noise batch that figures and sample grids draw from.
    seed: seed of the training noise and of the fixed noise.
    """

    def __init__(
        self,
        image_shape: list[int],
        architecture: str = "fc",
        loss: str = "vanilla",
        noise_dim: int = 96,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        gp_weight: float = losses.GP_WEIGHT,
        fc_hidden: tuple[int, int] = (1024, 256),
        num_fixed: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {loss!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator, self.discriminator = build_gan(architecture, noise_dim, image_shape, tuple(fc_hidden))
        self.register_buffer("fixed_noise", losses.sample_noise(num_fixed, noise_dim, seed=seed))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Noise (N, Z) -> images (N, C, H, W) in [-1, 1]."""
        return self.generator(noise)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) of ``noise`` (N, Z) with the generator in eval mode (BatchNorm's running
        statistics), on the CPU; the generator's mode is restored afterwards."""
        was_training = self.generator.training
        self.generator.eval()
        images = self.generator(noise.to(self.device)).cpu()
        self.generator.train(was_training)
        return images

    def configure_optimizers(self):
        hp = self.hparams
        return (
            torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=tuple(hp.betas)),
            torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=tuple(hp.betas)),
        )

    def _rng(self, batch_idx: int, stage: int) -> torch.Generator:
        """A CPU generator seeded by (seed, stage, epoch, batch): the same draws after a resume."""
        state = np.random.SeedSequence([self.hparams.seed, stage, self.current_epoch, batch_idx])
        return torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def _noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return losses.sample_noise(n, self.hparams.noise_dim, generator=rng, device=self.device)

    def _d_loss(
        self, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """The discriminator's loss on ``real`` and (detached) ``fake`` images, and D(x), D(G(z)) means.
        WGAN-GP: the gradient penalty (drawn with ``rng``) is added unless ``rng`` is None."""
        kind = self.hparams.loss
        scores_real, scores_fake = self.discriminator(real), self.discriminator(fake.detach())
        out = {}
        if kind == "vanilla":
            out["d_loss"] = losses.discriminator_loss(scores_real, scores_fake)
            scores_real, scores_fake = scores_real.sigmoid(), scores_fake.sigmoid()
        elif kind == "ls":
            out["d_loss"] = losses.ls_discriminator_loss(scores_real, scores_fake)
        else:
            out["d_loss"] = losses.wgan_critic_loss(scores_real, scores_fake)
            if rng is not None:
                out["gp"] = losses.gradient_penalty(
                    self.discriminator, real, fake, self.hparams.gp_weight, rng
                )
                out["d_loss"] = out["d_loss"] + out["gp"]
        out["d_real"], out["d_fake"] = scores_real.detach().mean(), scores_fake.detach().mean()
        return out

    def _g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        scores = self.discriminator(fake)
        kind = self.hparams.loss
        if kind == "vanilla":
            return losses.generator_loss(scores)
        return losses.ls_generator_loss(scores) if kind == "ls" else losses.wgan_generator_loss(scores)

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
            g_loss = self._g_loss(self.generator(self._noise(real.shape[0], rng)))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
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
