"""Denoising diffusion (DDPM, CS231n 2025): noise schedules (``NOISE_SCHEDULES``), the course's
``GaussianDiffusion`` with classifier-free guidance and DDIM sampling, a small class-conditional UNet, and the
Lightning module that trains them (``DiffusionModule``)."""

from visgrad.diffusion.gaussian_diffusion import GaussianDiffusion
from visgrad.diffusion.module import DiffusionModule
from visgrad.diffusion.schedules import NOISE_SCHEDULES, NoiseSchedule
from visgrad.diffusion.unet import UNet

__all__ = ["NOISE_SCHEDULES", "DiffusionModule", "GaussianDiffusion", "NoiseSchedule", "UNet"]
