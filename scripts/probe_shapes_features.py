"""Linear probes: how well do the `shapes` features encode what the captions say?

For each object slot (objects left to right, so slot order is the left/right relation) a multinomial
logistic regression predicts the kind, colour and size (or "no object") from the features; one more
predicts the object count. Prints train and val accuracies and the fraction of val images whose every
slot is right (an upper bound on exactly-right captions from a linear read-out).

    python scripts/probe_shapes_features.py --root data/shapes [--raw]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from visgrad.data.coco import load_coco_data
from visgrad.data.shapes import COLOURS, KINDS, SIZES, ensure_shapes, load_shapes_objects


def fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float = 1e-4) -> torch.nn.Linear:
    """Multinomial logistic regression fitted with L-BFGS. x: (N, D) float, y: (N,) long."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), y) + weight_decay * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/shapes"))
    parser.add_argument("--raw", action="store_true", help="probe the raw features instead of the PCA ones")
    args = parser.parse_args()
    start = time.perf_counter()
    root = ensure_shapes(args.root)
    data = load_coco_data(root, pca_features=not args.raw)
    features = {s: torch.from_numpy(data[f"{s}_features"]) for s in ("train", "val")}
    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    features = {s: (f - mean) / std for s, f in features.items()}
    objects = {s: torch.from_numpy(load_shapes_objects(root, s).astype(np.int64)) for s in ("train", "val")}

    targets = {"count": ({s: (o[:, :, 0] >= 0).sum(1) for s, o in objects.items()}, 4)}
    for slot in range(3):
        for field, names in enumerate((KINDS, COLOURS, SIZES)):
            name = f"object {slot + 1} {('kind', 'colour', 'size')[field]}"
            targets[name] = ({s: o[:, slot, field] + 1 for s, o in objects.items()}, len(names) + 1)

    table = Table(
        title=f"linear probes on {'raw' if args.raw else 'PCA'} features "
        f"({features['train'].shape[1]}-d) of {root}"
    )
    for column in ("target", "train acc", "val acc"):
        table.add_column(column, justify="right")
    all_right = torch.ones(len(features["val"]), dtype=torch.bool)
    for name, (y, classes) in targets.items():
        probe = fit_probe(features["train"], y["train"], classes)
        with torch.no_grad():
            right = {s: probe(features[s]).argmax(1) == y[s] for s in ("train", "val")}
        all_right &= right["val"]
        table.add_row(name, f"{right['train'].float().mean():.4f}", f"{right['val'].float().mean():.4f}")
    table.add_row("all of the above (val images)", "", f"{all_right.float().mean():.4f}")
    Console().print(table)
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
