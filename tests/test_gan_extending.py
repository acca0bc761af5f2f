"""A GAN variant of the user's own (loss and generator defined here, named by dotted path) trains through
train.py without any edit in visgrad; its checkpoint rebuilds the module from the stored configs; config
checks read the allowed losses and the logged metrics from the registry and the declarations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import Container
from torch import nn

from visgrad.data.digits import NUM_IMAGES
from visgrad.gan import GAN_LOSSES, GANLoss, GANModule
from visgrad.gan.callbacks import SampleQualityMetrics
from visgrad.gan.module import metric_names
from visgrad.training import train
from visgrad.utils.preflight import ConfigError, config_problems


def hinge_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    return torch.relu(1 - scores_real).mean() + torch.relu(1 + scores_fake).mean()


def hinge_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    return -scores_fake.mean()


HINGE = GANLoss("hinge", "hinge", hinge_discriminator_loss, hinge_generator_loss, shown=torch.tanh)


class TinyGenerator(nn.Sequential):
    """noise (N, Z) -> Linear(Z, hidden) ReLU -> Linear(hidden, C*H*W) tanh -> images (N, C, H, W)."""

    def __init__(self, noise_dim: int, image_shape: tuple[int, int, int], hidden: int = 16):
        super().__init__(nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(image_shape)),
                         nn.Tanh(), nn.Unflatten(1, tuple(image_shape)))


def tiny_gan(*extra: str) -> list[str]:
    return [
        "experiment=gan_vanilla", "data.num_val=1697", "data.batch_size=25", "data.repeat=1",
        "model.generator.hidden=32", "model.discriminator.hidden=16", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1",
        "callbacks.sample_quality.judge_epochs=1", "callbacks.sample_quality.num_samples=64",
        "callbacks.sample_quality.max_train=100", "callbacks.rich_progress_bar=null", *extra,
    ]


def test_users_own_loss_and_generator_train_and_the_checkpoint_rebuilds_them(compose_cfg) -> None:
    cfg = compose_cfg("train", tiny_gan(f"model.loss={__name__}.HINGE",
                                        f"model.generator._target_={__name__}.TinyGenerator"))
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(metrics[key]) for key in ("train/d_loss", "train/g_loss", "val/fd"))
    checkpoint = out / "checkpoints" / "last.ckpt"
    hparams = torch.load(checkpoint, weights_only=False)["hyper_parameters"]
    assert hparams["loss"] == f"{__name__}.HINGE"
    assert hparams["generator"] == {"_target_": f"{__name__}.TinyGenerator", "hidden": 32}
    assert hparams["discriminator"] == {"_target_": "visgrad.gan.models.FCDiscriminator", "hidden": 16}
    assert hparams["optimizer"] == {"_target_": "torch.optim.adam.Adam", "lr": 1e-3, "betas": [0.5, 0.999]}
    assert not any(isinstance(value, Container) for value in hparams.values())  # plain values only

    rebuilt = GANModule.load_from_checkpoint(checkpoint, map_location="cpu")
    assert rebuilt.loss is HINGE and isinstance(rebuilt.generator, TinyGenerator)
    trained = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert rebuilt.state_dict().keys() == trained.keys()
    assert all(torch.equal(rebuilt.state_dict()[key], value) for key, value in trained.items())
    rebuilt.eval()
    assert rebuilt.sample(rebuilt.fixed_noise).shape == (64, 1, 28, 28)
    real, fake = torch.rand(5, 1, 28, 28) * 2 - 1, rebuilt.sample(rebuilt.fixed_noise[:5])
    with torch.no_grad():
        shown = rebuilt._d_loss(real, fake, None, None)
        scores_real, scores_fake = rebuilt.discriminator(real), rebuilt.discriminator(fake)
    torch.testing.assert_close(shown["d_loss"], hinge_discriminator_loss(scores_real, scores_fake))
    torch.testing.assert_close(shown["d_real"], torch.tanh(scores_real).mean())  # as HINGE shows them


def test_a_loss_passed_as_an_entry_is_stored_by_name() -> None:
    module = GANModule(TinyGenerator, {"_target_": "visgrad.gan.models.FCDiscriminator", "hidden": 8},
                       GAN_LOSSES.get("ls"))
    assert module.hparams.loss == "ls" and module.loss.discriminator is GAN_LOSSES.get("ls").discriminator
    with pytest.raises(ConfigError, match=r"unknown GAN loss 'bogus_loss'; one of vanilla, ls, wgan_gp, or "):
        GANModule(TinyGenerator, TinyGenerator, "bogus_loss")


def test_preflight_takes_losses_metrics_and_sizes_from_their_declarations(compose_cfg) -> None:
    problems = config_problems(compose_cfg("train", ["experiment=gan_dc", "model.loss=bogus_loss"]))
    assert problems == [f"model.loss='bogus_loss': must be {GAN_LOSSES.allowed}; e.g. model.loss=vanilla"]
    assert all(name in GAN_LOSSES.allowed for name in GAN_LOSSES.names())

    def logged(loss: str) -> str:
        (line,) = config_problems(compose_cfg("train", ["experiment=gan_dc", f"model.loss={loss}",
                                                        "monitor.metric=val/bogus_metric"]))
        return line

    # experiment=gan_dc adds the R1 penalty, and with it train/r1
    declared = [*metric_names(GAN_LOSSES.get("wgan_gp"), r1_weight=1.0), *SampleQualityMetrics.metric_names]
    assert "train/r1" in declared and "train/r1" not in metric_names(GAN_LOSSES.get("wgan_gp"))
    assert logged("wgan_gp").startswith(
        f"monitor.metric='val/bogus_metric': a GAN logs {', '.join(declared)}; e.g. monitor.metric=val/fd")
    assert "train/gp" not in logged("vanilla") and "train/gp" not in logged(f"{__name__}.HINGE")
    gp_monitored = ["experiment=gan_wgan_gp", "monitor.metric=train/gp_epoch"]
    assert config_problems(compose_cfg("train", gp_monitored)) == []
    # keys the injected targets do not take, old keys pointing at their new place, factories not partial
    assert config_problems(compose_cfg("train", [
        "experiment=gan_vanilla", "+model.lr=0.1", "+model.generator.hiden=3",
        "model.discriminator._partial_=false",
    ])) == [
        "model.lr: not an argument of visgrad.gan.GANModule; did you mean model.optimizer.lr? it takes "
        "generator, discriminator, loss, optimizer, n_critic, gp_weight, noise_dim, num_fixed, seed, "
        "ema_decay, augment, r1_weight, num_classes",
        "model.generator.hiden: not an argument of visgrad.gan.models.FCGenerator; did you mean "
        "model.generator.hidden? it takes hidden",
        "model.discriminator._partial_=false: must be true (the module builds it with image_shape, "
        "num_classes); e.g. "
        "model.discriminator._partial_=true",
    ]
    # the digits count comes from visgrad.data.digits
    (line,) = config_problems(compose_cfg("train", ["experiment=gan_dc", f"data.num_val={NUM_IMAGES}"]))
    assert line.startswith(f"data.num_val={NUM_IMAGES}: must be an integer in [1, {NUM_IMAGES - 1}]")
