"""One judge, one table: every generative model of a sweep on the same judge (docs/generative.md).

    python train.py -m experiment=gan_vanilla,gan_ls,gan_dc,gan_wgan_gp hydra.sweep.dir=logs/gan_sweep
    python train.py experiment=ddpm hydra.run.dir=logs/ddpm_run
    python scripts/generative_table.py --gan logs/gan_sweep --ddpm logs/ddpm_run --images docs/images

``--gan`` takes sweep folders and single run folders (``train.py experiment=gan_X hydra.run.dir=...``).

Trains the judge of the runs' ``SampleQualityMetrics`` again (same data, seed and epochs: the same judge),
loads each run's ``checkpoints/last.ckpt`` (the final epoch, whose ``val/*`` metrics.json holds), draws
``--num-samples`` images (as many as val images, like the runs) and prints a Markdown table: confident
fraction, class entropy, Fréchet distance, precision and recall (k = 3), the collapsed fraction and the
sampling time per 1,000 images
(wall clock, one process, the load average printed above the table), for each GAN, for the DDPM's
ancestral sampler and DDIM at ``--ddim-steps`` steps (guidance scale 1), for DDIM 50 at the ``--cfg-scales``,
then the real val images (ceiling) and the untrained generators (floor, from each run's metrics.json); for
each GAN also how many of the 64 samples of its grid (``samples.png``, the fixed noise) are collapsed. With
``--sampler-samples N``: a second table compares the DDPM's samplers on N samples each (N may exceed the
val images: the distance is to the training digits' features): the ancestral sampler and DDIM at each of
``--ddim-steps``, with each distance divided by the ancestral sampler's and each speed-up over it. With
``--images``: ``gan_and_ddpm_samples.png`` (40 samples of each GAN and of DDIM 50, spread over the draw,
side by side), and the DDPM run's ``chain.png`` and ``guidance.png`` copied as ``ddpm_chain.png`` and
``ddpm_guidance.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from visgrad.data.digits import DigitsDataModule
from visgrad.data.labelled_images import LabelledImages
from visgrad.diffusion import DiffusionModule
from visgrad.gan import GANModule
from visgrad.gan.figures import sample_grid
from visgrad.gan.metrics import SCORES, SampleQuality

FORMATS = {"confident": ".3f", "entropy": ".3f", "fd": ".1f", "precision": ".3f", "recall": ".3f",
           "collapsed": ".3f"}
HEAD = (
    "| samples | confident (>= 0.9) | class entropy / log 10 | Fréchet distance | precision | recall "
    "| collapsed | s / 1000 images |\n|---|---|---|---|---|---|---|---|"
)
SEED = 1  # the noise seed of the runs' metrics (SampleQualityMetrics: seed + 1)


def judge(num_val: int, data_seed: int, max_train: int, epochs: int) -> tuple[SampleQuality, LabelledImages]:
    data = DigitsDataModule(num_val=num_val, seed=data_seed)
    data.setup("fit")
    train = data.splits["train"]
    train = LabelledImages(train.images[:max_train], train.labels[:max_train], train.class_names)
    return SampleQuality(train, epochs=epochs, seed=0), data.splits["val"]


def timed(generate, n: int) -> tuple[torch.Tensor, float]:
    """The samples of ``generate(n)`` and the seconds per 1,000 images."""
    start = time.perf_counter()
    images = generate(n)
    return images, (time.perf_counter() - start) * 1000 / n


def row(name: str, scores: dict[str, float], seconds: float | None) -> str:
    cells = [f"{scores[m]:{FORMATS[m]}}" for m in SCORES]
    time = "" if seconds is None else f"{seconds:.{2 if seconds < 10 else 1}f}"
    return f"| {name} | " + " | ".join(cells) + f" | {time} |"


def floor_row(name: str, run: Path) -> list[str]:
    """The run's ``floor/*`` (its untrained generator, from its metrics.json) as a row (none while the run
    has not finished)."""
    path = run / "metrics.json"
    if not path.is_file():
        return []
    metrics = json.loads(path.read_text())
    return [row(name, {m: metrics.get(f"floor/{m}", float("nan")) for m in SCORES}, None)]


def gan_jobs(folders: list[Path]) -> dict[str, Path]:
    """``{command: run folder}`` of the finished runs in ``folders`` (sweep or run folders); the command is
    the run's experiment and its other overrides (those of Hydra and of the console left out)."""
    jobs = {}
    found = [folder / "metrics.json" for folder in folders if (folder / "metrics.json").is_file()]
    for metrics in found + sorted(m for folder in folders for m in folder.glob("*/metrics.json")):
        overrides = OmegaConf.load(metrics.parent / ".hydra" / "overrides.yaml")
        shown = [o for o in overrides if not o.startswith(("hydra.", "print_config", "callbacks.rich"))]
        jobs[" ".join(sorted(shown, key=lambda o: not o.startswith("experiment=")))] = metrics.parent
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gan", type=Path, nargs="*", default=[],
                        help="train.py -m sweep folders of GAN runs, or GAN run folders")
    parser.add_argument("--ddpm", type=Path, help="the run folder of experiment=ddpm")
    parser.add_argument("--num-samples", type=int, default=300, help="samples per row (<= --num-val)")
    parser.add_argument("--num-val", type=int, default=300, help="the runs' data.num_val (the judge's split)")
    parser.add_argument("--ddim-steps", type=int, nargs="*", default=[10, 20, 50, 100])
    parser.add_argument("--cfg-scales", type=float, nargs="*", default=[0.0, 2.0, 4.0])
    parser.add_argument("--no-ancestral", action="store_true", help="skip the 1,000-step sampler (slow)")
    parser.add_argument("--sampler-samples", type=int, default=0,
                        help="also compare the DDPM's samplers on this many samples each (0: no)")
    parser.add_argument("--images", type=Path, help="write the figures here")
    args = parser.parse_args()
    quality, val = judge(args.num_val, 0, 10000, 5)
    n = args.num_samples
    print(
        f"judge accuracy on the val digits: {quality.accuracy(val):.3f}; torch threads: "
        f"{torch.get_num_threads()}; load average at start: {os.getloadavg()[0]:.1f}"
    )
    rows, grids, floors, notes = [], {}, [], []

    def add(name: str, generate, title: str | None = None) -> None:
        """A row; with ``title``, also a panel of the figure."""
        images, seconds = timed(generate, n)
        rows.append(row(name, quality.score(images), seconds))
        if title:
            grids[title] = images[torch.linspace(0, n - 1, 40).long()]  # spread over the classes
        print(rows[-1], flush=True)

    for command, job in gan_jobs(args.gan).items():
        module = GANModule.load_from_checkpoint(job / "checkpoints" / "last.ckpt", map_location="cpu")
        variant = command.split()[0].removeprefix("experiment=")
        add(f"`{command}`", lambda k, m=module: m.generate(k, SEED), variant)
        fixed = quality.score(module.sample(module.fixed_noise))["collapsed"] * len(module.fixed_noise)
        notes.append(f"{variant}: {fixed:.0f} of the {len(module.fixed_noise)} samples of samples.png "
                     "collapsed")
        floors += floor_row(f"untrained generator of {variant} (floor)", job)
    if args.ddpm:
        ddpm = DiffusionModule.load_from_checkpoint(
            args.ddpm / "checkpoints" / "last.ckpt", map_location="cpu"
        )
        if not args.no_ancestral:
            add("DDPM, ancestral (1000 steps)", lambda k: ddpm.generate(k, SEED, sampling_timesteps=None))
        for steps in args.ddim_steps:
            add(f"DDPM, DDIM {steps} steps", lambda k, s=steps: ddpm.generate(k, SEED, sampling_timesteps=s),
                f"DDPM, DDIM {steps} steps" if steps == 50 else None)
        for scale in args.cfg_scales:
            add(
                f"DDPM, DDIM 50 steps, guidance {scale:g}",
                lambda k, c=scale: ddpm.generate(k, SEED, sampling_timesteps=50, cfg_scale=c),
            )
        floors += floor_row("untrained DDPM (floor)", args.ddpm)
    rows.append(row("real val images (ceiling)", quality.score(val.images[:n]), None))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}\n")
    print(HEAD)
    print("\n".join(rows + floors))
    print("\n".join(["", *notes]))
    if args.ddpm and args.sampler_samples:
        print(f"\nThe DDPM's samplers, {args.sampler_samples} samples each\n")
        print("\n".join(sampler_rows(quality, ddpm, args.sampler_samples, args.ddim_steps)))
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
        panels = [sample_grid(images, 8, 1) for images in grids.values()]
        figure(panels, list(grids), args.images / "gan_and_ddpm_samples.png")
        for name in ("chain", "guidance"):
            if args.ddpm and (args.ddpm / f"{name}.png").is_file():
                shutil.copyfile(args.ddpm / f"{name}.png", args.images / f"ddpm_{name}.png")


def sampler_rows(quality: SampleQuality, ddpm: DiffusionModule, n: int, ddim_steps: list[int]) -> list[str]:
    """A Markdown table: the ancestral sampler and DDIM at each of ``ddim_steps`` on ``n`` samples each,
    with the distance divided by the ancestral sampler's and the speed-up over it."""
    rows = [
        "| sampler | Fréchet distance | ÷ ancestral | precision | recall | s / 1000 images | speed-up |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    base = None
    for steps in [None, *ddim_steps]:
        images, seconds = timed(lambda k, s=steps: ddpm.generate(k, SEED, sampling_timesteps=s), n)
        scores = quality.score(images)
        base = base or (scores["fd"], seconds)
        name = f"ancestral ({ddpm.hparams.timesteps} steps)" if steps is None else f"DDIM {steps} steps"
        rows.append(f"| {name} | {scores['fd']:.1f} | {scores['fd'] / base[0]:.2f} "
                    f"| {scores['precision']:.3f} | {scores['recall']:.3f} | {seconds:.1f} "
                    f"| {base[1] / seconds:.0f}× |")
        print(rows[-1], flush=True)
    return rows


def figure(panels: list[torch.Tensor], titles: list[str], path: Path) -> None:
    """The sample grids side by side, 5 to a row, each titled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(panels), 5)
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2 * rows + 0.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel, title in zip(axes.flat, panels, titles, strict=False):
        ax.imshow(panel.permute(1, 2, 0).numpy())
        ax.set_title(title.replace("`", ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(path)


if __name__ == "__main__":
    main()
