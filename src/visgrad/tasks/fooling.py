"""``python visualize.py task=fooling``: fooling images for every input x target class pair, with the
success rate and perturbation size per target, whether each fooling image still fools once saved as an
8-bit PNG and read back, a figure of a few and the attack's progress in TensorBoard.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from omegaconf import DictConfig, ListConfig
from rich.progress import Progress
from rich.table import Table

from visgrad.errors import ConfigError
from visgrad.images import Normalization, load_image
from visgrad.models.classifier import Classifier
from visgrad.tasks.figures import fooling_figure
from visgrad.tasks.runner import TaskRun, start
from visgrad.vision.fooling import FoolingResult, make_fooling_images, still_fools


def target_classes(task: DictConfig, classifier: Classifier) -> list[int] | None:
    """``task.target`` (one class) or else ``task.targets`` (a list) as indices; None = random targets."""
    if task.get("target") is not None:
        return [classifier.class_index(task.target)]
    targets = task.get("targets")
    if targets is None:
        return None
    targets = list(targets) if isinstance(targets, (list, tuple, ListConfig)) else [targets]
    return [classifier.class_index(t) for t in targets]


def make_pairs(predicted: torch.Tensor, targets: list[int] | None, num_classes: int,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, target class) pairs, both (P,): every image with every target it is not already
    classified as; without targets one random other class per image (seeded)."""
    if targets is None:
        generator = torch.Generator().manual_seed(seed)
        offsets = torch.randint(1, num_classes, predicted.shape, generator=generator)
        return torch.arange(len(predicted)), (predicted + offsets) % num_classes
    images = torch.arange(len(predicted)).repeat_interleave(len(targets))
    classes = torch.tensor(targets).repeat(len(predicted))
    keep = predicted[images] != classes
    return images[keep], classes[keep]


def save_and_reload(foolings: torch.Tensor, names: list[str], folder: Path,
                    norm: Normalization) -> tuple[torch.Tensor, list[Path]]:
    """Write each fooling image (N, 3, H, W) as an 8-bit PNG into ``folder`` and read it back, normalised."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, reloaded = [], []
    for image, name in zip(foolings, names, strict=True):
        path = folder / f"{name}.png"
        norm.deprocess(image).save(path)
        reloaded.append(norm.normalize(TF.to_tensor(load_image(path))))
        paths.append(path)
    return torch.stack(reloaded).to(foolings.device), paths


def _median(values: torch.Tensor) -> float:
    return values.float().median().item() if values.numel() else float("nan")


def summarise(result: FoolingResult, survives: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Success rates (in memory, after the PNG round trip) and medians over the fooled pairs of steps,
    L-inf and L2 (0-255 units) for the pairs selected by ``mask`` (all if None)."""
    mask = torch.ones_like(result.success) if mask is None else mask
    fooled = result.success & mask
    return {
        "pairs": float(mask.sum()),
        "success_rate": result.success[mask].float().mean().item(),
        "success_rate_png": survives[mask].float().mean().item(),
        "median_iterations": _median(result.iterations[fooled]),
        "median_linf": _median(result.linf[fooled]),
        "median_l2": _median(result.l2[fooled]),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def print_table(run_: TaskRun, rows: dict[str, dict]) -> Path:
    """The per-target table on the console and as Markdown in ``<output_dir>/fooling_table.md``."""
    heads = ["target", "pairs", "fooled", "fooled after PNG", "median steps", "median L-inf", "median L2"]
    table = Table(title="fooling per target (medians over fooled pairs; L-inf and L2 in 0-255 units)")
    for head in heads:
        table.add_column(head, justify="left" if head == "target" else "right")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for target, row in rows.items():
        cells = [f"{row['pairs']:.0f}", f"{row['success_rate']:.0%}", f"{row['success_rate_png']:.0%}",
                 f"{row['median_iterations']:.0f}", f"{row['median_linf']:.1f}", f"{row['median_l2']:.0f}"]
        table.add_row(target, *cells)
        lines.append("| " + " | ".join([target, *cells]) + " |")
    run_.console.print(table)
    path = run_.output_dir / "fooling_table.md"
    path.write_text("\n".join(lines) + "\n")
    run_.files.append(path)
    return path


def run(cfg: DictConfig) -> dict[str, float]:
    """Fool the classifier on every pair of ``task.num_images`` inputs x ``task.targets`` (or
    ``task.target``, or a random other class per image); figure of ``task.num_show`` pairs.

    Returns the success rate in memory and after saving as PNG, and medians over the fooled pairs of
    steps, L-inf and L2 perturbation (pixel units, 0-255) and target probability; per target in a table.
    """
    task = cfg.task
    run_ = start(cfg)
    classifier = run_.classifier
    model, norm = classifier.model, classifier.norm
    batch = run_.inputs(task.num_images)
    with torch.no_grad():
        predicted = model(batch.images).argmax(dim=1).cpu()
    targets = target_classes(task, classifier)
    image_index, classes = make_pairs(predicted, targets, len(classifier.class_names), cfg.seed)
    if not len(classes):
        raise ConfigError(f"every input is already classified as the target {task.target!r}; choose another")
    images, classes = batch.images[image_index.to(run_.device)], classes.to(run_.device)
    names = [f"{k:03d}_{_slug(batch.names[i])}_to_{_slug(run_.class_name(int(c)))}" for k, (i, c) in
             enumerate(zip(image_index.tolist(), classes.tolist(), strict=True))]

    began = time.perf_counter()
    with Progress(console=run_.console, transient=True) as progress:
        bar = progress.add_task(f"fooling {len(classes)} image/target pairs", total=len(classes))

        def on_step(iteration: int, target_scores: torch.Tensor, fooled: torch.Tensor) -> None:
            run_.writer.add_scalar("fooling/mean_target_score", target_scores.mean().item(), iteration)
            run_.writer.add_scalar("fooling/fooled_fraction", fooled.float().mean().item(), iteration)
            progress.update(bar, completed=int(fooled.sum()))

        foolings, result = make_fooling_images(images, classes, model, task.learning_rate, task.max_iter,
                                               task.clamp, on_step, norm)
    seconds = time.perf_counter() - began
    reloaded, _ = save_and_reload(foolings, names, run_.output_dir / "fooling_images", norm)
    survives = still_fools(reloaded, classes, model) & result.success
    result = FoolingResult(**{k: v.cpu() for k, v in vars(result).items()})
    survives, classes = survives.cpu(), classes.cpu()

    rows = {run_.class_name(t): summarise(result, survives, classes == t) for t in classes.unique().tolist()}
    if len(rows) > 1:
        rows["all"] = summarise(result, survives)
    print_table(run_, rows)
    overall = summarise(result, survives)
    metrics = {f"fooling/{key if key != 'pairs' else 'num_pairs'}": value for key, value in overall.items()}
    metrics["fooling/median_target_prob"] = _median(result.target_prob)
    metrics["fooling/seconds"] = seconds
    if result.success.any():
        run_.writer.add_histogram("fooling/linf", result.linf[result.success])

    show = _figure_pairs(image_index, classes, task.num_show)
    name = run_.class_name
    original_titles = [f"{batch.names[image_index[i]]}: {name(int(result.original_class[i]))}" for i in show]
    fooling_titles = [
        (f"{name(int(result.final_class[i]))} (p={result.target_prob[i]:.2f})" if result.success[i] else
         f"{name(int(result.final_class[i]))}; target {name(int(classes[i]))} p={result.target_prob[i]:.2f}")
        + f"\nL-inf {result.linf[i]:.1f}/255, {int(result.iterations[i])} steps"
        + ("" if survives[i] or not result.success[i] else ", not after PNG")
        for i in show
    ]
    fig = fooling_figure(images[show].cpu(), foolings[show].cpu(), original_titles, fooling_titles, norm)
    run_.add_figure(fig, "fooling")
    return run_.finish("fooling images", metrics)


def _figure_pairs(image_index: torch.Tensor, classes: torch.Tensor, count: int) -> list[int]:
    """Up to ``count`` pairs for the figure, one per image, the targets taken in turn."""
    targets = classes.unique().tolist()
    chosen: list[int] = []
    for image in image_index.unique().tolist():
        if len(chosen) == count:
            break
        options = (image_index == image).nonzero().squeeze(1).tolist()
        preferred = [i for i in options if int(classes[i]) == targets[len(chosen) % len(targets)]]
        chosen.append((preferred or options)[0])
    return chosen
