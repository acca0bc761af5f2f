"""Style-transfer losses, feature extraction, the objective and the pixel optimiser."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchvision

from visgrad.images import Normalization, preprocess
from visgrad.models import efficientnet_lite0 as lite0
from visgrad.models.efficientnet_lite0 import EfficientNetLite0
from visgrad.models.feature_nets import (
    LITE0_CONTENT_LAYER,
    LITE0_STYLE_LAYERS,
    FeatureNet,
    disable_inplace,
    lite0_sequential,
    load_feature_net,
    random_vgg,
)
from visgrad.models.pretrained import WeightsNotFoundError
from visgrad.style.multiscale import ScaleInputs, check_scales, optimize_multiscale
from visgrad.style.objective import (
    GramLoss,
    TVLoss,
    build_objective,
    check_layers,
    optimize_image,
    pixel_bounds,
)
from visgrad.style.quality import loss_ratios, reconstruction_scores
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


def test_layer_and_weight_errors_name_the_arguments():
    """Library errors name the arguments (the tasks turn them into task.* keys)."""
    cnn = random_vgg()
    with pytest.raises(ValueError, match=r"^style_layers contains layer 11, but the feature network has "
                                         r"modules 0..10: 0 Conv2d, 1 ReLU"):
        check_layers(cnn, {"content_layer": [4], "style_layers": [1, 11]})
    content, style, _ = _images()
    with pytest.raises(ValueError, match=r"^style_layers=\[1, 4\] has 2 entries but "
                                         r"style_weights=\[1.0, 1.0, 1.0\] has 3; give one weight per layer"):
        build_objective(cnn, content, [style], 4, 1.0, [1, 4], [1.0, 1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match=r"^blend=\[0.5, 0.5\] must hold one non-negative weight per style "
                                         r"image \(1\), not all zero$"):
        build_objective(cnn, content, [style], 4, 1.0, [1, 4], [1.0, 1.0], 0.0, blend=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"^non-zero style_weights need a style image \(styles is empty\)$"):
        build_objective(cnn, content, [], 4, 1.0, [1, 4], [1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match=r"^a non-zero content_weight needs a content image"):
        build_objective(cnn, None, [style], 4, 1.0, [1, 4], [1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match=r"^optimizer='sgd': use one of adam, lbfgs$"):
        optimize_image(content, lambda x: {"total": x.sum()}, "sgd", steps=1)


# --- EfficientNet-Lite0 feature network, loss normalisation, multi-scale, quality measures ---------------


def _lite0_random() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return lite0_sequential(EfficientNetLite0().eval())


def test_lite0_sequential_matches_the_feature_api_and_default_layers():
    model = EfficientNetLite0().eval()
    seq = lite0_sequential(model)
    x = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(6))
    ours, theirs = extract_features(x, seq), model.features(x)
    assert len(ours) == len(theirs) == 17
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the default layers: stem and blocks 0, 2, 4, 7 (strides 2, 2, 4, 8, 16), content at block 4
    assert (LITE0_CONTENT_LAYER, LITE0_STYLE_LAYERS) == (5, (0, 1, 3, 5, 8))
    assert [tuple(ours[i].shape[1:]) for i in LITE0_STYLE_LAYERS] == [
        (32, 20, 28),
        (16, 20, 28),
        (24, 10, 14),
        (40, 5, 7),
        (80, 3, 4),
    ]
    assert not any(p.requires_grad for p in seq.parameters())


def test_lite0_feature_net_has_imagenet_weights_and_minus_one_one_inputs():
    net = load_feature_net("efficientnet_lite0")
    assert (net.content_layer, net.style_layers) == (5, (0, 1, 3, 5, 8))
    assert net.norm.mean == net.norm.std == (0.5, 0.5, 0.5) and "ImageNet" in net.description
    from PIL import Image

    img = Image.fromarray(np.array([[[0, 128, 255]] * 4] * 2, dtype=np.uint8))
    x = preprocess(img, None, net.norm)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]))
    assert np.array_equal(np.asarray(net.norm.deprocess(x)), np.asarray(img))
    lo, hi = pixel_bounds(x, net.norm)
    assert lo.flatten().tolist() == [-1.0] * 3 and hi.flatten().tolist() == [1.0] * 3


def _pointwise_net(scale: float = 1.0) -> torch.nn.Sequential:
    """1x1 conv + ReLU: features of a 2x nearest-upsampled image are the upsampled features."""
    conv = torch.nn.Conv2d(3, 6, 1, dtype=torch.float64)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(7)
        conv.weight.copy_(scale * torch.randn(6, 3, 1, 1, generator=gen, dtype=torch.float64))
        conv.bias.fill_(0.1 * scale)
    return torch.nn.Sequential(conv, torch.nn.ReLU()).requires_grad_(False)


def _terms(net, content, style, img, normalize):
    obj = build_objective(net, content, [style], 1, 0.7, [0, 1], [1.0, 2.0], 0.3, normalize_weights=normalize)
    return {k: v.item() for k, v in obj(img).items()}


def test_normalised_weights_divide_by_the_targets_and_carry_across_sizes_and_networks():
    content, style, img = (x.double() for x in _images(size=8, seed=3))
    net = _pointwise_net()
    raw, norm = _terms(net, content, style, img, False), _terms(net, content, style, img, True)
    # each term is divided by its target's squared norm (content, style per layer) or the content's TV
    with torch.no_grad():
        fc = extract_features(content, net)
        fs = extract_features(style, net)
        fi = extract_features(img, net)
    expected_content = 0.7 * (fi[1] - fc[1]).pow(2).sum() / fc[1].pow(2).sum()
    expected_style = sum(
        w * (gram_matrix(fi[i]) - gram_matrix(fs[i])).pow(2).sum() / gram_matrix(fs[i]).pow(2).sum()
        for i, w in [(0, 1.0), (1, 2.0)]
    )
    assert norm["content"] == pytest.approx(expected_content.item(), rel=1e-10)
    assert norm["style"] == pytest.approx(expected_style.item(), rel=1e-10)
    assert norm["tv"] == pytest.approx(raw["tv"] / tv_loss(content, 1.0).item(), rel=1e-10)

    # the same picture at twice the size: raw terms change (content x4, TV x2), normalised ones do not
    up = [torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest") for x in (content, style, img)]
    raw2, norm2 = _terms(net, *up, False), _terms(net, *up, True)
    assert raw2["content"] == pytest.approx(4 * raw["content"], rel=1e-10)
    assert raw2["tv"] == pytest.approx(2 * raw["tv"], rel=1e-10)
    for key in ("content", "style", "tv", "total"):
        assert norm2[key] == pytest.approx(norm[key], rel=1e-10)
    # a network whose features are 10x larger: raw style x10^4, normalised unchanged
    raw10 = _terms(_pointwise_net(10.0), content, style, img, False)
    norm10 = _terms(_pointwise_net(10.0), content, style, img, True)
    assert raw10["style"] == pytest.approx(1e4 * raw["style"], rel=1e-8)
    for key in ("content", "style", "total"):
        assert norm10[key] == pytest.approx(norm[key], rel=1e-8)


@pytest.mark.parametrize("name", ["random", "lite0_random", "squeezenet_random", "lite0_imagenet"])
def test_a_few_adam_steps_lower_the_objective_on_each_network(name):
    if name == "random":
        cnn, content_layer, style_layers, bounds = random_vgg(), 4, [1, 4, 7], None
    elif name == "squeezenet_random":
        torch.manual_seed(0)
        cnn = disable_inplace(torchvision.models.squeezenet1_1(weights=None).features.eval())
        content_layer, style_layers, bounds = 3, [1, 4, 6, 7], None
    else:
        cnn = _lite0_random() if name == "lite0_random" else load_feature_net("efficientnet_lite0").cnn
        content_layer, style_layers = LITE0_CONTENT_LAYER, list(LITE0_STYLE_LAYERS)
        bounds = pixel_bounds(torch.zeros(1), Normalization(lite0.MEAN, lite0.STD))
    lo, hi = bounds if bounds is not None else pixel_bounds(torch.zeros(1))
    gen = torch.Generator().manual_seed(8)
    content, style = (lo + (hi - lo) * torch.rand(1, 3, 48, 48, generator=gen) for _ in range(2))
    obj = build_objective(
        cnn, content, [style], content_layer, 1.0, style_layers, [1.0] * len(style_layers), 0.1,
        normalize_weights=True,
    )
    start = obj(content)["total"].item()
    lr = 0.02 * (hi - lo).mean().item()
    img = optimize_image(content, obj, "adam", steps=6, lr=lr, decay_lr_at=100, bounds=(lo, hi))
    assert obj(img)["total"].item() < 0.95 * start


def test_check_scales_names_the_arguments():
    check_scales([0.5, 1.0], [3, 4])
    for scales in ([0.5], [1.0, 0.5], [0.0, 1.0], [0.5, 0.5, 1.0], []):
        with pytest.raises(ValueError, match=r"^scales=.*increasing fractions"):
            check_scales(scales, [1] * len(scales))
    with pytest.raises(ValueError, match=r"^steps=\[3\] must hold one positive number per scale of "
                                         r"scales=\[0.5, 1.0\]$"):
        check_scales([0.5, 1.0], [3])


def test_multiscale_upsamples_each_result_and_counts_steps_across_scales():
    calls = []

    def inputs_at(scale):
        size = round(16 * scale)
        return ScaleInputs(torch.zeros(1, 3, size, 2 * size), [], (size, 2 * size))

    def optimize(img, objective, steps, first_step):
        calls.append((tuple(img.shape[-2:]), objective, steps, first_step))
        return img + 1

    init = torch.zeros(1, 3, 4, 8)
    result, objective, inputs = optimize_multiscale(
        init, [0.25, 0.5, 1.0], [5, 3, 2], inputs_at, lambda inp: inp.shape, optimize
    )
    assert [(c[0], c[1], c[2], c[3]) for c in calls] == [
        ((4, 8), (4, 8), 5, 0),
        ((8, 16), (8, 16), 3, 5),
        ((16, 32), (16, 32), 2, 8),
    ]
    assert result.shape == (1, 3, 16, 32) and objective == (16, 32) and inputs.shape == (16, 32)
    torch.testing.assert_close(result, torch.full_like(result, 3.0))  # a constant survives bicubic resizing


def test_loss_ratios_are_one_at_the_reference_and_zero_at_the_target():
    content, style, _ = _images(size=24, seed=9)
    obj = build_objective(random_vgg(), content, [style], 4, 1.0, [1, 4], [1.0, 1.0], 0.0)
    at_content = loss_ratios(obj, content, content, [style], content)
    assert at_content["quality/style_ratio"] == pytest.approx(1.0)
    assert at_content["quality/content_ratio"] == pytest.approx(0.0, abs=1e-12)
    at_style = loss_ratios(obj, style, content, [style], content)
    assert at_style["quality/content_ratio"] == pytest.approx(1.0)
    assert at_style["quality/style_ratio"] == pytest.approx(0.0, abs=1e-9)
    texture = build_objective(random_vgg(), None, [style], 4, 0.0, [1, 4], [1.0, 1.0], 0.0)
    assert set(loss_ratios(texture, content, None, [style], content)) == {"quality/style_ratio"}


def test_reconstruction_scores_match_closed_forms():
    original = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(10), dtype=torch.float64) * 0.8
    psnr, ssim = reconstruction_scores(original + 0.1, original)
    assert psnr == pytest.approx(20.0, rel=1e-9)  # 10 log10(1 / 0.1^2)
    assert 0 < ssim < 1
    assert reconstruction_scores(original + 1e-9, original)[1] == pytest.approx(1.0)


def test_fused_tv_loss_equals_tv_loss_and_passes_gradcheck():
    img = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    img.requires_grad_(True)
    fused = TVLoss.apply(img, 0.3)
    reference = tv_loss(img, 0.3)
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        torch.autograd.grad(fused, img)[0], torch.autograd.grad(reference, img)[0], rtol=1e-12, atol=1e-12
    )
    assert torch.autograd.gradcheck(lambda v: TVLoss.apply(v, torch.tensor(0.7, dtype=torch.float64)), (img,))


def tiny_feature_net(weights_path=None) -> FeatureNet:
    """A feature net of your own: a function (weights_path) -> FeatureNet at a dotted path."""
    cnn = random_vgg((8, 16))
    return FeatureNet(cnn, 1, (1, 4), f"tiny random CNN ({weights_path})")


def test_feature_nets_registry_names_torchvision_and_dotted_paths(tmp_path, monkeypatch):
    from visgrad.errors import ConfigError
    from visgrad.models.feature_nets import FEATURE_NETS, is_feature_net

    assert FEATURE_NETS.names() == ["efficientnet_lite0", "random", "squeezenet", "vgg19"]
    net = load_feature_net(f"{__name__}.tiny_feature_net", "w.pth")
    assert net.description == "tiny random CNN (w.pth)" and len(net.cnn) == 5 and net.style_layers == (1, 4)
    assert is_feature_net("vgg16") and is_feature_net(f"{__name__}.tiny_feature_net")
    assert not is_feature_net("bogus_net")
    with pytest.raises(ConfigError, match=r"^unknown feature net 'bogus_net'; one of efficientnet_lite0, "
                                          r"random, squeezenet, vgg19, a torchvision classifier"):
        load_feature_net("bogus_net")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"feature net vgg16 needs .*weights_path=/path/to/vgg16-"):
        load_feature_net("vgg16")  # any torchvision classifier with `features`, from the cache or a file
