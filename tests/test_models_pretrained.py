"""Pretrained torchvision models of visgrad.models.pretrained (no network, no cached weights needed)."""

from __future__ import annotations

import pytest
import torch

from visgrad.models.pretrained import (
    WeightsNotFoundError,
    cached_weights_path,
    imagenet_weights,
    load_torchvision_model,
)


def test_missing_weights_message_names_file_and_both_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    assert cached_weights_path(imagenet_weights("squeezenet1_1")) == expected
    with pytest.raises(WeightsNotFoundError) as info:
        load_torchvision_model("squeezenet1_1")
    message = str(info.value)
    assert str(expected) in message and "TORCH_HOME" in message
    assert "weights_path=/path/to/squeezenet1_1-b8a52dc0.pth" in message  # the argument; tasks name the key
    assert not expected.exists()  # nothing was downloaded
    with pytest.raises(WeightsNotFoundError, match="nowhere.pth"):
        load_torchvision_model("squeezenet1_1", weights_path=tmp_path / "nowhere.pth")


def test_unknown_arch_suggests_close_names():
    with pytest.raises(ValueError, match="squeezenet1_1"):
        load_torchvision_model("squeezenet11")


def test_explicit_weights_path_loads_frozen_eval_model(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.get_model("squeezenet1_1", weights=None).eval()
    path = tmp_path / "squeeze.pth"
    torch.save(reference.state_dict(), path)
    model, names = load_torchvision_model("squeezenet1_1", weights_path=path)
    assert len(names) == 1000 and names[0] == "tench"
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x))
    bad = tmp_path / "resnet.pth"
    torch.save(torchvision.models.get_model("resnet18", weights=None).state_dict(), bad)
    with pytest.raises(ValueError, match="does not fit"):
        load_torchvision_model("squeezenet1_1", weights_path=bad)


@pytest.mark.parametrize(("arch", "shape"), [("squeezenet1_1", (1, 512, 13, 13)),
                                             ("resnet18", (1, 512, 7, 7))])
def test_torchvision_classifier_feature_layer_is_the_last_conv_block(tmp_path, arch, shape):
    import torchvision

    from visgrad.models.classifier import torchvision_classifier

    path = tmp_path / f"{arch}.pth"
    torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), path)
    classifier = torchvision_classifier(arch, weights_path=str(path))
    seen = []
    classifier.feature_layer.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    classifier.model(torch.zeros(1, 3, 224, 224))
    assert seen == [shape]
