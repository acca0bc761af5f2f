"""A small UNet denoiser with a sinusoidal time embedding and class conditioning (for classifier-free
guidance).

``UNet(image_shape, num_classes)(x_t, t, y=None)``: noisy images (N, C, S, S), int64 times (N,) and class
labels (N,) (None, or the label ``num_classes``: no class, the unconditional model) -> (N, C, S, S).

Layout (``width`` w, ``mults`` (1, 2), ``patch`` p = 2 on 28x28 digits):

- ``patch`` p > 1 first folds each p x p block of pixels into channels (``pixel_unshuffle``: (N, C, S, S)
  -> (N, C p^2, S/p, S/p)) and unfolds the output again, as the patch embeddings of DiT do: the network
  then works at 14x14, four times cheaper, which is what makes a DDPM trainable in minutes on a CPU;
- a 3x3 convolution to w channels, then per level a residual block (GroupNorm, SiLU, 3x3 conv; the
  embedding added per channel between its two convolutions) at w * mult channels and a stride-2 3x3
  convolution down (14 -> 7), a middle residual block, and on the way up ``blocks + 1`` residual blocks per
  level on the concatenated skip connections, with nearest-neighbour upsampling;
- the embedding: sinusoidal features of t (as a Transformer's positions) through a two-layer MLP (4w),
  plus a learned embedding of the class (``num_classes + 1`` rows, the last for "no class").

The output convolution starts at zero, so the untrained network predicts 0 (for ``pred_noise``: the
prior's mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features (N, dim) of times (N,): ``[sin(t f_0), .., sin(t f_{d/2-1}), cos(t f_0), ..]``
    with ``f_i = max_period^(-i / (dim/2))``. ``dim`` must be even."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _groups(channels: int) -> int:
    """GroupNorm groups: 8, or fewer when ``channels`` is not a multiple of 8."""
    return math.gcd(8, channels)


class ResBlock(nn.Module):
    """(N, C_in, H, W), embedding (N, E) -> (N, C_out, H, W): GN SiLU conv, + Linear(E) per channel,
    GN SiLU conv, + the input (through a 1x1 conv if C_in != C_out)."""

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embed_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.embed(emb)[:, :, None, None]
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class UNet(nn.Module):
    """Args:
    image_shape: (C, S, S) of the images; S divisible by ``patch * 2^(len(mults) - 1)``.
    num_classes: K for class conditioning (None or 0: unconditional; ``y`` is then ignored).
    width: channels of the first level.
    mults: channel multiplier of each level (one level per entry; each further level halves the size).
    blocks: residual blocks per level on the way down (``blocks + 1`` on the way up).
    patch: pixels folded into channels per side (1: none).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int | None = None,
        width: int = 32,
        mults: Sequence[int] = (1, 2),
        blocks: int = 1,
        patch: int = 2,
    ) -> None:
        super().__init__()
        channels, size = int(image_shape[0]), int(image_shape[-1])
        factor = patch * 2 ** (len(mults) - 1)
        if size % factor:
            raise ValueError(
                f"the UNet needs an image size divisible by patch * 2^(levels - 1) = {factor}, got {size}"
            )
        self.channels, self.patch, self.width = channels, int(patch), int(width)
        self.num_classes = int(num_classes or 0)
        embed_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.class_embed = nn.Embedding(self.num_classes + 1, embed_dim) if self.num_classes else None
        folded = channels * patch * patch
        self.stem = nn.Conv2d(folded, width, 3, padding=1)
        level_channels = [width * m for m in mults]
        self.down = nn.ModuleList()
        skips, c = [width], width
        for level, out in enumerate(level_channels):
            for _ in range(blocks):
                self.down.append(ResBlock(c, out, embed_dim))
                c = out
                skips.append(c)
            if level < len(level_channels) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.middle = ResBlock(c, c, embed_dim)
        self.up = nn.ModuleList()
        for level, out in reversed(list(enumerate(level_channels))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), out, embed_dim))
                c = out
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.head = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, folded, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def embedding(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """(N, 4w): the time MLP's output plus the class embedding (``y`` None: the "no class" row)."""
        emb = self.time_mlp(timestep_embedding(t, self.width))
        if self.class_embed is None:
            return emb
        if y is None:
            y = torch.full_like(t, self.num_classes)
        return emb + self.class_embed(y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embedding(t, y)
        h = F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x
        h = self.stem(h)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.middle(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], dim=1), emb) if isinstance(layer, ResBlock) else layer(h)
        out = self.head(h)
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
