"""Lightning callbacks of visgrad's training runs.

``NonFiniteGuard`` watches every training step for a NaN/Inf loss and NaN/Inf gradients, and acts before
the optimizer step (before gradient clipping and before any weight changes):

- ``action="raise"`` (default): stop with ``NonFiniteError`` naming the step (global step, epoch, batch)
  and the quantity (the loss, or which parameter's gradient). The weights are still those of the last good
  step; no checkpoint is written on the way out (Lightning's checkpoints save at epoch ends, not on
  exceptions), so ``checkpoints/`` keeps the last good ones, and the logs are flushed.
- ``action="skip"``: drop the step (all gradients set to None, so torch optimizers leave the weights and
  their moments untouched), log a warning and count it (``faults/skipped_batches`` in TensorBoard, once per
  epoch); after more than ``max_skipped`` skipped steps in the run it stops as ``raise`` does.

``train.py`` sets the action with ``faults.nonfinite=raise|skip`` and the limit with ``faults.max_skipped``.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from visgrad.errors import UserError

log = logging.getLogger(__name__)

ACTIONS = ("raise", "skip")


class NonFiniteError(UserError, FloatingPointError):
    """Training met a NaN/Inf loss or gradient (and was not told to skip it): reported as a user error
    (the message names the step, the quantity, the last good checkpoints and faults.nonfinite=skip)."""


class NonFiniteGuard(Callback):
    """Stop (or skip the step) on a NaN/Inf training loss or gradient.

    Args:
        action: ``"raise"`` or ``"skip"``.
        max_skipped: with ``"skip"``, stop anyway once more than this many steps were skipped in the run
            (None: no limit).
    """

    def __init__(self, action: str = "raise", max_skipped: int | None = 20) -> None:
        if action not in ACTIONS:
            raise ValueError(f"NonFiniteGuard action must be one of {ACTIONS}, got {action!r} "
                             "(train.py: faults.nonfinite=raise|skip)")
        self.action = action
        self.max_skipped = max_skipped
        self.skipped = 0
        self._batch_idx = 0
        self._problem: str | None = None  # a non-finite loss seen since the last optimizer step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer: pl.Trainer, pl_module, loss: torch.Tensor) -> None:
        if self._problem is None and not bool(torch.isfinite(loss.detach()).all()):
            self._problem = f"the training loss is {loss.detach().flatten()[0].item()}"

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module, optimizer) -> None:
        # Decided here, after the backward pass: under DDP the gradients are all-reduced by now, so a NaN on
        # one rank is a NaN on every rank and all ranks raise or skip together.
        problem, self._problem = self._problem or nonfinite_gradients(pl_module), None
        if problem is None:
            return
        if self.action == "raise":
            raise NonFiniteError(self._message(trainer, problem))
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None
        self.skipped += 1
        log.warning("skipped a training step (faults.nonfinite=skip, %d so far): %s: %s", self.skipped,
                    self._where(trainer), problem)
        if self.max_skipped is not None and self.skipped > self.max_skipped:
            advice = (f"This is skipped step {self.skipped}, more than "
                      f"faults.max_skipped={self.max_skipped}: the run is stopped. So many bad steps usually "
                      "mean the training diverges (try a lower learning rate); to skip more, resume with a "
                      "larger faults.max_skipped (null: no limit).")
            raise NonFiniteError(self._message(trainer, problem, advice))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.action == "skip":
            pl_module.log("faults/skipped_batches", float(self.skipped), on_step=False, on_epoch=True)

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = int(state_dict["skipped"])

    def _where(self, trainer: pl.Trainer) -> str:
        return f"global step {trainer.global_step} (epoch {trainer.current_epoch}, batch {self._batch_idx})"

    def _message(self, trainer: pl.Trainer, problem: str,
                 advice: str = "To skip such batches instead, run with faults.nonfinite=skip.") -> str:
        kept = [cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.best_model_path]
        checkpoints = ", ".join(dict.fromkeys(kept)) or "none written yet"
        return (f"non-finite value at {self._where(trainer)}: {problem}. Training stopped before the "
                f"weights were updated; last good checkpoints: {checkpoints}; logs: {trainer.log_dir}. "
                f"{advice}")


def nonfinite_gradients(module: torch.nn.Module) -> str | None:
    """None if every gradient of ``module`` is finite, else which parameters' are not, e.g.
    ``"the gradient of model.Wx has 3 NaN and 0 Inf of 2048 values"`` (the first such parameter, and how
    many more). One device sync per call."""
    named = [(name, p.grad) for name, p in module.named_parameters() if p.grad is not None]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(grad).all() for _, grad in named])
    if bool(finite.all()):
        return None
    bad = [(name, grad) for (name, grad), ok in zip(named, finite.tolist(), strict=True) if not ok]
    name, grad = bad[0]
    nans, infs = int(torch.isnan(grad).sum()), int(torch.isinf(grad).sum())
    others = ", ".join(n for n, _ in bad[1:])
    more = f" (also non-finite: {others})" if others else ""
    return f"the gradient of {name} has {nans} NaN and {infs} Inf of {grad.numel()} values{more}"
