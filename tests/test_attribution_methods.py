"""The attribution methods beside vanilla (Input x Gradient, Guided Backprop, Grad-CAM, Guided Grad-CAM,
occlusion, RISE) checked against code we did not write (Captum) on a toy CNN in float64 and on
EfficientNet-Lite0, and RISE against its definition where the expectation can be enumerated exactly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visgrad.images import Normalization
from visgrad.models.classifier import Classifier
from visgrad.vision import attribution, cam, guided, perturbation
from visgrad.vision.saliency import ig_baseline, input_x_gradient_saliency

captum_attr = pytest.importorskip("captum.attr")

ZERO_ONE = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


class ToyCNN(nn.Module):
    """conv-ReLU (in place, as torchvision's)-conv-ReLU (the feature layer)-pool-linear:
    (N, 3, 16, 16) -> (N, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


@pytest.fixture(scope="module")
def toy() -> Classifier:
    torch.manual_seed(0)
    model = ToyCNN().double().eval().requires_grad_(False)
    return Classifier("toy", model, [f"c{i}" for i in range(5)], 16, ZERO_ONE, model.relu2)


@pytest.fixture(scope="module")
def toy_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 16, 16, generator=generator, dtype=torch.float64), torch.tensor([0, 3, 4])


@pytest.fixture(scope="module")
def lite0():
    from visgrad.models.classifier import efficientnet_lite0_classifier

    classifier = efficientnet_lite0_classifier()
    generator = torch.Generator().manual_seed(2)
    X = torch.rand(1, 3, 96, 96, generator=generator) * 2 - 1  # any size: Lite0 pools its last features
    with torch.no_grad():
        y = classifier.model(X).argmax(dim=1)
    return classifier, X, y


def test_input_x_gradient_equals_captum(toy, toy_batch):
    X, y = toy_batch
    ours = attribution.attribution_maps("input_x_gradient", X, y, toy)
    theirs = captum_attr.InputXGradient(toy.model).attribute(X.clone(), target=y).sum(dim=1)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_guided_backprop_equals_captum_on_relu_networks(toy, toy_batch):
    X, y = toy_batch
    ours = guided.guided_gradient(X, y, toy.model)
    theirs = captum_attr.GuidedBackprop(toy.model).attribute(X.clone(), target=y)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ours, torch.autograd.functional.jacobian(
        lambda x: toy.model(x).gather(1, y.view(-1, 1)).sum(), X))  # not the plain gradient
    torch.testing.assert_close(attribution.attribution_maps("guided_backprop", X, y, toy), ours.abs().amax(1))
    torch.testing.assert_close(attribution.attribution_maps("guided_backprop", X, y, toy, signed=True),
                               ours.sum(1))


def test_guided_relu6_passes_positive_gradient_through_units_strictly_between_0_and_6():
    x = torch.tensor([[-1.0, 0.5, 3.0, 5.9, 6.0, 7.0, 2.0, 4.0]], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0, -2.0, 3.0, 1.0, 1.0, 0.5, -0.5], dtype=torch.float64)
    for act in (F.relu6, nn.ReLU6(), lambda t: F.hardtanh(t, 0.0, 6.0)):
        model = _Elementwise(act, w)
        grad = guided.guided_gradient(x, torch.tensor([0]), model)
        expected = w.clamp_min(0) * ((x > 0) & (x < 6))
        torch.testing.assert_close(grad, expected)


class _Elementwise(nn.Module):
    def __init__(self, act, w: torch.Tensor) -> None:
        super().__init__()
        self.act, self.w = act, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.act(x) * self.w).sum(dim=1, keepdim=True)


def test_guided_backprop_refuses_networks_without_rectifiers():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2), nn.GELU())
    with pytest.raises(ValueError, match="no ReLU or ReLU6"):
        guided.guided_gradient(torch.randn(1, 3, 2, 2), torch.tensor([0]), model)


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
def test_gradcam_and_guided_gradcam_equal_captum(toy, toy_batch, upsample):
    X, y = toy_batch
    layer_cam = captum_attr.LayerGradCam(toy.model, toy.feature_layer)
    coarse = layer_cam.attribute(X, target=y, relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(coarse, (16, 16), upsample)[:, 0]
    ours = attribution.attribution_maps("gradcam", X, y, toy, cam.GradCAMOptions(upsample=upsample))
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    signed = layer_cam.attribute(X, target=y, relu_attributions=False)
    torch.testing.assert_close(cam.grad_cam(X, y, toy.model, toy.feature_layer, False, upsample),
                               captum_attr.LayerAttribution.interpolate(signed, (16, 16), upsample)[:, 0])
    guided_theirs = captum_attr.GuidedGradCam(toy.model, toy.feature_layer).attribute(
        X.clone(), target=y, interpolate_mode=upsample)
    guided_ours = cam.guided_grad_cam_attribution(X, y, toy.model, toy.feature_layer, upsample)
    torch.testing.assert_close(guided_ours, guided_theirs, rtol=1e-10, atol=1e-12)
    assert guided_ours.abs().sum() > 0


@pytest.mark.parametrize(("patch", "stride", "fill"), [(4, 2, "mean"), (5, 3, "black"), (16, 16, "blur")])
def test_occlusion_equals_captum(toy, toy_batch, patch, stride, fill):
    X, y = toy_batch
    options = perturbation.OcclusionOptions(patch=patch, stride=stride, fill=fill, score="probability",
                                            batch_size=7)
    ours = attribution.attribution_maps("occlusion", X, y, toy, options)
    theirs = captum_attr.Occlusion(lambda x: toy.model(x).softmax(dim=1)).attribute(
        X, target=y, sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride),
        baselines=ig_baseline(X, fill, ZERO_ONE), perturbations_per_eval=5)
    torch.testing.assert_close(theirs[:, 0], theirs[:, 2])  # the same map in every channel
    # Captum accumulates occlusion in float32 whatever the input's dtype
    torch.testing.assert_close(ours, theirs[:, 0].to(ours.dtype), rtol=1e-6, atol=1e-7)


def test_rise_masks_have_mean_p_and_the_map_is_the_mask_weighted_mean_score():
    generator = torch.Generator().manual_seed(0)
    cells, offsets = perturbation.rise_masks(2, (8, 8), grid=2, p=0.5, generator=generator)
    assert cells.shape == (2, 2, 2) and offsets.shape == (2, 2) and 0 <= offsets.min() and offsets.max() < 4
    masks = list(_all_masks(grid=2, size=(8, 8)))
    stacked = torch.stack([m for m, _ in masks])
    weights = torch.tensor([w for _, w in masks], dtype=torch.float64)
    torch.testing.assert_close(torch.einsum("k,khw->hw", weights, stacked.double()),
                               torch.full((8, 8), 0.4, dtype=torch.float64))  # E[M] = p exactly (p = 0.4)


def _all_masks(grid: int, size: tuple[int, int], p: float = 0.4):
    """Every RISE mask of a grid x grid cell grid with every crop offset, and its probability."""
    cell = math.ceil(size[0] / grid)
    for kept in itertools.product([False, True], repeat=grid * grid):
        cells = torch.tensor(kept).view(1, grid, grid)
        prob = p ** sum(kept) * (1 - p) ** (grid * grid - sum(kept)) / cell**2
        for dr, dc in itertools.product(range(cell), repeat=2):
            yield perturbation.upsample_masks(cells, torch.tensor([[dr, dc]]), size)[0], prob


def test_rise_converges_to_its_exact_expectation_on_a_toy_model():
    """RISE estimates E[score(M X + (1 - M) fill) M] / p; on a 8 x 8 image with a 2 x 2 grid every mask
    can be enumerated with its probability, so the expectation is exact; 3000 masks land within 5 sigma."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(128, 3)).double()
    classifier = Classifier("toy", model.eval().requires_grad_(False), ["a", "b", "c"], 8, ZERO_ONE)
    X, y, p = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.tensor([1]), 0.4
    masks, probs = zip(*_all_masks(2, (8, 8), p), strict=True)
    masks, probs = torch.stack(masks).double(), torch.tensor(probs, dtype=torch.float64)
    scores = model(masks[:, None] * X).softmax(dim=1)[:, 1]  # fill black = input 0 here
    values = scores[:, None, None] * masks / p  # (K, 8, 8), one per possible mask
    exact = torch.einsum("k,khw->hw", probs, values)
    std = (torch.einsum("k,khw->hw", probs, values**2) - exact**2).clamp_min(0).sqrt()
    options = perturbation.RISEOptions(num_masks=3000, grid=2, p=p, fill="black", batch_size=1000)
    generator = torch.Generator().manual_seed(4)
    estimate = attribution.attribution_maps("rise", X, y, classifier, options, generator)
    assert ((estimate[0] - exact).abs() <= 5 * std / math.sqrt(3000) + 1e-12).all()
    assert (estimate[0] - exact).abs().max() > 0  # an estimate, not the enumeration


def test_rise_from_given_masks_is_the_formula(toy, toy_batch):
    X, y = toy_batch
    masks = torch.rand(6, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = perturbation.rise_from_masks(X, y, toy.model, masks, 0.5, fill="mean", score="logit", batch_size=4,
                                        norm=ZERO_ONE)
    for i in range(3):
        scores = toy.model(masks[:, None] * X[i])[:, y[i]]  # the mean colour is input 0 here
        torch.testing.assert_close(ours[i], torch.einsum("k,khw->hw", scores, masks) / 3.0)


def test_method_checks_name_the_option_and_the_classifier(toy):
    no_layer = Classifier("flat", toy.model, toy.class_names, 16, ZERO_ONE, None)
    assert "Classifier.feature_layer" in attribution.method_problems(
        attribution.ATTRIBUTIONS.get("gradcam"), no_layer, cam.GradCAMOptions(), "task.gradcam")[0]
    big = perturbation.OcclusionOptions(patch=17)
    occlusion = attribution.ATTRIBUTIONS.get("occlusion")
    assert attribution.method_problems(occlusion, toy, big, "task.occlusion") == [
        "task.occlusion.patch=17: larger than the 16-pixel inputs of toy; use at most 16"]
    assert attribution.method_problems(attribution.ATTRIBUTIONS.get("rise"), toy, perturbation.RISEOptions(),
                                       "task.rise") == []
    assert perturbation.OcclusionOptions(patch=4, stride=5).problems()
    with pytest.raises(ValueError, match="patch=20"):
        perturbation.occlusion_saliency(torch.zeros(1, 3, 16, 16), torch.tensor([0]), toy.model, patch=20)


def test_lite0_methods_equal_captum(lite0):
    """On EfficientNet-Lite0 (folded BatchNorm, ReLU6): Grad-CAM on the head's ReLU6, Input x Gradient and
    occlusion against Captum on the network itself; Guided Backprop and Guided Grad-CAM against Captum on
    :class:`captum_lite0.CaptumLite0` (the same function with ReLU6 as hooked ``nn.ReLU``s)."""
    from captum_lite0 import CaptumLite0

    classifier, X, y = lite0
    model = classifier.model
    coarse = captum_attr.LayerGradCam(model, classifier.feature_layer).attribute(X, target=y,
                                                                                 relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(coarse, (96, 96), "bilinear")[:, 0]
    torch.testing.assert_close(attribution.attribution_maps("gradcam", X, y, classifier), theirs)
    torch.testing.assert_close(input_x_gradient_saliency(X, y, model),
                               captum_attr.InputXGradient(model).attribute(X.clone(), target=y).sum(dim=1))
    twin = CaptumLite0(model).eval()
    torch.testing.assert_close(twin(X), model(X), rtol=0, atol=0)
    ours = guided.guided_gradient(X, y, model)
    torch.testing.assert_close(ours, captum_attr.GuidedBackprop(twin).attribute(X.clone(), target=y))
    plain = captum_attr.GuidedBackprop(model).attribute(X.clone(), target=y)  # Captum sees no ReLU in Lite0
    assert not torch.allclose(ours, plain, atol=1e-6)
    torch.testing.assert_close(
        cam.guided_grad_cam_attribution(X, y, model, classifier.feature_layer),
        captum_attr.GuidedGradCam(twin, twin.head).attribute(X.clone(), target=y,
                                                             interpolate_mode="bilinear"))
    options = perturbation.OcclusionOptions(patch=48, stride=24)
    occluded = attribution.attribution_maps("occlusion", X, y, classifier, options)
    reference = captum_attr.Occlusion(lambda x: model(x).softmax(dim=1)).attribute(
        X, target=y, sliding_window_shapes=(3, 48, 48), strides=(3, 24, 24), baselines=0.0)
    torch.testing.assert_close(occluded, reference[:, 0])
