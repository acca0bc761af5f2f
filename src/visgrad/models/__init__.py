"""Image networks: the classifiers the vision tasks look into and the feature networks of style transfer.

- :mod:`~visgrad.models.classifier`: :class:`Classifier` (a frozen model with its class names, input
  size, normalisation and feature layer), class lookup by name or index, torchvision ImageNet classifiers;
- :mod:`~visgrad.models.pretrained`: torchvision weights from its cache or an explicit file (no download);
- :mod:`~visgrad.models.shapes_cnn`: the small CNN that visgrad trains itself on the `shapes` images;
- :mod:`~visgrad.models.feature_nets`: feature networks (and their default layers) for style transfer, the
  registry ``FEATURE_NETS``.

Plain constructors only: reading Hydra configs is the job of :mod:`visgrad.tasks`.
"""

from visgrad.models.classifier import Classifier, resolve_class, torchvision_classifier
from visgrad.models.pretrained import WeightsNotFoundError, load_torchvision_model

__all__ = [
    "Classifier",
    "WeightsNotFoundError",
    "load_torchvision_model",
    "resolve_class",
    "torchvision_classifier",
]
