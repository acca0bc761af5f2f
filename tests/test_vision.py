"""Saliency, fooling and class visualization against independent computations on small fixed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from visgrad.images import IMAGENET_MEAN, IMAGENET_STD, clamp_image, normalize, unnormalize
from visgrad.models.classifier import resolve_class
from visgrad.vision import compute_saliency_maps, create_class_visualization, make_fooling_image
from visgrad.vision.class_viz import class_probability
from visgrad.vision.fooling import make_fooling_images
from visgrad.vision.saliency import (
    ig_baseline,
    integrated_gradients_saliency,
    mass_in_mask,
    pointing_game,
    score_gradient,
    smoothgrad_saliency,
)


def small_cnn(num_classes: int = 5, seed: int = 0, dtype=torch.float64) -> nn.Module:
    """A fixed random CNN with BatchNorm (eval mode), frozen, as the pretrained models are."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(64, num_classes),
    ).to(dtype)
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_saliency_matches_per_sample_autograd():
    model = small_cnn()
    X = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 4])
    saliency = compute_saliency_maps(X, y, model)
    assert saliency.shape == (4, 16, 16)
    for i in range(4):
        grad = torch.func.grad(lambda x, i=i: model(x[None])[0, y[i]])(X[i])
        torch.testing.assert_close(saliency[i], grad.abs().amax(dim=0))
    assert not X.requires_grad and X.grad is None


def test_saliency_matches_finite_differences():
    model = small_cnn()
    X = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    grad = torch.zeros_like(X)
    eps = 1e-6
    for idx in np.ndindex(*X.shape):
        plus, minus = X.clone(), X.clone()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (model(plus)[0, 2] - model(minus)[0, 2]) / (2 * eps)
    torch.testing.assert_close(compute_saliency_maps(X, torch.tensor([2]), model), grad.abs().amax(dim=1))


def test_smoothgrad_is_the_mean_of_noisy_vanilla_maps():
    model = small_cnn()
    X = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    y = torch.tensor([1, 2])
    torch.testing.assert_close(smoothgrad_saliency(X, y, model, num_samples=3, noise_level=0.0),
                               compute_saliency_maps(X, y, model))
    smooth = smoothgrad_saliency(X, y, model, 4, 0.2, torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    span = 0.2 * (X.amax(dim=(1, 2, 3)) - X.amin(dim=(1, 2, 3))).view(-1, 1, 1, 1)
    noises = [torch.randn(X.shape, generator=generator, dtype=X.dtype) for _ in range(4)]
    noisy = [compute_saliency_maps(X + span * noise, y, model) for noise in noises]
    torch.testing.assert_close(smooth, torch.stack(noisy).mean(dim=0))


def test_integrated_gradients_is_exact_for_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).double().eval()
    X = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    baseline = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    y = torch.tensor([3, 0])
    ig = integrated_gradients_saliency(X, y, linear, steps=4, baseline=baseline)
    w = linear[1].weight[y].view(2, 3, 6, 6)
    torch.testing.assert_close(ig, ((X - baseline) * w).abs().amax(dim=1))


def test_integrated_gradients_completeness_on_a_cnn():
    """Signed IG attributions sum to score(X) - score(baseline) (checked through the map's inputs)."""
    model = small_cnn()
    X = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    y = torch.tensor([1])
    baseline = normalize(torch.zeros_like(X))
    steps = 400
    total = sum(score_gradient(baseline + (k + 0.5) / steps * (X - baseline), y, model) for k in range(steps))
    attribution = (X - baseline) * total / steps
    delta = model(X)[0, 1] - model(baseline)[0, 1]
    assert abs(attribution.sum().item() - delta.item()) < 1e-3 * max(1.0, abs(delta.item()))
    torch.testing.assert_close(integrated_gradients_saliency(X, y, model, steps=steps),
                               attribution.abs().amax(dim=1))


def test_integrated_gradients_baselines():
    X = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(unnormalize(ig_baseline(X, "black")), torch.zeros_like(X))
    torch.testing.assert_close(ig_baseline(X, "mean"), torch.zeros_like(X))
    blurred = ig_baseline(X, "blur")
    assert blurred.shape == X.shape and blurred.std() < 0.5 * X.std()
    torch.testing.assert_close(blurred.mean(dim=(2, 3)), X.mean(dim=(2, 3)), atol=0.15, rtol=0)
    with pytest.raises(ValueError, match=r"kind=.white.; choose black, mean, blur"):
        ig_baseline(X, "white")


def test_attribution_registry_batches_and_rejects_unknown_methods():
    from visgrad.errors import ConfigError
    from visgrad.models.classifier import Classifier
    from visgrad.vision.attribution import ATTRIBUTIONS, SmoothGradOptions, attribution_maps

    model = small_cnn()
    classifier = Classifier("small", model, [str(i) for i in range(5)], 8)
    X = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4])
    chunked = attribution_maps("vanilla", X, y, classifier, batch_size=2)
    torch.testing.assert_close(chunked, compute_saliency_maps(X, y, model))
    # SmoothGrad's options reach it, and its noise comes from the one generator, batch after batch
    options = SmoothGradOptions(num_samples=3, noise_level=0.1)
    chunked = attribution_maps("smoothgrad", X, y, classifier, options, torch.Generator().manual_seed(1), 2)
    generator = torch.Generator().manual_seed(1)
    expected = [smoothgrad_saliency(X[i : i + 2], y[i : i + 2], model, 3, 0.1, generator) for i in (0, 2, 4)]
    torch.testing.assert_close(chunked, torch.cat(expected))
    assert not torch.allclose(chunked, compute_saliency_maps(X, y, model))
    assert [m.label for m in ATTRIBUTIONS][:4] == ["vanilla", "SmoothGrad", "Integrated Gradients",
                                                    "attention rollout"]
    with pytest.raises(ConfigError, match=r"unknown attribution method 'bogus_method'; one of vanilla, "
                                          r"smoothgrad, integrated_gradients, attention_rollout, .*, or the "
                                          r"dotted path"):
        attribution_maps("bogus_method", X, y, classifier)


def test_pointing_game_and_mass_in_mask():
    saliency = torch.zeros(2, 4, 4)
    saliency[0, 1, 1], saliency[0, 3, 3] = 3.0, 1.0
    saliency[1, 0, 0], saliency[1, 2, 2] = 1.0, 2.0
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    assert pointing_game(saliency, masks).tolist() == [True, False]
    torch.testing.assert_close(mass_in_mask(saliency, masks), torch.tensor([0.75, 1 / 3]))
    uniform = torch.rand(200, 4, 4)  # a random map's expected mass is the mask's area fraction
    assert abs(mass_in_mask(uniform, masks[:1].expand(200, 4, 4)).mean().item() - 0.25) < 0.02


def _cs231n_fooling(X, target_y, model, learning_rate=1.0, max_iter=100):
    """CS231n's reference loop, written independently: (X_fooling, number of steps)."""
    X_fooling = X.clone().requires_grad_(True)
    for it in range(max_iter):
        scores = model(X_fooling)
        if scores.argmax(dim=1).item() == target_y:
            return X_fooling.detach(), it
        scores[0, target_y].backward()
        with torch.no_grad():
            X_fooling += learning_rate * X_fooling.grad / X_fooling.grad.norm()
        X_fooling.grad.zero_()
    return X_fooling.detach(), max_iter


def test_fooling_succeeds_and_reports_correct_statistics():
    model = small_cnn()
    X = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    original = model(X).argmax(dim=1).item()
    target = (original + 2) % 5
    X_fooling, report = make_fooling_image(X, target, model, learning_rate=0.5)
    assert report.success and model(X_fooling).argmax(dim=1).item() == target
    assert report.original_class == original and report.final_class == target
    expected, steps = _cs231n_fooling(X, target, model, learning_rate=0.5)
    torch.testing.assert_close(X_fooling, expected)
    assert report.iterations == steps > 0
    std = np.array(IMAGENET_STD).reshape(1, 3, 1, 1)
    diff = (X_fooling - X).numpy() * std * 255
    assert report.linf == pytest.approx(np.abs(diff).max())
    assert report.l2 == pytest.approx(np.sqrt((diff**2).sum()))
    assert report.target_prob == pytest.approx(torch.softmax(model(X_fooling), dim=1)[0, target].item())
    assert report.target_prob > 1 / 5


def test_batched_fooling_equals_one_image_at_a_time_and_stops_per_image():
    model = small_cnn()
    X = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    targets = (model(X).argmax(dim=1) + torch.tensor([1, 2, 3, 4])) % 5
    steps_seen = []
    batch, result = make_fooling_images(X, targets, model, learning_rate=0.5,
                                        on_step=lambda it, scores, fooled: steps_seen.append(fooled.clone()))
    for i in range(4):
        single, report = make_fooling_image(X[i : i + 1], int(targets[i]), model, learning_rate=0.5)
        torch.testing.assert_close(batch[i : i + 1], single)
        assert report.iterations == result.iterations[i].item()
    assert result.success.all() and steps_seen[-1].all() and not steps_seen[0].any()
    assert len(steps_seen) == result.iterations.max().item() + 1


def test_fooling_with_clamp_stays_a_valid_image_and_max_iter_bounds_the_work():
    model = small_cnn()
    X = clamp_image(torch.randn(2, 3, 16, 16, dtype=torch.float64))
    targets = (model(X).argmax(dim=1) + 1) % 5
    fooled, result = make_fooling_images(X, targets, model, learning_rate=0.5, clamp=True)
    pixels = unnormalize(fooled)
    assert pixels.min() >= -1e-9 and pixels.max() <= 1 + 1e-9 and result.success.all()
    _, capped = make_fooling_images(X, targets, model, learning_rate=1e-6, max_iter=3)
    assert capped.iterations.tolist() == [3, 3] and not capped.success.any()


def test_class_visualization_increases_the_target_score():
    model = small_cnn(dtype=torch.float32)
    with torch.no_grad():
        model[-1].weight.mul_(30)  # a confident classifier, so that the score can grow a lot
    target = 3
    result = create_class_visualization(target, model, learning_rate=2.0, num_iterations=30, blur_every=10,
                                        max_jitter=2, show_every=10, image_size=16, seed=0)
    first, last = result.snapshots[0][1], result.image
    assert [it for it, _ in result.snapshots] == [0, 10, 20, 30]
    assert model(last)[0, target] > model(first)[0, target] + 5.0
    assert class_probability(last, target, model) > 0.95 > 0.5 > class_probability(first, target, model)
    assert len(result.scores) == len(result.probs) == 30
    pixels = unnormalize(last)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    again = create_class_visualization(target, model, learning_rate=2.0, num_iterations=30, blur_every=10,
                                       max_jitter=2, show_every=10, image_size=16, seed=0)
    torch.testing.assert_close(again.image, last)  # seeded: reproducible


def test_class_visualization_step_is_cs231n_update():
    """One iteration without jitter or blur: I <- clamp(I + lr * d(score_y - l2 ||I||^2)/dI)."""
    model = small_cnn(dtype=torch.float32)
    result = create_class_visualization(1, model, l2_reg=0.1, learning_rate=3.0, num_iterations=1,
                                        blur_every=0, max_jitter=0, show_every=1, image_size=12, seed=7)
    start = result.snapshots[0][1].clone().requires_grad_(True)
    noise = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(start, clamp_image(noise))
    (model(start)[0, 1] - 0.1 * (start**2).sum()).backward()
    torch.testing.assert_close(result.image, clamp_image(start.detach() + 3.0 * start.grad))


def test_resolve_class_by_index_name_and_suggestions():
    from torchvision.models import SqueezeNet1_1_Weights

    names = SqueezeNet1_1_Weights.DEFAULT.meta["categories"]
    assert resolve_class(366, names) == resolve_class("366", names) == resolve_class("Gorilla", names) == 366
    assert resolve_class("tarantula", names) == 76
    with pytest.raises(ValueError, match="'gorilla'"):
        resolve_class("gorila", names)
    with pytest.raises(ValueError, match="out of range.*0..999"):
        resolve_class(1000, names)
    with pytest.raises(ValueError, match="out of range"):
        resolve_class(-1, names)
    with pytest.raises(ValueError, match="circle"):
        resolve_class("hexagon", ["circle", "square", "triangle", "diamond"])


def test_imagenet_mean_std_are_cs231n():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_saliency_fooling_and_class_viz_on_cuda_match_cpu():
    model = small_cnn(dtype=torch.float32)
    X = torch.randn(2, 3, 16, 16)
    y = torch.tensor([1, 2])
    cuda_model = small_cnn(dtype=torch.float32).cuda()
    torch.testing.assert_close(compute_saliency_maps(X.cuda(), y.cuda(), cuda_model).cpu(),
                               compute_saliency_maps(X, y, model), atol=1e-4, rtol=1e-3)
    _, on_gpu = make_fooling_images(X.cuda(), y.cuda(), cuda_model, learning_rate=0.5)
    _, on_cpu = make_fooling_images(X, y, model, learning_rate=0.5)
    assert on_gpu.success.cpu().tolist() == on_cpu.success.tolist()
    viz = create_class_visualization(1, cuda_model, num_iterations=3, image_size=16, seed=0, device="cuda")
    assert viz.image.device.type == "cuda"
