"""The digits classifier: a small CNN on scikit-learn's handwritten digits (:mod:`visgrad.data.digits`).

It reads grey: the channels of its input are averaged first, so it takes the digits as the datamodule
serves them and as RGB images alike, and an RGB perturbation acts through its mean over channels. Its inputs
are pixels scaled to [-1, 1] (:data:`DIGITS_NORM`). ``python train.py experiment=digits_classifier`` trains
it (the generic :class:`~visgrad.classification.ClassifierModule`) and ``experiment=adv_train_digits``
trains it adversarially (:class:`~visgrad.classification.AdversarialClassifierModule`); both export it,
and :func:`load_digits_cnn` loads the exported file as a :class:`~visgrad.models.classifier.Classifier`
(``visualize.py classifier=digits`` / ``digits_adv``, trained on first use by
:mod:`visgrad.tasks.digits_classifier`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from visgrad.classification import load_export
from visgrad.images import Normalization
from visgrad.models.classifier import Classifier

DIGITS_NORM = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # pixels [0, 1] -> [-1, 1], as GANs see them


class DigitsCNN(nn.Module):
    """Grey (channel mean) -> Conv(1, w, 3) ReLU MaxPool 2 -> Conv(w, 2w, 3) ReLU MaxPool 2 (``features``)
    -> Linear(2w (S/4)^2, hidden) ReLU -> Linear(hidden, K).

    (N, C, S, S) images, any number of channels C, S divisible by 4 -> (N, num_classes) logits.
    """

    def __init__(self, num_classes: int, width: int = 16, hidden: int = 64, image_size: int = 28) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size={image_size}: must be divisible by 4 (two 2x2 poolings)")
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.mean(dim=1, keepdim=True)))


def load_digits_cnn(path: str | Path, name: str = "digits") -> Classifier:
    """The exported classifier file ``path`` as a frozen :class:`Classifier` called ``name`` in eval mode,
    inputs normalised with :data:`DIGITS_NORM`, feature layer its ``features``.

    ``CheckpointError`` naming the file if it is not an export or cannot be loaded.
    """
    net, meta = load_export(Path(path))
    return Classifier(name=name, model=net, class_names=list(meta["class_names"]),
                      image_size=int(meta["image_size"]), norm=DIGITS_NORM,
                      feature_layer=getattr(net, "features", None))
