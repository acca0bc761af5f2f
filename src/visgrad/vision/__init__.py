"""Network visualization with image gradients: classifiers, image utilities, saliency, fooling, class viz."""

from visgrad.vision.image import IMAGENET_MEAN, IMAGENET_STD, deprocess, load_image, preprocess
from visgrad.vision.pretrained import WeightsNotFoundError, load_torchvision_model
from visgrad.vision.style import content_loss, extract_features, gram_matrix, style_loss, tv_loss  # noqa: F401

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WeightsNotFoundError",
    "deprocess",
    "load_image",
    "load_torchvision_model",
    "preprocess",
]
