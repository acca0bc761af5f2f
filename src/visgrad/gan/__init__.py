"""Generative adversarial networks: the course's losses, generators and discriminators (FC and DCGAN),
WGAN-GP, the registry of GAN losses (``GAN_LOSSES``), a Lightning module that is given its networks, loss
and optimizer, and sample-quality metrics."""

from visgrad.gan.losses import (
    GAN_LOSSES,
    GANLoss,
    bce_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    ls_discriminator_loss,
    ls_generator_loss,
    sample_noise,
    wgan_critic_loss,
    wgan_generator_loss,
)
from visgrad.gan.module import GANModule

__all__ = [
    "GAN_LOSSES",
    "GANLoss",
    "GANModule",
    "bce_loss",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "ls_discriminator_loss",
    "ls_generator_loss",
    "sample_noise",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
