"""Class labels of a conditional generator's sample grids and metrics (GANs and diffusion alike)."""

from __future__ import annotations

import torch


def block_labels(n: int, num_classes: int) -> torch.Tensor | None:
    """Labels (n,) int64 ``0, .., 0, 1, .., 1, .., K-1`` in K blocks of n/K (rounded down where K does not
    divide n): every class about as often, so a grid of n/K images per row shows one class per row.
    None when unconditional (``num_classes`` 0)."""
    return torch.arange(n) * int(num_classes) // n if num_classes else None


def grid_row_length(n: int, num_classes: int, default: int = 8) -> int:
    """Images per row of a grid of ``n`` samples: n/K when K classes divide n (one class per row, with
    :func:`block_labels`), else ``default``."""
    return n // num_classes if num_classes and n % num_classes == 0 else default
