"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

On small data a discriminator memorises the few real images and its gradients stop guiding the generator.
DiffAugment shows the discriminator every image, real and generated, only through a random transform T
drawn from one distribution (in the discriminator's step and in the generator's): D(T(x)) against
D(T(G(z))). Since T is differentiable in its input, the generator's gradient flows through it, and since
both sides see the same distribution of transforms, the generator is not pushed to produce augmented
images (it is, for classic augmentation of the real images only).

The transforms, on images (N, C, H, W) in [-1, 1], each drawn per image (from ``generator``, a CPU
``torch.Generator``, so runs repeat and resume exactly):

- ``color``: brightness (add U[-0.5, 0.5)) and contrast (scale the deviation from the image's mean by
  U[0.5, 1.5)); the paper's saturation is left out (it is the identity on grey images);
- ``translation``: shift by up to 1/8 of the size in each direction (integers), filling with 0;
- ``cutout``: zero a square of half the size at a random centre (clipped at the borders).

This follows the paper's reference code (``DiffAugment_pytorch.py``) in its magnitudes and order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _uniform(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) (n, 1, 1, 1), drawn on the CPU, cast like ``like``."""
    return torch.rand(n, 1, 1, 1, generator=generator).to(like)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Brightness + U[-0.5, 0.5), then contrast x (U[0, 1) + 0.5) around each image's mean."""
    x = x + (_uniform(x.shape[0], generator, x) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x.shape[0], generator, x) + 0.5) + mean


def translation(
    x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125
) -> torch.Tensor:
    """Shift each image by integers in [-s, s] rows and columns, s = round(ratio * size); 0 fills."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy  # (n, h, 1) source row of each target row
    cols = torch.arange(w, device=x.device)[None, None, :] + dx  # (n, 1, w)
    rows, cols = (rows + 1).clamp(0, h + 1), (cols + 1).clamp(0, w + 1)  # in the 1-pixel zero-padded image
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of round(ratio * size) pixels per side at a random centre (clipped at the borders)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy - ch // 2, cx - cw // 2
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x)


AUGMENTS: dict[str, Transform] = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(
    x: torch.Tensor, policy: Sequence[str], generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` (N, C, H, W) through each transform of ``policy`` (names in :data:`AUGMENTS`) in the order
    given; an empty policy returns ``x`` itself."""
    for name in policy:
        if name not in AUGMENTS:
            raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTS)}")
        x = AUGMENTS[name](x, generator)
    return x
