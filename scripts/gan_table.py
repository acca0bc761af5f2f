"""The GAN quality table and sample grids of docs/gans.md, from a ``train.py -m experiment=gan_*`` sweep.

    python train.py -m experiment=gan_vanilla,gan_ls,gan_dc,gan_wgan_gp hydra.sweep.dir=logs/gan_sweep
    python scripts/gan_table.py logs/gan_sweep --images docs/images

Reads each job's ``metrics.json`` and ``.hydra/overrides.yaml`` and prints a Markdown table: one row per
variant (its final ``val/*`` sample quality), then the real val images (``ceiling/*``) and the untrained
generator of each generator class, e.g. "FC generator" (``floor/*``); with ``--images``, copies each
job's ``samples.png`` to ``<images>/<variant>.png`` (gan_dc.png, ...) and the ``interpolation.png`` of
``--strip`` (gan_dc) to ``<images>/<variant>_interpolation.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from omegaconf import OmegaConf

METRICS = ("confident", "entropy", "fd")
FORMATS = {"confident": ".3f", "entropy": ".3f", "fd": ".1f"}


def read_sweep(sweep_dir: Path) -> dict[str, tuple[Path, dict[str, float]]]:
    """``{variant: (job dir, final metrics)}`` of the sweep's finished jobs."""
    jobs = {}
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json")):
        job = metrics_file.parent
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        variant = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
        jobs[variant] = (job, json.loads(metrics_file.read_text()))
    if not jobs:
        raise SystemExit(f"{sweep_dir}: no finished jobs (no */metrics.json)")
    return jobs


def table(jobs: dict[str, tuple[Path, dict[str, float]]]) -> str:
    head = "| samples | confident (>= 0.9) | class entropy / log 10 | Fréchet distance |"
    lines = [head, "|---|---|---|---|"]

    def row(name: str, metrics: dict[str, float], prefix: str) -> str:
        return f"| {name} | " + " | ".join(f"{metrics[f'{prefix}/{m}']:{FORMATS[m]}}" for m in METRICS) + " |"

    for variant, (_, metrics) in jobs.items():
        lines.append(row(f"`experiment={variant}`", metrics, "val"))
    any_metrics = next(iter(jobs.values()))[1]
    lines.append(row("real val images (ceiling)", any_metrics, "ceiling"))
    floors = {}
    for variant, (job, metrics) in jobs.items():
        target = OmegaConf.load(job / ".hydra" / "config.yaml").model.generator._target_
        name = target.rsplit(".", 1)[-1].removesuffix("Generator")  # FCGenerator: "FC generator"
        floors.setdefault(f"{name} generator", (variant, metrics))
    for generator, (variant, metrics) in floors.items():
        lines.append(row(f"untrained {generator} (floor, from {variant})", metrics, "floor"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--images", type=Path, help="copy each job's samples.png here as <variant>.png")
    parser.add_argument("--strip", default="gan_dc", help="the variant whose interpolation.png is copied too")
    args = parser.parse_args()
    jobs = read_sweep(args.sweep_dir)
    print(table(jobs))
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
        for variant, (job, _) in jobs.items():
            copies = {"samples.png": f"{variant}.png"}
            if variant == args.strip:
                copies["interpolation.png"] = f"{variant}_interpolation.png"
            for source, name in copies.items():
                shutil.copyfile(job / source, args.images / name)
                print(args.images / name)


if __name__ == "__main__":
    main()
