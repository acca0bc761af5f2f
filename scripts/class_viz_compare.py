"""Pixel vs Fourier class visualization side by side, from a ``visualize.py -m task=class_viz`` sweep.

    python visualize.py -m task=class_viz task.param=pixel,fourier \
        task.target=tarantula,gorilla,flamingo,goldfinch hydra.sweep.dir=logs/class_viz_compare
    python scripts/class_viz_compare.py logs/class_viz_compare --out docs/images/class_viz_compare.png \
        --colors 256

Reads each job's final image (``class_viz_<index>_<class>_<param>_final.png``) and ``metrics.json``,
draws one row per method and one column per class, and prints a Markdown table of the target probability
of the final image and its mean over 32 random crops/rescales (with the share of crops still top-1).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from visgrad.tasks.figures import class_viz_grid_figure, save_figure
from visgrad.vision.parameterizations import PARAMETERIZATIONS

METHODS = ("pixel", "fourier")  # the rows, in this order (names of PARAMETERIZATIONS)
FINAL = re.compile(rf"class_viz_(\d+)_(.+)_({'|'.join(PARAMETERIZATIONS.names())})_final\.png$")


def read_sweep(sweep_dir: Path) -> dict[tuple[str, str], dict]:
    """``{(method, class): {"image": (1, 3, H, W) in [0, 1], "metrics": {...}}}`` from the job folders."""
    runs: dict[tuple[str, str], dict] = {}
    for final in sorted(sweep_dir.glob("*/class_viz_*_final.png"), key=lambda p: int(p.parent.name)
                        if p.parent.name.isdigit() else 0):
        match = FINAL.search(final.name)
        metrics_file = final.parent / "metrics.json"
        if not match or not metrics_file.is_file():
            continue
        pixels = torch.from_numpy(np.asarray(Image.open(final).convert("RGB"), dtype=np.float32) / 255)
        runs[(match.group(3), match.group(2))] = {
            "image": pixels.permute(2, 0, 1)[None], "metrics": json.loads(metrics_file.read_text())}
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the hydra.sweep.dir of a task=class_viz -m run")
    parser.add_argument("--out", type=Path, default=Path("class_viz_compare.png"), help="figure (PNG)")
    parser.add_argument("--colors", type=int, default=0,
                        help="quantise the PNG to this many colours (256 keeps a docs figure small)")
    args = parser.parse_args(argv)
    runs = read_sweep(args.sweep_dir)
    classes = list(dict.fromkeys(name for _, name in runs))
    missing = [f"{m}/{c}" for m in METHODS for c in classes if (m, c) not in runs]
    if not classes or missing:
        print(f"{args.sweep_dir}: need finished jobs of task.param=pixel,fourier for every class; "
              f"missing: {', '.join(missing) or 'all'}", file=sys.stderr)
        return 1
    images = [[runs[(method, c)]["image"] for c in classes] for method in METHODS]
    metrics = [[runs[(method, c)]["metrics"] for c in classes] for method in METHODS]
    titles = [[f"{c.replace('_', ' ')}\np = {m['class_viz/final_prob']:.2f}, "
               f"crops {m['class_viz/crop_prob']:.2f}" for c, m in zip(classes, row, strict=True)]
              for row in metrics]
    save_figure(class_viz_grid_figure(images, list(METHODS), titles), args.out)
    if args.colors:
        with Image.open(args.out) as figure:
            quantised = figure.convert("RGB").quantize(args.colors)
        quantised.save(args.out, optimize=True)
    print(f"figure: {args.out}")
    print("| class | pixel: p | pixel: crops p (top-1) | fourier: p | fourier: crops p (top-1) |")
    print("|---|--:|--:|--:|--:|")
    for c in classes:
        cells = []
        for method in METHODS:
            m = runs[(method, c)]["metrics"]
            cells += [f"{m['class_viz/final_prob']:.3f}",
                      f"{m['class_viz/crop_prob']:.3f} ({m['class_viz/crop_top1']:.2f})"]
        print(f"| {c.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
