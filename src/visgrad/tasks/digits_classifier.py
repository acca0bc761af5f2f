"""``classifier=digits`` and ``classifier=digits_adv``: the digits classifiers of ``visualize.py``, trained
once through ``train.py``'s pipeline when their exported file is missing, as ``classifier=shapes`` is
(:mod:`visgrad.tasks.shapes_classifier`; not a task of its own: ``conf/classifier/digits*.yaml`` name
:func:`load_digits_classifier`).

Training runs ``python train.py experiment=<experiment> data.num_val=... data.seed=...
callbacks.export_classifier.path=<checkpoint>`` in a run folder of its own under ``log_dir``:
``experiment=digits_classifier`` (standard training) or ``experiment=adv_train_digits`` (PGD adversarial
training).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from visgrad.models.classifier import Classifier
from visgrad.models.digits_cnn import load_digits_cnn
from visgrad.tasks.shapes_classifier import load_or_train_export
from visgrad.utils.commands import hydra_value


def load_digits_classifier(
    checkpoint: str,
    dataset: dict,
    name: str = "digits",
    experiment: str = "digits_classifier",
    train_overrides: Sequence[str] = (),
    log_dir: str = "logs",
    retrain: bool = False,
) -> Classifier:
    """The exported classifier ``checkpoint``, called ``name``; trained first (see the module docstring) if
    it is missing or ``retrain``. ``dataset`` (``num_val``, ``seed``) is the digits split it trains on."""
    path = Path(checkpoint).expanduser()
    overrides = [*(f"data.{key}={value}" for key, value in dataset.items()),
                 f"callbacks.export_classifier.path={hydra_value(str(path))}", *train_overrides]
    return load_or_train_export(path, name, lambda file: load_digits_cnn(file, name), experiment, overrides,
                                log_dir, retrain)
