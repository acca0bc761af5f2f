"""``AtomicCheckpointIO``: Lightning checkpoints that are either the old file or the complete new one.

Lightning's ``TorchCheckpointIO`` serialises to memory and then writes the target file in place, so a
process killed during the write (SIGKILL, power loss, a full disk) leaves a truncated ``last.ckpt`` that the
next resume fails to load. This plugin writes to a temporary file in the same folder, flushes and fsyncs
it, then ``os.replace``s it over the target (atomic on POSIX and Windows) and fsyncs the folder, so the
target path only ever holds a complete checkpoint. ``train.py`` always uses it (``checkpoint_io`` in
``conf/train.yaml``). Remote paths (``s3://``...) go to Lightning's writer: object stores replace whole
objects anyway.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning_fabric.plugins import TorchCheckpointIO


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
    keeps its old content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
