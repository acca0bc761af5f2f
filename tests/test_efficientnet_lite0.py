"""EfficientNet-Lite0: the packaged ImageNet weights load strictly and classify real photos correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from visgrad.models.efficientnet_lite0 import (
    EfficientNetLite0,
    imagenet_class_names,
    load_efficientnet_lite0,
    packaged_weights_path,
    same_padding,
)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    return load_efficientnet_lite0()


def _photo(array) -> torch.Tensor:
    """The network's preprocessing, written out independently: shorter side 224, centre crop, [-1, 1]."""
    img = TF.center_crop(TF.resize(Image.fromarray(array), 224), 224)
    return TF.to_tensor(img)[None] * 2 - 1


def test_packaged_file_loads_strictly_with_every_tensor() -> None:
    state = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    model = EfficientNetLite0()
    assert set(state) == set(model.state_dict())
    for key, value in load_efficientnet_lite0(fast=False).state_dict().items():
        assert torch.equal(value, state[key]), key


def test_frozen_eval_model(lite0: EfficientNetLite0) -> None:
    assert not lite0.training
    assert not any(p.requires_grad for p in lite0.parameters())


@pytest.mark.parametrize(
    ("photo", "allowed"),
    [("chelsea", {"tabby", "tiger cat", "Egyptian cat"}), ("coffee", {"espresso"})],
)
def test_real_photos_top1(lite0: EfficientNetLite0, photo: str, allowed: set[str]) -> None:
    names = imagenet_class_names()
    probs = lite0(_photo(getattr(skimage.data, photo)())).softmax(1)[0]
    assert names[int(probs.argmax())] in allowed
    if photo == "coffee":
        assert probs.max() > 0.8


def test_same_padding_matches_tensorflow() -> None:
    # TF 'same': output ceil(size / stride), the odd extra pixel after.
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(112, 5, 2) == (1, 2)
    assert same_padding(225, 3, 2) == (1, 1)
    assert same_padding(7, 1, 1) == (0, 0)


def test_features_stem_and_every_block(lite0: EfficientNetLite0) -> None:
    x = torch.zeros(1, 3, 224, 224)
    feats = lite0.features(x)
    assert len(feats) == 17
    assert [f.shape[1] for f in feats] == lite0.feature_channels
    assert [f.shape[-1] for f in feats] == [112, 112, 56, 56, 28, 28, 14, 14, 14, 14, 14, 14, 7, 7, 7, 7, 7]
    assert len(lite0.features(x, upto=3)) == 4
    assert torch.equal(lite0.features(x, upto=3)[3], feats[3])
    with pytest.raises(ValueError, match="out of range"):
        lite0.features(x, upto=17)


def test_odd_input_size_keeps_tf_shapes(lite0: EfficientNetLite0) -> None:
    feats = lite0.features(torch.zeros(1, 3, 97, 131))
    assert feats[0].shape[-2:] == (49, 66)
    assert lite0(torch.zeros(1, 3, 97, 131)).shape == (1, 1000)


def test_truncated_file_error_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(packaged_weights_path().read_bytes()[:100_000])
    with pytest.raises(ValueError, match=r"cannot read EfficientNet-Lite0 weights file .*lite0\.pth"):
        load_efficientnet_lite0(bad)


def test_wrong_state_dict_error_names_it(tmp_path: Path) -> None:
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong)
    with pytest.raises(ValueError, match=r"resnet\.pth does not fit the network"):
        load_efficientnet_lite0(wrong)
    missing = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_efficientnet_lite0(missing)


def test_class_names() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"


def test_classifier_carries_its_preprocessing() -> None:
    from visgrad.data.image_sets import sample_inputs, sample_photo
    from visgrad.models.classifier import efficientnet_lite0_classifier

    classifier = efficientnet_lite0_classifier()
    assert classifier.norm.mean == classifier.norm.std == (0.5, 0.5, 0.5)
    batch = sample_inputs(classifier.image_size, 2, classifier.norm)
    assert batch.names == ["chelsea", "coffee"] and batch.images.shape == (2, 3, 224, 224)
    assert batch.images.min() >= -1 and batch.images.max() <= 1 and batch.images.min() < -0.9
    # the same pixels as the independent preprocessing above, and back to them exactly as uint8
    torch.testing.assert_close(batch.images[:1], _photo(np.asarray(sample_photo("chelsea"))))
    uint8 = classifier.norm.to_uint8(batch.images[:1])
    torch.testing.assert_close(classifier.norm.normalize(uint8.permute(0, 3, 1, 2) / 255), batch.images[:1],
                               atol=1.01 / 255 * 2, rtol=0)
    assert torch.equal(classifier.norm.clamp(torch.tensor([-3.0, 0.3, 3.0]).view(1, 3, 1, 1)).flatten(),
                       torch.tensor([-1.0, 0.3, 1.0]))
    names = [classifier.class_names[i] for i in classifier.model(batch.images).argmax(1)]
    assert names[1] == "espresso"


def test_visualize_defaults_to_lite0_on_photos(compose_cfg) -> None:
    from visgrad.tasks import run_task

    cfg = compose_cfg("visualize", ["task=saliency", "task.num_images=2", "task.num_show=2", "device=cpu",
                                    "task.methods=[vanilla]", "task.metrics.steps=3",
                                    "task.optimized_metric=saliency/vanilla/insertion_auc"])
    assert cfg.classifier._target_.endswith("efficientnet_lite0_classifier")
    assert 0 < run_task(cfg) < 1
    assert (Path(cfg.paths.output_dir) / "saliency.png").stat().st_size > 1000


def test_fooling_clamps_and_measures_in_the_classifiers_pixels() -> None:
    from visgrad.images import Normalization
    from visgrad.vision.fooling import make_fooling_images, perturbation_stats

    half = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    X = torch.zeros(1, 3, 4, 4)
    # 0.2 in [-1, 1] units is 0.1 of the pixel range: 25.5 / 255 per pixel, over 48 values
    linf, l2 = perturbation_stats(X, X + 0.2, half)
    assert linf.item() == pytest.approx(25.5) and l2.item() == pytest.approx(25.5 * 48**0.5)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(48), torch.ones(48)]))
        model[1].bias.copy_(torch.tensor([100.0, 0.0]))  # class 1 needs a mean input above 100/48 > 1
    fooled, result = make_fooling_images(X, torch.tensor([1]), model, learning_rate=5.0, max_iter=20,
                                         clamp=True, norm=half)
    assert fooled.max().item() == pytest.approx(1.0) and not result.success.item()


def test_folded_channels_last_network_computes_the_same(lite0: EfficientNetLite0) -> None:
    plain = load_efficientnet_lite0(fast=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.modules())
    x = _photo(skimage.data.chelsea()).requires_grad_(True)
    torch.testing.assert_close(lite0(x), plain(x), atol=2e-4, rtol=1e-4)
    for ours, theirs in zip(lite0.features(x, upto=4), plain.features(x, upto=4), strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    (g_fast,) = torch.autograd.grad(lite0(x)[0, 281], x)
    (g_plain,) = torch.autograd.grad(plain(x)[0, 281], x)
    # float32 rounding can flip a ReLU6 gate here and there (one unit of block 2 for this photo), which
    # changes the gradient locally; the maps agree to well under 1 % overall.
    assert ((g_fast - g_plain).norm() / g_plain.norm()).item() < 0.01
    with pytest.raises(RuntimeError, match="eval mode"):
        EfficientNetLite0().fold_batchnorm()


def test_head_activation_is_a_module_and_the_logits_are_unchanged(lite0: EfficientNetLite0) -> None:
    """The head's ReLU6 is a module (a hook sees the last feature map), computing exactly the functional
    relu6 that the logits of the packaged weights were computed with before."""
    import torch.nn.functional as F

    x = _photo(skimage.data.chelsea())
    with torch.no_grad():
        h = lite0.features(x)[-1]
        pooled = F.adaptive_avg_pool2d(F.relu6(lite0._bn1(lite0._conv_head(h))), 1).flatten(1)
        reference = lite0._fc(pooled)
        assert torch.equal(lite0(x), reference)
    assert isinstance(lite0.head_activation, torch.nn.ReLU6) and not list(lite0.head_activation.parameters())


def test_classifier_feature_layer_gives_the_last_feature_map() -> None:
    """Classifier.feature_layer: a forward hook sees (N, C, h, w), and the score's gradient reaches it."""
    from visgrad.models.classifier import efficientnet_lite0_classifier

    classifier = efficientnet_lite0_classifier()
    seen = []
    handle = classifier.feature_layer.register_forward_hook(lambda module, args, output: seen.append(output))
    x = _photo(skimage.data.coffee()).repeat(2, 1, 1, 1).requires_grad_(True)  # frozen weights: a graph
    with torch.enable_grad():
        scores = classifier.model(x)
        (grad,) = torch.autograd.grad(scores[:, 967].sum(), seen[0])  # espresso
    handle.remove()
    assert seen[0].shape == (2, 1280, 7, 7) and grad.shape == seen[0].shape and grad.abs().sum() > 0
    # the logits are the pooled feature map through the classifier layer
    torch.testing.assert_close(classifier.model._fc(seen[0].mean(dim=(2, 3))), scores, atol=1e-4, rtol=1e-4)
