"""An exponential moving average (EMA) of a network's weights, for the samples of generative models.

Generators are sampled and scored with an average of their recent weights (Karras et al. 2018; Yazıcı et al.
2019 for GANs; every DDPM since Ho et al. 2020): the average smooths the oscillation of adversarial training
and SGD noise out of the samples. This is PyTorch's own ``torch.optim.swa_utils.AveragedModel`` with

    avg <- d * avg + (1 - d) * current,   d = min(decay, (1 + n) / (10 + n))

after the n-th update (the warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``: early
averages forget the random initial weights quickly, so even a run of a few hundred steps benefits). The
buffers (BatchNorm's running statistics) are averaged too (``use_buffers=True``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_avg_fn(decay: float):
    """``avg_fn(averaged, current, num_averaged) -> new average`` of ``AveragedModel`` with the warm-up
    above (``num_averaged`` = n, the updates so far)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the EMA decay must be in (0, 1), got {decay}")

    def avg_fn(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        return averaged * d + current * (1 - d)

    return avg_fn


def ema_copy(model: nn.Module, decay: float) -> AveragedModel:
    """An ``AveragedModel`` of ``model`` (a copy; call ``.update_parameters(model)`` after each step; the
    averaged network is its ``.module``), frozen."""
    ema = AveragedModel(model, avg_fn=ema_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema
