"""Compare the captioners of one ``train.py -m`` sweep: quality, size, training and decoding time.

    python train.py -m model=rnn,lstm,transformer          # one sweep, e.g. logs/train/multiruns/<time>
    python benchmarks/captioner_table.py logs/train/multiruns/<time>

For each job of the sweep: its final val BLEU-4, CIDEr-D and METEOR (``metrics.json``, as the run printed
them), the parameter count (``checkpoints/last.ckpt``), the seconds per epoch (median gap between
consecutive ``train/loss_epoch`` events in its TensorBoard log: training plus the validation that ends the
epoch, as the run spent them) and the greedy decoding time per val image, measured here: every round
decodes the val features once with each job's last checkpoint, in rotating order, and the table shows the
medians (so load from other processes hits all models alike). Prints a Markdown table.
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

from visgrad.captioning import CaptioningModule, DecodingStrategy
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
    checkpoint = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    module = CaptioningModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    metrics = json.loads((job / "metrics.json").read_text())
    return {"job": job, "name": module.hparams.cell_type, "model": module.model.eval(),
            "max_length": module.hparams.max_length,
            "params": sum(p.numel() for p in module.model.parameters()), "metrics": metrics,
            "epoch_s": epoch_seconds(job / "tensorboard"),
            "data": OmegaConf.load(job / ".hydra" / "config.yaml").data}


def main(argv=None) -> None:
    args = parse(argv)
    os.environ.setdefault("VISGRAD_ROOT", str(ROOT))
    jobs = [load_job(path.parent) for path in sorted(args.sweep.glob("*/metrics.json"))]
    if not jobs:
        raise SystemExit(f"{args.sweep}: no job folders with metrics.json; pass a finished train.py -m sweep")
    datamodule = instantiate(jobs[0]["data"])
    datamodule.prepare_data()
    features = datamodule.eval_set("val").features
    greedy = DecodingStrategy("greedy")
    times: dict[int, list[float]] = {i: [] for i in range(len(jobs))}
    with torch.no_grad():
        for round_ in range(args.rounds + 1):  # round 0 warms up
            order = list(range(len(jobs)))
            for i in order[round_ % len(jobs):] + order[: round_ % len(jobs)]:
                start = time.perf_counter()
                for b in range(0, len(features), args.batch_size):
                    decode(jobs[i]["model"], features[b : b + args.batch_size], greedy, jobs[i]["max_length"])
                if round_:
                    times[i].append(time.perf_counter() - start)
    print(f"{args.sweep}: {len(features)} val images, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| model | BLEU-4 | CIDEr-D | METEOR | parameters | s / epoch (train + val) | decode ms / image |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for i, job in enumerate(jobs):
        m = job["metrics"]
        meteor = f"{m['val/meteor']:.3f}" if "val/meteor" in m else "n/a"
        ms = 1000 * statistics.median(times[i]) / len(features)
        print(f"| `{job['name']}` | {m['val/bleu4']:.3f} | {m['val/cider_d']:.2f} | {meteor} | "
              f"{job['params']:,} | {job['epoch_s']:.1f} | {ms:.3f} |")


if __name__ == "__main__":
    main()
