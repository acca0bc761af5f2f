"""Guided Backpropagation (Springenberg et al. 2015): the input gradient of a class score in which every
rectifier passes back only positive gradients, and only through the units it let through in the forward
pass. Its maps look crisp, and the sanity checks (:mod:`visgrad.vision.sanity`) show how little they
depend on the network's weights (Adebayo et al. 2018).

The rectifiers are found by what they compute, not by their module type: while the model runs under
:class:`GuidedRectifiers` (a ``TorchFunctionMode``), every call of ``F.relu`` / ``torch.relu`` /
``Tensor.relu`` (what ``nn.ReLU`` calls), ``F.relu6`` and ``F.hardtanh`` with ``min_val=0`` (what
``nn.ReLU6`` calls) is replaced by the same function with the guided backward

    ReLU:  dx = max(dy, 0) * [x > 0]            ReLU6:  dx = max(dy, 0) * [0 < x < 6]

so a unit clipped at 6 passes nothing back, as its ordinary gradient is zero there. This covers
EfficientNet-Lite0, which calls ``F.relu6`` inside its blocks and ``nn.ReLU6`` for its head, and torchvision's
networks (``nn.ReLU(inplace=True)``). Captum's ``GuidedBackprop`` hooks ``nn.ReLU`` modules only, so on
Lite0 it computes the plain gradient; the tests compare the two on a copy of Lite0 whose ReLU6s are
``nn.ReLU(x) - nn.ReLU(x - 6)`` (the same rule under Captum's hooks). The in-place functions
(``torch.relu_``, ``Tensor.relu_``, ``F.hardtanh_``) are refused: their result may be dropped by the caller.
A model without any rectifier (GELU, SiLU) is refused too: its "guided" gradient would be the plain one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from visgrad.models.classifier import Classifier
from visgrad.vision.saliency import channel_sum, max_abs

_RELU = (F.relu, torch.relu, torch.Tensor.relu)
_IN_PLACE = (torch.relu_, torch.Tensor.relu_, F.relu_, F.hardtanh_)


class _GuidedRectifier(torch.autograd.Function):
    """``x.clamp(0, upper)`` (upper None: ReLU) whose backward passes ``max(dy, 0)`` where 0 < x < upper."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, upper: float | None) -> torch.Tensor:
        passed = x > 0 if upper is None else (x > 0) & (x < upper)
        ctx.save_for_backward(passed)
        return x.clamp_min(0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (passed,) = ctx.saved_tensors
        return grad.clamp_min(0) * passed, None


def _hardtanh_bounds(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    return min_val, max_val


class GuidedRectifiers(TorchFunctionMode):
    """Inside ``with GuidedRectifiers():``, ReLU and ReLU6 calls get the guided backward (module docstring);
    ``count`` is the number of rectifier calls replaced."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        upper: float | None = None
        if func in _RELU or func is F.relu6:
            upper = 6.0 if func is F.relu6 else None
        elif func is F.hardtanh and _hardtanh_bounds(*args, **kwargs)[0] == 0:
            upper = float(_hardtanh_bounds(*args, **kwargs)[1])
        elif func in _IN_PLACE:
            raise ValueError(f"guided backprop: the model calls {getattr(func, '__name__', func)} in place; "
                             "use the out-of-place function (F.relu, nn.ReLU) so its result is the one used")
        else:
            return func(*args, **kwargs)
        self.count += 1
        return _GuidedRectifier.apply(args[0], upper)


def guided_gradient(X: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Guided Backpropagation's gradient of the class scores ``model(X)[i, y[i]]`` w.r.t. the images.

    Inputs: X (N, 3, H, W), y (N,) long, model in eval mode. Returns (N, 3, H, W).
    """
    X = X.detach().clone().requires_grad_(True)
    guided = GuidedRectifiers()
    with torch.enable_grad():
        with guided:
            scores = model(X).gather(1, y.view(-1, 1)).squeeze(1)
        if guided.count == 0:
            raise ValueError(f"guided backprop: {type(model).__name__} calls no ReLU or ReLU6 (F.relu, "
                             "nn.ReLU, F.relu6, nn.ReLU6), so its guided gradient would be the plain "
                             "gradient")
        (grad,) = torch.autograd.grad(scores.sum(), X)
    return grad


def guided_backprop(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Guided Backprop maps (N, H, W): the max over channels of |guided gradient|, as vanilla's."""
    return max_abs(guided_gradient(X, y, classifier.model))


def guided_backprop_signed(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Guided Backprop's signed maps (N, H, W): the guided gradient summed over channels."""
    return channel_sum(guided_gradient(X, y, classifier.model))
