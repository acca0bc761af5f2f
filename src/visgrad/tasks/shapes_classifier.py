"""``classifier=shapes``: the offline classifier of ``visualize.py``, trained once through ``train.py``'s
pipeline when its exported file is missing (not a task of its own: ``conf/classifier/shapes.yaml`` names
:func:`load_shapes_classifier`).

Training composes ``conf/train.yaml`` with ``experiment=shapes_classifier`` and the classifier's data and
file as overrides, exactly as ``python train.py experiment=shapes_classifier data.root=... ...`` would,
and runs it with :func:`visgrad.training.train` in a run folder of its own under ``log_dir``
(``logs/shapes_classifier/runs/<time>``); the experiment's export callback writes the file that is then
loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict
from rich.console import Console

from visgrad.classification import not_an_export
from visgrad.errors import CheckpointError, ConfigError
from visgrad.models.classifier import Classifier
from visgrad.models.shapes_cnn import load_shapes_cnn
from visgrad.tasks.config import CLASSIFIER_KEY
from visgrad.utils.commands import command
from visgrad.utils.run_folder import release_run_folder


def load_shapes_classifier(
    checkpoint: str,
    data_root: str,
    dataset: dict,
    experiment: str = "shapes_classifier",
    train_overrides: Sequence[str] = (),
    log_dir: str = "logs",
    retrain: bool = False,
) -> Classifier:
    """The exported classifier ``checkpoint``; trained first (see the module docstring) if it is missing
    or ``retrain``. ``data_root`` and ``dataset`` are the `shapes` images it trains on."""
    path = Path(checkpoint).expanduser()
    overrides = [_override("data.root", data_root),
                 *(_override(f"++data.dataset.{key}", value) for key, value in dataset.items()),
                 _override("callbacks.export_classifier.path", str(path)), *train_overrides]
    return load_or_train_export(path, "shapes", load_shapes_cnn, experiment, overrides, log_dir, retrain,
                                example="data/classifiers/shapes_cnn.pt", duration="about a minute")


def load_or_train_export(path: Path, name: str, load: Callable[[Path], Classifier], experiment: str,
                         overrides: Sequence[str], log_dir: str, retrain: bool, example: str | None = None,
                         duration: str | None = None) -> Classifier:
    """``load(path)``: the exported ``name`` classifier at ``path``, trained first as ``python train.py
    experiment=<experiment> <overrides>`` (which must export to ``path``) if the file is missing or
    ``retrain``. A file that is not an
    export is refused before any training (never overwritten); ``example`` is a file name for that advice,
    ``duration`` how long training takes, for the message."""
    key = CLASSIFIER_KEY.get()
    foreign = not_an_export(path)
    if foreign:  # before training: never replace a file that is not an export
        suggestion = f" (e.g. {key}.checkpoint={example})" if example else ""
        raise ConfigError(f"{key}.checkpoint={path} is {foreign}; it is never overwritten. Point "
                          f"{key}.checkpoint at an exported {name} classifier, or at a new file to "
                          f"train one there{suggestion}")
    console = Console()
    if retrain or not path.is_file():
        overrides = [f"experiment={experiment}", *overrides]
        what = (f"{key}.retrain=true: training the {name} classifier again" if retrain
                else f"no {name} classifier at {path} yet: training it once")
        when = f" ({duration} on a CPU)" if duration else ""
        console.print(f"{what}, as {command(*overrides)}{when}", soft_wrap=True)
        train_run(overrides, log_dir)
        if not path.is_file():
            raise ConfigError(f"{key}.experiment={experiment} wrote no classifier to {path}: the "
                              "experiment must export it (callbacks.export_classifier.path)")
    else:
        console.print(f"using the {name} classifier {path} ({key}.retrain=true retrains it)",
                      soft_wrap=True)
    try:
        return load(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; pass {key}.retrain=true to train it again (the file is "
                              "replaced)") from err


def train_run(overrides: Sequence[str], log_dir: str) -> float | None:
    """Compose ``conf/train.yaml`` with ``overrides`` and train it in a new run folder under ``log_dir``,
    as ``python train.py <overrides>`` would; returns what :func:`visgrad.training.train` returns."""
    from visgrad.training import train

    overrides = [*overrides, _override("paths.log_dir", log_dir), "print_config=false"]
    try:
        cfg = _compose("train", overrides)
    except HydraException as err:
        raise ConfigError(f"cannot compose python train.py {' '.join(overrides)}: {err}") from err
    run_dir = str(cfg.hydra.run.dir)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = run_dir
    previous = HydraConfig.instance().cfg  # the calling app's (visualize.py's), restored afterwards
    HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.output_dir}, the run's overrides and choices
    try:
        with open_dict(cfg):
            del cfg["hydra"]
        return train(cfg)
    finally:
        HydraConfig.instance().cfg = previous
        release_run_folder(Path(run_dir))


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides`` and its ``hydra`` node: with the running app's config
    search path (inside ``visualize.py``), else from ``$VISGRAD_ROOT/conf``."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides, return_hydra_config=True)
    root = Path(os.environ.get("VISGRAD_ROOT") or Path(__file__).resolve().parents[3])
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose(config_name, overrides, return_hydra_config=True)


def _override(key: str, value: object) -> str:
    """``key=value`` in Hydra's override grammar (strings quoted, so paths may hold any character)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if not isinstance(value, str):
        return f"{key}={value}"
    # in a quoted string, a quote and the backslashes before a quote (or the closing one) are escaped
    text = re.sub(r"(\\*)'", lambda m: 2 * m.group(1) + "\\'", value)
    text = re.sub(r"(\\+)$", lambda m: 2 * m.group(1), text)
    return f"{key}='{text}'"
