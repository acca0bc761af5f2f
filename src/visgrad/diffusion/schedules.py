"""Noise schedules of a DDPM: ``timesteps`` T -> the variances ``betas`` (T,) of the forward process, float64.

:data:`NOISE_SCHEDULES` holds one :class:`NoiseSchedule` per schedule; ``beta_schedule`` (of
:class:`~visgrad.diffusion.GaussianDiffusion` and ``model.beta_schedule``) takes one of these names or the
dotted path of a ``NoiseSchedule`` in your own package.

- ``linear`` (Ho et al. 2020): betas evenly from 1e-4 to 0.02, both scaled by 1000 / T so that any T
  destroys the signal about as much as T = 1000 does.
- ``cosine`` (Nichol & Dhariwal 2021): ``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos((t/T + s) / (1 + s)
  * pi/2)^2`` with s = 0.008.
- ``sigmoid`` (Chen 2023, "On the importance of noise scheduling"): ``alpha_bar(t) = (sigmoid(end/tau) -
  sigmoid((t/T (end - start) + start) / tau)) / (sigmoid(end/tau) - sigmoid(start/tau))`` with start -3,
  end 3, tau 1 (then divided by its value at t = 0).

The cumulative schedules give ``beta_t = 1 - alpha_bar(t) / alpha_bar(t - 1)``, clipped to [0, 0.999] (the
last steps of the cosine schedule would otherwise reach 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from visgrad.registry import Registry

MAX_BETA = 0.999


def linear_beta_schedule(timesteps: int) -> torch.Tensor:
    """Betas (T,) evenly from ``1e-4 * 1000 / T`` to ``0.02 * 1000 / T``."""
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def _betas_from_cumulative(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Betas (T,) of ``alpha_bar`` at t = 0..T (T + 1,), normalised to 1 at t = 0."""
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(0, MAX_BETA)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Betas (T,) of Nichol & Dhariwal's ``alpha_bar(t) = cos((t/T + s) / (1 + s) * pi/2)^2``."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    return _betas_from_cumulative(torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2)


def sigmoid_beta_schedule(
    timesteps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0
) -> torch.Tensor:
    """Betas (T,) of Chen 2023's sigmoid ``alpha_bar`` (see the module docstring)."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    v_start, v_end = (torch.tensor(v / tau, dtype=torch.float64).sigmoid() for v in (start, end))
    alphas_cumprod = (v_end - ((t * (end - start) + start) / tau).sigmoid()) / (v_end - v_start)
    return _betas_from_cumulative(alphas_cumprod)


@dataclass(frozen=True)
class NoiseSchedule:
    """A noise schedule: ``betas(timesteps) -> (T,)`` float64 in [0, 1), with its registry name and label."""

    name: str
    label: str
    betas: Callable[[int], torch.Tensor]


NOISE_SCHEDULES: Registry[NoiseSchedule] = Registry("noise schedule", NoiseSchedule)
NOISE_SCHEDULES.add(NoiseSchedule("linear", "linear (Ho et al. 2020)", linear_beta_schedule))
NOISE_SCHEDULES.add(NoiseSchedule("cosine", "cosine (Nichol & Dhariwal 2021)", cosine_beta_schedule))
NOISE_SCHEDULES.add(NoiseSchedule("sigmoid", "sigmoid (Chen 2023)", sigmoid_beta_schedule))
