"""How ``train.py`` and ``visualize.py`` show errors: a user error in a few lines, a bug with its traceback.

Hydra prints any exception that leaves a job as a stripped traceback, except its own "compact"
exceptions, which it prints as their message. ``user_errors_reported()`` (around each app's job) turns a
``UserError`` (``visgrad.errors``) — and any error caused by a full disk — into such a ``ReportedError``:
Hydra then prints ``Error executing job with overrides: [...]``, the message, and its usual hint that
``HYDRA_FULL_ERROR=1`` shows the full traceback (with that set, the original error is raised as it is).
Every other exception is a bug and keeps its traceback. The exit status is 1 either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException

from visgrad.errors import UserError
from visgrad.utils.checkpoint_io import disk_full_error


class ReportedError(CompactHydraException):
    """A user error as Hydra prints it: ``Error: <message>``, without a traceback (the original error is
    its ``__cause__``)."""


def full_error_requested() -> bool:
    """Whether the user asked for full tracebacks (``HYDRA_FULL_ERROR=1``, as Hydra reads it)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def as_user_error(error: BaseException) -> UserError | None:
    """``error`` itself if it is a ``UserError`` (also inside a ``ReportedError``, or raised by a constructor
    that Hydra's ``instantiate`` called), a ``DiskFullError`` if a full disk caused it (naming the run folder
    when the error names no file), else None (a bug)."""
    if isinstance(error, ReportedError | InstantiationException) and isinstance(error.__cause__, UserError):
        return error.__cause__
    if isinstance(error, UserError):
        return error
    return disk_full_error(error, folder=_run_folder())


def _run_folder() -> Path | None:
    """The folder the current Hydra job writes to, or None outside a Hydra job."""
    output_dir = HydraConfig.get().runtime.get("output_dir") if HydraConfig.initialized() else None
    return Path(output_dir) if output_dir else None


@contextmanager
def user_errors_reported() -> Iterator[None]:
    """Re-raise a user error (see ``as_user_error``) as a ``ReportedError``; other errors pass unchanged."""
    try:
        yield
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is None or full_error_requested() or isinstance(error, ReportedError):
            raise
        raise ReportedError(f"Error: {user_error}") from user_error
