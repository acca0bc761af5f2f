"""``python visualize.py task=style_transfer``: the runner of style transfer (and of feature_inversion and
texture, whose configs compose this one).

Reads ``cfg.task`` (see ``conf/task/style_transfer.yaml``), checks every input before optimising, then
optimises the pixels and writes ``result.png`` (full resolution), ``snapshots.png`` (the image over the
steps) and ``figure.png`` (content, styles, result) into ``cfg.paths.output_dir``; TensorBoard gets the
loss terms every ``task.log_every`` steps and the image every ``task.image_every`` steps.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from matplotlib.figure import Figure
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from visgrad.images import ImageError, deprocess, preprocess
from visgrad.models.feature_nets import load_feature_net
from visgrad.style.images import (
    load_image_spec,
    luminance,
    match_colors,
    with_content_colors,
)
from visgrad.style.objective import build_objective, check_layers, optimize_image, pixel_bounds
from visgrad.utils import resolve_device

CHOICES = {
    "optimizer": ("adam", "lbfgs"),
    "init": ("content", "noise"),
    "preserve_color": ("none", "luminance", "histogram"),
}


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, ListConfig | list | tuple):
        return list(OmegaConf.to_container(value) if isinstance(value, ListConfig) else value)
    return [value]


def _load(spec: str, key: str) -> Image.Image:
    try:
        return load_image_spec(spec)
    except ImageError as err:
        raise ImageError(
            f"{key}: {err}. Give {key}=PATH (an image file, skimage:NAME or generated:strokes)"
        ) from None


def check_options(task: DictConfig) -> None:
    """Clear errors for option values that are not allowed (before anything is loaded)."""
    for key, allowed in CHOICES.items():
        if task[key] not in allowed:
            raise ValueError(f"task.{key}={task[key]!r} is not one of {', '.join(allowed)}")
    if task.steps < 1 or task.lr <= 0 or task.decayed_lr <= 0:
        raise ValueError(
            f"task.steps ({task.steps}), task.lr ({task.lr}), task.decayed_lr ({task.decayed_lr}) "
            "must be positive"
        )


def run(cfg: DictConfig) -> dict[str, float]:
    """Style transfer / feature inversion / texture synthesis; returns the final loss terms."""
    task = cfg.task
    check_options(task)
    device = resolve_device(cfg.device)
    out_dir = Path(cfg.paths.output_dir)

    # Inputs: every file is read (and fails clearly) before the network is built.
    content_img = _load(task.content, "content") if task.content else None
    style_specs = [str(s) for s in _as_list(task.style)]
    style_weights = _as_list(task.style_weights)
    needs_style = any(w != 0 for w in style_weights)
    style_imgs = [_load(s, "style") for s in style_specs] if needs_style else []
    if content_img is None and (task.init == "content" or task.preserve_color != "none"):
        raise ValueError(
            f"task.init={task.init} / task.preserve_color={task.preserve_color} need a content image"
        )
    if task.preserve_color == "histogram":
        style_imgs = [match_colors(s, content_img) for s in style_imgs]
    elif task.preserve_color == "luminance":
        style_imgs = [luminance(s, like=content_img) for s in style_imgs]

    net = load_feature_net(task.feature_net, task.weights_path)
    content_layer = task.content_layer if task.content_layer is not None else net.content_layer
    style_layers = _as_list(task.style_layers) or list(net.style_layers or ())
    if content_layer is None or not style_layers:
        raise ValueError(
            f"task.feature_net={task.feature_net} has no default layers; "
            "set task.content_layer and task.style_layers"
        )
    if len(style_weights) == 1:
        style_weights = style_weights * len(style_layers)
    check_layers(
        net.cnn, {"task.content_layer": [content_layer], "task.style_layers": style_layers}, task.feature_net
    )

    cnn = net.cnn.to(device)
    content = None
    if content_img is not None:
        content_in = luminance(content_img) if task.preserve_color == "luminance" else content_img
        content = preprocess(content_in, task.image_size).to(device)
    styles = [preprocess(s, task.style_size).to(device) for s in style_imgs]
    objective = build_objective(
        cnn,
        content if task.content_weight else None,
        styles,
        content_layer,
        task.content_weight,
        style_layers,
        style_weights,
        task.tv_weight,
        blend=_as_list(task.style_blend) or None,
        normalize_weights=task.normalize_weights,
    )

    if task.init == "content":
        init = content.clone()
    else:  # CS231n: uniform noise in [0, 1) in normalised units
        shape = content.shape if content is not None else (1, 3, task.image_size, task.image_size)
        init = torch.rand(shape, device=device)

    writer = SummaryWriter(str(out_dir / "tensorboard"))
    snap_steps = _snapshot_steps(task.steps, task.num_snapshots)
    snapshots: list[tuple[int, Image.Image]] = [(0, deprocess(init))]
    final: dict[str, float] = {}
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[loss]}"),
    )

    def log(step: int, img: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        done = step + 1
        if step % task.log_every == 0 or done == task.steps:
            values = {k: v.item() for k, v in losses.items()}
            for key, value in values.items():
                writer.add_scalar(f"loss/{key}", value, step)
            final.update({f"loss/{k}": v for k, v in values.items()})
            progress.update(bar, loss=f"loss {values['total']:.4g}")
        if done % task.image_every == 0 or done == task.steps:
            writer.add_image("image", _pixels(img), done)
        if done in snap_steps:
            snapshots.append((done, deprocess(img)))
        progress.advance(bar)

    start = time.perf_counter()
    with progress:
        bar = progress.add_task(f"{task.name} ({task.optimizer})", total=task.steps, loss="")
        result = optimize_image(
            init,
            objective,
            task.optimizer,
            task.steps,
            task.lr,
            task.decayed_lr,
            task.decay_lr_at,
            callback=log,
        )
    seconds = time.perf_counter() - start

    image = deprocess(result)
    if task.preserve_color == "luminance":
        image = with_content_colors(image, content_img)
        snapshots = [(s, with_content_colors(im, content_img)) for s, im in snapshots]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "result": out_dir / "result.png",
        "snapshots": out_dir / "snapshots.png",
        "figure": out_dir / "figure.png",
    }
    image.save(paths["result"])
    _save_strip(snapshots, paths["snapshots"])
    style_names = [Path(s).name for s in style_specs] if needs_style else []
    _save_figure(content_img, style_imgs, style_names, image, task, paths["figure"], net.description)
    writer.add_image("result", TF.to_tensor(image), task.steps)
    writer.close()

    final["time/steps_per_s"] = task.steps / seconds
    _print_summary(task, net.description, style_specs if needs_style else [], final, paths, out_dir)
    return final


def _pixels(img: torch.Tensor) -> torch.Tensor:
    lo, hi = pixel_bounds(img)
    return ((img[0].detach() - lo[0]) / (hi[0] - lo[0])).clamp(0, 1).cpu()


def _snapshot_steps(steps: int, count: int) -> set[int]:
    return {round(steps * (i + 1) / count) for i in range(max(count, 1))}


def _save_strip(snapshots: list[tuple[int, Image.Image]], path: Path) -> None:
    fig = Figure(figsize=(2.4 * len(snapshots), 2.6))
    axes = fig.subplots(1, len(snapshots), squeeze=False)
    for ax, (step, img) in zip(axes[0], snapshots, strict=True):
        ax.imshow(img)
        ax.set_title(f"step {step}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _save_figure(content, styles, style_names, result, task, path: Path, net_description: str) -> None:
    blend = _as_list(task.style_blend) or [1.0] * len(styles)
    panels = [(content, f"content: {Path(str(task.content)).name}")] if content is not None else []
    panels += [
        (s, f"style: {n}" + (f" (x{b:g})" if len(styles) > 1 else ""))
        for s, n, b in zip(styles, style_names, blend, strict=True)
    ]
    panels.append((result, f"{task.name}"))
    fig = Figure(figsize=(3.6 * len(panels), 3.9))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (img, title) in zip(axes[0], panels, strict=True):
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(net_description, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _print_summary(task, net_description, style_specs, final, paths, out_dir) -> None:
    table = Table(title=f"{task.name}: {task.steps} {task.optimizer} steps")
    table.add_column("item")
    table.add_column("value")
    table.add_row("feature network", f"{task.feature_net}: {net_description}")
    table.add_row("content image", str(task.content))
    table.add_row("style image(s)", ", ".join(style_specs) or "(none)")
    for key, value in final.items():
        table.add_row(key, f"{value:.5g}")
    for key, value in paths.items():
        table.add_row(key, str(value))
    table.add_row("tensorboard", f"tensorboard --logdir {out_dir / 'tensorboard'}")
    Console().print(table)
