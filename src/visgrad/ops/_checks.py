"""Input checks for the torch ops: types, dtypes and devices (shapes: ``visgrad.reference._checks``)."""

from __future__ import annotations

import torch

from visgrad.reference._checks import check_word_ids


def check_floating(**tensors: torch.Tensor) -> None:
    """Require floating-point tensors that share the dtype and device of the first one."""
    first_name, first = next(iter(tensors.items()))
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.dtype != first.dtype or t.device != first.device:
            raise ValueError(f"{name} is {t.dtype} on {t.device} but {first_name} is {first.dtype} on "
                             f"{first.device}; convert all inputs to one dtype and device, "
                             f"e.g. t.to({first_name})")


def check_ids(name: str, ids: torch.Tensor, vocab_size: int) -> None:
    """Require an integer tensor of ids in ``[0, vocab_size)``; the error names the first bad id."""
    integer = isinstance(ids, torch.Tensor) and not (ids.is_floating_point() or ids.is_complex())
    if not integer or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of word ids, got "
                        f"{ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    if ids.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(ids))

    def first_bad():
        where = torch.nonzero((ids < 0) | (ids >= vocab_size))[0]
        return int(ids[tuple(where)]), tuple(int(i) for i in where)

    check_word_ids(name, lo, hi, vocab_size, first_bad)
