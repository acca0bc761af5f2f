"""Image encoders that a captioner trains with itself: images in, a grid of features out.

``SmallCNN`` is the learned alternative to frozen grid features (``data.grid=pixels`` with
``model.net.encoder_channels=64``; docs/attention.md compares it with EfficientNet-Lite0's grid).
"""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """Three 3x3 convolutions with stride 2 and ReLU: images (N, S, S, in_channels) with values in [0, 255]
    (channels last, as the data gives them) -> a grid (N, S/8, S/8, channels), channels last."""

    def __init__(self, in_channels: int = 3, channels: int = 64) -> None:
        super().__init__()
        widths = (in_channels, channels // 2, channels, channels)
        layers = []
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, images: Tensor) -> Tensor:
        x = images.permute(0, 3, 1, 2) / 127.5 - 1
        return self.net(x).permute(0, 2, 3, 1)
