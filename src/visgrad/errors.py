"""``UserError``: the base of every error caused by what the user gave rather than by a bug.

A bad config value, a missing or corrupt file, a folder where a file was expected, missing weights, a
refused resume, a full disk: the message says in one or a few lines what was wrong, naming the key or
file, and what to do. ``train.py`` and ``visualize.py`` print such errors without a traceback and exit
with status 1 (``HYDRA_FULL_ERROR=1`` shows the traceback); any other exception is a bug and keeps its
traceback. Library code raises the subclasses (``ConfigError``, ``CaptionDataError``, ...), which also
derive from the matching built-in error (``ValueError``, ``FileNotFoundError``, ...).
"""

from __future__ import annotations

import errno
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be read (truncated, corrupt, not a checkpoint) or is of another kind."""


class DiskFullError(UserError, OSError):
    """A write failed because the disk (or the user's quota) is full."""


def unreadable(path: str | Path, error: OSError) -> str:
    """What an ``OSError`` raised while reading ``path`` means, in words for a message (no advice to fetch
    the file again: it is there): ``<path> is not readable (permission denied): give your user read
    access (chmod u+r <path>)``, ``<path> is a folder, not a file``, ``<path>: no such file`` or
    ``<path> could not be read (<reason>)``."""
    if isinstance(error, PermissionError) or error.errno in (errno.EACCES, errno.EPERM):
        return f"{path} is not readable (permission denied): give your user read access (chmod u+r {path})"
    if isinstance(error, IsADirectoryError) or Path(path).is_dir():
        return f"{path} is a folder, not a file"
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such file"
    return f"{path} could not be read ({error.strerror or error})"
