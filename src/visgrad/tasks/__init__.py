"""The tasks of ``visualize.py``: one module per ``conf/task/X.yaml`` (``visgrad.tasks.X``), each with a
runner that ``task.run`` names, plus the shared runner parts (:mod:`~visgrad.tasks.runner`) and figures.

A runner is a function ``run(cfg: DictConfig) -> dict[str, float]`` that reads its own options from
``cfg.task`` (and ``cfg.classifier``, ``cfg.paths``, ``cfg.device``), writes figures into
``cfg.paths.output_dir``, logs to TensorBoard under ``<output_dir>/tensorboard`` and returns its summary
metrics. ``run_task`` checks the task's options first (:mod:`~visgrad.tasks.options`), writes the summary
to ``<output_dir>/metrics.json`` (which a ``-m`` sweep's ``summary.md`` tabulates, as for ``train.py``) and
returns ``summary[cfg.task.optimized_metric]`` when that key is set.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import get_method
from omegaconf import DictConfig

from visgrad.tasks.options import validate_task
from visgrad.utils import print_config_tree
from visgrad.utils.hparams import end_open_sessions
from visgrad.utils.sweep_summary import write_metrics


def run_task(cfg: DictConfig) -> float | None:
    """Run the task that ``cfg.task.run`` names (a dotted path to a function) and return its metric."""
    validate_task(cfg)
    if cfg.get("print_config"):
        print_config_tree(cfg, order=("task", "classifier", "paths"))
    torch.manual_seed(cfg.seed)
    runner = get_method(cfg.task.run)
    try:
        summary = runner(cfg) or {}
    except BaseException:
        end_open_sessions(success=False)  # the run's row in TensorBoard's HParams dashboard: failed
        raise
    write_metrics(Path(cfg.paths.output_dir), summary)
    metric = cfg.task.get("optimized_metric")
    return summary.get(metric) if metric else None
