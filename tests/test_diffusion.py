"""DDPM: the schedules, the closed forms and the loss of ``GaussianDiffusion`` against independent NumPy
computations, guidance, DDIM, the UNet and the Lightning module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visgrad.diffusion import NOISE_SCHEDULES, OBJECTIVES, DiffusionModule, GaussianDiffusion, UNet
from visgrad.diffusion.callbacks import chain_snapshots
from visgrad.registry import RegistryError

T = 50
USER_OBJECTIVE = "my_objectives.NEGATED_NOISE"  # an objective of the user's own package (fixture below)
USER_OBJECTIVES_MODULE = '''
from visgrad.diffusion import Objective


def target(diffusion, x_start, t, noise):
    return -noise


def predictions(diffusion, x_t, t, output):
    return -output, diffusion.predict_start_from_noise(x_t, t, -output)


NEGATED_NOISE = Objective("negated_noise", "minus the noise", target, predictions)
'''


@pytest.fixture
def user_objectives(tmp_path, monkeypatch) -> None:
    """The user's package ``my_objectives`` (its network predicts minus the noise), importable."""
    (tmp_path / "my_objectives.py").write_text(USER_OBJECTIVES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))


def np_alpha_bar(name: str, timesteps: int) -> np.ndarray:
    """alpha_bar_t (T,) of each schedule, from the papers' formulas in NumPy."""
    if name == "linear":
        betas = np.linspace(1e-4 * 1000 / timesteps, 0.02 * 1000 / timesteps, timesteps)
        return np.cumprod(1 - betas)
    t = np.arange(timesteps + 1) / timesteps
    if name == "cosine":
        f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    else:  # Chen 2023, start -3, end 3, tau 1
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        f = (sig(3.0) - sig(t * 6 - 3)) / (sig(3.0) - sig(-3.0))
    betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_schedules_match_their_formulas(name: str) -> None:
    diffusion = GaussianDiffusion(None, image_size=4, timesteps=T, beta_schedule=name)
    np.testing.assert_allclose(diffusion.alphas_cumprod.numpy(), np_alpha_bar(name, T), rtol=1e-5, atol=1e-7)
    assert NOISE_SCHEDULES.get(name).name == name
    ab = diffusion.alphas_cumprod
    assert (ab[1:] < ab[:-1]).all() and 0 < ab[-1] < 0.05  # monotone, the signal nearly gone at T


def test_sigmoid_schedule_values_at_chosen_times() -> None:
    """alpha_bar(t) of Chen 2023 (start -3, end 3, tau 1) at t/T = 0.5: exactly 1/2 by symmetry."""
    diffusion = GaussianDiffusion(None, image_size=4, timesteps=100, beta_schedule="sigmoid")
    # alpha_bar of step t (0-based) is the cumulative value at (t + 1) / T
    assert float(diffusion.alphas_cumprod[49]) == pytest.approx(0.5, abs=1e-6)


def draws(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(size=shape), rng.integers(0, T, size=shape[0])


def test_q_sample_and_its_inverses_match_numpy() -> None:
    diffusion = GaussianDiffusion(None, image_size=4, timesteps=T, beta_schedule="cosine").double()
    x0, noise, t = draws((6, 1, 4, 4))
    ab = np_alpha_bar("cosine", T)[t][:, None, None, None]
    expected = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise
    x0_t, noise_t, t_t = torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t)
    x_t = diffusion.q_sample(x0_t, t_t, noise_t)
    np.testing.assert_allclose(x_t.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diffusion.predict_start_from_noise(x_t, t_t, noise_t).numpy(), x0, atol=1e-4)
    np.testing.assert_allclose(diffusion.predict_noise_from_start(x_t, t_t, x0_t).numpy(), noise, atol=1e-4)
    # the velocity of Salimans & Ho 2022 and x_0 back from it
    v = np.sqrt(ab) * noise - np.sqrt(1 - ab) * x0
    v_t = diffusion.predict_v(x0_t, t_t, noise_t)
    np.testing.assert_allclose(v_t.numpy(), v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diffusion.predict_start_from_v(x_t, t_t, v_t).numpy(), x0, atol=1e-6)


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x_start", "pred_v", USER_OBJECTIVE])
def test_a_network_that_outputs_the_true_target_predicts_the_true_noise_and_x0(
    objective: str, user_objectives
) -> None:
    """Each objective's predictions invert its target (where x_0 is in [-1, 1], inside the clip; to float32's
    precision of the schedule's buffers, which x_0 from the noise divides by sqrt(alpha_bar_t))."""
    diffusion = GaussianDiffusion(None, image_size=4, timesteps=T, objective=objective).double()
    x0, noise, t = (torch.from_numpy(a) for a in draws((4, 1, 4, 4), seed=2))
    x0 = x0.clamp(-1, 1)
    x_t = diffusion.q_sample(x0, t, noise)
    diffusion.model = lambda x, times: diffusion.parameterization.target(diffusion, x0, times, noise)
    pred_noise, pred_x0 = diffusion.model_predictions(x_t, t, {})
    torch.testing.assert_close(pred_x0, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pred_noise, noise, rtol=1e-5, atol=1e-5)


def test_q_posterior_matches_the_product_of_gaussians() -> None:
    """q(x_{t-1} | x_t, x_0) from Bayes in NumPy: the prior N(sqrt(ab_{t-1}) x0, 1 - ab_{t-1}) times the
    likelihood N(x_t; sqrt(a_t) x_{t-1}, beta_t): precision 1/(1 - ab_{t-1}) + a_t / beta_t."""
    diffusion = GaussianDiffusion(None, image_size=4, timesteps=T, beta_schedule="linear").double()
    x0, x_t, _ = draws((5, 1, 4, 4), seed=1)
    t = np.array([1, 2, 10, 30, T - 1])
    ab = np_alpha_bar("linear", T)
    ab_prev, alpha = ab[t - 1], ab[t] / ab[t - 1]
    beta = 1 - alpha
    variance = 1 / (1 / (1 - ab_prev) + alpha / beta)
    shape = (-1, 1, 1, 1)
    mean = variance.reshape(shape) * (
        np.sqrt(ab_prev).reshape(shape) * x0 / (1 - ab_prev).reshape(shape)
        + np.sqrt(alpha).reshape(shape) * x_t / beta.reshape(shape)
    )
    got_mean, got_var, got_log_var = diffusion.q_posterior(
        torch.from_numpy(x0), torch.from_numpy(x_t), torch.from_numpy(t)
    )
    np.testing.assert_allclose(got_mean.numpy(), mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_var.numpy().ravel(), variance, rtol=1e-4)
    np.testing.assert_allclose(got_log_var.numpy().ravel(), np.log(variance), rtol=1e-4, atol=1e-5)
    # t = 0: the posterior is the point x0 (variance 0; the clipped log-variance is that of t = 1)
    mean0, var0, _ = diffusion.q_posterior(torch.from_numpy(x0), torch.from_numpy(x_t), torch.zeros(5).long())
    np.testing.assert_allclose(mean0.numpy(), x0, atol=1e-6)
    assert float(var0.abs().max()) == 0.0


class Scaled(torch.nn.Module):
    """A stand-in network: 0.5 x_t + t / 100 (+ y when given)."""

    def forward(self, x, t, y=None):
        out = 0.5 * x + t.to(x)[:, None, None, None] / 100
        return out if y is None else out + y.to(x)[:, None, None, None]


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x_start", "pred_v", USER_OBJECTIVE])
def test_p_losses_at_a_fixed_seed_is_the_hand_computed_value(objective: str, user_objectives) -> None:
    diffusion = GaussianDiffusion(
        Scaled(), image_size=4, timesteps=T, objective=objective, beta_schedule="sigmoid"
    )
    x0 = torch.linspace(-1, 1, 2 * 16).view(2, 1, 4, 4)
    loss = diffusion.p_losses(x0, generator=torch.Generator().manual_seed(7))
    # the same draws, in the documented order: t ~ U{0..T-1} (N,), then the noise
    rng = torch.Generator().manual_seed(7)
    t = torch.randint(0, T, (2,), generator=rng).numpy()
    noise = torch.randn(x0.shape, generator=rng).double().numpy()
    ab = np_alpha_bar("sigmoid", T)[t][:, None, None, None]
    x_t = np.sqrt(ab) * x0.double().numpy() + np.sqrt(1 - ab) * noise
    output = 0.5 * x_t + t[:, None, None, None] / 100
    targets = {"pred_noise": noise, "pred_x_start": x0.double().numpy(),
               "pred_v": np.sqrt(ab) * noise - np.sqrt(1 - ab) * x0.double().numpy(), USER_OBJECTIVE: -noise}
    target = targets[objective]
    assert float(loss) == pytest.approx(float(np.mean((output - target) ** 2)), rel=1e-5)


def test_classifier_free_guidance_combines_conditional_and_unconditional() -> None:
    diffusion = GaussianDiffusion(Scaled(), image_size=4, timesteps=T)
    x, t, y = torch.randn(3, 1, 4, 4), torch.tensor([0, 5, 9]), torch.tensor([1.0, 2.0, 3.0])
    uncond, cond = Scaled()(x, t), Scaled()(x, t, y)
    for scale in (0.0, 1.0, 3.0):
        got = diffusion.model_output(x, t, {"y": y, "cfg_scale": scale})
        torch.testing.assert_close(got, uncond + scale * (cond - uncond))


class Oracle(torch.nn.Module):
    """The perfect denoiser of data that is one image ``x0``: the noise that took x0 to x_t."""

    def __init__(self, diffusion_ref: list, x0: torch.Tensor) -> None:
        super().__init__()
        self.ref, self.x0 = diffusion_ref, x0

    def forward(self, x, t, y=None):
        return self.ref[0].predict_noise_from_start(x, t, self.x0.expand_as(x))


@pytest.mark.parametrize("steps", [None, 10, 1])
def test_ancestral_and_ddim_samplers_recover_the_only_image(steps) -> None:
    ref: list = []
    x0 = torch.linspace(-0.9, 0.9, 16).view(1, 1, 4, 4)
    diffusion = GaussianDiffusion(Oracle(ref, x0), image_size=4, timesteps=T, channels=1)
    ref.append(diffusion)
    out = diffusion.sample(3, sampling_timesteps=steps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, diffusion.unnormalize(x0).expand(3, 1, 4, 4), atol=1e-4, rtol=0)
    chain = diffusion.sample(2, True, sampling_timesteps=steps, generator=torch.Generator().manual_seed(0))
    assert chain.shape == (2, (steps or T) + 1, 1, 4, 4)
    assert diffusion.sampling_times(steps)[0] == T - 1 and diffusion.sampling_times(steps)[-1] == -1


def test_ddim_without_noise_is_deterministic_and_seeded_draws_repeat() -> None:
    net = UNet((1, 8, 8), num_classes=3, width=8, mults=(1, 2), patch=1)
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)  # not the zero-initialised output
    diffusion = GaussianDiffusion(net, image_size=8, timesteps=T)
    kwargs = {"y": torch.tensor([0, 1]), "cfg_scale": 2.0}
    a = diffusion.sample(
        2, model_kwargs=kwargs, sampling_timesteps=5, generator=torch.Generator().manual_seed(3)
    )
    b = diffusion.sample(
        2, model_kwargs=kwargs, sampling_timesteps=5, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (2, 1, 8, 8) and 0 <= float(a.min()) and float(a.max()) <= 1


def test_unet_shapes_conditioning_and_zero_output() -> None:
    net = UNet((1, 28, 28), num_classes=10, width=16)
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 500, 999])
    assert float(net(x, t, torch.arange(4)).abs().max()) == 0.0  # the zero-initialised output layer
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)
    out_a, out_b = net(x, t, torch.tensor([0, 1, 2, 3])), net(x, t, torch.tensor([4, 5, 6, 7]))
    assert out_a.shape == x.shape and not torch.allclose(out_a, out_b)
    torch.testing.assert_close(net(x, t, None), net(x, t, torch.full((4,), 10)))  # None: the "no class" row
    with pytest.raises(ValueError, match="divisible by patch"):
        UNet((1, 30, 30), width=8)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(RegistryError, match="unknown diffusion objective 'bogus_objective'; one of "
                                            "pred_noise, pred_x_start, pred_v, or the dotted path"):
        GaussianDiffusion(None, image_size=4, objective="bogus_objective")
    with pytest.raises(RegistryError, match="visgrad.diffusion.UNet is a type, not an Objective"):
        GaussianDiffusion(None, image_size=4, objective="visgrad.diffusion.UNet")
    with pytest.raises(ValueError, match="sampling_timesteps must be in"):
        GaussianDiffusion(None, image_size=4, timesteps=T).sampling_times(T + 1)
    with pytest.raises(Exception, match="bogus_schedule"):
        GaussianDiffusion(None, image_size=4, beta_schedule="bogus_schedule")


def small_module(**kwargs) -> DiffusionModule:
    net = {"_target_": "visgrad.diffusion.UNet", "width": 8, "mults": [1, 2], "patch": 2}
    return DiffusionModule(net, num_classes=10, timesteps=T, sampling_timesteps=3, seed=0, **kwargs)


def test_module_step_moves_the_ema_and_generates_reproducibly() -> None:
    torch.manual_seed(0)
    module = small_module()
    optimizer = module.configure_optimizers()
    batch = (torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8))
    before = [p.clone() for p in module.ema.module.parameters()]
    for step in range(2):
        loss = module._loss(module.diffusion, batch, module._rng(step, 0), 0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        module.on_train_batch_end(None, batch, step)
    after = list(module.ema.module.parameters())
    assert int(module.ema.n_averaged) == 2 and any(
        not torch.equal(a, b) for a, b in zip(before, after, strict=True)
    )
    # with the warm-up, the second average weighs the new weights by 1 - 2/11
    images = module.generate(5, seed=1)
    assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    torch.testing.assert_close(images, module.generate(5, seed=1), rtol=0, atol=0)
    assert module.fixed_labels(20).tolist() == [k for k in range(10) for _ in range(2)]
    chain = module.generate(2, seed=1, sampling_timesteps=None, return_all_timesteps=True)
    assert chain.shape == (2, T + 1, 1, 28, 28)
    assert chain_snapshots(chain, 5).shape == (10, 1, 28, 28)


def test_ema_warm_up_weights() -> None:
    from visgrad.generative.ema import ema_avg_fn

    avg = ema_avg_fn(0.999)
    assert float(avg(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(1))) == pytest.approx(1 - 2 / 11)
    assert float(avg(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(10**6))) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="decay must be in"):
        ema_avg_fn(1.0)


def ddpm_overrides() -> list[str]:
    """A tiny run of ``experiment=ddpm``: 2 steps of a width-8 UNet with 20 timesteps."""
    return [
        "experiment=ddpm",
        "data.num_val=1697",
        "data.batch_size=25",
        "data.repeat=1",
        "model.net.width=8",
        "model.timesteps=20",
        "model.sampling_timesteps=2",
        "model.num_fixed=20",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.log_every_n_steps=1",
        "callbacks.sample_quality.judge_epochs=1",
        "callbacks.sample_quality.num_samples=64",
        "callbacks.sample_quality.max_train=100",
        "callbacks.sample_figures.chain_steps=3",
        "callbacks.rich_progress_bar=null",
    ]


def test_train_py_ddpm_run_writes_metrics_and_figures_and_repeats(compose_cfg, tmp_path) -> None:
    import json
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from visgrad.training import train

    finals = []
    for attempt in ("a", "b"):
        cfg = compose_cfg("train", ddpm_overrides())
        cfg.paths.output_dir = str(tmp_path / attempt)
        assert cfg.model._target_ == "visgrad.diffusion.DiffusionModule" and cfg.monitor.metric == "val/fd"
        value = train(cfg)
        out = Path(cfg.paths.output_dir)
        metrics = json.loads((out / "metrics.json").read_text())
        assert value == pytest.approx(metrics["val/fd"])
        finals.append(metrics)
    a, b = finals
    assert a == b  # same machine, same seed: the same metrics
    for key in ("val/fd", "val/precision", "val/recall", "val/loss", "train/loss", "ceiling/fd", "floor/fd"):
        assert np.isfinite(a[key]), key
    for name in ("samples", "chain", "guidance"):
        assert (out / f"{name}.png").is_file(), name
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"samples/fixed", "samples/chain", "samples/guidance"} <= set(events.Tags()["images"])
    assert {"train/loss_step", "val/loss", "val/fd", "val/precision"} <= set(events.Tags()["scalars"])


def test_preflight_names_bad_ddpm_keys(compose_cfg) -> None:
    from visgrad.utils.preflight import ConfigError, validate_config

    cfg = compose_cfg(
        "train",
        ["experiment=ddpm", "model.cond_drop_prob=1.5", "model.ema_decay=2", "+model.net.bogus_width=3",
         "model.objective=bogus_objective", "model.beta_schedule=bogus_pkg.SCHEDULE"],
    )
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    text = str(error.value)
    assert "model.objective='bogus_objective': must be one of pred_noise, pred_x_start, pred_v, or" in text
    assert "model.beta_schedule='bogus_pkg.SCHEDULE': must be one of linear, cosine, sigmoid, or" in text
    assert "model.cond_drop_prob=1.5: must be a number in [0, 1)" in text
    assert "model.ema_decay=2: must be a number in (0, 1)" in text
    assert "model.net.bogus_width" in text


def test_the_module_takes_an_objective_of_your_own(user_objectives) -> None:
    module = small_module(objective=USER_OBJECTIVE)
    assert module.hparams.objective == USER_OBJECTIVE  # what the checkpoint rebuilds it from
    assert module.diffusion.parameterization is OBJECTIVES.get(USER_OBJECTIVE)
    assert module.sampler.parameterization is OBJECTIVES.get(USER_OBJECTIVE)
