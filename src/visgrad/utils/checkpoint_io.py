"""``AtomicCheckpointIO``: Lightning checkpoints that are either the old file or the complete new one.

Lightning's ``TorchCheckpointIO`` serialises to memory and then writes the target file in place, so a
process killed during the write (SIGKILL, power loss, a full disk) leaves a truncated ``last.ckpt`` that the
next resume fails to load. This plugin writes to a temporary file in the same folder, flushes and fsyncs
it, then ``os.replace``s it over the target (atomic on POSIX and Windows) and fsyncs the folder, so the
target path only ever holds a complete checkpoint. ``train.py`` always uses it (``checkpoint_io`` in
``conf/train.yaml``). Remote paths (``s3://``...) go to Lightning's writer: object stores replace whole
objects anyway.

``atomic_open`` is the one way visgrad writes result files (checkpoints, ``metrics.json``, sweep summaries):
complete or not at all, with the permissions ``open()`` would give (``0o666`` less the user's umask).
``read_checkpoint`` loads a checkpoint with a one-line ``CheckpointError`` for a truncated or corrupt file
(and for an unreadable one, saying so); a write that fails because the disk is full raises
``DiskFullError`` naming the file, or the run folder when the file is unknown (``disk_full_error``).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning_fabric.plugins import TorchCheckpointIO

from visgrad.errors import CheckpointError, DiskFullError, load_failure, unreadable

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (temp file + fsync + ``os.replace``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or get_protocol(str(path)) != "file":
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, Path(path))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` such that ``path`` is never seen half-written (see ``atomic_open``)."""
    with atomic_open(path, "wb") as file:
        torch.save(obj, file)


@contextmanager
def atomic_open(path: Path, mode: str = "wb"):
    """Open a file that appears at ``path`` complete or not at all.

    Writes go to a temporary file ``.<name>.<random>.tmp`` next to ``path`` (so ``os.replace`` is a rename
    within one file system); when the block ends it is flushed, fsynced and renamed over ``path``, and the
    folder is fsynced. If anything fails before the rename, the temporary file is removed and ``path``
    keeps its old content. The file gets the mode ``open()`` gives a new file (``0o666`` less the umask;
    ``mkstemp`` alone would make it ``0o600``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        full = disk_full_error(error, path)
        if full is not None:
            raise full from error
        raise
    _fsync_dir(path.parent)


def disk_full_error(error: BaseException, path: Path | None = None,
                    folder: Path | None = None) -> DiskFullError | None:
    """A ``DiskFullError`` if ``error`` or an error it was raised from is "no space left" / "quota exceeded"
    (torch's zip writer turns it into a RuntimeError "unexpected pos"), else None. It names ``path``, else the
    file in the error, else ``folder`` (the run folder, where the app was writing), else the current one."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFullError):
            return error
        if isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS:
            target = path or error.filename
            if target is not None:
                where = Path(target) if Path(target).is_dir() else Path(target).parent
                what = f"could not write {target}"
            else:
                where = Path(folder or ".").resolve()
                what = f"could not write a file in {where}"
            free = shutil.disk_usage(where).free if where.exists() else 0
            return DiskFullError(f"disk full: {what} ({error.strerror}; {free / 2**20:.0f} MiB free in "
                                 f"{where}). Free some space and run again (a killed training run continues "
                                 "with python train.py resume=<run folder>)")
        error = error.__cause__ or error.__context__
    return None


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` of a checkpoint on the CPU (in full: checkpoints hold configs besides tensors, so load
    only files you trust); ``CheckpointError`` naming the file if it is not a readable checkpoint.

    ``mmap=True`` reads only the pickled metadata now (tensors stay in the file until used).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; pass a .ckpt file (e.g. "
                              f"{path / 'checkpoints' / 'last.ckpt'})")
    try:
        mmap = mmap and zipfile.is_zipfile(path)  # else torch's error would be about mmap, not the file
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as error:  # permission denied, an I/O error: the file is there, not necessarily damaged
        raise CheckpointError(unreadable(path, error)) from None
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a truncated or random file
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: "
                              f"{load_failure(error)}); use another one") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask (on Linux read from ``/proc``, elsewhere set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
