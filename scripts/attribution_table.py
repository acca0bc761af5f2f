"""Every attribution method side by side on every real photo the installed packages ship, and on `shapes`.

Three ``visualize.py`` runs (each a normal run folder under ``--out``), then one Markdown table:

1. ``task=saliency`` with every method on the photos: deletion and insertion AUC, seconds per image;
2. ``task=sanity_checks`` with every method on the same photos, the task's own verdict (cascading
   randomisation of Lite0, 4 blocks per step, Spearman |map| averaged over the 5 steps), without the
   independent randomisation; occlusion and RISE with cheaper settings there (:data:`SANITY_CHEAPER`:
   patch 56 / stride 28, i.e. 49 windows instead of 169, and 100 masks instead of 500), as they are
   computed 6 times per photo;
3. ``classifier=shapes task=saliency`` with every method: the pointing game on the shapes validation set
   (the shapes classifier is trained once on first use, about a minute); occlusion with patch 8 / stride 4
   there (:data:`SHAPES_OCCLUSION`), about the same share of the 64-pixel images as the default 32 / 16
   of Lite0's 224 pixels.

The photos: scikit-image's colour photos (``astronaut``, ``chelsea``, ``coffee``, ``hubble_deep_field``,
``ihc``, ``motorcycle_left``, ``retina``, ``rocket``), scikit-learn's ``china.jpg`` and ``flower.jpg``,
matplotlib's ``grace_hopper.jpg`` (11; nothing is downloaded).

    python scripts/attribution_table.py                      # runs all three, prints the tables
    python scripts/attribution_table.py --runs sanity        # redo one run, read the others from --out
    python scripts/attribution_table.py --runs               # no run: the tables from the runs in --out
    python scripts/attribution_table.py --extra task.rise.num_masks=1000

Writes ``attribution_table.md`` (the comparison) and ``sanity_table.md`` (the sanity run's own table)
under ``--out``. The three runs took 19.5 minutes (about 9, 9 and 2.5) with ``OMP_NUM_THREADS=1`` on a
shared 2-core machine under load (an upper bound).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("vanilla", "smoothgrad", "integrated_gradients", "input_x_gradient", "guided_backprop", "gradcam",
           "guided_gradcam", "occlusion", "rise")
SANITY_CHEAPER = ("task.occlusion.patch=56", "task.occlusion.stride=28", "task.rise.num_masks=100")
SHAPES_OCCLUSION = ("task.occlusion.patch=8", "task.occlusion.stride=4")
RUNS = ("saliency", "sanity", "shapes")
SKIMAGE = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
           "motorcycle_left.png", "retina.jpg", "rocket.jpg")


def photos() -> list[Path]:
    """The paths of the photos (module docstring), from the installed packages."""
    import matplotlib.cbook
    import skimage.data
    import sklearn.datasets

    skimage_dir = Path(skimage.data.__file__).parent
    sklearn_dir = Path(sklearn.datasets.__file__).parent / "images"
    paths = [skimage_dir / name for name in SKIMAGE] + [sklearn_dir / "china.jpg", sklearn_dir / "flower.jpg"]
    paths.append(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise SystemExit(f"photos not found (reinstall scikit-image / scikit-learn / matplotlib): {missing}")
    return paths


def visualize(out: Path, *overrides: str) -> dict[str, float]:
    """Run ``visualize.py`` with ``overrides`` into the run folder ``out``; its metrics."""
    command = [sys.executable, str(ROOT / "visualize.py"), *overrides, f"hydra.run.dir={out}",
               "print_config=false"]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "VISGRAD_ROOT": str(ROOT)})
    return read_metrics(out)


def read_metrics(out: Path) -> dict[str, float]:
    path = out / "metrics.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: run it first (--runs {out.name})")
    return json.loads(path.read_text())


def table(saliency: dict, sanity: dict, shapes: dict, methods: list[str]) -> str:
    """The Markdown table of the three runs' metrics."""
    from visgrad.vision.attribution import ATTRIBUTIONS

    images = saliency["saliency/num_images"]
    lines = [f"| method | deletion AUC ↓ | insertion AUC ↑ | s / image | "
             f"Spearman \\|map\\| over the cascade | sanity (< {sanity['sanity/threshold']}) | "
             "pointing game (shapes) ↑ |",
             "|---|--:|--:|--:|--:|:-:|--:|"]
    for name in methods:
        passed = "pass" if sanity[f"sanity/{name}/passed"] else "FAIL"
        lines.append(
            f"| {ATTRIBUTIONS.get(name).label} | {saliency[f'saliency/{name}/deletion_auc']:.3f} | "
            f"{saliency[f'saliency/{name}/insertion_auc']:.3f} | "
            f"{saliency[f'saliency/{name}/seconds'] / images:.2f} | "
            f"{sanity[f'sanity/{name}/cascade_spearman_abs']:.3f} | {passed} | "
            f"{shapes[f'saliency/{name}/pointing_game']:.3f} |")
    lines.append(f"| random order | {saliency['saliency/random/deletion_auc']:.3f} | "
                 f"{saliency['saliency/random/insertion_auc']:.3f} | | | | "
                 f"{shapes['saliency/random/pointing_game']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "logs" / "attribution_table")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--runs", nargs="*", default=list(RUNS), choices=RUNS,
                   help="the runs to (re)do; the others are read from --out (none: only the tables)")
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for every run")
    args = p.parse_args(argv)
    out = args.out.resolve()
    methods = f"task.methods=[{','.join(args.methods)}]"
    images = "task.images=[" + ",".join(str(path) for path in photos()) + "]"
    overrides = {
        "saliency": ["task=saliency", methods, images, "task.num_show=6"],
        "sanity": ["task=sanity_checks", methods, images, "task.num_images=null", "task.independent=false",
                   *SANITY_CHEAPER],
        "shapes": ["classifier=shapes", "task=saliency", methods, "task.num_show=6", *SHAPES_OCCLUSION],
    }
    metrics = {name: visualize(out / name, *overrides[name], *args.extra) if name in args.runs
               else read_metrics(out / name) for name in RUNS}
    text = table(metrics["saliency"], metrics["sanity"], metrics["shapes"], args.methods)
    (out / "attribution_table.md").write_text(text + "\n")
    print(text)
    print((out / "sanity" / "sanity_table.md").read_text())


if __name__ == "__main__":
    main()
