"""What the three visualization task runners share: classifier and inputs from the config, figures as
PNG + TensorBoard, and the closing summary (a Rich table and where the outputs went)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from visgrad.data.image_sets import InputBatch, load_inputs
from visgrad.models.classifier import Classifier
from visgrad.tasks.figures import save_figure
from visgrad.utils import resolve_device
from visgrad.utils.hparams import end_session, run_hparams, start_session

# Keys of a classifier config that are read by the tasks rather than passed to the loader.
TASK_KEYS = ("class_viz", "fooling")


@dataclass
class TaskRun:
    """One task run: config, device, classifier, output folder, TensorBoard writer, written files."""

    cfg: DictConfig
    device: torch.device
    classifier: Classifier
    output_dir: Path
    writer: SummaryWriter
    console: Console = field(default_factory=Console)
    files: list[Path] = field(default_factory=list)

    def inputs(self, limit: int | None) -> InputBatch:
        """``cfg.task.images`` as a batch on the device (shapes images come from the classifier's data)."""
        classifier_cfg = self.cfg.classifier
        shapes_root = classifier_cfg.get("data_root") or Path(self.cfg.paths.data_dir) / "shapes"
        spec = self.cfg.task.get("images")
        if spec is None:
            spec = "shapes" if self.classifier.name == "shapes" else "samples"
        batch = load_inputs(spec, self.classifier.image_size, limit, shapes_root,
                            classifier_cfg.get("dataset"), num_classes=len(self.classifier.class_names),
                            classifier_name=self.classifier.name, norm=self.classifier.norm)
        batch.images = batch.images.to(self.device)
        return batch

    def class_name(self, index: int) -> str:
        return self.classifier.class_names[index]

    def add_figure(self, fig, name: str, step: int = 0) -> Path:
        """Log ``fig`` to TensorBoard under ``name`` and save it as ``<output_dir>/<name>.png``."""
        self.writer.add_figure(name, fig, global_step=step, close=False)
        path = save_figure(fig, self.output_dir / f"{name}.png")
        self.files.append(path)
        return path

    def finish(self, title: str, metrics: dict[str, float]) -> dict[str, float]:
        """Log the summary metrics, print them as a table with the output locations, close TensorBoard
        (the metrics are the run's columns in the HParams dashboard)."""
        for key, value in metrics.items():
            self.writer.add_scalar(key, value)
        end_session(self.writer)
        self.writer.close()
        table = Table(title=f"{title} ({self.classifier.name})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.items():
            table.add_row(key, f"{value:.4g}")
        self.console.print(table)
        for path in self.files:
            self.console.print(f"figure: {path}", soft_wrap=True)
        self.console.print(f"TensorBoard: tensorboard --logdir {self.output_dir}", soft_wrap=True)
        return metrics


def load_classifier(cfg: DictConfig, device: torch.device | str = "cpu") -> Classifier:
    """Call ``cfg._target_`` (a ``conf/classifier`` node) with its other keys; move the model to ``device``.

    The loader is called directly rather than through ``hydra.utils.instantiate`` so that its errors
    (missing weights, unreadable files) reach the user as they are, not wrapped in an InstantiationException.
    """
    if "_target_" not in cfg:
        raise ValueError(f"classifier config has no _target_: {OmegaConf.to_yaml(cfg)}")
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    loader = get_method(kwargs.pop("_target_"))
    classifier: Classifier = loader(**{k: v for k, v in kwargs.items() if k not in TASK_KEYS})
    return classifier.to(device)


def start(cfg: DictConfig) -> TaskRun:
    """Resolve the device, load (or train) the classifier and open the TensorBoard writer."""
    device = resolve_device(cfg.device)
    classifier = load_classifier(cfg.classifier, device)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return TaskRun(cfg, device, classifier, output_dir, open_writer(cfg, output_dir))


def open_writer(cfg: DictConfig, output_dir: Path) -> SummaryWriter:
    """The run's TensorBoard writer (``<output_dir>/tensorboard``), with its HParams session started: the
    task's options and the ``cfg.hparams`` columns (``visgrad.utils.hparams``); ``end_session`` ends it."""
    writer = SummaryWriter(str(output_dir / "tensorboard"))
    start_session(writer, run_hparams(cfg, **cfg.get("hparams", {})))
    return writer
