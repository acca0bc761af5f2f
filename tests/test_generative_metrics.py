"""The sample-quality metrics shared by the GANs and the DDPM (precision/recall, the Fréchet distance on the
judge's features) against independent computations, and the GAN options of issue 24 (EMA generator,
spectral normalisation)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from visgrad.data.labelled_images import LabelledImages
from visgrad.gan import GANModule
from visgrad.gan.metrics import SampleQuality, frechet_distance, gaussian_stats, precision_recall
from visgrad.gan.models import DCDiscriminator, DCGenerator


def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019, by loops: a sample is in a set's manifold if it lies within some member's
    distance to that member's k-th nearest other member."""

    def radii(points):
        return [sorted(np.linalg.norm(points - p, axis=1))[k] for p in points]  # [0] is p itself

    def inside(samples, points):
        r = radii(points)
        return np.mean(
            [any(np.linalg.norm(s - p) <= rp for p, rp in zip(points, r, strict=True)) for s in samples]
        )

    return inside(fake, real), inside(real, fake)


def test_precision_recall_match_the_definition() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 3)), rng.normal(loc=0.7, size=(30, 3))
    got = precision_recall(torch.from_numpy(real), torch.from_numpy(fake))
    assert got == pytest.approx(brute_force_precision_recall(real, fake))
    assert 0 < got[0] < 1 and 0 < got[1] < 1
    # a collapsed generator: all samples on one real point -> full precision, almost no recall
    collapsed = np.repeat(real[:1], 30, axis=0)
    precision, recall = precision_recall(torch.from_numpy(real), torch.from_numpy(collapsed))
    assert precision == 1.0 and recall == pytest.approx(1 / 40)


def test_frechet_distance_of_judge_features_matches_scipy_sqrtm() -> None:
    """The Fréchet distance that ``SampleQuality.score`` reports equals the formula with scipy's ``sqrtm`` on
    the same (judge) features."""
    torch.manual_seed(0)
    images = torch.rand(400, 1, 16, 16) * 2 - 1  # more images than the judge's 64 features on each side
    reference = LabelledImages(images[:250], torch.arange(250) % 4, ("a", "b", "c", "d"))
    quality = SampleQuality(reference, epochs=1, batch_size=50)
    fake = images[250:] * 0.5
    features = quality.judge.features(fake)
    real_f = quality.judge.features(reference.images).double().numpy()
    fake_f = features.double().numpy()
    mu1, mu2 = real_f.mean(0), fake_f.mean(0)
    s1, s2 = np.cov(real_f, rowvar=False), np.cov(fake_f, rowvar=False)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert quality.score(fake)["fd"] == pytest.approx(expected, rel=1e-5)
    mu, sigma = gaussian_stats(features)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_gan_ema_generator_samples_and_follows_the_trained_one() -> None:
    torch.manual_seed(0)
    module = GANModule(DCGenerator, DCDiscriminator, ema_decay=0.9, image_shape=[1, 28, 28])
    assert module.ema is not None and module.ema.module is not module.generator
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.ema.update_parameters(module.generator)  # the first update copies
    torch.testing.assert_close(module.generate(4, seed=3), module.generate(4, seed=3))
    for averaged, current in zip(module.ema.module.parameters(), module.generator.parameters(), strict=True):
        torch.testing.assert_close(averaged, current)
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.ema.update_parameters(module.generator)  # d = min(0.9, 2/11): 2/11 of the old average
    for averaged, current in zip(module.ema.module.parameters(), module.generator.parameters(), strict=True):
        torch.testing.assert_close(averaged, current - 2 / 11)
    assert GANModule(DCGenerator, DCDiscriminator).ema is None  # the course's default: no average


def test_spectral_norm_discriminator_has_unit_spectral_norm_layers() -> None:
    torch.manual_seed(0)
    plain, normed = DCDiscriminator(), DCDiscriminator(spectral_norm=True)
    x = torch.randn(4, 1, 28, 28)
    for _ in range(30):  # power iterations run in training-mode forward passes
        normed(x)
    linear = normed[-1]
    with torch.no_grad():
        assert torch.linalg.matrix_norm(linear.weight, ord=2) == pytest.approx(1.0, rel=1e-3)
        conv = normed[0]
        assert torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2) == pytest.approx(1.0, rel=1e-2)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in normed.parameters())


def test_the_judge_is_a_classifier_of_rgb_pixels() -> None:
    from visgrad.gan.metrics import Judge, judge_classifier

    torch.manual_seed(0)
    judge = Judge((1, 28, 28), 10).eval()
    classifier = judge_classifier(judge, [str(d) for d in range(10)])
    pixels = torch.rand(2, 1, 28, 28)
    logits = classifier.model(classifier.norm.normalize(pixels.expand(2, 3, 28, 28)))
    torch.testing.assert_close(logits, judge(pixels * 2 - 1))
    assert classifier.image_size == 28 and classifier.class_index("7") == 7
    assert classifier.feature_layer is judge.body[4]
