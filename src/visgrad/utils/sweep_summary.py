"""``SweepSummary``: a Hydra callback that tabulates every job of a ``-m`` sweep, ok or failed.

Hydra's basic launcher runs every job of a sweep even when one raises (and re-raises the first failure
after the batch), so no job's results are lost; what was missing is an overview. After each job this
callback writes the job's row to ``<job dir>/sweep_job.json`` and rebuilds, from all rows so far,
``<sweep dir>/summary.csv`` and ``<sweep dir>/summary.md`` (so the table survives a sweep that is killed
half-way). At the end of the sweep, even one that fails, it prints the table.

A row: ``job`` (number), ``status`` (``ok`` | ``failed``), ``overrides`` (the job's values of the swept keys:
those with sweep syntax on the command line or in ``hydra.sweeper.params``; the full list is in
``<job dir>/.hydra/overrides.yaml``), the final metrics the job wrote to ``<job dir>/metrics.json``
(``train()`` and every ``visualize.py`` task do, through :func:`write_metrics`), ``error`` (exception
type and first line) and ``run_dir``.
Registered in ``conf/hydra/default.yaml`` under ``hydra.callbacks``. Single runs are left alone, except a
resumed job of a sweep (``train.py resume=<sweep dir>/<job>``, found by its ``.hydra/hydra.yaml``): once
its training has started, its row is rewritten (status, metrics) and the table rebuilt, so the summary
shows how the job ended, not how it was killed or its metrics before it was trained longer.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from visgrad.utils.checkpoint_io import atomic_open
from visgrad.utils.reporting import as_user_error
from visgrad.utils.run_folder import pending_attempt

JOB_FILE = "sweep_job.json"
METRICS_FILE = "metrics.json"
FIXED_COLUMNS = ("job", "status", "overrides")
TAIL_COLUMNS = ("error", "run_dir")


def write_metrics(run_dir: Path, metrics: dict[str, float]) -> Path:
    """Write a run's final metrics to ``<run_dir>/metrics.json`` (atomically: a summary never reads half a
    file), where the sweep summary reads them."""
    path = Path(run_dir) / METRICS_FILE
    with atomic_open(path, "w") as file:
        file.write(json.dumps(dict(sorted(metrics.items())), indent=1) + "\n")
    return path


class SweepSummary(Callback):
    """Write ``summary.csv`` / ``summary.md`` into the sweep folder as jobs end; print them at the end.

    Args:
        metrics: metric names to tabulate (None: all that the jobs logged, except per-step ``*_step`` ones).
    """

    def __init__(self, metrics: list[str] | None = None) -> None:
        self.metrics = list(metrics) if metrics is not None else None
        self._sweep_dir: Path | None = None
        self._printed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_dir = Path(config.hydra.sweep.dir).resolve()
        self._printed = False
        # Hydra skips on_multirun_end when a job failed; print the table at exit in that case too.
        atexit.register(self._print_once)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._print_once()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.runtime.output_dir).resolve()
        if config.hydra.mode == RunMode.MULTIRUN:
            sweep_dir, job = Path(config.hydra.sweep.dir).resolve(), int(config.hydra.job.num)
        else:  # a resumed sweep job that started training (a refused attempt changes nothing), rank 0
            origin = sweep_origin(run_dir) if config.get("resume") and not rank_zero_only.rank else None
            if origin is None or pending_attempt(config.hydra) is not None:
                return
            sweep_dir, job = origin
        overrides = [o for o in job_return.overrides or [] if _key(o) != "resume"]
        swept = swept_keys(sweep_dir, OmegaConf.select(config, "hydra.sweeper.params"))
        if swept:
            overrides = [o for o in overrides if _key(o) in swept]
        row = {
            "job": job,
            "status": "ok" if job_return.status == JobStatus.COMPLETED else "failed",
            "overrides": " ".join(overrides),
            "metrics": _read_metrics(run_dir / METRICS_FILE),
            "error": _first_line(job_return._return_value) if job_return.status == JobStatus.FAILED else "",
            "run_dir": str(run_dir),
        }
        _write_text(run_dir / JOB_FILE, json.dumps(row, indent=1))
        write_summary(sweep_dir, self.metrics)
        if config.hydra.mode != RunMode.MULTIRUN:
            print(f"sweep summary updated: {sweep_dir / 'summary.md'}")

    def _print_once(self) -> None:
        """Rebuild the table (jobs of parallel launchers may have raced) and print it, once per sweep."""
        if self._printed or self._sweep_dir is None or not self._sweep_dir.is_dir():
            return
        self._printed = True
        if not write_summary(self._sweep_dir, self.metrics):
            return
        print(f"\nsweep summary ({self._sweep_dir / 'summary.csv'}):\n")
        print((self._sweep_dir / "summary.md").read_text())


def sweep_origin(run_dir: Path) -> tuple[Path, int] | None:
    """The sweep folder and job number of ``run_dir`` if it is the folder of a ``-m`` sweep's job (its
    ``.hydra/hydra.yaml`` says so, and a folder above it holds the sweep's ``multirun.yaml``), else None."""
    path = run_dir / ".hydra" / "hydra.yaml"
    hydra = OmegaConf.load(path).get("hydra") if path.is_file() else None
    if hydra is None or hydra.get("mode") != RunMode.MULTIRUN.name:
        return None
    sweep_dir = next((folder for folder in run_dir.parents if (folder / "multirun.yaml").is_file()), None)
    return None if sweep_dir is None else (sweep_dir, int(hydra.job.num))


def swept_keys(sweep_dir: Path, sweeper_params: DictConfig | None = None) -> set[str]:
    """The keys a sweep varies: the keys of ``hydra.sweeper.params`` (Optuna's search space, say) and the
    overrides with sweep syntax (``a=1,2``, ``range(...)``) in the ``multirun.yaml`` that Hydra's basic
    sweeper saves in the sweep folder."""
    keys = {str(k) for k in (sweeper_params or {})}
    path = sweep_dir / "multirun.yaml"
    if path.is_file():
        parsed = OverridesParser.create().parse_overrides(list(OmegaConf.load(path).hydra.overrides.task))
        keys |= {_key(o) for o in parsed if o.is_sweep_override()}
    return keys


def _key(override: str | Override) -> str:
    if isinstance(override, str):
        override = OverridesParser.create().parse_overrides([override])[0]
    return override.key_or_group + (f"@{override.package}" if override.package else "")


def collect_rows(sweep_dir: Path) -> list[dict]:
    """The rows of every job folder under ``sweep_dir`` that has a ``sweep_job.json``, by job number."""
    rows = [json.loads(path.read_text()) for path in sweep_dir.rglob(JOB_FILE)]
    return sorted(rows, key=lambda row: row["job"])


def write_summary(sweep_dir: Path, metrics: list[str] | None = None) -> list[dict[str, str]]:
    """(Re)write ``summary.csv`` and ``summary.md`` in ``sweep_dir`` from its jobs' rows; return the table."""
    rows = collect_rows(sweep_dir)
    if metrics is None:
        metrics = sorted({k for row in rows for k in row["metrics"] if not k.endswith("_step")})
    table = []
    for row in rows:
        line = {key: str(row[key]) for key in FIXED_COLUMNS}
        line.update({m: _fmt(row["metrics"].get(m)) for m in metrics})
        line.update({key: str(row[key]) for key in TAIL_COLUMNS})
        table.append(line)
    columns = [*FIXED_COLUMNS, *metrics, *TAIL_COLUMNS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    _write_text(sweep_dir / "summary.csv", buffer.getvalue())
    _write_text(sweep_dir / "summary.md", markdown_table(columns, table))
    return table


def markdown_table(columns: list[str], rows: list[dict[str, str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    cell = lambda text: str(text).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _read_metrics(path: Path) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _first_line(error: BaseException) -> str:
    error = as_user_error(error) or error  # the user error itself, not the ReportedError that carries it
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically: readers (e.g. a parallel job rebuilding the table) never see half a file."""
    with atomic_open(path, "w") as file:
        file.write(text)
