"""The course's generators and discriminators: fully connected (FC) and deep convolutional (DC) pairs.

Images are (N, C, H, W) in [-1, 1] (the generators end in tanh); noise is (N, Z) uniform in [-1, 1]
(:func:`visgrad.gan.losses.sample_noise`); discriminators return one raw score per image, (N, 1).
On 28x28 MNIST the layer sizes are exactly CS231n's; other square sizes divisible by 4 (the 32x32
``shapes`` images) scale the DCGAN's spatial sizes with them.

A :class:`~visgrad.gan.GANModule` is given a generator and a discriminator as factories (the model YAML
picks them: ``conf/model/gan_vanilla.yaml`` the FC pair, ``gan_dc.yaml`` the DC pair) and builds them with
``noise_dim`` and ``image_shape`` (generators) or ``image_shape`` (discriminators): a network of your own
with these arguments can take either place.

Class-conditional pairs (``num_classes`` K > 0; the module then passes ``num_classes`` to both factories and
the labels y (N,) int64 to both networks): the generator reads the one-hot label beside the noise (Mirza &
Osindero 2014), ``generator(noise, y)``; the discriminator ends in a projection (Miyato & Koyama 2018),
``discriminator(images, y) = linear(h) + <embed(y), h>`` on its penultimate features h.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def with_labels(noise: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """Noise (N, Z) and, for a conditional generator (``num_classes`` K > 0), the one-hot labels ``y`` (N,)
    beside it: (N, Z + K)."""
    if not num_classes:
        return noise
    if y is None:
        raise ValueError(f"a generator conditioned on {num_classes} classes needs the labels y")
    return torch.cat([noise, F.one_hot(y.long(), num_classes).to(noise.dtype)], dim=1)


class Projection(nn.Module):
    """The output layer of a class-conditional discriminator (Miyato & Koyama 2018): features h (N, F) and
    labels y (N,) -> ``linear(h) + <embed(y), h>`` (N, 1)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(h) + (self.embed(y.long()) * h).sum(dim=1, keepdim=True)


class GeneratorSequential(nn.Sequential):
    """A generator's layers; when conditional (``num_classes`` K > 0) ``forward(noise, y)`` feeds them the
    noise with the one-hot labels beside it (:func:`with_labels`)."""

    num_classes: int = 0

    def forward(self, noise: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(with_labels(noise, y, self.num_classes))


class DiscriminatorSequential(nn.Sequential):
    """A discriminator's layers, the last a :class:`Projection` when conditional (``num_classes`` K > 0):
    ``forward(x, y=None)`` runs the other layers on x, then the last one on their output (and y)."""

    num_classes: int = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if not self.num_classes:
            return super().forward(x)
        if y is None:
            raise ValueError(f"a discriminator conditioned on {self.num_classes} classes needs the labels y")
        *body, head = self
        for layer in body:
            x = layer(x)
        return head(x, y)


def output_layer(features: int, num_classes: int) -> nn.Module:
    """A discriminator's last layer: Linear(features, 1), or a :class:`Projection` when conditional."""
    return Projection(features, num_classes) if num_classes else nn.Linear(features, 1)


class FCGenerator(GeneratorSequential):
    """noise (N, Z) [and one-hot labels (N, K)] -> Linear(Z [+ K], 1024) ReLU -> Linear(1024, 1024) ReLU ->
    Linear(1024, C*H*W) tanh -> images (N, C, H, W)."""

    def __init__(
        self, noise_dim: int = 96, image_shape: tuple[int, int, int] = (1, 28, 28), hidden: int = 1024,
        num_classes: int = 0,
    ):
        super().__init__(
            nn.Linear(noise_dim + num_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, math.prod(image_shape)),
            nn.Tanh(),
            nn.Unflatten(1, tuple(image_shape)),
        )
        self.num_classes = int(num_classes)


class FCDiscriminator(DiscriminatorSequential):
    """images (N, C, H, W) -> flatten -> Linear(C*H*W, 256) LeakyReLU(0.01) -> Linear(256, 256)
    LeakyReLU(0.01) -> Linear(256, 1) [or a Projection of the labels] -> scores (N, 1)."""

    def __init__(
        self, image_shape: tuple[int, int, int] = (1, 28, 28), hidden: int = 256, num_classes: int = 0
    ):
        super().__init__(
            nn.Flatten(),
            nn.Linear(math.prod(image_shape), hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.01),
            output_layer(hidden, num_classes),
        )
        self.num_classes = int(num_classes)


class DCGenerator(GeneratorSequential):
    """InfoGAN's generator, as in the course: noise (N, Z) [and one-hot labels (N, K)] -> Linear(Z [+ K],
    1024) ReLU BN -> Linear(1024, 128*S/4*S/4) ReLU BN -> (N, 128, S/4, S/4) -> ConvT(128, 64, 4, stride 2,
    pad 1) ReLU BN -> ConvT(64, C, 4, stride 2, pad 1) tanh -> images (N, C, S, S). Needs S divisible by 4."""

    def __init__(
        self, noise_dim: int = 96, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 0
    ):
        channels, size, _ = _square(image_shape)
        if size % 4:
            raise ValueError(f"the DCGAN generator needs an image size divisible by 4, got {size}")
        base = size // 4
        super().__init__(
            nn.Linear(noise_dim + num_classes, 1024),
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
        self.num_classes = int(num_classes)


class DCDiscriminator(DiscriminatorSequential):
    """The course's convolutional discriminator (no BatchNorm, so it also serves as WGAN-GP's critic):
    images (N, C, S, S) -> Conv(C, 32, 5) LeakyReLU(0.01) MaxPool 2 -> Conv(32, 64, 5) LeakyReLU(0.01)
    MaxPool 2 -> flatten (64*4*4 at S=28) -> Linear LeakyReLU(0.01) -> Linear(., 1) [or a Projection of the
    labels] -> scores (N, 1).

    ``spectral_norm``: divide each layer's weight by its largest singular value (Miyato et al. 2018; one
    power iteration per training forward pass, ``torch.nn.utils.parametrizations.spectral_norm``), which
    makes the discriminator 1-Lipschitz per layer and keeps its gradients informative."""

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        spectral_norm: bool = False,
        num_classes: int = 0,
    ):
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
            output_layer(features, num_classes),
        )
        self.num_classes = int(num_classes)
        if spectral_norm:
            for layer in list(self.modules()):
                if isinstance(layer, nn.Conv2d | nn.Linear | nn.Embedding):
                    nn.utils.parametrizations.spectral_norm(layer)


def _square(image_shape) -> tuple[int, int, int]:
    channels, height, width = (int(s) for s in image_shape)
    if height != width:
        raise ValueError(f"the DCGAN pair needs square images, got {height}x{width}")
    return channels, height, width
