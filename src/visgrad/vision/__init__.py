"""Network visualization with image gradients: classifiers, image utilities, saliency, fooling, class viz."""

from visgrad.vision.image import IMAGENET_MEAN, IMAGENET_STD, deprocess, load_image, preprocess
from visgrad.vision.pretrained import WeightsNotFoundError, load_torchvision_model

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WeightsNotFoundError",
    "deprocess",
    "load_image",
    "load_torchvision_model",
    "preprocess",
]
