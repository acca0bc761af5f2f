"""The tasks of ``visualize.py``: the registry ``TASKS`` (one module per ``conf/task/X.yaml``, each with its
:class:`~visgrad.tasks.lifecycle.Task` entry ``TASK`` and its options dataclass) and ``run_task``, the one
lifecycle every task runs in (:mod:`visgrad.tasks.lifecycle`).

``cfg.task.name`` names the task: a registered name (``saliency``) or the dotted path of a ``Task`` in your
own package (``my_package.occlusion.TASK``), whose config (``conf/task/<name>.yaml`` in a folder on
``hydra.searchpath``) is packaged like ours::

    # @package _global_
    task:
      name: my_package.occlusion.TASK
      window: 8
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from visgrad.errors import ConfigError
from visgrad.options import fmt
from visgrad.registry import Registry
from visgrad.tasks import (
    captions,
    class_viz,
    feature_inversion,
    fooling,
    linear_probe,
    robustness,
    saliency,
    sanity_checks,
    style_transfer,
    texture,
)
from visgrad.tasks.config import load_classifier, read_options
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.utils import print_config_tree, resolve_device

TASKS: Registry[Task] = Registry("task", Task)
for _module in (saliency, fooling, class_viz, style_transfer, texture, feature_inversion, captions):
    TASKS.add(_module.TASK)
TASKS.add(linear_probe.TASK)
TASKS.add(robustness.TASK)
TASKS.add(sanity_checks.TASK)

__all__ = ["TASKS", "Task", "TaskRun", "run_task"]


def run_task(cfg: DictConfig) -> float | None:
    """Run the task of ``cfg`` through its lifecycle (:mod:`visgrad.tasks.lifecycle`) and return its
    ``task.optimized_metric`` (None when unset)."""
    name = cfg.task.get("name")
    if name is None:
        raise ConfigError(f"task.name is missing: the task config must name its task ({TASKS.allowed})")
    try:
        task = TASKS.get(name)
    except ConfigError as err:
        raise ConfigError(f"task.name={fmt(name)}: {err}") from None
    options, entry_options = read_options(task, OmegaConf.to_container(cfg.task, resolve=True))
    if cfg.get("print_config"):
        print_config_tree(cfg, order=("task", "classifier", "paths"))
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    classifier = load_classifier(cfg.classifier, device) if task.uses_classifier else None
    run = TaskRun(cfg, task, options, device, classifier, entry_options)
    prepared = task.prepare(run)
    with run:
        metrics = run.finish(task.run(run, prepared))
    metric = cfg.task.get("optimized_metric")
    return metrics.get(metric) if metric else None
