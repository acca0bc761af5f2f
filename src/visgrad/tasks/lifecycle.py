"""The one lifecycle of every ``visualize.py`` task: a :class:`Task` (an entry of ``visgrad.tasks.TASKS``)
and the :class:`TaskRun` it runs in.

``run_task(cfg)`` (what ``visualize.py`` calls):

1. finds the task that ``cfg.task.name`` names (a registered name or the dotted path of a ``Task``);
2. reads ``cfg.task`` into the task's options dataclass (:func:`visgrad.tasks.config.read_options`; one
   ``ConfigError`` lists every bad or unknown key), and the options of the registry entries it chooses
   (a saliency method's from ``task.<method name>``);
3. resolves the device and, if the task uses one, loads the classifier (``cfg.classifier``);
4. calls ``task.prepare(run)``, which loads and checks everything else (images, target classes,
   checkpoint, style images, layers) and writes nothing;
5. only then opens the run (``with run:``): the output folder, the TensorBoard writer and its HParams
   session (the run's row: the configured columns, every option, the overrides);
6. calls ``task.run(run, prepared)``: the work, whose figures and files go through ``run``;
7. ``run.finish(metrics)``: logs the summary metrics not logged yet as scalars, ends the HParams session,
   writes ``metrics.json`` and prints the summary (notes, tables, metrics, outputs).

A refusal in steps 1-4 leaves no run folder (``RunFolderGuard`` removes Hydra's own files of a refused
start); a failure in 5-7 ends the HParams session as failed and closes the writer.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from visgrad.models.classifier import Classifier
from visgrad.registry import Registry
from visgrad.tasks.figures import save_figure, save_text
from visgrad.utils.hparams import end_session, run_hparams, start_session
from visgrad.utils.sweep_summary import write_metrics


@dataclass(frozen=True)
class Task:
    """A task of ``visualize.py``.

    - ``name``: what ``task.name`` says; ``label``: titles and messages;
    - ``prepare(run) -> prepared``: loads and checks what needs the config or the classifier
      (``run.options``, ``run.classifier``, ...), raising a ``UserError`` for bad input; writes nothing;
    - ``run(run, prepared) -> {metric: value}``: the work, inside the open run (``run.writer``,
      ``run.add_figure``, ...); returns the summary metrics (``metrics.json``, the HParams columns);
    - ``options``: the dataclass of its ``task.*`` keys (:mod:`visgrad.options`); None: unchecked (a warning);
    - ``uses_classifier``: whether ``run.classifier`` is loaded from ``cfg.classifier``;
    - ``choices``: ``{option: Registry}`` for options that name registry entries whose own options live under
      ``task.<entry name>`` (saliency: ``{"methods": ATTRIBUTIONS}``); ``run.options_of(entry)`` has them.
    """

    name: str
    label: str
    prepare: Callable[[TaskRun], Any]
    run: Callable[[TaskRun, Any], dict[str, float]]
    options: type | None = None
    uses_classifier: bool = True
    choices: Mapping[str, Registry] = field(default_factory=dict)


class _Writer(SummaryWriter):
    """A SummaryWriter that remembers its scalar tags (``finish`` logs only the metrics not logged yet)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self.scalar_tags: set[str] = set()

    def add_scalar(self, tag: str, *args, **kwargs) -> None:
        self.scalar_tags.add(tag)
        super().add_scalar(tag, *args, **kwargs)


class TaskRun:
    """One run of a task. Before ``with run:`` (in ``prepare``): ``cfg``, ``task``, ``options`` (the parsed
    options dataclass; the plain ``task.*`` dict for a task that declares none), ``options_of(entry)``,
    ``device``, ``classifier`` (or None), ``seed``, ``output_dir``, ``console``. Inside ``with run:``: the
    TensorBoard ``writer`` (``<output_dir>/tensorboard``) with its HParams session, and the outputs.
    """

    def __init__(self, cfg: DictConfig, task: Task, options: Any, device: torch.device,
                 classifier: Classifier | None = None,
                 entry_options: Mapping[str, Any] | None = None) -> None:
        self.cfg, self.task, self.options = cfg, task, options
        self.device, self.classifier = device, classifier
        self.seed = int(cfg.seed)
        self.output_dir = Path(cfg.paths.output_dir)
        self.console = Console()
        self.files: list[Path] = []
        self._entry_options = dict(entry_options or {})
        self._notes: list[tuple[str, str]] = []
        self._tables: list[Table] = []
        self._writer: _Writer | None = None
        self._closed = False

    def options_of(self, entry: Any) -> Any:
        """The options (an instance of ``entry.options``, from ``task.<entry.name>``) of a registry entry the
        task chose (see ``Task.choices``); None for an entry without options."""
        return self._entry_options.get(entry.name)

    def option_kwargs(self, entry: Any) -> dict[str, Any]:
        """:meth:`options_of` as keyword arguments for the entry's function (``{}`` without options)."""
        options = self.options_of(entry)
        return {} if options is None else dataclasses.asdict(options)

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            raise RuntimeError("the TensorBoard writer exists inside `with run:` only (in task.run)")
        return self._writer

    def hparams(self) -> dict[str, Any]:
        """The run's row of the HParams dashboard: ``cfg.hparams`` columns, every option (with defaults, and
        the chosen entries' options), every override."""
        settings = OmegaConf.to_container(self.cfg.hparams, resolve=True) if "hparams" in self.cfg else {}
        options = {**_asdict(self.options), **{name: _asdict(o) for name, o in self._entry_options.items()}}
        return run_hparams(self.cfg, **settings, options=_flatten(options))

    def __enter__(self) -> TaskRun:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(str(self.output_dir / "tensorboard"))
        start_session(self._writer, self.hparams())
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._close(success=exc_type is None)
        return False

    def _close(self, success: bool) -> None:
        if self._writer is not None and not self._closed:
            end_session(self._writer, success)
            self._writer.close()
            self._closed = True

    def add_figure(self, fig, name: str, step: int = 0) -> Path:
        """Log ``fig`` to TensorBoard under ``name`` and save it as ``<output_dir>/<name>.png``."""
        self.writer.add_figure(name, fig, global_step=step, close=False)
        return self.add_file(save_figure(fig, self.output_dir / f"{name}.png"))

    def add_file(self, path: Path) -> Path:
        """List an output file in the summary."""
        self.files.append(Path(path))
        return Path(path)

    def note(self, item: str, value: object) -> None:
        """A row of the summary table above the metrics (the network, the images, ...)."""
        self._notes.append((item, str(value)))

    def add_table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
                  markdown: str | None = None) -> Path | None:
        """A table printed with the summary; with ``markdown``, also written as
        ``<output_dir>/<markdown>.md``. Columns after the first are right-aligned (numbers)."""
        table = Table(title=title)
        for i, head in enumerate(headers):
            table.add_column(head, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        self._tables.append(table)
        if markdown is None:
            return None
        escaped = [[cell.replace("|", "\\|") for cell in line] for line in [headers, *rows]]  # "|map|"
        lines = ["| " + " | ".join(escaped[0]) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in escaped[1:]]
        return self.add_file(save_text("\n".join(lines) + "\n", self.output_dir / f"{markdown}.md"))

    def finish(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Log the summary metrics that ``task.run`` has not logged itself (the HParams columns), end the
        session, close the writer, write ``metrics.json`` and print the summary. Returns the metrics."""
        metrics = dict(metrics)
        for key, value in metrics.items():
            if key not in self._writer.scalar_tags:
                self._writer.add_scalar(key, value)
        self._close(success=True)
        write_metrics(self.output_dir, metrics)
        self._print_summary(metrics)
        return metrics

    def _print_summary(self, metrics: Mapping[str, float]) -> None:
        for table in self._tables:
            self.console.print(table)
        title = self.task.label + (f" ({self.classifier.name})" if self.classifier is not None else "")
        table = Table(title=title)
        table.add_column("item")
        table.add_column("value", justify="right")
        for item, value in self._notes:
            table.add_row(item, value)
        for key, value in metrics.items():
            table.add_row(key, f"{value:.4g}")
        self.console.print(table)
        for path in self.files:
            self.console.print(f"output: {path}", soft_wrap=True)
        self.console.print(f"TensorBoard: {shlex.join(['tensorboard', '--logdir', str(self.output_dir)])}",
                           soft_wrap=True)


def _asdict(options: Any) -> Any:
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return dataclasses.asdict(options)
    return options


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"metrics": {"steps": 12}}`` -> ``{"metrics.steps": 12}`` (lists and empty mappings are leaves)."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, child in value.items():
            flat.update(_flatten(child, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value} if prefix else {}
