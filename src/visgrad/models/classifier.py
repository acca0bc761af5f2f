"""The classifiers that the visualization tasks look into (``conf/classifier/*.yaml``).

Each config names (``_target_``) a function returning a :class:`Classifier`: a frozen model in eval
mode mapping preprocessed images (N, 3, S, S) to logits (N, C), its class names, input size S and input
normalisation (pixels in [0, 1] -> model input), which every task uses for its images, figures and clamping,
and its feature layer for CAM-type attribution methods.

The feature layer is the module of ``model`` whose output is the last convolutional feature map
(N, C', h, w), from which the logits are pooled: a forward hook on it sees that map, and the gradient of a
class score with respect to it (``torch.autograd.grad(score, feature_map)``) weighs its channels as
Grad-CAM does. EfficientNet-Lite0: the head's ReLU6 (N, 1280, S/32, S/32); torchvision classifiers: the
last convolutional block (``features`` of SqueezeNet, VGG, DenseNet, MobileNet, EfficientNet, ConvNeXt;
``layer4`` of ResNets), see :func:`last_conv_block`; None when a network has none.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from visgrad.errors import ConfigError
from visgrad.images import IMAGENET, Normalization
from visgrad.models import efficientnet_lite0 as lite0
from visgrad.models.pretrained import load_torchvision_model


@dataclass
class Classifier:
    """A frozen classifier with its class names, input image size, input normalisation and feature layer
    (the module of ``model`` that outputs the last convolutional feature map; see the module docstring)."""

    name: str
    model: nn.Module
    class_names: list[str]
    image_size: int
    norm: Normalization = IMAGENET
    feature_layer: nn.Module | None = None

    def to(self, device: torch.device | str) -> Classifier:
        self.model.to(device)
        return self

    def class_index(self, target: int | str) -> int:
        """See :func:`resolve_class`."""
        return resolve_class(target, self.class_names)


def resolve_class(target: int | str, class_names: list[str]) -> int:
    """A class given by index (``76``, ``"76"``) or by name (``"tarantula"``, case-insensitive) -> index.

    Unknown names raise ``ConfigError`` (a ValueError) with the closest names (difflib); indices are
    range-checked.
    """
    text = str(target).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(class_names):
            raise ConfigError(
                f"class index {index} is out of range: this classifier has classes 0..{len(class_names) - 1}"
            )
        return index
    lowered = [name.lower() for name in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text.lower(), lowered, n=5, cutoff=0.6)
    close += [name for name in lowered if text.lower() in name and name not in close][: 5 - len(close)]
    hint = f"did you mean {', '.join(repr(class_names[lowered.index(c)]) for c in close)}?" if close else (
        f"give an index 0..{len(class_names) - 1} or one of: {', '.join(class_names[:10])}"
        + (", ..." if len(class_names) > 10 else "")
    )
    raise ConfigError(f"unknown class name {text!r}; {hint}")


def torchvision_classifier(
    arch: str, weights: str = "DEFAULT", weights_path: str | None = None, image_size: int = 224
) -> Classifier:
    """A torchvision ImageNet model (``squeezenet1_1``, ``resnet18``, ``vgg19``, ...); see
    :func:`visgrad.models.pretrained.load_torchvision_model` for where the weights come from."""
    model, class_names = load_torchvision_model(arch, weights_path=weights_path, weights=weights)
    return Classifier(name=arch, model=model, class_names=class_names, image_size=image_size,
                      feature_layer=last_conv_block(model))


def last_conv_block(model: nn.Module) -> nn.Module | None:
    """The last convolutional block of a torchvision classifier: its ``features`` module (SqueezeNet, VGG,
    DenseNet, MobileNet, EfficientNet, ConvNeXt) or ``layer4`` (ResNet, ResNeXt, Wide ResNet); None for
    networks without either (vision transformers, ...)."""
    for name in ("features", "layer4"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def efficientnet_lite0_classifier(
    weights_path: str | None = None, image_size: int = lite0.IMAGE_SIZE
) -> Classifier:
    """EfficientNet-Lite0 with ImageNet weights (offline: the packaged file, or ``weights_path``), inputs
    scaled to [-1, 1]; see :mod:`visgrad.models.efficientnet_lite0`."""
    model = lite0.load_efficientnet_lite0(weights_path)
    norm = Normalization(lite0.MEAN, lite0.STD)
    return Classifier("efficientnet_lite0", model, lite0.imagenet_class_names(), image_size, norm,
                      feature_layer=model.head_activation)
