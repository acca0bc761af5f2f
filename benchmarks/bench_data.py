"""COCO-scale `shapes`: generation, loader throughput, data-wait share of training, epoch time, peak memory.

Generates the set if missing (82783 train / 40504 val images, ~331k + ~203k captions, 4096-d raw and
512-d PCA features in the COCO h5 layout, about 5 GB), then, with the features memory-mapped:

1. iterates the train loader alone (no model) with each ``--workers`` value: batches/s and feature MB/s,
   from the page cache (warm) and, with ``--cold``, after evicting the feature files from it
   (``posix_fadvise(DONTNEED)`` on those files only);
2. trains the default captioner (``conf/model/lstm.yaml``, composed by Hydra as ``train.py`` does) with
   Lightning's SimpleProfiler: time waiting for the next batch (``train_dataloader_next``) vs time in the
   training step (``run_training_batch``), the data share of the epoch's wall time, the epoch and
   validation times;
3. samples the memory of the whole process tree (main + DataLoader workers) every 0.25 s from
   ``/proc/<pid>/smaps_rollup``: peak sums of PSS (shared pages counted once: the real footprint),
   anonymous memory, and RSS (which counts the mapped feature pages in every process that touched them).

    python benchmarks/bench_data.py --cold                        # 4096-d features, 1 epoch
    python benchmarks/bench_data.py --train-workers 2             # train with 2 DataLoader workers
    python benchmarks/bench_data.py --pca --train-batches 500     # 512-d features, part of an epoch
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from pytorch_lightning.profilers import SimpleProfiler

from visgrad.data import CaptionDataModule
from visgrad.data.coco import SPLITS, features_file
from visgrad.data.shapes import ensure_shapes

ROOT = Path(__file__).resolve().parents[1]
COCO_SCALE = dict(num_train=82783, num_val=40504, feature_dim=4096)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root", type=Path, default=ROOT / "data" / "shapes_coco_scale")
    p.add_argument("--pca", action="store_true", help="512-d PCA features instead of the 4096-d raw ones")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to compare")
    p.add_argument("--loader-batches", type=int, default=None, help="batches per loader-only pass (all)")
    p.add_argument("--cold", action="store_true", help="also time the loader with the files evicted first")
    p.add_argument("--train-batches", type=int, default=None, help="training batches (a whole epoch)")
    p.add_argument("--val-batches", type=int, default=None, help="validation batches (all)")
    p.add_argument("--train-workers", type=int, default=None,
                   help="workers for training (default: data=shapes_coco_scale's num_workers)")
    return p.parse_args(argv)


class MemorySampler(threading.Thread):
    """Peak memory of this process and all its descendants, summed over processes, sampled periodically."""

    FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File")

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak = interval, dict.fromkeys(self.FIELDS, 0)
        self.peak_processes = 0
        self._done = threading.Event()

    def __enter__(self) -> MemorySampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()
        self.sample()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        pids = _tree(os.getpid())
        totals = dict.fromkeys(self.FIELDS, 0)
        for pid in pids:
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:  # the process ended meanwhile
                continue
            for field in self.FIELDS:
                match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
                totals[field] += int(match.group(1)) * 1024 if match else 0
        self.peak = {k: max(v, totals[k]) for k, v in self.peak.items()}
        self.peak_processes = max(self.peak_processes, len(pids))

    def report(self) -> str:
        gib = {k: v / 2**30 for k, v in self.peak.items()}
        return (f"peak over {self.peak_processes} processes: PSS {gib['Pss']:.2f} GiB (anonymous "
                f"{gib['Pss_Anon']:.2f}, file-backed {gib['Pss_File']:.2f}), RSS sum {gib['Rss']:.2f} GiB")


def _tree(root: int) -> list[int]:
    """``root`` and every descendant process (from the parent ids in /proc/*/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def evict(root: Path, pca: bool) -> None:
    """Drop the feature files' pages from the page cache (this process's files only)."""
    for split in SPLITS:
        fd = os.open(root / features_file(split, pca), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def loader_pass(args: argparse.Namespace, workers: int) -> str:
    """Iterate the train loader alone; returns a result line."""
    dm = CaptionDataModule(args.root, "shapes", pca_features=args.pca, batch_size=args.batch_size,
                           num_workers=workers)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    start = time.perf_counter()
    batches = items = 0
    first = None
    for features, _ in loader:
        if first is None:
            first = time.perf_counter() - start
            steady = time.perf_counter()
        batches += 1
        items += len(features)
        if args.loader_batches and batches >= args.loader_batches:
            break
    total = time.perf_counter() - start
    rate = (batches - 1) / (time.perf_counter() - steady)
    megabytes = items * features.shape[1] * 4 / 2**20
    return (f"{batches} batches of {args.batch_size} x {features.shape[1]}-d in {total:.1f} s: "
            f"{rate:.0f} batches/s after the first ({first * 1e3:.0f} ms), "
            f"{megabytes / total:.0f} MB/s of features")


def train_epoch(args: argparse.Namespace, workers: int | None) -> None:
    """One epoch of the default captioner as `train.py` composes it, profiled."""
    overrides = [
        "data=shapes_coco_scale",
        f"data.root={args.root}",
        f"data.pca_features={str(args.pca).lower()}",
        f"data.batch_size={args.batch_size}",
        *([] if workers is None else [f"data.num_workers={workers}"]),
        "model.meteor=false",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    pl.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(cfg.model, **datamodule.model_kwargs())
    clock = EpochClock()
    profiler = SimpleProfiler(dirpath=tempfile.mkdtemp(prefix="bench_data_"), filename="profile")
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        gradient_clip_val=cfg.trainer.gradient_clip_val, profiler=profiler, callbacks=[clock],
        limit_train_batches=args.train_batches, limit_val_batches=args.val_batches,
    )
    trainer.fit(model, datamodule=datamodule)
    durations = profiler.recorded_durations
    wait = np.asarray(durations["[_TrainingEpochLoop].train_dataloader_next"])
    step = np.asarray(durations["run_training_batch"])
    train_time = clock.validation_start - clock.epoch_start
    captions = min(len(datamodule.dataset_for("train")), len(step) * args.batch_size)
    net = cfg.model.net
    print(f"  model: {net.cell_type} W={net.wordvec_dim} H={net.hidden_dim}, input_dim "
          f"{model.net.input_dim}, {torch.get_num_threads()} torch threads, {cfg.data.num_workers} workers")
    print(f"  training: {len(step)} steps, {captions} captions in {train_time:.1f} s "
          f"({captions / train_time:.0f} captions/s); steps {step.sum():.1f} s in all, median "
          f"{np.median(step) * 1e3:.1f} ms, mean {step.mean() * 1e3:.1f} ms, p90 "
          f"{np.percentile(step, 90) * 1e3:.1f} ms")
    print(f"  waiting for data: {wait.sum():.2f} s in all = {100 * wait.sum() / train_time:.1f}% of the "
          f"training time (median {np.median(wait) * 1e3:.2f} ms, p99 "
          f"{np.percentile(wait, 99) * 1e3:.1f} ms, first {wait[0] * 1e3:.0f} ms)")
    print(f"  validation (val loss over {len(durations['[_EvaluationLoop].val_next'])} batches + caption "
          f"metrics on {cfg.data.max_eval_images} images): "
          f"{clock.validation_end - clock.validation_start:.1f} s; "
          f"epoch {clock.validation_end - clock.epoch_start:.1f} s")


class EpochClock(pl.Callback):
    """When the (first) training epoch and its validation start and end."""

    def __init__(self) -> None:
        self.epoch_start = self.validation_start = self.validation_end = 0.0

    def on_train_epoch_start(self, *args) -> None:
        self.epoch_start = time.perf_counter()

    def on_validation_start(self, *args) -> None:
        self.validation_start = time.perf_counter()

    def on_validation_end(self, *args) -> None:
        self.validation_end = time.perf_counter()


def main(argv=None) -> None:
    args = parse(argv)
    start = time.perf_counter()
    ensure_shapes(args.root, **COCO_SCALE)
    print(f"dataset {args.root} ready in {time.perf_counter() - start:.1f} s")
    with MemorySampler() as setup_memory:
        dm = CaptionDataModule(args.root, "shapes", pca_features=args.pca)
        start = time.perf_counter()
        dm.setup("fit")
        print(f"setup (checks, CRC-32 and finiteness scan of the features): "
              f"{time.perf_counter() - start:.1f} s; "
              f"{len(dm.dataset_for('train'))} train / {len(dm.dataset_for('val'))} val captions, "
              f"{dm.model_kwargs()['input_dim']}-d features")
    print(f"  memory after setup: {setup_memory.report()}")
    for workers in args.workers:
        runs = [("warm", False), ("cold", True)] if args.cold else [("warm", False)]
        for label, cold in runs:
            if cold:
                evict(args.root, args.pca)
            with MemorySampler() as memory:
                line = loader_pass(args, workers)
            print(f"loader alone, {workers} workers, {label}: {line}\n  {memory.report()}")
    print("training one epoch (default LSTM):")
    with MemorySampler() as memory:
        train_epoch(args, args.train_workers)
    print(f"  {memory.report()}")


if __name__ == "__main__":
    main()
