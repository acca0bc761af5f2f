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

from rich.console import Console

from visgrad.classification import not_an_export
from visgrad.errors import CheckpointError, ConfigError
from visgrad.models.classifier import Classifier
from visgrad.models.digits_cnn import load_digits_cnn
from visgrad.tasks.shapes_classifier import train_run
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
    foreign = not_an_export(path)
    if foreign:  # before training: never replace a file that is not an export
        raise ConfigError(f"classifier.checkpoint={path} is {foreign}; it is never overwritten. Point "
                          "classifier.checkpoint at an exported digits classifier, or at a new file to train "
                          "one there")
    console = Console()
    if retrain or not path.is_file():
        overrides = [f"experiment={experiment}", *(f"data.{key}={value}" for key, value in dataset.items()),
                     f"callbacks.export_classifier.path={hydra_value(str(path))}", *train_overrides]
        what = (f"classifier.retrain=true: training the {name} classifier again" if retrain
                else f"no {name} classifier at {path} yet: training it once")
        console.print(f"{what}, as python train.py {' '.join(overrides)}", soft_wrap=True)
        train_run(overrides, log_dir)
        if not path.is_file():
            raise ConfigError(f"classifier.experiment={experiment} wrote no classifier to {path}: the "
                              "experiment must export it (callbacks.export_classifier.path)")
    else:
        console.print(f"using the {name} classifier {path} (classifier.retrain=true retrains it)",
                      soft_wrap=True)
    try:
        return load_digits_cnn(path, name)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; pass classifier.retrain=true to train it again (the file is "
                              "replaced)") from err
