"""Network visualization with image gradients: saliency maps, fooling images, class visualization.

Pure functions of a model and preprocessed images (N, 3, H, W), and the registries the tasks choose from:
``ATTRIBUTIONS`` (saliency methods), ``ATTACKS`` (fooling) and ``PARAMETERIZATIONS`` (class visualization).
The CS231n names that live elsewhere are re-exported here, so course-style code keeps working:
``preprocess`` / ``deprocess`` (:mod:`visgrad.images`), the style-transfer losses
(:mod:`visgrad.style.losses`) and the torchvision loader (:mod:`visgrad.models.pretrained`).
"""

from visgrad.images import IMAGENET_MEAN, IMAGENET_STD, deprocess, load_image, preprocess
from visgrad.models.pretrained import WeightsNotFoundError, load_torchvision_model
from visgrad.style.losses import content_loss, extract_features, gram_matrix, style_loss, tv_loss
from visgrad.vision.attacks import ATTACKS, Attack
from visgrad.vision.attribution import ATTRIBUTIONS, Attribution, attribution_maps
from visgrad.vision.class_viz import create_class_visualization, crop_robustness
from visgrad.vision.feature_viz import fourier_class_visualization
from visgrad.vision.fooling import make_fooling_image, make_fooling_images
from visgrad.vision.parameterizations import PARAMETERIZATIONS, Parameterization
from visgrad.vision.saliency import compute_saliency_maps, integrated_gradients_saliency, smoothgrad_saliency

__all__ = [
    "ATTACKS",
    "ATTRIBUTIONS",
    "Attack",
    "Attribution",
    "PARAMETERIZATIONS",
    "Parameterization",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WeightsNotFoundError",
    "attribution_maps",
    "compute_saliency_maps",
    "content_loss",
    "create_class_visualization",
    "crop_robustness",
    "deprocess",
    "extract_features",
    "fourier_class_visualization",
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
