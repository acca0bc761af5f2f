"""Distributed training on CPU: sharded caption metrics, and ``train.py trainer=ddp`` vs one process.

The DDP run is the README's command (``python train.py trainer=ddp trainer.devices=2``) in a subprocess:
Lightning relaunches it once for rank 1 (gloo on CPU). With per-process batch B it must end with the
weights and metrics of a single-process run with batch 2B.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.captioning import CaptioningRNN, DecodingStrategy
from visgrad.captioning.harness import decode_features, decode_sharded, gather_shards, shard_indices
from visgrad.training import train

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "train.py")
TINY = ["model.net.wordvec_dim=16", "model.net.hidden_dim=32", "model.meteor=false", "model.num_samples=2",
        "trainer.max_epochs=2", "trainer.deterministic=true", "print_config=false"]
# DDP sums the gradient in another order than one process, so float32 weights differ in the last bits,
# and training amplifies that: Adam's first steps divide each gradient entry by its own size (entries
# near zero turn rounding noise into differences of order lr), and over ~100 steps even SGD grows
# 1e-8 into 1e-2 on the shapes set. So the float32 check uses SGD and a few steps; the long check
# runs the configs' Adam for two whole epochs in float64, where it agrees to ~1e-11.
FLOAT32_SGD = ["model.optimizer._target_=torch.optim.SGD", "model.optimizer.lr=0.1",
               "+model.optimizer.momentum=0.9", "trainer.limit_train_batches=3"]
FLOAT64_ADAM = ["trainer.precision=64-true"]
METRICS = ("val/bleu1", "val/bleu2", "val/bleu3", "val/bleu4", "val/cider_d")


class ThreadGroup:
    """A stand-in for a process group: W threads, one per rank, meeting in ``all_gather``."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.slots: list[torch.Tensor | None] = [None] * world_size
        self.barrier = threading.Barrier(world_size, timeout=30)

    def all_gather(self, rank: int):
        def gather(tensor: torch.Tensor) -> torch.Tensor:
            self.slots[rank] = tensor.clone()
            self.barrier.wait()
            out = torch.stack(self.slots)
            self.barrier.wait()  # everyone has read the slots before they are reused
            return out

        return gather

    def run(self, fn) -> list:
        """``fn(rank, all_gather)`` on every rank at once; returns the results by rank."""
        results: list = [None] * self.world_size
        errors: list[BaseException] = []

        def target(rank: int) -> None:
            try:
                results[rank] = fn(rank, self.all_gather(rank))
            except BaseException as error:  # re-raised in the test's thread
                errors.append(error)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world_size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


def tiny_captioner(cell_type: str = "lstm") -> tuple[CaptioningRNN, list[str]]:
    words = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "blue", "circle", "square", "left", "of"]
    torch.manual_seed(0)
    model = CaptioningRNN({w: i for i, w in enumerate(words)}, input_dim=8, wordvec_dim=6, hidden_dim=10,
                          cell_type=cell_type)
    return model.eval(), words


def test_shard_indices_cover_every_item_once() -> None:
    shards = [shard_indices(10, r, 3) for r in range(3)]
    assert [s.tolist() for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size=2\), got 2"):
        shard_indices(10, 2, 2)


@pytest.mark.parametrize(("num_items", "world_size"), [(11, 3), (2, 3), (8, 2), (5, 1)])
def test_decode_sharded_equals_one_process(num_items: int, world_size: int) -> None:
    """Each rank decodes its share; after the gather every rank holds the single-process captions.

    Covers uneven shards (11 over 3), ranks with nothing to decode (2 over 3) and beam search.
    """
    model, words = tiny_captioner()
    features = torch.randn(num_items, 8, generator=torch.Generator().manual_seed(1)) * 3
    for strategy in (DecodingStrategy("greedy"), DecodingStrategy("beam", beam_size=3)):
        expected, _ = decode_features(model, features, strategy, words, max_length=7)
        assert len(set(expected)) > 1  # distinct captions, so a misplaced item would show
        group = ThreadGroup(world_size)
        per_rank = group.run(lambda rank, gather, strategy=strategy: decode_sharded(
            model, features, strategy, words, 7, rank, world_size, gather, batch_size=2))
        assert per_rank == [expected] * world_size


def test_decode_sharded_temperature_in_one_process() -> None:
    """One process: temperature sampling draws from one seeded generator across batches, as
    ``decode_features`` does (so the module and ``visualize.py task=captions`` agree)."""
    model, words = tiny_captioner("rnn")
    features = torch.randn(9, 8, generator=torch.Generator().manual_seed(2)) * 3
    strategy = DecodingStrategy("temperature", temperature=2.0, seed=5)
    expected, _ = decode_features(model, features, strategy, words, max_length=7, batch_size=4)
    assert decode_sharded(model, features, strategy, words, 7, batch_size=4) == expected


def test_gather_shards_rejects_inconsistent_shards() -> None:
    """Two ranks claiming the same items (e.g. different eval sets per rank) is an error, not a silent mix."""
    group = ThreadGroup(2)

    def gather(rank, all_gather):
        return gather_shards(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), 4, 2, all_gather)

    with pytest.raises(RuntimeError, match=r"hold 4 items \(2 distinct\), expected each of 0..3 once"):
        group.run(gather)
    with pytest.raises(ValueError, match="world_size=2 needs all_gather"):
        model, words = tiny_captioner()
        decode_sharded(model, torch.zeros(3, 8), DecodingStrategy(), words, 5, 0, 2, None)


def scalars(run_dir: Path) -> dict[str, float]:
    """The last value of every TensorBoard scalar under ``run_dir/tensorboard``."""
    events = sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1, f"expected one event file (rank zero's), got {events}"
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]}


def data_overrides(shapes_root: Path, batch_size: int) -> list[str]:
    return [f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
            f"data.batch_size={batch_size}"]


@pytest.mark.parametrize(
    ("overrides", "steps", "tolerance"),
    [
        pytest.param(FLOAT32_SGD, 6, {"rtol": 1e-5, "atol": 1e-6}, id="float32-sgd"),
        pytest.param(FLOAT64_ADAM, 80, {"rtol": 1e-9, "atol": 1e-11}, id="float64-adam",
                     marks=pytest.mark.slow),
    ],
)
def test_cpu_ddp_matches_single_process(
    shapes_root: Path, compose_cfg, tmp_path: Path, overrides: list[str], steps: int, tolerance: dict
) -> None:
    """2 processes x batch 10 == 1 process x batch 20: weights and val metrics.

    Also: one run folder (the relaunched rank does not make its own), checkpoints and TensorBoard
    events written once, by rank zero. The shapes split sizes are even (794 train, 300 val captions), so
    DistributedSampler adds no repeated captions and val/loss matches too.
    """
    logs = tmp_path / "logs"
    env = {**os.environ, "VISGRAD_ROOT": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("OMP_NUM_THREADS", None)  # Lightning gives each of the 2 processes one thread
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, TRAIN, "trainer=ddp", "trainer.devices=2", *data_overrides(shapes_root, 10),
         *TINY, *overrides, f"paths.log_dir={logs}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    ddp_seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted((logs / "train" / "runs").iterdir())
    assert len(runs) == 1, f"DDP made several run folders: {runs}"
    ddp_dir = runs[0]
    ddp_checkpoints = sorted(p.name for p in (ddp_dir / "checkpoints").iterdir())
    assert len(ddp_checkpoints) == 2 and ddp_checkpoints[1] == "last.ckpt", ddp_checkpoints
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr  # rank 1 joined (Lightning's log line)
    # each process's Hydra job log lands in the run folder, not in the working directory
    assert {p.name for p in ddp_dir.glob("*.log")} == {"train.log", "train_ddp_process_1.log"}
    assert not list(tmp_path.glob("*.log"))

    start = time.perf_counter()
    cfg = compose_cfg("train", [*data_overrides(shapes_root, 20), *TINY, *overrides])
    train(cfg)
    single_seconds = time.perf_counter() - start
    single_dir = Path(cfg.paths.output_dir)
    print(f"DDP 2 processes: {ddp_seconds:.1f} s (a subprocess, with start-up); "
          f"one process: {single_seconds:.1f} s")

    # the same best epoch
    assert sorted(p.name for p in (single_dir / "checkpoints").iterdir()) == ddp_checkpoints
    ddp_ckpt = torch.load(ddp_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    one_ckpt = torch.load(single_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ddp_ckpt["global_step"] == one_ckpt["global_step"] == steps
    for name, value in one_ckpt["state_dict"].items():
        torch.testing.assert_close(ddp_ckpt["state_dict"][name], value, **tolerance, msg=name)

    ddp_metrics, one_metrics = scalars(ddp_dir), scalars(single_dir)
    for name in METRICS:
        assert ddp_metrics[name] == one_metrics[name], (name, ddp_metrics[name], one_metrics[name])
    assert one_metrics["val/bleu1"] > 0.0  # trained enough for the metrics to say something
    for name in ("val/loss", "train/loss_epoch"):
        assert ddp_metrics[name] == pytest.approx(one_metrics[name], rel=1e-5), name


@pytest.mark.slow
def test_local_sweep_with_ddp_spawn(shapes_root: Path, tmp_path: Path) -> None:
    """`-m` with DDP on one machine: ddp_spawn starts the ranks from inside each job (the default `ddp`
    would relaunch the whole `-m` command line in every rank); one folder per job, nothing else."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "VISGRAD_ROOT": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run(
        [sys.executable, TRAIN, "-m", "trainer=ddp", "trainer.strategy=ddp_spawn", "model=rnn,lstm",
         *data_overrides(shapes_root, 25), *TINY, "trainer.limit_train_batches=3", f"hydra.sweep.dir={sweep}",
         f"paths.log_dir={tmp_path / 'logs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("MEMBER: 2/2") + proc.stderr.count("MEMBER: 2/2") == 2  # rank 1 of each job
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert scalars(sweep / job)["val/bleu1"] >= 0.0
    assert not (tmp_path / "logs").exists()  # no stray run folders of relaunched ranks
