"""Image classification trained by ``train.py``: a LightningModule that is given its network, and the
exported file that ``visualize.py`` loads a trained classifier from.

- :class:`ClassifierModule`: cross-entropy training of any injected ``net`` (images (N, 3, S, S) -> logits
  (N, K)) with an injected optimizer and optional scheduler; logs ``train/loss``, ``train/acc``,
  ``val/loss``, ``val/acc``; :class:`AdversarialClassifierModule`: the same with PGD adversarial training
  (Madry et al. 2018), which also logs ``val/robust_acc``.
- :class:`ExportClassifier`: the callback that writes the trained network, its config and its class names
  to one file at the end of fitting (:func:`save_export`), read back by :func:`load_export`.
"""

from visgrad.classification.adversarial import AdversarialClassifierModule
from visgrad.classification.export import ExportClassifier, load_export, not_an_export, save_export
from visgrad.classification.module import ClassifierModule

__all__ = ["AdversarialClassifierModule", "ClassifierModule", "ExportClassifier", "load_export",
           "not_an_export", "save_export"]
