"""GAN losses with the CS231n signatures, plus WGAN-GP (Gulrajani et al. 2017), and their registry.

All losses are batch means and take the discriminator's raw outputs: logits for the vanilla GAN (the
sigmoid is folded into a numerically stable log-sum-exp, so logits of +-100 give finite losses and
gradients), unbounded scores for least squares (Mao et al. 2016) and for the Wasserstein critic.

:data:`GAN_LOSSES` holds one :class:`GANLoss` per kind of GAN (``vanilla``, ``ls``, ``wgan_gp``);
``model.loss`` takes one of these names or the dotted path of a ``GANLoss`` in your own package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.registry import Registry

GP_WEIGHT = 10.0


def sample_noise(
    batch_size: int,
    dim: int,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform noise in [-1, 1].

    Inputs: ``batch_size`` N, ``dim`` noise size Z; ``seed`` makes the draw repeatable without touching the
    global RNG (``generator``, a CPU generator, instead draws from it; neither: the global RNG). The draw
    is made on the CPU and moved to ``device``, so a seed gives the same noise on every device.
    Returns float32 (N, Z).
    """
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(batch_size, dim, generator=generator) - 1).to(device)


def bce_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits ``input`` (N,) or (N, 1) against targets in [0, 1] (N,):
    mean over i of ``-t_i log sigmoid(x_i) - (1 - t_i) log(1 - sigmoid(x_i))``, computed stably."""
    return F.binary_cross_entropy_with_logits(input.reshape(-1), target.reshape(-1).to(input.dtype))


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Vanilla GAN discriminator loss: BCE(D(x), 1) + BCE(D(G(z)), 0). Logits (N,) or (N, 1); scalar."""
    return bce_loss(logits_real, torch.ones_like(logits_real)) + bce_loss(
        logits_fake, torch.zeros_like(logits_fake)
    )


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: BCE(D(G(z)), 1). Logits (N,) or (N, 1); scalar."""
    return bce_loss(logits_fake, torch.ones_like(logits_fake))


def ls_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]. Scores (N,) or (N, 1)."""
    return 0.5 * ((scores_real - 1) ** 2).mean() + 0.5 * (scores_fake**2).mean()


def ls_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss: 1/2 E[(D(G(z)) - 1)^2]. Scores (N,) or (N, 1); scalar."""
    return 0.5 * ((scores_fake - 1) ** 2).mean()


def wgan_critic_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss (without the penalty): E[D(G(z))] - E[D(x)]. Scores (N,) or (N, 1)."""
    return scores_fake.mean() - scores_real.mean()


def wgan_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss: -E[D(G(z))]. Scores (N,) or (N, 1); scalar."""
    return -scores_fake.mean()


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = GP_WEIGHT,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty ``weight * E[(||grad_x D(x_hat)||_2 - 1)^2]`` at ``x_hat = e x + (1 - e) G(z)``.

    Inputs: ``real`` and ``fake`` (N, C, H, W) (``fake`` is detached here); ``e`` ~ U[0, 1] per sample,
    drawn on the CPU from ``generator`` (or the global RNG). The graph is kept (``create_graph``) so that the
    penalty's own gradient reaches the critic's weights. Returns a scalar.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator).to(real)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(scores_real: torch.Tensor, real: torch.Tensor, weight: float) -> torch.Tensor:
    """Mescheder et al.'s (2018) R1 penalty ``weight / 2 * E[||grad_x D(x)||^2]`` on real images.

    Inputs: ``scores_real`` (N, 1), D's outputs on ``real`` (N, C, H, W), which must require grad (the
    penalty differentiates the former by the latter, keeping the graph so that it trains D). Returns a scalar.
    """
    (grad,) = torch.autograd.grad(scores_real.sum(), real, create_graph=True)
    return weight / 2 * grad.flatten(1).pow(2).sum(dim=1).mean()


@dataclass(frozen=True)
class GANLoss:
    """A kind of GAN: its two losses on the discriminator's raw outputs D(x), D(G(z)) (N, 1).

    name, label: registry name and display name.
    discriminator: ``(scores_real, scores_fake) -> scalar`` the discriminator's (critic's) loss.
    generator: ``scores_fake -> scalar`` the generator's loss.
    gradient_penalty: whether the discriminator's training loss adds WGAN-GP's penalty
        (:func:`gradient_penalty`, weighted by the module's ``gp_weight``).
    shown: how D's outputs are logged as ``d_real`` / ``d_fake`` (``torch.sigmoid``: probabilities;
        None: the raw scores).
    """

    name: str
    label: str
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]
    gradient_penalty: bool = False
    shown: Callable[[torch.Tensor], torch.Tensor] | None = None


GAN_LOSSES: Registry[GANLoss] = Registry("GAN loss", GANLoss)
GAN_LOSSES.add(GANLoss("vanilla", "BCE (non-saturating)", discriminator_loss, generator_loss,
                       shown=torch.sigmoid))
GAN_LOSSES.add(GANLoss("ls", "least squares", ls_discriminator_loss, ls_generator_loss))
GAN_LOSSES.add(GANLoss("wgan_gp", "Wasserstein + gradient penalty", wgan_critic_loss, wgan_generator_loss,
                       gradient_penalty=True))
