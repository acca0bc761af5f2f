"""The captioner comparison of docs/attention.md: quality, grounding, size and time of finished train.py runs.

    python train.py -m model=rnn,lstm,transformer data=shapes,shapes_hard
    python train.py -m model=lstm_attention,transformer_spatial data=shapes_grid,shapes_hard_grid
    python scripts/attention_table.py logs/train/multiruns/<time 1> logs/train/multiruns/<time 2>

Each argument is a run folder or a sweep folder (every job under it with a ``metrics.json``). For each run:
its data and model choices and its features (``data.grid``, or the folder's vectors), the final val
BLEU-4, CIDEr-D, METEOR and grounding (attention mass on the named object and pointing accuracy, with the
uniform-attention baseline in brackets; "-" for a network without attention maps), the parameter count
(``checkpoints/last.ckpt``) and the seconds per epoch the run spent (median gap between consecutive
``train/loss_epoch`` events of its TensorBoard log: training plus validation, under whatever load the
machine had). Prints a Markdown table, rows sorted by data then model.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

MODELS = ("rnn", "lstm", "transformer", "lstm_attention", "transformer_spatial")


def epoch_seconds(run: Path) -> float:
    """Median seconds between consecutive epoch ends of a run (nan with fewer than two epochs)."""
    times = []
    for events in sorted((run / "tensorboard").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "train/loss_epoch" in accumulator.Tags()["scalars"]:
            times += [e.wall_time for e in accumulator.Scalars("train/loss_epoch")]
    times.sort()
    return statistics.median(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else \
        float("nan")


def row(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    choices = OmegaConf.load(run / ".hydra" / "hydra.yaml").hydra.runtime.choices
    grid = OmegaConf.load(run / ".hydra" / "config.yaml").data.get("grid")
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    return {"model": choices.model, "data": choices.data, "features": grid or "vectors", "metrics": metrics,
            "params": sum(v.numel() for k, v in state.items() if k.startswith("net.")),
            "epoch_s": epoch_seconds(run)}


def runs(folders: list[Path]) -> list[Path]:
    found = []
    for folder in folders:
        found += [folder] if (folder / "metrics.json").is_file() else \
            sorted(p.parent for p in folder.glob("*/metrics.json"))
    if not found:
        raise SystemExit(f"no finished runs (metrics.json) in {', '.join(map(str, folders))}")
    return found


def grounding(m: dict, key: str) -> str:
    value = m.get(f"val/grounding/{key}")
    return "-" if value is None else f"{value:.3f} ({m[f'val/grounding/{key}_uniform']:.3f})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="run or sweep folders of train.py")
    rows = [row(run) for run in runs(p.parse_args(argv).folders)]
    order = {name: i for i, name in enumerate(MODELS)}
    rows.sort(key=lambda r: (r["data"].replace("_grid", ""), order.get(r["model"], len(order)), r["model"]))
    print("| data | model | features | BLEU-4 | CIDEr-D | METEOR | grounding mass (uniform) "
          "| pointing (uniform) | parameters | run's s / epoch |")
    print("|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        m = r["metrics"]
        meteor = f"{m['val/meteor']:.3f}" if "val/meteor" in m else "n/a"
        print(f"| `{r['data']}` | `{r['model']}` | {r['features']} | {m['val/bleu4']:.3f} "
              f"| {m['val/cider_d']:.2f} | {meteor} | {grounding(m, 'mass')} | {grounding(m, 'pointing')} "
              f"| {r['params']:,} | {r['epoch_s']:.0f} |")


if __name__ == "__main__":
    main()
