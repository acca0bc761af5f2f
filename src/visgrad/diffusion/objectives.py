"""What a DDPM's network predicts: its training target, and how its output gives the noise and x_0 that the
samplers need.

:data:`OBJECTIVES` holds one :class:`Objective` per parameterization; ``objective`` (of
:class:`~visgrad.diffusion.GaussianDiffusion` and ``model.objective``) takes one of these names or the
dotted path of an ``Objective`` in your own package.

- ``pred_noise`` (Ho et al. 2020, the course): the network predicts the noise; x_0 is
  ``predict_start_from_noise(x_t, t, output)``.
- ``pred_x_start``: the network predicts x_0; the noise is ``predict_noise_from_start(x_t, t, output)``.
- ``pred_v`` (Salimans & Ho 2022): the network predicts the velocity ``v = sqrt(alpha_bar_t) noise -
  sqrt(1 - alpha_bar_t) x_0``, well scaled at every noise level; x_0 is ``predict_start_from_v``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from visgrad.registry import Registry

if TYPE_CHECKING:
    from visgrad.diffusion.gaussian_diffusion import GaussianDiffusion


@dataclass(frozen=True)
class Objective:
    """A parameterization of the denoising network, with its registry name and label.

    target: ``(diffusion, x_start, t, noise) -> (N, C, S, S)``, what the loss regresses the network's output
        on, for images ``x_start`` (N, C, S, S) noised at times ``t`` (N,) with ``noise`` (N, C, S, S).
    predictions: ``(diffusion, x_t, t, output) -> (noise, x_start)``, both (N, C, S, S): the noise and x_0
        that the network's ``output`` at ``x_t`` (N, C, S, S), times ``t`` (N,), stands for.
    """

    name: str
    label: str
    target: Callable[[GaussianDiffusion, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    predictions: Callable[
        [GaussianDiffusion, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
    ]


def noise_target(diffusion, x_start, t, noise):
    return noise


def noise_predictions(diffusion, x_t, t, output):
    return output, diffusion.predict_start_from_noise(x_t, t, output)


def start_target(diffusion, x_start, t, noise):
    return x_start


def start_predictions(diffusion, x_t, t, output):
    return diffusion.predict_noise_from_start(x_t, t, output), output


def v_target(diffusion, x_start, t, noise):
    return diffusion.predict_v(x_start, t, noise)


def v_predictions(diffusion, x_t, t, output):
    x_start = diffusion.predict_start_from_v(x_t, t, output)
    return diffusion.predict_noise_from_start(x_t, t, x_start), x_start


OBJECTIVES: Registry[Objective] = Registry("diffusion objective", Objective)
OBJECTIVES.add(Objective("pred_noise", "noise (Ho et al. 2020)", noise_target, noise_predictions))
OBJECTIVES.add(Objective("pred_x_start", "x_0", start_target, start_predictions))
OBJECTIVES.add(Objective("pred_v", "velocity (Salimans & Ho 2022)", v_target, v_predictions))
