"""``torch.autocast`` support for the functional ops.

The Functions check that all their inputs share one dtype and compute in it. Under autocast (e.g.
Lightning's ``precision="bf16-mixed"``) their inputs arrive mixed: products made by autocast are in the
low-precision dtype, parameters stay float32. ``follows_autocast`` casts the floating inputs the way
autocast casts a ``torch`` op of the same kind and runs the op with autocast off inside.
"""

from __future__ import annotations

import functools

import torch


def follows_autocast(float32: bool = False):
    """Decorate a functional op: under autocast for its inputs' device, cast its floating tensor
    arguments to the autocast dtype (matrix-product ops) or to float32 (``float32=True``: losses, as
    autocast does for ``cross_entropy``); outside autocast the op runs unchanged."""

    def decorate(op):
        @functools.wraps(op)
        def wrapper(*args):
            device = next(a.device.type for a in args if isinstance(a, torch.Tensor))
            if not torch.is_autocast_enabled(device):
                return op(*args)
            dtype = torch.float32 if float32 else torch.get_autocast_dtype(device)
            args = tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                         for a in args)
            with torch.autocast(device, enabled=False):
                return op(*args)

        return wrapper

    return decorate
