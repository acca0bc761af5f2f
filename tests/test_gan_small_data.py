"""The GAN options for small data: DiffAugment (differentiable; the discriminator sees real and generated
images through it, in its step and in the generator's), the R1 penalty against its closed form, and the
``collapsed`` score against its definition computed by loops."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from visgrad.gan import GANModule
from visgrad.gan.augment import AUGMENTS, color, cutout, diff_augment, translation
from visgrad.gan.losses import r1_penalty
from visgrad.gan.metrics import collapsed_fraction
from visgrad.gan.models import FCGenerator


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_each_augmentation_is_differentiable(name: str) -> None:
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: AUGMENTS[name](t, seeded(1)), (x,))
    assert AUGMENTS[name](x, seeded(1)).dtype == torch.float64


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zero_fill() -> None:
    x = torch.rand(16, 1, 16, 16) + 1  # no zero pixel
    out = translation(x, seeded(0))
    shifts = set()
    for image, shifted in zip(x, out, strict=True):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expected = torch.zeros_like(image)  # shifted[i, j] = image[i + dy, j + dx], 0 outside
                expected[:, max(0, -dy) : 16 - max(0, dy), max(0, -dx) : 16 - max(0, dx)] = image[
                    :, max(0, dy) : 16 - max(0, -dy), max(0, dx) : 16 - max(0, -dx)
                ]
                if torch.equal(shifted, expected):
                    matches.append((dy, dx))
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 4  # drawn per image


def test_cutout_zeroes_one_half_size_square_clipped_at_the_borders() -> None:
    out = cutout(torch.ones(32, 1, 16, 16), seeded(0))
    for image in out[:, 0]:
        rows, cols = torch.nonzero(image == 0, as_tuple=True)
        height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
        assert len(rows) == height * width and height <= 8 and width <= 8  # one rectangle
        assert height == 8 or rows.min() == 0 or rows.max() == 15  # smaller only at a border
        assert width == 8 or cols.min() == 0 or cols.max() == 15


def test_color_is_an_affine_map_per_image_within_the_paper_magnitudes() -> None:
    x = torch.rand(8, 1, 6, 6) * 2 - 1
    out = color(x, seeded(0))
    for image, changed in zip(x, out, strict=True):
        a, b = np.polyfit(image.flatten().numpy(), changed.flatten().numpy(), 1)
        np.testing.assert_allclose(changed.numpy(), a * image.numpy() + b, atol=1e-5)
        assert 0.5 <= a < 1.5


def test_diff_augment_composes_in_order_and_rejects_unknown_names() -> None:
    x = torch.rand(4, 1, 8, 8)
    assert diff_augment(x, []) is x
    g = seeded(5)
    expected = cutout(translation(x, g), g)
    torch.testing.assert_close(diff_augment(x, ["translation", "cutout"], seeded(5)), expected)
    with pytest.raises(ValueError, match="bogus_augment"):
        diff_augment(x, ["bogus_augment"])
    with pytest.raises(ValueError, match="bogus_augment"):
        GANModule(FCGenerator, RecordingDiscriminator, augment=["bogus_augment"])
    with pytest.raises(ValueError, match="r1_weight"):
        GANModule(FCGenerator, RecordingDiscriminator, r1_weight=-1.0)


class RecordingDiscriminator(nn.Module):
    """A linear discriminator D(x) = w . x that keeps (a detached copy of) every batch it sees."""

    def __init__(self, image_shape=(1, 28, 28)) -> None:
        super().__init__()
        self.linear = nn.Linear(int(np.prod(image_shape)), 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def test_the_discriminator_sees_real_and_generated_images_only_through_the_augmentation(tiny_digits) -> None:
    """With cutout, every batch D sees while training (real and fake in D's step, fake in G's step) has in
    each image a square of exact zeros (tanh outputs and digits pixels in [-1, 1) are not all 0)."""
    torch.manual_seed(0)
    module = GANModule(FCGenerator, RecordingDiscriminator, augment=["cutout"], image_shape=[1, 28, 28])
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=tiny_digits)
    seen = module.discriminator.seen
    assert len(seen) == 2 * 3  # per step: real, fake (D's step), fake (G's step)
    for batch in seen:
        zeros = (batch == 0).flatten(1).sum(dim=1)
        assert (zeros >= 7 * 7).all()  # at least a quarter of the 14x14 square inside the image
    # without augmentation the same module feeds D the images themselves
    torch.manual_seed(0)
    plain = GANModule(FCGenerator, RecordingDiscriminator, image_shape=[1, 28, 28])
    pl.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
               enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(plain, datamodule=tiny_digits)
    assert len(plain.discriminator.seen) == 3
    for batch in plain.discriminator.seen:
        assert ((batch == 0).flatten(1).sum(dim=1) < 7 * 7).all()


def test_r1_penalty_of_a_linear_discriminator_is_half_gamma_times_the_squared_weight_norm() -> None:
    """D(x) = w . x + b: grad_x D = w for every image, so R1 = gamma / 2 * |w|^2; its gradient in w is
    gamma * w (the graph is kept so that the penalty trains D)."""
    torch.manual_seed(0)
    disc = nn.Linear(12, 1).double()
    real = torch.randn(5, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    penalty = r1_penalty(disc(real.flatten(1)), real, weight=3.0)
    w = disc.weight.detach()
    assert float(penalty.detach()) == pytest.approx(1.5 * float((w**2).sum()))
    penalty.backward()
    torch.testing.assert_close(disc.weight.grad, 3.0 * w)


def test_collapsed_fraction_matches_the_definition_by_loops() -> None:
    """A sample is collapsed when it is farther from every real point than 99% of the real points are from
    their 3rd nearest other real point."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 4))
    fake = np.concatenate([rng.normal(size=(20, 4)), rng.normal(loc=6.0, size=(10, 4))])
    radius = np.quantile([sorted(np.linalg.norm(real - p, axis=1))[3] for p in real], 0.99)
    expected = np.mean([min(np.linalg.norm(real - s, axis=1)) > radius for s in fake])
    got = collapsed_fraction(torch.from_numpy(real), torch.from_numpy(fake))
    assert got == pytest.approx(expected) and 0.3 <= got <= 0.4  # the 10 far ones, none of the near
    assert collapsed_fraction(torch.from_numpy(real), torch.from_numpy(real)) == 0.0
