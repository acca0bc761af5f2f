"""The course's generators and discriminators: fully connected (FC) and deep convolutional (DC) pairs.

Images are (N, C, H, W) in [-1, 1] (the generators end in tanh); noise is (N, Z) uniform in [-1, 1]
(:func:`visgrad.gan.losses.sample_noise`); discriminators return one raw score per image, (N, 1).
On 28x28 MNIST the layer sizes are exactly CS231n's; other square sizes divisible by 4 (the 32x32
``shapes`` images) scale the DCGAN's spatial sizes with them.

A :class:`~visgrad.gan.GANModule` is given a generator and a discriminator as factories (the model YAML
picks them: ``conf/model/gan_vanilla.yaml`` the FC pair, ``gan_dc.yaml`` the DC pair) and builds them with
``noise_dim`` and ``image_shape`` (generators) or ``image_shape`` (discriminators): a network of your own
with these arguments can take either place.
"""

from __future__ import annotations

import math

from torch import nn


class FCGenerator(nn.Sequential):
    """noise (N, Z) -> Linear(Z, 1024) ReLU -> Linear(1024, 1024) ReLU -> Linear(1024, C*H*W) tanh
    -> images (N, C, H, W)."""

    def __init__(
        self, noise_dim: int = 96, image_shape: tuple[int, int, int] = (1, 28, 28), hidden: int = 1024
    ):
        super().__init__(
            nn.Linear(noise_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, math.prod(image_shape)),
            nn.Tanh(),
            nn.Unflatten(1, tuple(image_shape)),
        )


class FCDiscriminator(nn.Sequential):
    """images (N, C, H, W) -> flatten -> Linear(C*H*W, 256) LeakyReLU(0.01) -> Linear(256, 256)
    LeakyReLU(0.01) -> Linear(256, 1) -> scores (N, 1)."""

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), hidden: int = 256):
        super().__init__(
            nn.Flatten(),
            nn.Linear(math.prod(image_shape), hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, 1),
        )


class DCGenerator(nn.Sequential):
    """InfoGAN's generator, as in the course: noise (N, Z) -> Linear(Z, 1024) ReLU BN -> Linear(1024,
    128*S/4*S/4) ReLU BN -> (N, 128, S/4, S/4) -> ConvT(128, 64, 4, stride 2, pad 1) ReLU BN ->
    ConvT(64, C, 4, stride 2, pad 1) tanh -> images (N, C, S, S). Needs S divisible by 4."""

    def __init__(self, noise_dim: int = 96, image_shape: tuple[int, int, int] = (1, 28, 28)):
        channels, size, _ = _square(image_shape)
        if size % 4:
            raise ValueError(f"the DCGAN generator needs an image size divisible by 4, got {size}")
        base = size // 4
        super().__init__(
            nn.Linear(noise_dim, 1024),
            nn.ReLU(),
            nn.BatchNorm1d(1024),
            nn.Linear(1024, 128 * base * base),
            nn.ReLU(),
            nn.BatchNorm1d(128 * base * base),
            nn.Unflatten(1, (128, base, base)),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(64),
            nn.ConvTranspose2d(64, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )


class DCDiscriminator(nn.Sequential):
    """The course's convolutional discriminator (no BatchNorm, so it also serves as WGAN-GP's critic):
    images (N, C, S, S) -> Conv(C, 32, 5) LeakyReLU(0.01) MaxPool 2 -> Conv(32, 64, 5) LeakyReLU(0.01)
    MaxPool 2 -> flatten (64*4*4 at S=28) -> Linear LeakyReLU(0.01) -> Linear(., 1) -> scores (N, 1).

    ``spectral_norm``: divide each layer's weight by its largest singular value (Miyato et al. 2018; one
    power iteration per training forward pass, ``torch.nn.utils.parametrizations.spectral_norm``), which
    makes the discriminator 1-Lipschitz per layer and keeps its gradients informative."""

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), spectral_norm: bool = False):
        channels, size, _ = _square(image_shape)
        final = ((size - 4) // 2 - 4) // 2
        if final < 1:
            raise ValueError(f"the DCGAN discriminator needs images of at least 16x16, got {size}x{size}")
        features = 64 * final * final
        super().__init__(
            nn.Conv2d(channels, 32, 5),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(features, features),
            nn.LeakyReLU(0.01),
            nn.Linear(features, 1),
        )
        if spectral_norm:
            for layer in self:
                if isinstance(layer, nn.Conv2d | nn.Linear):
                    nn.utils.parametrizations.spectral_norm(layer)


def _square(image_shape) -> tuple[int, int, int]:
    channels, height, width = (int(s) for s in image_shape)
    if height != width:
        raise ValueError(f"the DCGAN pair needs square images, got {height}x{width}")
    return channels, height, width
