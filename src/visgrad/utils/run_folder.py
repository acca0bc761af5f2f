"""Run folders: a run writes only into a new (or empty) folder or the run it resumes, and locks it.

``RunFolderGuard`` is a Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``, so both apps
have it). Hydra creates the run folder and writes ``.hydra/{config,hydra,overrides}.yaml`` into it before
the app starts, so the app itself would come too late to protect another run's folder:

- ``on_run_start`` (before any of that) stops the process (``SystemExit``) if ``hydra.run.dir`` is a
  folder that already holds files, unless the run resumes it (``resume=<that folder>``, which records
  itself in ``.hydra/resume_<k>/``) or this is a further DDP process, which Lightning starts in rank 0's
  folder; ``on_multirun_start`` likewise for a used ``hydra.sweep.dir``.
- ``on_job_end``: a single run that stopped with a user error before writing anything of its own (only
  Hydra's ``.hydra/`` files, the log and the lock: a refused start) has those removed again, and its folder
  too if this run created it, so refused starts leave no empty run folders behind.

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

from visgrad.utils.preflight import ConfigError
from visgrad.utils.reporting import as_user_error

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"
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


def _listing(folder: Path) -> set[Path]:
    """Every path under ``folder`` (relative), or nothing if it does not exist."""
    return {p.relative_to(folder) for p in folder.rglob("*")} if folder.is_dir() else set()


def _refuse_used_folder(folder: Path, key: str, resumable: bool) -> None:
    """Stop the process with the reason. Hydra turns an exception raised by a callback into a warning and
    goes on (writing into the folder), so this raises ``SystemExit`` (status 1, the message on stderr)."""
    entries = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
    hint = ""
    if resumable and (folder / ".hydra" / "overrides.yaml").is_file() and (folder / "checkpoints").is_dir():
        hint = f"; to continue the run in it: python train.py resume={folder}"
    raise SystemExit(f"Error: {key}={folder} already holds files ({shown}); a new run writes only into a "
                     f"new or empty folder, never into another run's. Leave {key} unset (a new time-stamped "
                     f"folder) or give a new folder{hint}")


class RunFolderGuard(Callback):
    """Refuse a used run/sweep folder before Hydra writes into it; clean up after a refused start."""

    def __init__(self) -> None:
        self._created = False
        self._before: set[Path] = set()

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:  # a DDP process that Lightning started in rank 0's run folder
            return
        folder = Path(config.hydra.run.dir).expanduser().resolve()
        resume = config.get("resume")
        resumes_it = bool(resume) and Path(str(resume)).expanduser().resolve() == folder
        if folder.is_dir() and any(folder.iterdir()) and not resumes_it:
            _refuse_used_folder(folder, "hydra.run.dir", resumable=config.hydra.job.name == "train")
        self._created, self._before = not folder.exists(), _listing(folder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir).expanduser().resolve()
        if folder.is_dir() and any(folder.iterdir()):
            _refuse_used_folder(folder, "hydra.sweep.dir", resumable=False)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        folder = Path(config.hydra.runtime.output_dir).resolve()
        release_run_folder(folder)
        if config.hydra.mode != RunMode.RUN or job_return.status != JobStatus.FAILED or rank_zero_only.rank:
            return
        if as_user_error(job_return._return_value) is None:
            return  # a bug: keep everything for the post-mortem
        own = {Path(".hydra"), Path(LOCK_FILE), Path(f"{config.hydra.job.name}.log")}
        new = _listing(folder) - self._before
        if not all(path.parts[:1] and Path(path.parts[0]) in own for path in new):
            return  # the run wrote results before it failed: keep them
        for path in sorted(new, key=lambda p: len(p.parts), reverse=True):
            full = folder / path
            full.rmdir() if full.is_dir() else full.unlink(missing_ok=True)
        if self._created and not any(folder.iterdir()):
            folder.rmdir()
