"""Style-transfer losses, feature extraction, the objective and the pixel optimiser."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchvision

from visgrad.models.feature_nets import disable_inplace, random_vgg
from visgrad.style.objective import (
    GramLoss,
    build_objective,
    check_layers,
    optimize_image,
    pixel_bounds,
)
from visgrad.vision import content_loss, extract_features, gram_matrix, style_loss, tv_loss


def gram_loop(f: np.ndarray, normalize: bool) -> np.ndarray:
    """Gram matrices of (N, C, H, W) by explicit loops."""
    n, c, h, w = f.shape
    out = np.zeros((n, c, c))
    for b, i, j in itertools.product(range(n), range(c), range(c)):
        out[b, i, j] = sum(f[b, i, y, x] * f[b, j, y, x] for y in range(h) for x in range(w))
    return out / (c * h * w) if normalize else out


def tv_loop(img: np.ndarray, weight: float) -> float:
    _, c, h, w = img.shape
    total = 0.0
    for ch, y, x in itertools.product(range(c), range(h), range(w)):
        if y + 1 < h:
            total += (img[0, ch, y + 1, x] - img[0, ch, y, x]) ** 2
        if x + 1 < w:
            total += (img[0, ch, y, x + 1] - img[0, ch, y, x]) ** 2
    return weight * total


def test_content_loss_matches_elementwise_sum():
    gen = torch.Generator().manual_seed(0)
    cur, orig = torch.randn(2, 1, 4, 5, 6, generator=gen, dtype=torch.float64)
    expected = 0.37 * sum(
        (a - b) ** 2 for a, b in zip(cur.flatten().tolist(), orig.flatten().tolist(), strict=True)
    )
    assert content_loss(0.37, cur, orig).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matrix_matches_loops_and_normalisation(normalize):
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gram = gram_matrix(f, normalize=normalize)
    assert gram.shape == (2, 3, 3)
    np.testing.assert_allclose(gram.numpy(), gram_loop(f.numpy(), normalize), rtol=1e-12)
    if normalize:
        np.testing.assert_allclose(
            (gram * 3 * 4 * 5).numpy(), gram_matrix(f, normalize=False).numpy(), rtol=1e-12
        )


def test_style_loss_matches_loops():
    gen = torch.Generator().manual_seed(2)
    feats = [torch.randn(1, c, s, s, generator=gen, dtype=torch.float64) for c, s in [(2, 5), (3, 4), (4, 3)]]
    layers, weights = [0, 2], [3.0, 0.5]
    targets = [
        torch.randn(1, feats[i].shape[1], feats[i].shape[1], generator=gen, dtype=torch.float64)
        for i in layers
    ]
    expected = sum(
        w * ((gram_loop(feats[i].numpy(), True) - t.numpy()) ** 2).sum()
        for i, t, w in zip(layers, targets, weights, strict=True)
    )
    assert style_loss(feats, layers, targets, weights).item() == pytest.approx(expected, rel=1e-12)


def test_style_loss_rejects_mismatched_lengths():
    feats = [torch.randn(1, 2, 3, 3)]
    with pytest.raises(ValueError, match="same length"):
        style_loss(feats, [0], [gram_matrix(feats[0])], [1.0, 2.0])


def test_tv_loss_is_the_loop_formula():
    img = torch.randn(1, 3, 5, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert tv_loss(img, 0.25).item() == pytest.approx(tv_loop(img.numpy(), 0.25), rel=1e-12)


def test_loss_gradients_match_finite_differences_in_float64():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64)
    gram_target = torch.randn(1, 2, 2, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: content_loss(0.7, v, target), (x,))
    assert torch.autograd.gradcheck(lambda v: gram_matrix(v), (x,))
    assert torch.autograd.gradcheck(lambda v: style_loss([v], [0], [gram_target], [2.0]), (x,))
    assert torch.autograd.gradcheck(lambda v: tv_loss(v, 0.3), (x,))


def test_fused_gram_loss_equals_style_loss_and_passes_gradcheck():
    gen = torch.Generator().manual_seed(5)
    f = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64)
    weight = torch.tensor(1.7, dtype=torch.float64)
    fused = GramLoss.apply(f, target, weight)
    reference = style_loss([f], [0], [target], [1.7])
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=0)
    (g_fused,) = torch.autograd.grad(fused, f)
    (g_ref,) = torch.autograd.grad(reference, f)
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v: GramLoss.apply(v, target, weight), (f,))


def test_extract_features_returns_every_module_output_in_order():
    torch.manual_seed(0)
    cnn = disable_inplace(torchvision.models.squeezenet1_1(weights=None).features.eval())
    x = torch.randn(1, 3, 64, 64)
    feats = extract_features(x, cnn)
    assert len(feats) == len(cnn) == 13
    y = x
    for module, f in zip(cnn, feats, strict=True):
        y = module(y)
        assert f.shape == y.shape and torch.equal(f, y)
    assert feats[3].shape == (1, 128, 15, 15)  # CS231n's content layer: a Fire module after one pool
    assert [f.shape for f in extract_features(x, cnn, upto=4)] == [f.shape for f in feats[:5]]


def test_random_vgg_layout_and_determinism():
    cnn = random_vgg()
    feats = extract_features(torch.zeros(1, 3, 32, 32), cnn)
    assert [tuple(f.shape[1:]) for f in (feats[i] for i in (1, 4, 7, 10))] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
    ]
    assert all(
        torch.equal(a, b)
        for a, b in zip(cnn.state_dict().values(), random_vgg().state_dict().values(), strict=True)
    )
    assert not torch.equal(cnn[0].weight, random_vgg(seed=1)[0].weight)


def _images(size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = pixel_bounds(torch.zeros(1))
    return [lo + (hi - lo) * torch.rand(1, 3, size, size, generator=gen) for _ in range(3)]


def test_objective_gradient_is_finite_and_truncates_the_network():
    content, style, img = _images()
    obj = build_objective(
        random_vgg(), content, [style], 4, 0.5, [1, 4, 7], [1.0, 1.0, 1.0], 1e-3, normalize_weights=True
    )
    assert len(obj.net) == 8  # modules 0..7: nothing past the deepest layer is run
    img.requires_grad_(True)
    losses = obj(img)
    losses["total"].backward()
    assert all(torch.isfinite(v) for v in losses.values()) and losses["style"] > 0 and losses["content"] > 0
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


def test_blended_targets_give_the_gradient_of_the_weighted_style_losses():
    content, s1, s2 = _images(seed=1)
    cnn, layers, weights = random_vgg(), [1, 4], [1.0, 2.0]
    blend = build_objective(cnn, None, [s1, s2], 4, 0.0, layers, weights, 0.0, blend=[0.75, 0.25])
    one = build_objective(cnn, None, [s1], 4, 0.0, layers, weights, 0.0)
    two = build_objective(cnn, None, [s2], 4, 0.0, layers, weights, 0.0)
    img = content.clone().requires_grad_(True)
    (g_blend,) = torch.autograd.grad(blend(img)["total"], img)
    (g_sum,) = torch.autograd.grad(0.75 * one(img)["total"] + 0.25 * two(img)["total"], img)
    torch.testing.assert_close(g_blend, g_sum, rtol=1e-4, atol=1e-6 * g_sum.abs().max().item())


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimize_image_decreases_the_loss_and_stays_in_range(optimizer):
    content, style, _ = _images(size=24, seed=2)
    obj = build_objective(
        random_vgg(), content, [style], 4, 0.3, [1, 4, 7], [1.0] * 3, 1e-4, normalize_weights=True
    )
    totals = []
    img = optimize_image(
        content,
        obj,
        optimizer,
        steps=8,
        lr=0.05,
        decay_lr_at=6,
        decayed_lr=0.01,
        callback=lambda step, x, losses: totals.append(losses["total"].item()),
    )
    final = obj(img)["total"].item()
    assert len(totals) == 8 and final < 0.9 * totals[0] and totals[-1] < totals[0]
    lo, hi = pixel_bounds(img)
    assert (img >= lo - 1e-6).all() and (img <= hi + 1e-6).all()


def test_layer_and_weight_errors_are_clear():
    cnn = random_vgg()
    with pytest.raises(
        ValueError, match=r"task.style_layers contains layer 11.*modules 0..10: 0 Conv2d, 1 ReLU"
    ):
        check_layers(cnn, {"task.content_layer": [4], "task.style_layers": [1, 11]}, "random")
    content, style, _ = _images()
    with pytest.raises(ValueError, match="style_layers has 2 entries but task.style_weights has 3"):
        build_objective(cnn, content, [style], 4, 1.0, [1, 4], [1.0, 1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match="style_blend"):
        build_objective(cnn, content, [style], 4, 1.0, [1, 4], [1.0, 1.0], 0.0, blend=[0.5, 0.5])
    with pytest.raises(ValueError, match="adam or lbfgs"):
        optimize_image(content, lambda x: {"total": x.sum()}, "sgd", steps=1)
