"""Compare the captioners of one ``train.py -m`` sweep: quality, size, training and decoding time.

    python train.py -m model=rnn,lstm,transformer          # one sweep, e.g. logs/train/multiruns/<time>
    python benchmarks/captioner_table.py logs/train/multiruns/<time>

For each job of the sweep: its final val BLEU-4, CIDEr-D and METEOR (``metrics.json``, as the run printed
them), the parameter count (``checkpoints/last.ckpt``), the seconds per epoch the run spent (median gap
between consecutive ``train/loss_epoch`` events in its TensorBoard log: training plus the validation that
ends the epoch; jobs run one after the other, so load from other processes can differ between them), and
two times measured here with every model in turn in each round (rotating order, medians, so such load hits
all alike): the training seconds per epoch (one training step (loss, backward, Adam) on a batch of the
training data, times the steps of an epoch) and the greedy decoding time per val image (the job's last
checkpoint decoding all val features). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.captioning import CaptioningModule, DecodingStrategy, load_captioner
from visgrad.captioning.decoding import decode

ROOT = Path(__file__).resolve().parents[1]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sweep", type=Path, help="the sweep folder (logs/train/multiruns/<time>)")
    p.add_argument("--rounds", type=int, default=5, help="timed decoding rounds per model")
    p.add_argument("--batch-size", type=int, default=500, help="images decoded at once")
    return p.parse_args(argv)


def epoch_seconds(tensorboard: Path) -> float:
    accumulator = EventAccumulator(str(tensorboard))
    accumulator.Reload()
    times = sorted(event.wall_time for event in accumulator.Scalars("train/loss_epoch"))
    if len(times) < 2:
        raise ValueError(f"{tensorboard}: fewer than two epochs logged; train at least 2 epochs")
    return statistics.median(b - a for a, b in zip(times, times[1:], strict=False))


def load_job(job: Path) -> dict:
    """A finished job of the sweep: its captioner (rebuilt from the checkpoint's stored net config), metrics
    and config; named by its model choice (rnn, lstm, transformer)."""
    module = load_captioner(job / "checkpoints" / "last.ckpt")
    metrics = json.loads((job / "metrics.json").read_text())
    config = OmegaConf.load(job / ".hydra" / "config.yaml")
    choices = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.runtime.choices
    return {"job": job, "name": choices.model, "model": module.net,
            "hparams": dict(module.hparams), "optimizer": config.model.optimizer,
            "max_length": module.hparams.max_length,
            "params": sum(p.numel() for p in module.net.parameters()), "metrics": metrics,
            "epoch_s": epoch_seconds(job / "tensorboard"),
            "data": config.data}


def timed_rounds(calls: list, rounds: int) -> list[float]:
    """Median seconds of each zero-argument callable, every round calling all in a rotating order."""
    times: list[list[float]] = [[] for _ in calls]
    for round_ in range(rounds + 1):  # round 0 warms up
        order = list(range(len(calls)))
        for i in order[round_ % len(calls):] + order[: round_ % len(calls)]:
            start = time.perf_counter()
            calls[i]()
            if round_:
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def train_step(job: dict, features: torch.Tensor, captions: torch.Tensor):
    """A training step of a fresh model with the job's hyperparameters and optimizer (from its config)."""
    module = CaptioningModule(**job["hparams"])
    optimizer = instantiate(job["optimizer"])(params=module.parameters())

    def step() -> None:
        optimizer.zero_grad()
        module.net.loss(features, captions).backward()
        optimizer.step()

    return step


def main(argv=None) -> None:
    args = parse(argv)
    os.environ.setdefault("VISGRAD_ROOT", str(ROOT))
    jobs = [load_job(path.parent) for path in sorted(args.sweep.glob("*/metrics.json"))]
    if not jobs:
        raise SystemExit(f"{args.sweep}: no job folders with metrics.json; pass a finished train.py -m sweep")
    datamodule = instantiate(jobs[0]["data"])
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batch_features, batch_captions = next(iter(loader))
    steps = [train_step(job, batch_features, batch_captions) for job in jobs]
    step_seconds = timed_rounds(steps, 3 * args.rounds)
    features = datamodule.eval_set("val").features
    greedy = DecodingStrategy("greedy")

    def decoder(job):
        @torch.no_grad()
        def run() -> None:
            for b in range(0, len(features), args.batch_size):
                decode(job["model"], features[b : b + args.batch_size], greedy, job["max_length"])
        return run

    decode_seconds = timed_rounds([decoder(job) for job in jobs], args.rounds)
    print(f"{args.sweep}: {len(loader)} training steps of {len(batch_captions)} captions per epoch, "
          f"{len(features)} val images, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | BLEU-4 | CIDEr-D | METEOR | parameters | train s / epoch "
          "| run's s / epoch (train + val) | decode ms / image |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for i, job in enumerate(jobs):
        m = job["metrics"]
        meteor = f"{m['val/meteor']:.3f}" if "val/meteor" in m else "n/a"
        print(f"| `{job['name']}` | {m['val/bleu4']:.3f} | {m['val/cider_d']:.2f} | {meteor} "
              f"| {job['params']:,} | {step_seconds[i] * len(loader):.1f} | {job['epoch_s']:.1f} "
              f"| {1000 * decode_seconds[i] / len(features):.2f} |")


if __name__ == "__main__":
    main()
