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
import shlex
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
        return (f"{path} is not readable (permission denied): give your user read access "
                f"(chmod u+r {shlex.quote(str(path))})")
    if isinstance(error, IsADirectoryError) or Path(path).is_dir():
        return f"{path} is a folder, not a file"
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such file"
    return f"{path} could not be read ({error.strerror or error})"


def load_failure(error: BaseException) -> str:
    """The gist of ``torch.load``'s error for a file it cannot load: its first sentence (torch adds a
    paragraph of guesses), or what its weights-only unpickler found (``Unsupported operand 15``)."""
    text = str(error).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    if not text:  # EOFError(): an empty file, or one cut before its first record
        return "the file ends too early" if isinstance(error, EOFError) else type(error).__name__
    return text.splitlines()[0].split(". ")[0].rstrip(".")


def not_a_folder(path: str | Path) -> str | None:
    """Why ``path`` cannot be a folder, in words for a message, or None when it is one or could be made:
    ``<path> is a file, not a folder`` or ``<path> lies inside <file>, which is a file, not a folder``."""
    path = Path(path).expanduser()
    for above in (path, *path.parents):
        if above.is_dir():
            return None
        if above.exists():
            where = "is a file" if above == path else f"lies inside {above}, which is a file"
            return f"{path} {where}, not a folder"
    return None
