"""Generative adversarial networks: the course's losses, generators and discriminators (FC and DCGAN),
WGAN-GP, a Lightning module with manual optimisation, and sample-quality metrics."""

from visgrad.gan.losses import (
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
