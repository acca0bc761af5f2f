"""EfficientNet-Lite0 as Captum's ``GuidedBackprop`` can see it: the same weights and the same function,
with every ReLU6 written as an ``nn.ReLU`` module (which Captum hooks; it hooks no ``nn.ReLU6`` and cannot
see Lite0's ``F.relu6`` calls) whose output is replaced by 6 where the input is >= 6 (a constant mask of
the forward pass). Gradients reach the ReLU's output only where x < 6, and Captum's hook passes back
``max(dy, 0)`` where x > 0: ``max(dy, 0) * [0 < x < 6]``, our guided ReLU6 rule. (``ReLU(x) - ReLU(x - 6)``
would not do: Captum's hook on the second ReLU passes back ``max(-dy, 0)`` above 6.) Used by the Captum
equality tests and benchmarks/bench_attribution.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.models.efficientnet_lite0 import EfficientNetLite0


class SplitReLU6(nn.Module):
    """ReLU6(x) = ReLU(x) where x < 6, else 6, with one ``nn.ReLU`` module."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        below = x.detach() < 6
        return torch.where(below, self.relu(x), torch.full_like(x, 6.0))


class CaptumLite0(nn.Module):
    """``net``'s forward (EfficientNetLite0, folded or not) with a :class:`SplitReLU6` module per ReLU6;
    ``head`` is the last one (the feature layer of Grad-CAM)."""

    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self.net = net
        sites = 1 + sum(2 if hasattr(block, "_expand_conv") else 1 for block in net._blocks)
        self.acts = nn.ModuleList(SplitReLU6() for _ in range(sites))
        self.head = SplitReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net, acts = self.net, iter(self.acts)
        h = next(acts)(net._bn0(net._conv_stem(x)))
        for block in net._blocks:
            inputs = h
            if hasattr(block, "_expand_conv"):
                h = next(acts)(block._bn0(block._expand_conv(h)))
            h = next(acts)(block._bn1(block._depthwise_conv(h)))
            h = block._bn2(block._project_conv(h))
            h = h + inputs if block.residual else h
        h = self.head(net._bn1(net._conv_head(h)))
        return net._fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))
