"""Grad-CAM (Selvaraju et al. 2017) as a saliency method of your own: the classifier's last feature maps
A (N, C, h, w), weighted by the spatial mean of the class score's gradient, summed over channels, ReLU,
upsampled to the image."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visgrad.options import one_of, option
from visgrad.vision.attribution import Attribution


@dataclass
class GradCAMOptions:
    """``task.my_gradcam``: how the (h, w) map is upsampled to the image."""

    upsample: str = option("bilinear", one_of("bilinear", "nearest"), "bilinear or nearest")


def gradcam(X, y, classifier, *, generator=None, upsample="bilinear"):
    """X (N, 3, H, W), y (N,) -> maps (N, H, W)."""
    features = []
    hook = classifier.feature_layer.register_forward_hook(lambda module, inputs, out: features.append(out))
    try:
        with torch.enable_grad():  # the weights are frozen: the input carries the graph
            scores = classifier.model(X.detach().requires_grad_()).gather(1, y[:, None]).sum()
            (grads,) = torch.autograd.grad(scores, features[0])
    finally:
        hook.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features[0]).sum(dim=1, keepdim=True)).detach()
    return F.interpolate(cam, size=X.shape[-2:], mode=upsample)[:, 0]


GRADCAM = Attribution(name="my_gradcam", label="my Grad-CAM", fn=gradcam, options=GradCAMOptions)
