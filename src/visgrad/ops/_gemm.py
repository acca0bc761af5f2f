"""Matrix products for the recurrent ops: oneDNN kernels for float32 CPU tensors, ``torch.mm`` otherwise.

PyTorch runs CPU float32 ``mm`` through MKL, whose kernels are 10-25% slower than oneDNN's on AMD CPUs for
the shapes of a recurrent layer (``torch.nn.LSTM`` itself runs on oneDNN). oneDNN is reached through
``torch.ops.mkldnn._linear_pointwise``, an internal op of PyTorch's CPU backend, so it is probed once at
import against ``torch.mm``; if it is missing, fails or disagrees, every product falls back to ``torch.mm``.
Set ``VISGRAD_ONEDNN=0`` to always use ``torch.mm``.
"""

from __future__ import annotations

import os

import torch


def _probe():
    """Return the oneDNN linear op if it exists and computes ``a @ b`` and ``c + a @ b`` correctly."""
    if os.environ.get("VISGRAD_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        g = torch.Generator().manual_seed(0)
        a, b, c = (torch.randn(s, generator=g) for s in [(5, 7), (7, 3), (5, 3)])
        plain = op(a, b.t(), None, "none", [], "")
        biased = op(a, b.t(), c[0], "none", [], "")
        added = op.binary(a, c, b.t(), None, "add")
        ok = all(torch.allclose(got, want, atol=1e-5) for got, want in
                 [(plain, a @ b), (biased, a @ b + c[0]), (added, a @ b + c)])
    except (AttributeError, RuntimeError):
        return None
    return op if ok else None


_ONEDNN = _probe()
# M * K * N from which oneDNN beats torch.addmm (measured on 2 AMD EPYC cores); oneDNN copies a transposed
# ``a`` first, which only pays off for larger products.
ONEDNN_MIN_MNK = 2**25
ONEDNN_MIN_MNK_TRANSPOSED_A = 2**28


def _use_onednn(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.dtype == torch.float32 and a.device.type == "cpu"
            and _onednn_for(b, a.shape[0], a.shape[1], a.is_contiguous()))


def _onednn_for(b: torch.Tensor, rows: int, k: int, a_contiguous: bool) -> bool:
    """Whether a product (rows, k) x ``b`` of float32 CPU tensors goes to oneDNN."""
    if _ONEDNN is None or b.device.type != "cpu" or b.dtype != torch.float32:
        return False
    mnk = rows * k * b.shape[1]
    return (mnk > 0 and mnk >= (ONEDNN_MIN_MNK if a_contiguous else ONEDNN_MIN_MNK_TRANSPOSED_A)
            and torch.backends.mkldnn.enabled)


def mm(a: torch.Tensor, b: torch.Tensor, add: torch.Tensor | None = None,
       out: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``add + a @ b``: a (M, K), b (K, N), add (M, N) or (N,) or None.

    Operands may have any strides (transposed views are free). The result is written into ``out`` (M, N)
    when the product runs on ``torch.addmm`` (``out`` may be ``add`` itself); oneDNN returns a new tensor,
    so callers use the returned tensor, not ``out``.
    """
    if _use_onednn(a, b):
        try:
            if add is None or add.dim() == 1:
                return _ONEDNN(a, b.t(), add, "none", [], "")
            return _ONEDNN.binary(a, add, b.t(), None, "add")
        except RuntimeError:
            pass  # a layout oneDNN rejects (shapes are checked by the callers): torch.mm takes any
    if out is None:
        return a @ b if add is None else torch.addmm(add, a, b)
    return torch.mm(a, b, out=out) if add is None else torch.addmm(add, a, b, out=out)


def repeated_mm(b: torch.Tensor, rows: int):
    """Prepare ``b`` (K, M) for many products ``add + a @ b`` with contiguous ``a`` (rows, K) and ``add``
    (rows, M), as in a loop over time steps; returns ``product(a, add, out) -> add + a @ b`` (see ``mm``
    for ``out``).

    On the oneDNN path ``b`` is reordered once into oneDNN's blocked layout instead of on every call
    (about 4% faster per product at (128, 512) x (512, 2048)).
    """
    if _onednn_for(b, rows, b.shape[0], a_contiguous=True):
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(b.t(), rows)  # reorders from any strides
            return lambda a, add, out=None: _ONEDNN.binary(a, add, packed, None, "add")
        except (AttributeError, RuntimeError):
            pass  # no reorder op in this PyTorch build: the plain products below
    return lambda a, add, out=None: mm(a, b, add, out=out)
