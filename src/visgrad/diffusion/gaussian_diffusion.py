"""``GaussianDiffusion``: the DDPM of Ho et al. 2020 with the names and signatures of CS231n (2025).

The forward process noises an image ``x_0`` (N, C, S, S) in [-1, 1] in T steps of variance ``beta_t``;
with ``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s<=t} alpha_s`` it has the closed form

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)                          (q_sample)

and the posterior of one step back is Gaussian with

    mean = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) x_0
           + (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) x_t,
    variance = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)                            (q_posterior)

(``alpha_bar_{-1} = 1``; times are 0-based, t = 0..T-1). A network ``model(x_t, t, **conditions)`` predicts
the noise (``objective="pred_noise"``), ``x_0`` (``"pred_x_start"``) or the velocity
``v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x_0`` (``"pred_v"``, Salimans & Ho 2022: well scaled
at every noise level, where the noise says little about x_0 near t = T), or what an objective of your own
says (:mod:`visgrad.diffusion.objectives`); the loss is the mean squared error of that prediction at a
uniformly drawn t (``p_losses``). Sampling starts from N(0, I) and either walks
back all T steps, each drawing from the posterior at the predicted ``x_0`` (``p_sample``; ancestral
sampling), or takes ``sampling_timesteps`` < T deterministic DDIM steps (Song et al. 2021; ``eta`` > 0
adds DDIM's noise, ``eta = 1`` is DDPM-like). Predicted ``x_0`` are clipped to [-1, 1].

``model_kwargs`` are the network's conditions (``{"y": labels}`` for the class-conditional UNet) plus,
optionally, ``cfg_scale`` s: classifier-free guidance (Ho & Salimans 2021) combines the conditional and the
unconditional prediction (every condition set to None) as ``uncond + s (cond - uncond)``: s = 1 is the
plain conditional model, s = 0 the unconditional one, s > 1 guides harder. Random draws come from the
global RNG or, where a ``generator`` is given, from that CPU generator (then the same on every device).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.diffusion.objectives import OBJECTIVES, Objective
from visgrad.diffusion.schedules import NOISE_SCHEDULES, NoiseSchedule


def extract(values: torch.Tensor, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``values[t]`` (B,) reshaped to (B, 1, 1, ...) to broadcast against a batch of ``shape``."""
    return values.gather(0, t).reshape(t.shape[0], *((1,) * (len(shape) - 1)))


class GaussianDiffusion(nn.Module):
    """Args:
    model: the denoising network ``model(x_t (N, C, S, S), t (N,) int64, **conditions) -> (N, C, S, S)``,
        or None to use the schedule alone (``q_sample``, ``q_posterior``, ...).
    image_size: S.
    timesteps: T.
    objective: what the network predicts: an :data:`~visgrad.diffusion.objectives.OBJECTIVES` name
        (``pred_noise``, ``pred_x_start``, ``pred_v``) or the dotted path of an ``Objective``; kept as
        ``objective`` (the name or path given) and ``parameterization`` (the ``Objective``).
    beta_schedule: a :data:`~visgrad.diffusion.schedules.NOISE_SCHEDULES` name (``linear``, ``cosine``,
        ``sigmoid``) or the dotted path of a ``NoiseSchedule``.
    channels: C (None: the model's ``channels`` attribute, else 1).

    The schedule's tensors are float32 buffers computed in float64: ``betas``, ``alphas_cumprod``,
    ``alphas_cumprod_prev``, ``sqrt_alphas_cumprod``, ``sqrt_one_minus_alphas_cumprod``,
    ``sqrt_recip_alphas_cumprod``, ``sqrt_recipm1_alphas_cumprod``, ``posterior_variance``,
    ``posterior_log_variance_clipped`` (the first entry, 0, replaced by the second), ``posterior_mean_coef1``
    (of x_0) and ``posterior_mean_coef2`` (of x_t), all (T,).
    """

    def __init__(
        self,
        model: nn.Module | None,
        *,
        image_size: int,
        timesteps: int = 1000,
        objective: str | Objective = "pred_noise",
        beta_schedule: str | NoiseSchedule = "sigmoid",
        channels: int | None = None,
    ) -> None:
        super().__init__()
        if int(timesteps) < 1:
            raise ValueError(f"timesteps must be a positive integer, got {timesteps}")
        self.parameterization = OBJECTIVES.get(objective)
        self.objective = objective if isinstance(objective, str) else objective.name
        self.model, self.image_size = model, int(image_size)
        self.channels = int(channels if channels is not None else getattr(model, "channels", 1))
        self.num_timesteps = int(timesteps)
        self.schedule = NOISE_SCHEDULES.get(beta_schedule)
        betas = self.schedule.betas(self.num_timesteps).double()
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
        posterior_variance = betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
        buffers = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
            "sqrt_recip_alphas_cumprod": (1 / alphas_cumprod).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": torch.cat([posterior_variance[1:2], posterior_variance[1:]])
            .clamp(min=1e-20)
            .log(),
            "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1 - alphas_cumprod),
            "posterior_mean_coef2": (1 - alphas_cumprod_prev) * (1 - betas).sqrt() / (1 - alphas_cumprod),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)

    @staticmethod
    def normalize(img: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the model's range [-1, 1]."""
        return img * 2 - 1

    @staticmethod
    def unnormalize(img: torch.Tensor) -> torch.Tensor:
        """The model's range [-1, 1] -> pixels in [0, 1]."""
        return (img + 1) / 2

    def _times(self, t: int | torch.Tensor, batch: int) -> torch.Tensor:
        """``t`` as int64 (batch,) on the buffers' device (an int: the same time for every image)."""
        t = torch.as_tensor(t, device=self.betas.device, dtype=torch.long)
        return t.expand(batch) if t.dim() == 0 else t

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, for x_0, noise (N, C, S, S), t (N,)."""
        t = self._times(t, x_start.shape[0])
        return (
            extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise
        )

    def predict_start_from_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) noise) / sqrt(alpha_bar_t), q_sample solved for x_0."""
        t = self._times(t, x_t.shape[0])
        return (
            extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
            - extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * noise
        )

    def predict_noise_from_start(
        self, x_t: torch.Tensor, t: torch.Tensor, x_start: torch.Tensor
    ) -> torch.Tensor:
        """noise = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t), q_sample solved for the noise."""
        t = self._times(t, x_t.shape[0])
        return (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - x_start) / extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t.shape
        )

    def predict_v(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x_0 (N, C, S, S): the ``pred_v`` target."""
        t = self._times(t, x_start.shape[0])
        return (
            extract(self.sqrt_alphas_cumprod, t, x_start.shape) * noise
            - extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * x_start
        )

    def predict_start_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v (N, C, S, S)."""
        t = self._times(t, x_t.shape[0])
        return (
            extract(self.sqrt_alphas_cumprod, t, x_t.shape) * x_t
            - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.shape) * v
        )

    def q_posterior(
        self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean (N, C, S, S), variance and clipped log-variance (N, 1, 1, 1) of q(x_{t-1} | x_t, x_0)."""
        t = self._times(t, x_t.shape[0])
        mean = (
            extract(self.posterior_mean_coef1, t, x_t.shape) * x_start
            + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        )
        return (
            mean,
            extract(self.posterior_variance, t, x_t.shape),
            extract(self.posterior_log_variance_clipped, t, x_t.shape),
        )

    def model_output(
        self, x_t: torch.Tensor, t: torch.Tensor, model_kwargs: Mapping[str, Any]
    ) -> torch.Tensor:
        """The network's prediction (N, C, S, S), with classifier-free guidance when ``model_kwargs`` has
        ``cfg_scale`` (see the module docstring; one batched call of the conditional and unconditional)."""
        conditions = {k: v for k, v in model_kwargs.items() if k != "cfg_scale"}
        scale = model_kwargs.get("cfg_scale")
        if scale is None or float(scale) == 1.0 or not conditions:
            return self.model(x_t, t, **conditions)
        if float(scale) == 0.0:
            return self.model(x_t, t, **{k: None for k in conditions})
        cond = self.model(x_t, t, **conditions)
        uncond = self.model(x_t, t, **{k: None for k in conditions})
        return uncond + float(scale) * (cond - uncond)

    def model_predictions(
        self, x_t: torch.Tensor, t: torch.Tensor, model_kwargs: Mapping[str, Any], clip_x_start: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted noise, predicted x_0), both (N, C, S, S); with ``clip_x_start`` x_0 is clipped to
        [-1, 1] and the noise recomputed from the clipped x_0."""
        t = self._times(t, x_t.shape[0])
        output = self.model_output(x_t, t, model_kwargs)
        pred_noise, x_start = self.parameterization.predictions(self, x_t, t, output)
        if clip_x_start:
            x_start = x_start.clamp(-1, 1)
            pred_noise = self.predict_noise_from_start(x_t, t, x_start)
        return pred_noise, x_start

    def _randn(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(self.betas.device)

    @torch.no_grad()
    def p_sample(
        self,
        x_t: torch.Tensor,
        t: int,
        model_kwargs: Mapping[str, Any] = {},
        *,  # noqa: B006 - read only
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One ancestral step: x_{t-1} (N, C, S, S) drawn from q(x_{t-1} | x_t, predicted x_0); at t = 0
        the posterior mean (no noise)."""
        _, x_start = self.model_predictions(x_t, t, model_kwargs)
        mean, _, log_variance = self.q_posterior(x_start, x_t, t)
        if int(t) == 0:
            return mean
        return mean + (0.5 * log_variance).exp() * self._randn(x_t.shape, generator)

    @torch.no_grad()
    def ddim_step(
        self,
        x_t: torch.Tensor,
        t: int,
        t_next: int,
        model_kwargs: Mapping[str, Any],
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One DDIM step from time ``t`` to ``t_next`` < t (``t_next = -1``: the predicted x_0)."""
        pred_noise, x_start = self.model_predictions(x_t, t, model_kwargs)
        if t_next < 0:
            return x_start
        a, a_next = self.alphas_cumprod[t], self.alphas_cumprod[t_next]
        sigma = eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
        x_next = a_next.sqrt() * x_start + (1 - a_next - sigma**2).sqrt() * pred_noise
        return x_next + sigma * self._randn(x_t.shape, generator) if eta > 0 else x_next

    def sampling_times(self, sampling_timesteps: int | None = None) -> list[int]:
        """The times a sampler visits, from T - 1 down: all T (ancestral, ``sampling_timesteps`` None or
        T), or ``sampling_timesteps`` evenly spaced ones (DDIM), each followed by the next (-1 at the end)."""
        steps = self.num_timesteps if sampling_timesteps is None else int(sampling_timesteps)
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"sampling_timesteps must be in [1, {self.num_timesteps}], got {steps}")
        times = torch.linspace(-1, self.num_timesteps - 1, steps + 1).round().long().flip(0)
        return times.tolist()

    @torch.no_grad()
    def sample(
        self,
        batch_size: int = 16,
        return_all_timesteps: bool = False,
        model_kwargs: Mapping[str, Any] = {},
        *,  # noqa: B006 - read only
        sampling_timesteps: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``batch_size`` images (N, C, S, S) in [0, 1], from N(0, I) through every timestep with
        ``p_sample`` (``sampling_timesteps`` None or T) or through ``sampling_timesteps`` DDIM steps. With
        ``return_all_timesteps``: (N, steps + 1, C, S, S), the chain from the noise to the image."""
        x = self._randn((batch_size, self.channels, self.image_size, self.image_size), generator)
        chain = [x]
        times = self.sampling_times(sampling_timesteps)
        ancestral = len(times) - 1 == self.num_timesteps
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            if ancestral:
                x = self.p_sample(x, t, model_kwargs, generator=generator)
            else:
                x = self.ddim_step(x, t, t_next, model_kwargs, eta, generator)
            if return_all_timesteps:
                chain.append(x)
        out = torch.stack(chain, dim=1) if return_all_timesteps else x
        return self.unnormalize(out.clamp(-1, 1))

    def p_losses(
        self,
        x_start: torch.Tensor,
        model_kwargs: Mapping[str, Any] = {},
        *,  # noqa: B006 - read only
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The training loss of images ``x_start`` (N, C, S, S) in [-1, 1]: draw t ~ U{0..T-1} (N,), then
        noise ~ N(0, I), and return the mean squared error between the network's output at
        ``q_sample(x_start, t, noise)`` and its target (the noise, x_0 or v). Scalar."""
        t = torch.randint(0, self.num_timesteps, (x_start.shape[0],), generator=generator).to(x_start.device)
        noise = torch.randn(x_start.shape, generator=generator).to(x_start)
        output = self.model(self.q_sample(x_start, t, noise), t, **model_kwargs)
        return F.mse_loss(output, self.parameterization.target(self, x_start, t, noise))

    def forward(self, img: torch.Tensor, model_kwargs: Mapping[str, Any] = {}) -> torch.Tensor:  # noqa: B006
        """The loss of pixel images ``img`` (N, C, S, S) in [0, 1] (normalised, then ``p_losses``)."""
        return self.p_losses(self.normalize(img), model_kwargs)
