"""How the lifecycle reads the config (:mod:`visgrad.tasks.lifecycle`): a task's options from ``cfg.task``
(:func:`read_options`), the classifier from ``cfg.classifier`` (:func:`load_classifier`), and library errors
about arguments turned into advice about config keys (:func:`config_keys`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from visgrad.errors import ConfigError, UserError
from visgrad.models.classifier import Classifier
from visgrad.models.pretrained import WeightsNotFoundError
from visgrad.options import as_list, fmt, option_problems
from visgrad.registry import build

if TYPE_CHECKING:
    from visgrad.tasks.lifecycle import Task

log = logging.getLogger(__name__)
LIFECYCLE_KEYS = ("name", "optimized_metric")  # keys of cfg.task that the lifecycle reads, not the task
# The config key of the classifier being built by load_classifier ("classifier", "task.classifiers.digits"),
# for loaders whose messages name its keys (e.g. "<key>.retrain=true retrains it").
CLASSIFIER_KEY: ContextVar[str] = ContextVar("classifier_key", default="classifier")


def read_options(task: Task, values: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``task``'s options from the ``cfg.task`` values (a plain mapping): (an instance of ``task.options``,
    ``{entry name: its options}`` for the entries of ``task.choices`` that are chosen or have a node).

    Raises one ``ConfigError`` listing every bad value and every key the task does not declare. A task
    without an options dataclass gets a logged warning and its values as they are.
    """
    values = {key: value for key, value in values.items() if key not in LIFECYCLE_KEYS}
    if task.options is None:
        log.warning("task %s declares no options dataclass: its keys (%s) are not checked", task.name,
                    ", ".join(values) or "none")
        return values, {}
    fields = {f.name: f for f in dataclasses.fields(task.options) if f.init}
    names: list[str] = []  # problems with the names of chosen entries
    problems: list[str] = []
    entry_options: dict[str, Any] = {}
    for key, registry in task.choices.items():
        chosen, value = [], values.get(key, _default(fields[key]))
        for name in as_list(value):
            try:
                chosen.append(registry.get(name))
            except (ConfigError, ImportError) as err:  # the registry says why (unknown name, bad plugin path)
                names.append(f"task.{key}={fmt(value)}: {err}")
                values.pop(key, None)  # reported here, with the reason, rather than by the dataclass check
        # a registered entry's node, unless a chosen entry of that name (a plugin's) reads it
        taken = {entry.name for entry in chosen}
        nodes = [entry for entry in registry if entry.name in values and entry.name not in taken]
        for entry in chosen + nodes:
            options_type = getattr(entry, "options", None)
            if entry.name in fields:
                problems.append(f"task.{entry.name}: the {registry.kind} {entry.name!r} has the name of an "
                                f"option of task {task.name}; give it another name")
            elif options_type is None and values.get(entry.name) is not None:
                problems.append(f"task.{entry.name}: the {registry.kind} {entry.name!r} has no options")
                values.pop(entry.name)
            elif options_type is not None:
                entry_options[entry.name], more = option_problems(options_type, values.pop(entry.name, None),
                                                                  f"task.{entry.name}")
                problems += more
    options, more = option_problems(task.options, values, "task")
    problems = names + more + problems
    if problems:
        raise ConfigError("\n".join(problems))
    return options, entry_options


def _default(field_: dataclasses.Field) -> Any:
    return field_.default_factory() if field_.default is dataclasses.MISSING else field_.default


@contextmanager
def config_keys(**keys: str) -> Iterator[None]:
    """Turn a library error about its arguments into one about config keys: ``arg=`` in its message becomes
    ``keys[arg]=`` (``style_weights=[1, 2]`` -> ``task.style_weights=[1, 2]``). A ``UserError`` keeps its
    type, a ``ValueError`` becomes a ``ConfigError``. Keep the block to the calls that check user input."""
    try:
        yield
    except (UserError, ValueError) as err:
        message = str(err)
        if keys:
            pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, keys)) + r")(?==)")
            message = pattern.sub(lambda match: keys[match.group(1)], message)
        error_type = type(err) if isinstance(err, UserError) else ConfigError
        raise error_type(message) from err


def load_classifier(cfg: DictConfig, device: torch.device | str = "cpu",
                    key: str = "classifier") -> Classifier:
    """Build the classifier node ``cfg`` found at config key ``key`` (``_target_`` and its arguments, without
    Hydra, so that the loader's own errors reach the user) and move the model to ``device``; errors (and the
    loader's messages, through :data:`CLASSIFIER_KEY`) name ``<key>.*`` keys."""
    config = OmegaConf.to_container(cfg, resolve=True)
    if "_target_" not in config:
        raise ConfigError(f"{key} has no _target_ (a function returning a Classifier): {config}")
    token = CLASSIFIER_KEY.set(key)
    try:
        with config_keys(**{name: f"{key}.{name}" for name in config if name != "_target_"}):
            classifier: Classifier = build(config)
    except WeightsNotFoundError as err:
        raise WeightsNotFoundError(f"{err}\nOr run offline: classifier=efficientnet_lite0 (its weights ship "
                                   "in a Python package) or classifier=shapes (trained here)") from err
    finally:
        CLASSIFIER_KEY.reset(token)
    return classifier.to(device)

