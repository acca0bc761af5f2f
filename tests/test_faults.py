"""NaN/Inf in training: the run stops naming the step and the quantity, keeping the last good checkpoint
and the logs; with faults.nonfinite=skip the bad step is skipped (no update) and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.callbacks import NonFiniteError, NonFiniteGuard, nonfinite_gradients
from visgrad.training import train
from visgrad.utils.checkpoint_io import AtomicCheckpointIO

# 200 captions in batches of 50: 4 steps per epoch (global steps 0-3 in epoch 0, 4-7 in epoch 1).
TINY = ["data.shapes.num_train=200", "data.shapes.num_val=60", "data.batch_size=50", "data.max_train=200",
        "model.net.wordvec_dim=16", "model.net.hidden_dim=32", "model.meteor=false", "model.num_samples=0",
        "trainer.max_epochs=2", "trainer.log_every_n_steps=1"]


def overrides(shapes_root: Path, *extra: str) -> list[str]:
    return [f"data.root={shapes_root}", *TINY, *extra]


def poison_batch(step: int) -> list[str]:
    return ["+callbacks.poison._target_=fault_injection.PoisonBatch", f"+callbacks.poison.step={step}"]


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(compose_cfg, shapes_root) -> None:
    cfg = compose_cfg("train", overrides(shapes_root, *poison_batch(5)))
    out = Path(cfg.paths.output_dir)
    expected = (r"global step 5 \(epoch 1, batch 1\): the training loss is nan\. "
                r".*last good checkpoints: .*last\.ckpt.*faults\.nonfinite=skip")
    with pytest.raises(NonFiniteError, match=expected):
        train(cfg)
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 0 and last["global_step"] == 4  # epoch 0's, not a broken one
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best_epoch_000.ckpt", "last.ckpt"]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss_step")] == [0, 1, 2, 3, 4]  # logs kept up to the fault

    # README's way on: resume from the last good checkpoint, skipping the bad batch when it comes again
    value = train(compose_cfg("train", overrides(shapes_root, *poison_batch(5), f"resume={out}",
                                                 "faults.nonfinite=skip")))
    assert value is not None
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["faults/skipped_batches"] == 1.0 and torch.load(out / "checkpoints" / "last.ckpt",
                                                                   weights_only=False)["global_step"] == 8


def test_inf_gradient_names_the_parameter(compose_cfg, shapes_root) -> None:
    poison = ["+callbacks.poison._target_=fault_injection.PoisonGradient", "+callbacks.poison.step=2",
              "+callbacks.poison.param=net.Wh"]
    cfg = compose_cfg("train", overrides(shapes_root, *poison))
    with pytest.raises(NonFiniteError, match=r"global step 2 \(epoch 0, batch 2\): the gradient of net.Wh "
                                             r"has 0 NaN and 1 Inf of 4096 values\..*none written yet"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_skip_mode_skips_the_bad_step_and_counts_it(compose_cfg, shapes_root, monkeypatch) -> None:
    saves = []
    original = AtomicCheckpointIO.save_checkpoint

    def spy(self, checkpoint, path, storage_options=None):
        saves.append(Path(path).name)
        original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", spy)
    cfg = compose_cfg("train", overrides(shapes_root, *poison_batch(5), "faults.nonfinite=skip"))
    train(cfg)
    out = Path(cfg.paths.output_dir)
    assert "last.ckpt" in saves  # train.py writes its checkpoints through the atomic CheckpointIO
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["faults/skipped_batches"] == 1.0
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 8
    adam_steps = {float(state["step"]) for state in last["optimizer_states"][0]["state"].values()}
    assert adam_steps == {7.0}  # 8 steps, one without an update (the optimizer never saw its NaN gradient)
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert last["callbacks"]["NonFiniteGuard"] == {"skipped": 1}  # a resumed run keeps counting


def test_skip_mode_stops_after_max_skipped(compose_cfg, shapes_root) -> None:
    cfg = compose_cfg("train", overrides(shapes_root, *poison_batch(1), "faults.nonfinite=skip",
                                         "faults.max_skipped=0"))
    with pytest.raises(NonFiniteError, match=r"step 1 .*skipped step 1, more than faults.max_skipped=0"):
        train(cfg)


def test_nonfinite_gradients_lists_every_bad_parameter() -> None:
    module = torch.nn.Linear(3, 2)
    module.weight.grad = torch.zeros(2, 3)
    module.bias.grad = torch.zeros(2)
    assert nonfinite_gradients(module) is None
    module.weight.grad[0, :2] = float("nan")
    module.bias.grad[1] = -float("inf")
    assert nonfinite_gradients(module) == ("the gradient of weight has 2 NaN and 0 Inf of 6 values "
                                           "(also non-finite: bias)")
    with pytest.raises(ValueError, match="faults.nonfinite=raise|skip"):
        NonFiniteGuard(action="ignore")
