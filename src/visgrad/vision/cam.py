"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017) on the classifier's feature layer.

Grad-CAM weighs the channels of the last convolutional feature maps A (N, C, h, w) (the output of
``classifier.feature_layer``: EfficientNet-Lite0's head ReLU6, torchvision's last convolutional block)
by the spatial mean of the class score's gradient, sums them, keeps the positive part and upsamples the
(h, w) map to the image:

    cam = ReLU(sum_c alpha_c A_c),   alpha_c = mean_(i, j) d score_y / d A_c(i, j)

Guided Grad-CAM multiplies that map, upsampled, with Guided Backprop's gradient (N, 3, H, W)
(:mod:`visgrad.vision.guided`). The maps equal Captum's ``LayerGradCam`` (``relu_attributions=True``,
then ``LayerAttribution.interpolate`` with the same mode) and ``GuidedGradCam`` (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.models.classifier import Classifier
from visgrad.options import boolean, one_of, option
from visgrad.vision.guided import guided_gradient
from visgrad.vision.saliency import channel_sum, max_abs

UPSAMPLING = ("bilinear", "nearest", "bicubic")


def layer_gradients(X: torch.Tensor, y: torch.Tensor, model: nn.Module,
                    layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The output A of ``layer`` (a module of ``model``, run once per forward) for images X (N, 3, H, W)
    and the gradient of the class scores ``model(X)[i, y[i]]`` w.r.t. it: (A, dA), both (N, C, h, w).

    With frozen weights the graph starts at A (A is made to require grad, as Captum's ``LayerGradCam``
    does): nothing below the layer is recorded, half the work of a backward pass to the input."""
    outputs: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs, output) -> None:
        if isinstance(output, torch.Tensor) and not output.requires_grad:
            output.requires_grad_(True)
        outputs.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            scores = model(X.detach()).gather(1, y.view(-1, 1)).sum()
            if len(outputs) != 1 or not isinstance(outputs[0], torch.Tensor) or outputs[0].dim() != 4:
                raise ValueError(f"layer={type(layer).__name__} must output one feature map (N, C, h, w) per "
                                 f"forward; it gave {len(outputs)} outputs")
            (grad,) = torch.autograd.grad(scores, outputs[0])
    finally:
        handle.remove()
    return outputs[0].detach(), grad


def grad_cam(X: torch.Tensor, y: torch.Tensor, model: nn.Module, layer: nn.Module, relu: bool = True,
             upsample: str = "bilinear") -> torch.Tensor:
    """Grad-CAM maps (N, H, W) of images X (N, 3, H, W) for classes y (N,) on the feature maps of
    ``layer``; ``relu=False`` keeps the negative evidence; ``upsample`` is ``F.interpolate``'s mode."""
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample={upsample!r}: choose one of {', '.join(UPSAMPLING)}")
    features, grads = layer_gradients(X, y, model, layer)
    cam = (grads.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1, keepdim=True)
    cam = F.relu(cam) if relu else cam
    return F.interpolate(cam, size=X.shape[-2:], mode=upsample)[:, 0]


def guided_grad_cam_attribution(X: torch.Tensor, y: torch.Tensor, model: nn.Module, layer: nn.Module,
                                upsample: str = "bilinear") -> torch.Tensor:
    """Guided Grad-CAM: Guided Backprop's gradient (N, 3, H, W) times the upsampled Grad-CAM map."""
    return guided_gradient(X, y, model) * grad_cam(X, y, model, layer, True, upsample)[:, None]


def _feature_layer(classifier: Classifier) -> nn.Module:
    if classifier.feature_layer is None:
        raise ValueError(f"classifier {classifier.name} names no feature layer (Classifier.feature_layer), "
                         "which Grad-CAM needs")
    return classifier.feature_layer


def check_feature_layer(classifier: Classifier, options, prefix: str) -> list[str]:
    """Problems (config advice under ``prefix``) of a CAM method on ``classifier``: it needs a feature
    layer."""
    if classifier.feature_layer is not None:
        return []
    return [f"{prefix}: the method needs the classifier's last convolutional feature layer "
            f"(Classifier.feature_layer) and {classifier.name} names none; choose another method or "
            "classifier"]


@dataclass
class GradCAMOptions:
    """``task.gradcam``: keep only positive evidence (the paper's ReLU), and how the map is upsampled."""

    relu: bool = option(True, boolean, "true or false")
    upsample: str = option("bilinear", one_of(*UPSAMPLING), f"one of {', '.join(UPSAMPLING)}")


def gradcam(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
            generator: torch.Generator | None = None, relu: bool = True,
            upsample: str = "bilinear") -> torch.Tensor:
    """Grad-CAM maps (N, H, W) on ``classifier.feature_layer`` (:func:`grad_cam`)."""
    return grad_cam(X, y, classifier.model, _feature_layer(classifier), relu, upsample)


@dataclass
class GuidedGradCAMOptions:
    """``task.guided_gradcam``: how the Grad-CAM map is upsampled before it multiplies the gradient."""

    upsample: str = option("bilinear", one_of(*UPSAMPLING), f"one of {', '.join(UPSAMPLING)}")


def guided_gradcam(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                   generator: torch.Generator | None = None, upsample: str = "bilinear") -> torch.Tensor:
    """Guided Grad-CAM maps (N, H, W): the max over channels of |attribution|, as vanilla's."""
    return max_abs(guided_grad_cam_attribution(X, y, classifier.model, _feature_layer(classifier), upsample))


def guided_gradcam_signed(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                          generator: torch.Generator | None = None,
                          upsample: str = "bilinear") -> torch.Tensor:
    """Guided Grad-CAM's signed maps (N, H, W): the attribution summed over channels."""
    return channel_sum(guided_grad_cam_attribution(X, y, classifier.model, _feature_layer(classifier),
                                                   upsample))
