"""The attacks of ``visgrad.vision.attacks.ATTACKS`` where the answer is known: on a linear two-class model
the smallest perturbation that flips the class is known in closed form (L-inf: margin / ||w_0 - w_1||_1, L2:
margin / ||w_0 - w_1||_2), so an attack must fail below it and FGSM, PGD and C&W must succeed just above it;
budgets hold in pixel units, images stay valid, the 8-bit round trip is the one ``task=fooling`` saves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from visgrad.images import IMAGENET, Normalization
from visgrad.models.classifier import Classifier
from visgrad.tasks.fooling import save_and_reload
from visgrad.vision.attacks import ATTACKS, Attack
from visgrad.vision.fooling import png_round_trip

IDENTITY = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
LINF_STAR = 4.0  # the smallest L-inf perturbation that flips the linear model, in pixel levels (/255)


@pytest.fixture(scope="module")
def linear() -> tuple[Classifier, torch.Tensor, float]:
    """A linear two-class model on 3x8x8 pixels, an image of class 0 at L-inf distance 4/255 from the
    boundary (pixels at 0.5: no clamping in reach), and its L2 distance in pixel levels."""
    w = torch.randn(2, 3 * 8 * 8, generator=torch.Generator().manual_seed(0))
    w_diff = w[0] - w[1]
    pixels = torch.full((1, 3, 8, 8), 0.5)
    margin = LINF_STAR / 255 * w_diff.abs().sum()
    layer = nn.Linear(3 * 8 * 8, 2)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(torch.stack([margin - (w_diff * pixels.flatten()).sum(), torch.tensor(0.0)]))
    classifier = Classifier("linear", nn.Sequential(nn.Flatten(), layer).eval(), ["a", "b"], 8, IDENTITY)
    return classifier, pixels, float(255 * margin / w_diff.norm())


def _attack(name: str, classifier: Classifier, X: torch.Tensor, **options):
    entry = ATTACKS.get(name)
    return entry.fn(X, torch.zeros(len(X), dtype=torch.long), classifier, targeted=False, **options)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_linf_attacks_flip_a_linear_model_exactly_above_the_closed_form_budget(linear, name) -> None:
    classifier, X, _ = linear
    extra = {} if name == "fgsm" else {"alpha": None, "steps": 10, "random_start": True}
    _, above = _attack(name, classifier, X, eps=LINF_STAR * 1.02, **extra)
    _, below = _attack(name, classifier, X, eps=LINF_STAR * 0.98, **extra)
    assert above.success.all() and not below.success.any()
    assert above.linf.item() == pytest.approx(LINF_STAR * 1.02, rel=1e-4)  # FGSM's sign step is optimal here


def test_pgd_l2_flips_a_linear_model_just_above_the_closed_form_budget(linear) -> None:
    classifier, X, l2_star = linear
    options = {"alpha": None, "steps": 10, "random_start": True}
    _, above = _attack("pgd_l2", classifier, X, eps=l2_star * 1.05, **options)
    _, below = _attack("pgd_l2", classifier, X, eps=l2_star * 0.98, **options)
    assert above.success.all() and not below.success.any()
    assert above.l2.item() <= l2_star * 1.05 + 1e-3


def test_carlini_wagner_finds_the_closed_form_smallest_l2_perturbation(linear) -> None:
    classifier, X, l2_star = linear
    _, result = _attack("carlini_wagner", classifier, X, c=1.0, kappa=0.0, steps=100, lr=0.01, search_steps=5)
    assert result.success.all()
    assert l2_star <= result.l2.item() <= 1.01 * l2_star


def test_the_course_method_fools_untargeted_no_closer_than_the_closed_form(linear) -> None:
    classifier, X, l2_star = linear
    _, result = _attack("normalized_gradient", classifier, X, learning_rate=0.01, max_iter=100, clamp=True)
    assert result.success.all() and result.l2.item() >= l2_star


def _toy() -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6 * 8 * 8, 4)).eval()
    pixels = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    pixels[0] = 0.0  # pixels at the ends of the range: the attacks must keep them valid
    pixels[1] = 1.0
    classifier = Classifier("toy", model, list("abcd"), 8, IMAGENET)
    return classifier, IMAGENET.normalize(pixels), torch.arange(5) % 4


BUDGETED = {
    "fgsm": {"eps": 6.0},
    "pgd": {"eps": 6.0, "alpha": None, "steps": 4, "random_start": True},
    "pgd_l2": {"eps": 100.0, "alpha": None, "steps": 4, "random_start": True},
}


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("name", sorted(BUDGETED))
def test_budgets_hold_in_pixel_units_and_images_stay_valid(name: str, targeted: bool) -> None:
    classifier, X, y = _toy()
    steps = []
    adversarial, result = ATTACKS.get(name).fn(X, y, classifier, targeted=targeted,
                                               on_step=lambda i, s, f: steps.append((i, s.shape, f.shape)),
                                               **BUDGETED[name])
    pixels = IMAGENET.unnormalize(adversarial)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    measured = result.linf if ATTACKS.get(name).norm == "linf" else result.l2
    assert measured.max() <= BUDGETED[name]["eps"] + 1e-3
    assert result.success.shape == (5,) and result.success.dtype == torch.bool
    if name != "fgsm":  # FGSM takes one step and reports none
        assert [i for i, _, _ in steps] == list(range(4)) and steps[0][1:] == ((5,), (5,))
    expected = (classifier.model(adversarial).argmax(dim=1) == y) == targeted
    assert torch.equal(result.success, expected)


def test_carlini_wagner_keeps_valid_images_and_reports_the_closest_success() -> None:
    classifier, X, y = _toy()
    adversarial, result = ATTACKS.get("carlini_wagner").fn(X, y, classifier, targeted=False, c=10.0,
                                                           kappa=0.0, steps=30, lr=0.05, search_steps=2)
    pixels = IMAGENET.unnormalize(adversarial)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert result.success.any()
    assert torch.equal(result.success, classifier.model(adversarial).argmax(dim=1) != y)
    unchanged = ~result.success  # an image never fooled comes back as it was
    assert torch.allclose(adversarial[unchanged], X[unchanged], atol=1e-5)


def test_png_round_trip_in_memory_is_what_fooling_saves_and_reads(tmp_path: Path) -> None:
    norm = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    X = norm.normalize(torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(4)) * 1.2 - 0.1)
    saved, _ = save_and_reload(X, ["a", "b", "c"], tmp_path, norm)
    torch.testing.assert_close(png_round_trip(X, norm), saved, rtol=0, atol=1e-6)


def test_every_attack_declares_its_norm_and_whether_it_takes_a_budget() -> None:
    assert [a.name for a in ATTACKS][:1] == ["normalized_gradient"]  # the course's method stays the first
    budgeted = {a.name: (a.norm, a.budgeted) for a in ATTACKS}
    assert budgeted == {"normalized_gradient": ("l2", False), "fgsm": ("linf", True), "pgd": ("linf", True),
                        "pgd_l2": ("l2", True), "carlini_wagner": ("l2", False)}
    with pytest.raises(ValueError, match="bogus_norm"):
        Attack("bogus_attack", "bogus", lambda *a, **k: None, None, "bogus_norm")
