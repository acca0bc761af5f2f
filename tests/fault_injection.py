"""Test-only Lightning callbacks that break a training run on purpose (added with ``+callbacks.x._target_=``),
and another process that holds a run folder's lock.

Importable as ``fault_injection`` in pytest (tests/ is on sys.path) and in ``train.py`` subprocesses
started with ``PYTHONPATH=tests``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytorch_lightning.callbacks import Callback


@contextmanager
def run_lock_holder(folder: Path) -> Iterator[int]:
    """Another process holds ``folder``'s run lock (``lock_run_folder``) until the block ends; yields its pid.
    When it ends, the OS releases the lock."""
    script = ("import sys\nfrom pathlib import Path\nfrom visgrad.utils.run_folder import lock_run_folder\n"
              f"lock_run_folder(Path({str(folder)!r}))\nprint('locked', flush=True)\nsys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder.pid
    finally:
        holder.communicate("", timeout=60)


class KillAtStep(Callback):
    """SIGKILL the process when training reaches global step ``step``, unless the run was resumed from a
    checkpoint (so the resumed run, which recomposes the same callbacks, goes through)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonBatch(Callback):
    """Write NaN into the image features of the batch at global step ``step`` (before the training step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            features, _ = batch
            features[0, 0] = float("nan")


class PoisonGradient(Callback):
    """Write Inf into one entry of parameter ``param``'s gradient at global step ``step`` (after backward)."""

    def __init__(self, step: int, param: str) -> None:
        self.step, self.param = step, param

    def on_after_backward(self, trainer, pl_module) -> None:
        if trainer.global_step == self.step:
            dict(pl_module.named_parameters())[self.param].grad.view(-1)[0] = float("inf")
