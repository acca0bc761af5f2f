"""Linear probes: how well do the `shapes` features encode what the captions say?

For each object slot (objects left to right, so slot order is the left/right relation) a multinomial
logistic regression predicts the kind, colour and size (or "no object") from the centred features;
one more predicts the object count. Reports train and val accuracies and the fraction of val images whose
every slot is right (an upper bound on exactly-right captions from a linear read-out).

    python -m visgrad.data.shapes_probe --root data/shapes [--raw]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch

from visgrad.data.coco import SPLITS, load_coco_data
from visgrad.data.shapes import COLOURS, KINDS, MANIFEST, SIZES, ensure_shapes, load_shapes_objects

ALL_SLOTS = "all of the above"


def fit_probe(
    x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float = 1e-4, max_iter: int = 300
) -> torch.nn.Linear:
    """Multinomial logistic regression fitted with L-BFGS. x: (N, D) float, y: (N,) long."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), y) + weight_decay * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


def probe_accuracies(
    root: str | Path, pca_features: bool = True, only: Collection[str] | None = None, max_iter: int = 300
) -> dict[str, tuple[float, float]]:
    """``{target: (train accuracy, val accuracy)}`` of linear probes on a `shapes` folder's features.

    Targets: ``count`` and ``object {1,2,3} {kind,colour,size}`` (or just those in ``only``); ``all of the
    above`` has the fraction of images with every probed target right. Features are centred and divided by
    their mean standard deviation (one factor, so that near-constant PCA directions stay small).
    """
    data = load_coco_data(root, pca_features=pca_features)
    features = {s: torch.from_numpy(np.array(data[f"{s}_features"])) for s in SPLITS}
    mean, scale = features["train"].mean(0), features["train"].std(0).mean()
    features = {s: (f - mean) / scale for s, f in features.items()}
    objects = {s: torch.from_numpy(load_shapes_objects(root, s).astype(np.int64)) for s in SPLITS}

    targets = {"count": ({s: (o[:, :, 0] >= 0).sum(1) for s, o in objects.items()}, 4)}
    for slot in range(3):
        for field, (name, names) in enumerate((("kind", KINDS), ("colour", COLOURS), ("size", SIZES))):
            targets[f"object {slot + 1} {name}"] = ({s: o[:, slot, field] + 1 for s, o in objects.items()},
                                                    len(names) + 1)  # fmt: skip
    results = {}
    all_right = {s: torch.ones(len(features[s]), dtype=torch.bool) for s in SPLITS}
    for name, (y, classes) in targets.items():
        if only is not None and name not in only:
            continue
        probe = fit_probe(features["train"], y["train"], classes, max_iter=max_iter)
        with torch.no_grad():
            right = {s: probe(features[s]).argmax(1) == y[s] for s in SPLITS}
        for s in SPLITS:
            all_right[s] &= right[s]
        results[name] = tuple(right[s].float().mean().item() for s in SPLITS)
    results[ALL_SLOTS] = tuple(all_right[s].float().mean().item() for s in SPLITS)
    return results


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("data/shapes"), help="default-size one made if missing"
    )
    parser.add_argument("--raw", action="store_true", help="probe the raw features instead of the PCA ones")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = args.root if (args.root / MANIFEST).is_file() else ensure_shapes(args.root)  # as generated
    results = probe_accuracies(root, pca_features=not args.raw)
    dim = load_coco_data(root, pca_features=not args.raw)["train_features"].shape[1]
    table = Table(title=f"linear probes on {'raw' if args.raw else 'PCA'} features ({dim}-d) of {root}")
    for column in ("target", "train acc", "val acc"):
        table.add_column(column, justify="right")
    for name, (train, val) in results.items():
        table.add_row(name, f"{train:.4f}", f"{val:.4f}")
    Console().print(table)
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
