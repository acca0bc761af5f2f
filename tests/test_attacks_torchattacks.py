"""FGSM and PGD (L-inf, L2; with the same random start) against torchattacks 3.5.1, code we did not write, on
a toy model and on EfficientNet-Lite0: the same perturbations from the same normalised images, untargeted and
targeted. torchattacks takes the classifier's normalisation through ``set_normalization_used`` (it attacks
pixels, as visgrad's attacks do through ``classifier.norm``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visgrad.images import IMAGENET
from visgrad.models.classifier import Classifier, efficientnet_lite0_classifier
from visgrad.models.efficientnet_lite0 import load_efficientnet_lite0
from visgrad.vision.attacks import ATTACKS

torchattacks = pytest.importorskip("torchattacks")


def _toy_classifier() -> Classifier:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 5)).eval()
    return Classifier("toy", model, [f"c{i}" for i in range(5)], 16, IMAGENET)


@pytest.fixture(scope="module")
def toy() -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    classifier = _toy_classifier()
    pixels = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    return classifier, IMAGENET.normalize(pixels), labels


@pytest.fixture(scope="module")
def lite0() -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    classifier = efficientnet_lite0_classifier()
    pixels = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    return classifier, classifier.norm.normalize(pixels), torch.tensor([285, 967])


def _theirs(name: str, classifier: Classifier, options: dict):
    """The torchattacks attack of the same name and budget (options in pixel levels /255)."""
    model, eps = classifier.model, options["eps"] / 255
    if name == "fgsm":
        attack = torchattacks.FGSM(model, eps=eps)
    elif name == "pgd":
        attack = torchattacks.PGD(model, eps=eps, alpha=options["alpha"] / 255, steps=options["steps"],
                                  random_start=options["random_start"])
    else:
        attack = torchattacks.PGDL2(model, eps=eps, alpha=options["alpha"] / 255, steps=options["steps"],
                                    random_start=options["random_start"])
    attack.set_normalization_used(classifier.norm.mean, classifier.norm.std)
    return attack


def _compare(name: str, classifier: Classifier, X: torch.Tensor, y: torch.Tensor, targeted: bool,
             options: dict) -> None:
    attack = _theirs(name, classifier, options)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    torch.manual_seed(5)
    expected = attack(X, y)
    torch.manual_seed(5)
    ours, result = ATTACKS.get(name).fn(X, y, classifier, targeted=targeted, **options)
    norm = classifier.norm
    # pixels: the same images to float rounding (one ulp of the normalisation round trip)
    torch.testing.assert_close(norm.unnormalize(ours), norm.unnormalize(expected), rtol=0, atol=1e-6)
    size = result.l2 if name == "pgd_l2" else result.linf
    assert size.max() <= options["eps"] + 1e-3


OPTIONS = {
    "fgsm": {"eps": 8.0},
    "pgd": {"eps": 8.0, "alpha": 2.0, "steps": 5, "random_start": True},
    "pgd_l2": {"eps": 128.0, "alpha": 32.0, "steps": 5, "random_start": True},
}


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd_l2"])
def test_same_images_as_torchattacks_on_a_toy_model(toy, name: str, targeted: bool) -> None:
    classifier, X, y = toy
    _compare(name, classifier, X, y, targeted, OPTIONS[name])


def test_pgd_without_random_start_as_torchattacks(toy) -> None:
    classifier, X, y = toy
    _compare("pgd", classifier, X, y, False, {**OPTIONS["pgd"], "random_start": False})


@pytest.mark.parametrize(("name", "targeted"), [
    pytest.param("fgsm", False, marks=pytest.mark.slow), ("pgd", False),
    pytest.param("pgd", True, marks=pytest.mark.slow)])
def test_same_images_as_torchattacks_on_lite0(lite0, name: str, targeted: bool) -> None:
    classifier, X, y = lite0
    options = {**OPTIONS[name], "steps": 2} if name != "fgsm" else OPTIONS[name]
    _compare(name, classifier, X, y, targeted, options)


@pytest.mark.slow
def test_pgd_l2_as_torchattacks_on_lite0_and_channels_last(lite0) -> None:
    """torchattacks' PGDL2 ``view``s the gradient, which fails on the channels-last gradients of the fast
    Lite0 (BatchNorms folded, channels-last weights): it is compared on the network as loaded; visgrad's
    runs on both and gives the same images to float rounding."""
    fast, X, y = lite0
    plain = Classifier("lite0_plain", load_efficientnet_lite0(fast=False), fast.class_names, 224, fast.norm)
    options = {**OPTIONS["pgd_l2"], "steps": 2}
    _compare("pgd_l2", plain, X, y, False, options)
    torch.manual_seed(5)
    on_fast, _ = ATTACKS.get("pgd_l2").fn(X, y, fast, targeted=False, **options)
    torch.manual_seed(5)
    on_plain, _ = ATTACKS.get("pgd_l2").fn(X, y, plain, targeted=False, **options)
    assert (fast.norm.unnormalize(on_fast) - fast.norm.unnormalize(on_plain)).abs().max() < 1e-3
