"""GAN losses vs independently written NumPy formulas (float64), stability at extreme logits, and the
WGAN-GP gradient penalty on critics whose input gradient is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visgrad.gan import (
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


def np_bce(x: np.ndarray, t: np.ndarray) -> float:
    """-t log s(x) - (1 - t) log(1 - s(x)) = t log(1 + e^-x) + (1 - t) log(1 + e^x), averaged."""
    return float(np.mean(t * np.logaddexp(0, -x) + (1 - t) * np.logaddexp(0, x)))


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, size=(16, 1)), rng.normal(0, 3, size=(16, 1))


def test_sample_noise_range_shape_and_seed() -> None:
    noise = sample_noise(1000, 7)
    assert noise.shape == (1000, 7) and noise.dtype == torch.float32
    assert -1 <= noise.min() < -0.99 and 0.99 < noise.max() <= 1
    assert abs(float(noise.mean())) < 0.05
    torch.manual_seed(5)
    state = torch.get_rng_state()
    assert torch.equal(sample_noise(4, 3, seed=1), sample_noise(4, 3, seed=1))
    assert not torch.equal(sample_noise(4, 3, seed=1), sample_noise(4, 3, seed=2))
    assert torch.equal(torch.get_rng_state(), state)  # a seeded draw leaves the global RNG alone


def test_bce_and_vanilla_losses_match_numpy(scores) -> None:
    real, fake = scores
    targets = np.random.default_rng(1).uniform(size=16)
    assert float(bce_loss(torch.tensor(real), torch.tensor(targets))) == pytest.approx(
        np_bce(real.ravel(), targets), rel=1e-12
    )
    expected_d = np_bce(real.ravel(), np.ones(16)) + np_bce(fake.ravel(), np.zeros(16))
    assert float(discriminator_loss(torch.tensor(real), torch.tensor(fake))) == pytest.approx(
        expected_d, rel=1e-12
    )
    assert float(generator_loss(torch.tensor(fake))) == pytest.approx(
        np_bce(fake.ravel(), np.ones(16)), rel=1e-12
    )
    # the course's reference value: D(x) = D(G(z)) = 0 logits -> 2 log 2 and log 2
    zeros = torch.zeros(8)
    assert float(discriminator_loss(zeros, zeros)) == pytest.approx(2 * np.log(2), rel=1e-6)
    assert float(generator_loss(zeros)) == pytest.approx(np.log(2), rel=1e-6)


def test_least_squares_losses_match_numpy(scores) -> None:
    real, fake = scores
    expected_d = 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2)
    assert float(ls_discriminator_loss(torch.tensor(real), torch.tensor(fake))) == pytest.approx(
        expected_d, rel=1e-12
    )
    assert float(ls_generator_loss(torch.tensor(fake))) == pytest.approx(
        0.5 * np.mean((fake - 1) ** 2), rel=1e-12
    )


def test_wasserstein_losses_match_numpy(scores) -> None:
    real, fake = scores
    assert float(wgan_critic_loss(torch.tensor(real), torch.tensor(fake))) == pytest.approx(
        fake.mean() - real.mean(), rel=1e-12
    )
    assert float(wgan_generator_loss(torch.tensor(fake))) == pytest.approx(-fake.mean(), rel=1e-12)


@pytest.mark.parametrize("logit", [100.0, -100.0])
def test_extreme_logits_give_finite_losses_and_gradients(logit: float) -> None:
    x = torch.full((4, 1), logit, requires_grad=True)
    for loss in (
        discriminator_loss(x, x),
        generator_loss(x),
        bce_loss(x, torch.full((4,), 0.3)),
        ls_discriminator_loss(x, x),
        ls_generator_loss(x),
        wgan_critic_loss(x, -x),
    ):
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    # confident and right: no loss; confident and wrong: |logit| (BCE is linear in the logit there)
    right, wrong = (torch.ones(4), torch.zeros(4)) if logit > 0 else (torch.zeros(4), torch.ones(4))
    assert float(bce_loss(x.detach(), right)) == pytest.approx(0.0, abs=1e-30)
    assert float(bce_loss(x.detach(), wrong)) == pytest.approx(100.0, rel=1e-6)


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so the penalty is lambda (|w| - 1)^2."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.w.flatten()).sum(dim=1, keepdim=True)


def test_gradient_penalty_of_a_linear_critic() -> None:
    w = torch.randn(1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    critic = LinearCritic(w.clone())
    real, fake = torch.randn(5, 1, 3, 3, dtype=torch.float64), torch.randn(5, 1, 3, 3, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, weight=10.0)
    expected = 10.0 * (float(w.norm()) - 1) ** 2
    assert float(penalty) == pytest.approx(expected, rel=1e-10)
    # the penalty's gradient reaches the critic: d/dw lambda (|w| - 1)^2 = 2 lambda (|w| - 1) w / |w|
    penalty.backward()
    expected_grad = 2 * 10.0 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(critic.w.grad, expected_grad)


def test_gradient_penalty_of_a_quadratic_critic_depends_on_the_mixing_point() -> None:
    """D(x) = |x|^2 / 2 has input gradient x: the penalty is lambda mean (|e x_r + (1-e) x_f| - 1)^2 with
    the e drawn from the same seeded generator."""
    critic = lambda x: 0.5 * (x.flatten(1) ** 2).sum(dim=1)
    real, fake = torch.randn(6, 2, 2, 2, dtype=torch.float64), torch.randn(6, 2, 2, 2, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, 10.0, torch.Generator().manual_seed(3))
    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3)).double()
    mixed = eps * real + (1 - eps) * fake
    expected = 10.0 * ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert float(penalty) == pytest.approx(float(expected), rel=1e-10)
