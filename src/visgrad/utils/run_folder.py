"""Run folders: a run writes only into a new (or empty) folder or the run it resumes, and locks it.

``RunFolderGuard`` is a Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``, so both apps
have it). Hydra creates the run folder and writes ``.hydra/{config,hydra,overrides}.yaml`` into it before
the app starts, so the app itself would come too late to protect another run's folder:

- ``on_run_start`` (before any of that) stops the process (``SystemExit``) if ``hydra.run.dir`` is a
  folder that already holds files, unless the run resumes it (``resume=<that folder>``, which records
  itself in ``.hydra/resume_<k>/``) or this is a further DDP process, which Lightning starts in rank 0's
  folder; ``on_multirun_start`` likewise for a used ``hydra.sweep.dir``.
  A run or sweep folder that is a file, or lies inside one, is refused too, saying so.
- ``on_job_end``: a single run that stopped with a user error before writing anything of its own (only
  Hydra's ``.hydra/`` files, the log and the lock: a refused start) has those removed again, and its folder
  too if this run created it (with the folders above it that it created, e.g. ``logs/train/runs``), so
  refused starts leave no empty folders behind. A resume attempt
  (``resume=RUN``: Hydra writes its ``.hydra/resume_<k>.pending/``, which becomes ``.hydra/resume_<k>/``
  once training starts, see ``visgrad.utils.resume``) that fails before its training starts, for whatever
  reason, is undone entirely: what it added is removed and the logs it appended to are cut back, so the
  run folder is as it was (but for the lock file's pid) and the next resume replays the run's real history.

``lock_run_folder(folder)`` takes an exclusive lock on ``<folder>/.lock`` (``fcntl.flock``, released by
the OS when the process ends, however it ends) and writes the holder's pid into it; a second process
that wants the same run (two ``resume=`` of one run, or a resume of a run still training) is refused with
that pid. Where ``fcntl`` does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from visgrad.utils.commands import command
from visgrad.utils.preflight import ConfigError
from visgrad.utils.reporting import as_user_error

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"
PENDING = ".pending"  # suffix of a resume attempt's .hydra/resume_<k> until its training starts
_held: dict[Path, int] = {}  # folder -> fd of its lock file, for the folders this process has locked


def lock_run_folder(folder: Path, what: str = "run") -> None:
    """Hold an exclusive lock on ``folder`` until this process ends (again: nothing to do).

    Raises ``ConfigError`` naming the pid of the process that holds it. ``what`` names the request in the
    message (e.g. ``resume=RUN``).
    """
    folder = Path(folder).resolve()
    if fcntl is None or folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"{what}: {folder} is in use by another process (pid {holder}), which is training "
                          "in it or resuming it; a run folder has one writer at a time. Wait for that "
                          f"process to end (or stop it: kill {holder}), then try again") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[folder] = fd


def release_run_folder(folder: Path) -> None:
    """Release the lock this process holds on ``folder`` (if any)."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)


def _listing(folder: Path) -> dict[Path, int]:
    """Every path under ``folder`` (relative) with its size (-1 for folders), or nothing if it does not
    exist."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder): -1 if p.is_dir() else p.stat().st_size for p in folder.rglob("*")}


def pending_attempt(hydra: DictConfig) -> Path | None:
    """The ``.hydra/resume_<k>.pending`` folder of a resume attempt that has not started training yet, or
    None (not a resume attempt, or one that has started). ``hydra``: the job's Hydra config (``cfg.hydra``,
    ``HydraConfig.get()``)."""
    subdir = hydra.get("output_subdir")
    if not subdir or not str(subdir).endswith(PENDING):
        return None
    pending = Path(hydra.runtime.output_dir) / str(subdir)
    return pending if pending.is_dir() else None


def _refuse_file_as_folder(folder: Path, key: str) -> None:
    """Stop the process (``SystemExit``, see ``_refuse_used_folder``) if ``folder`` or a folder above it is
    a file: Hydra's ``mkdir`` would fail with a bare "File exists"."""
    for path in (folder, *folder.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == folder else f"lies inside {path}, which is a file"
            raise SystemExit(f"Error: {key}={folder} {where}, not a folder; give a folder there (or leave "
                             f"{key} unset: a new time-stamped folder)")


def _refuse_used_folder(folder: Path, key: str, resumable: bool) -> None:
    """Stop the process with the reason. Hydra turns an exception raised by a callback into a warning and
    goes on (writing into the folder), so this raises ``SystemExit`` (status 1, the message on stderr)."""
    entries = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
    hint = ""
    if resumable and (folder / ".hydra" / "overrides.yaml").is_file() and (folder / "checkpoints").is_dir():
        hint = f"; to continue the run in it: {command(f'resume={folder}')}"
    raise SystemExit(f"Error: {key}={folder} already holds files ({shown}); a new run writes only into a "
                     f"new or empty folder, never into another run's. Leave {key} unset (a new time-stamped "
                     f"folder) or give a new folder{hint}")


class RunFolderGuard(Callback):
    """Refuse a used run/sweep folder before Hydra writes into it; clean up after a refused start."""

    def __init__(self) -> None:
        self._created: Path | None = None  # the top folder of the run folder's path that did not exist
        self._before: dict[Path, int] = {}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:  # a DDP process that Lightning started in rank 0's run folder
            return
        folder = Path(config.hydra.run.dir).expanduser().resolve()
        _refuse_file_as_folder(folder, "hydra.run.dir")
        resume = config.get("resume")
        resumes_it = bool(resume) and Path(str(resume)).expanduser().resolve() == folder
        if folder.is_dir() and any(folder.iterdir()) and not resumes_it:
            _refuse_used_folder(folder, "hydra.run.dir", resumable=config.hydra.job.name == "train")
        missing = [path for path in (folder, *folder.parents) if not path.exists()]
        self._created, self._before = (missing[-1] if missing else None), _listing(folder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir).expanduser().resolve()
        _refuse_file_as_folder(folder, "hydra.sweep.dir")
        if folder.is_dir() and any(folder.iterdir()):
            _refuse_used_folder(folder, "hydra.sweep.dir", resumable=False)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        folder = Path(config.hydra.runtime.output_dir).resolve()
        release_run_folder(folder)
        if config.hydra.mode != RunMode.RUN or job_return.status != JobStatus.FAILED or rank_zero_only.rank:
            return
        if pending_attempt(config.hydra) is not None:  # a resume that failed before training: undone
            self._undo(folder)
            return
        if as_user_error(job_return._return_value) is None:
            return  # a bug: keep everything for the post-mortem
        own = {Path(".hydra"), Path(LOCK_FILE), Path(f"{config.hydra.job.name}.log")}
        new = _listing(folder).keys() - self._before.keys()
        if all(path.parts[:1] and Path(path.parts[0]) in own for path in new):
            self._undo(folder)  # else the run wrote results before it failed: keep them

    def _undo(self, folder: Path) -> None:
        """Remove what appeared in ``folder`` since ``on_run_start``, cut the logs (``*.log`` at its top)
        back to their size then, and remove the folders this run created if they are empty now."""
        now = _listing(folder)
        for path in sorted(now.keys() - self._before.keys(), key=lambda p: len(p.parts), reverse=True):
            full = folder / path
            full.rmdir() if full.is_dir() else full.unlink(missing_ok=True)
        for path, size in self._before.items():
            if len(path.parts) == 1 and path.suffix == ".log" and now.get(path, -1) > size >= 0:
                os.truncate(folder / path, size)
        if self._created is not None:
            for path in (folder, *folder.parents[:len(folder.parents) - len(self._created.parents)]):
                if not path.is_dir() or any(path.iterdir()):
                    break
                path.rmdir()
