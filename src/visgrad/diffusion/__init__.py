"""Denoising diffusion (DDPM, CS231n 2025): noise schedules (``NOISE_SCHEDULES``), objectives
(``OBJECTIVES``: what the network predicts), the course's ``GaussianDiffusion`` with classifier-free guidance
and DDIM sampling, a small class-conditional UNet, and the Lightning module that trains them
(``DiffusionModule``)."""

from visgrad.diffusion.gaussian_diffusion import GaussianDiffusion
from visgrad.diffusion.module import DiffusionModule
from visgrad.diffusion.objectives import OBJECTIVES, Objective
from visgrad.diffusion.schedules import NOISE_SCHEDULES, NoiseSchedule
from visgrad.diffusion.unet import UNet

__all__ = ["NOISE_SCHEDULES", "OBJECTIVES", "DiffusionModule", "GaussianDiffusion", "NoiseSchedule",
           "Objective", "UNet"]
