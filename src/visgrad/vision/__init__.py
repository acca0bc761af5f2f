"""Network visualization with image gradients: classifiers, image utilities, saliency, fooling, class viz."""

from visgrad.vision.class_viz import create_class_visualization
from visgrad.vision.fooling import make_fooling_image, make_fooling_images
from visgrad.vision.image import IMAGENET_MEAN, IMAGENET_STD, deprocess, load_image, preprocess
from visgrad.vision.pretrained import WeightsNotFoundError, load_torchvision_model
from visgrad.vision.saliency import compute_saliency_maps, integrated_gradients_saliency, smoothgrad_saliency
from visgrad.vision.style import content_loss, extract_features, gram_matrix, style_loss, tv_loss

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WeightsNotFoundError",
    "compute_saliency_maps",
    "content_loss",
    "create_class_visualization",
    "deprocess",
    "extract_features",
    "gram_matrix",
    "integrated_gradients_saliency",
    "load_image",
    "load_torchvision_model",
    "make_fooling_image",
    "make_fooling_images",
    "preprocess",
    "smoothgrad_saliency",
    "style_loss",
    "tv_loss",
]
