"""The offline classifier: a small CNN trained on the `shapes` images (class = kind of the largest object).

Inputs are preprocessed like ImageNet images (:func:`visgrad.images.normalize`), so every task treats it
like SqueezeNet. ``python train.py experiment=shapes_classifier`` trains it (the generic
:class:`visgrad.classification.ClassifierModule` on ``visgrad.data.shapes_images.ShapesImagesDataModule``)
and exports it (:class:`visgrad.classification.ExportClassifier`); :func:`load_shapes_cnn` loads the
exported file as a :class:`~visgrad.models.classifier.Classifier`. ``visualize.py classifier=shapes``
trains it first when the file is missing (:mod:`visgrad.tasks.shapes_classifier`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from visgrad.classification import load_export
from visgrad.models.classifier import Classifier


class ShapesCNN(nn.Module):
    """A stride-2 conv block, then three conv blocks (the first two after 2x2 max-pooling), global
    max-pooling over positions and a linear layer; conv blocks are 3x3 conv, BatchNorm, ReLU.

    (N, in_channels, S, S) normalised images -> (N, num_classes) logits. Features are at S/8 before pooling;
    :meth:`embed` gives the pooled features (N, 4 width) the linear layer reads.
    """

    def __init__(self, num_classes: int, width: int = 16, in_channels: int = 3):
        super().__init__()

        def block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_channels, width, stride=2), nn.MaxPool2d(2),
            *block(width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 4 * width),
            *block(4 * width, 4 * width),
        )
        self.classifier = nn.Linear(4 * width, num_classes)
        self.embed_dim = 4 * width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (N, 4 width)."""
        return self.features(x).amax(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def load_shapes_cnn(path: str | Path) -> Classifier:
    """The exported classifier file ``path`` as a frozen :class:`Classifier` named ``shapes`` in eval mode.

    The export may hold any image network (a ShapesCNN, or the ViT of ``classifier=vit_shapes``); its
    ``features`` module, if it has one, is the feature layer (Grad-CAM). ``CheckpointError`` naming the file
    if it is not an export or cannot be loaded.
    """
    net, meta = load_export(Path(path))
    return Classifier(name="shapes", model=net, class_names=list(meta["class_names"]),
                      image_size=int(meta["image_size"]), feature_layer=getattr(net, "features", None))
