"""Class-conditional GANs (``model.num_classes``): the networks read the labels (one-hot beside the noise,
a projection discriminator), the module trains and samples them, figures keep one class per row, and the
config check refuses a network that cannot be conditioned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_gan_training import fit_steps, gan_overrides

from visgrad.gan import GANModule, sample_noise
from visgrad.gan.models import DCDiscriminator, DCGenerator, FCDiscriminator, FCGenerator, Projection
from visgrad.generative.labels import block_labels, grid_row_length
from visgrad.training import train

K = 10
PAIRS = {"fc": (FCGenerator, FCDiscriminator), "dc": (DCGenerator, DCDiscriminator)}


def test_block_labels_and_grid_rows() -> None:
    assert block_labels(20, K).tolist() == [k for k in range(K) for _ in range(2)]
    assert block_labels(4, K).tolist() == [0, 2, 5, 7]  # fewer samples than classes: spread over them
    counts = np.bincount(block_labels(64, K).numpy())  # label k: ceil(6.4 (k + 1)) - ceil(6.4 k) times
    assert counts.tolist() == [7, 6, 7, 6, 6, 7, 6, 7, 6, 6]
    assert block_labels(8, 0) is None
    assert grid_row_length(80, K) == 8 and grid_row_length(64, K) == 8 and grid_row_length(64, 0, 5) == 5


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_conditional_networks_read_the_labels(pair: str) -> None:
    generator_type, discriminator_type = PAIRS[pair]
    generator, discriminator = generator_type(num_classes=K).eval(), discriminator_type(num_classes=K)
    noise = sample_noise(4, 96, seed=0).repeat(2, 1)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    images = generator(noise, y)
    assert images.shape == (8, 1, 28, 28)
    assert not torch.allclose(images[:4], images[4:])  # the same noise, other classes: other images
    assert generator[0].in_features == 96 + K  # the one-hot label beside the noise
    scores = discriminator(images, y)
    assert scores.shape == (8, 1)
    assert not torch.allclose(scores, discriminator(images, (y + 1) % K))
    with pytest.raises(ValueError, match="conditioned on 10 classes needs the labels y"):
        generator(noise)
    with pytest.raises(ValueError, match="conditioned on 10 classes needs the labels y"):
        discriminator(images)


def test_projection_is_a_linear_score_plus_the_label_embedding_inner_product() -> None:
    torch.manual_seed(0)
    head = Projection(5, 3)
    h, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    weight, bias = head.linear.weight.detach().numpy(), head.linear.bias.detach().numpy()
    embed = head.embed.weight.detach().numpy()
    expected = [h[i].numpy() @ weight[0] + bias[0] + h[i].numpy() @ embed[y[i]] for i in range(4)]
    np.testing.assert_allclose(head(h, y).detach().numpy().ravel(), expected, rtol=1e-5)


def test_unconditional_networks_keep_the_course_layout() -> None:
    """num_classes=0 keeps the layer names of earlier checkpoints (``9.weight``: the last Linear)."""
    assert list(DCDiscriminator().state_dict())[-2:] == ["9.weight", "9.bias"]
    assert list(DCDiscriminator(num_classes=K).state_dict())[-3:] == ["9.linear.weight", "9.linear.bias",
                                                                     "9.embed.weight"]
    spectral = DCDiscriminator(num_classes=K, spectral_norm=True)
    assert {"9.linear.parametrizations.weight.original", "9.embed.parametrizations.weight.original"} <= set(
        spectral.state_dict())


@pytest.mark.parametrize("loss", ["vanilla", "wgan_gp"])
def test_a_conditional_module_trains_both_networks_and_samples_each_class(tiny_digits, loss: str) -> None:
    torch.manual_seed(0)
    module = GANModule(DCGenerator, DCDiscriminator, loss, num_classes=K, num_fixed=20, ema_decay=0.9)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    fit_steps(module, tiny_digits, batches=1, val_batches=1)  # the validation step reads the labels too
    changed = {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
    assert "discriminator.9.embed.weight" in changed and "generator.0.weight" in changed
    # samples: the moving average in eval mode, with the fixed labels by default, or the labels given
    noise = module.fixed_noise
    generator = module.ema.module.eval()
    torch.testing.assert_close(module.sample(noise), generator(noise, block_labels(20, K)))
    sevens = torch.full((20,), 7)
    torch.testing.assert_close(module.sample(noise, sevens), generator(noise, sevens))
    torch.testing.assert_close(module.generate(30, seed=3), module.generate(30, seed=3), rtol=0, atol=0)
    with pytest.raises(ValueError, match="labels given to an unconditional GAN"):
        GANModule(DCGenerator, DCDiscriminator).sample(noise, sevens)


def test_a_conditional_run_draws_one_class_per_row(compose_cfg) -> None:
    cfg = compose_cfg("train", [*gan_overrides("gan_dc"), "model.num_classes=10", "model.num_fixed=20"])
    train(cfg)
    out = Path(cfg.paths.output_dir)
    assert json.loads((out / "metrics.json").read_text())["val/fd"] > 0
    width, height = Image.open(out / "samples.png").size
    assert (width, height) == (2 * (56 + 2) + 2, 10 * (56 + 2) + 2)  # 10 rows of 2 (28 px at scale 2)
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    rebuilt = GANModule.load_from_checkpoint(out / "checkpoints" / "last.ckpt", map_location="cpu")
    assert checkpoint["hyper_parameters"]["num_classes"] == 10 and rebuilt.conditional


def test_preflight_refuses_networks_that_cannot_be_conditioned(compose_cfg) -> None:
    from visgrad.utils.preflight import ConfigError, validate_config

    cfg = compose_cfg("train", ["experiment=gan_dc", "model.num_classes=10",
                                "model.discriminator._target_=torch.nn.Bilinear"])
    with pytest.raises(ConfigError, match=r"model.discriminator._target_='torch.nn.Bilinear': takes no "
                                          r"num_classes, which model.num_classes=10 gives it"):
        validate_config(cfg)
    cfg = compose_cfg("train", ["experiment=gan_dc", "model.num_classes=-1"])
    with pytest.raises(ConfigError, match=r"model.num_classes=-1: must be an integer >= 0 \(0: uncondit"):
        validate_config(cfg)
