"""``python visualize.py task=style_transfer``: the runner of style transfer and texture synthesis, and the
parts that feature inversion (:mod:`visgrad.tasks.feature_inversion`) shares.

Reads ``cfg.task`` (see ``conf/task/style_transfer.yaml``), checks every input before optimising, then
optimises the pixels (coarse to fine over ``task.scales``) and writes ``result.png`` (full resolution),
``snapshots.png`` (the image over the steps) and ``figure.png`` (content, styles, result) into
``cfg.paths.output_dir``; TensorBoard gets the loss terms every ``task.log_every`` steps, the image every
``task.image_every`` steps and the quality measures of :mod:`visgrad.style.quality` at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from visgrad.images import ImageError, preprocess
from visgrad.models.feature_nets import FeatureNet, load_feature_net
from visgrad.style.images import load_image_spec, luminance, match_colors, with_content_colors
from visgrad.style.multiscale import ScaleInputs, check_scales, optimize_multiscale
from visgrad.style.objective import (
    StyleObjective,
    build_objective,
    check_layers,
    check_weights,
    optimize_image,
    pixel_bounds,
)
from visgrad.style.quality import loss_ratios
from visgrad.tasks.figures import save_image_row
from visgrad.tasks.runner import open_writer
from visgrad.utils import resolve_device
from visgrad.utils.hparams import end_session

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
    if task.lr <= 0 or task.decayed_lr <= 0:
        raise ValueError(f"task.lr ({task.lr}) and task.decayed_lr ({task.decayed_lr}) must be positive")
    scales = _as_list(task.scales) or [1.0]
    steps = _as_list(task.steps)
    check_scales(scales, steps * len(scales) if len(steps) == 1 else steps)


@dataclass
class Setup:
    """A checked run: images (PIL), the feature network on the device, layers and weights per layer."""

    task: DictConfig
    device: torch.device
    net: FeatureNet
    content_img: Image.Image | None
    style_imgs: list[Image.Image]
    style_specs: list[str]
    content_layers: list[int]
    style_layers: list[int]
    style_weights: list[float]
    scales: list[float]
    steps: list[int]


def prepare(cfg: DictConfig) -> Setup:
    """Read and check every input (files first, then the network and its layers); nothing is written."""
    task = cfg.task
    check_options(task)
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
    content_layers = _as_list(task.content_layer) or [net.content_layer] * (net.content_layer is not None)
    style_layers = _as_list(task.style_layers) or list(net.style_layers or ())
    if not content_layers or not style_layers:
        raise ValueError(
            f"task.feature_net={task.feature_net} has no default layers; "
            "set task.content_layer and task.style_layers"
        )
    if len(style_weights) == 1:
        style_weights = style_weights * len(style_layers)
    check_weights(style_layers, style_weights, _as_list(task.style_blend) or None, len(style_imgs))
    check_layers(
        net.cnn, {"task.content_layer": content_layers, "task.style_layers": style_layers}, task.feature_net
    )
    device = resolve_device(cfg.device)
    net.cnn.to(device)
    scales = _as_list(task.scales) or [1.0]
    steps = _as_list(task.steps)
    steps = steps * len(scales) if len(steps) == 1 else steps
    return Setup(task, device, net, content_img, style_imgs, style_specs if needs_style else [],
                 content_layers, style_layers, style_weights, scales, steps)


@dataclass
class Synthesis:
    """One optimised image: the result (1, 3, H, W), the last scale's objective and inputs, the start
    image, the last logged loss terms, snapshots and the wall time."""

    result: torch.Tensor
    objective: StyleObjective
    inputs: ScaleInputs
    start: torch.Tensor
    final: dict[str, float]
    snapshots: list[tuple[int, Image.Image]]
    seconds: float


def synthesize(setup: Setup, content_layer: int, writer: SummaryWriter, label: str) -> Synthesis:
    """Optimise one image coarse to fine with a progress bar, logging to ``writer`` (see module docstring)."""
    task, net, device = setup.task, setup.net, setup.device
    content_in = setup.content_img
    if content_in is not None and task.preserve_color == "luminance":
        content_in = luminance(content_in)
    uses_content = task.content_weight != 0 or task.init == "content"

    def inputs_at(scale: float) -> ScaleInputs:
        size, style_size = round(task.image_size * scale), round(task.style_size * scale)
        content = None if content_in is None else preprocess(
            content_in, size, net.norm, name=f"content={task.content}").to(device)
        styles = [preprocess(img, style_size, net.norm, name=f"style={spec}").to(device)
                  for img, spec in zip(setup.style_imgs, setup.style_specs, strict=False)]
        shape = tuple(content.shape[-2:]) if content is not None else (size, size)
        return ScaleInputs(content if uses_content else None, styles, shape)

    def build(inputs: ScaleInputs) -> StyleObjective:
        return build_objective(
            net.cnn, inputs.content if task.content_weight else None, inputs.styles, content_layer,
            task.content_weight, setup.style_layers, setup.style_weights, task.tv_weight,
            blend=_as_list(task.style_blend) or None, normalize_weights=task.normalize_weights,
        )

    first = inputs_at(setup.scales[0])
    if task.init == "content":
        start = first.content.clone()
    else:  # uniform noise over the valid pixel range
        lo, hi = pixel_bounds(torch.zeros(1, device=device), net.norm)
        start = lo + (hi - lo) * torch.rand(1, 3, *first.shape, device=device)
    total = sum(setup.steps)
    count = max(task.num_snapshots, 1)
    snap_steps = {round(total * (i + 1) / count) for i in range(count)}
    snapshots = [(0, net.norm.deprocess(start))]
    final: dict[str, float] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[loss]}"))

    def optimize(img: torch.Tensor, objective: StyleObjective, steps: int, first_step: int) -> torch.Tensor:
        def log(step: int, x: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
            step += first_step
            done = step + 1
            if step % task.log_every == 0 or done == total:
                values = {k: v.item() for k, v in losses.items()}
                for key, value in values.items():
                    writer.add_scalar(f"{label}loss/{key}", value, step)
                final.update({f"loss/{k}": v for k, v in values.items()})
                progress.update(bar, loss=f"loss {values['total']:.4g}")
            if done % task.image_every == 0 or done == total:
                writer.add_image(f"{label}image", pixels(net, x), done)
            if done in snap_steps:
                snapshots.append((done, net.norm.deprocess(x)))
            progress.advance(bar)

        return optimize_image(img, objective, task.optimizer, steps, task.lr, task.decayed_lr,
                              task.decay_lr_at, callback=log, bounds=pixel_bounds(img, net.norm))

    start_time = time.perf_counter()
    with progress:
        bar = progress.add_task(f"{label or task.name} ({task.optimizer})", total=total, loss="")
        result, objective, inputs = optimize_multiscale(
            start, setup.scales, setup.steps, lambda s: first if s == setup.scales[0] else inputs_at(s),
            build, optimize,
        )
    seconds = time.perf_counter() - start_time
    return Synthesis(result, objective, inputs, start, final, snapshots, seconds)


def run(cfg: DictConfig) -> dict[str, float]:
    """Style transfer / texture synthesis; returns the final loss terms, quality measures and wall time."""
    setup = prepare(cfg)
    task, net = setup.task, setup.net
    out_dir = Path(cfg.paths.output_dir)
    writer = open_writer(cfg, out_dir)
    synth = synthesize(setup, setup.content_layers[0], writer, "")

    summary = dict(synth.final)
    summary.update(loss_ratios(synth.objective, synth.result, synth.inputs.content, synth.inputs.styles,
                               synth.start))
    summary["time/seconds"] = synth.seconds
    summary["time/steps_per_s"] = sum(setup.steps) / synth.seconds

    image, snapshots = net.norm.deprocess(synth.result), synth.snapshots
    if task.preserve_color == "luminance":
        image = with_content_colors(image, setup.content_img)
        snapshots = [(s, with_content_colors(im, setup.content_img)) for s, im in snapshots]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"result": out_dir / "result.png", "snapshots": out_dir / "snapshots.png",
             "figure": out_dir / "figure.png"}
    image.save(paths["result"])
    save_strip(snapshots, paths["snapshots"])
    style_names = [Path(s).name for s in setup.style_specs]
    _save_figure(setup.content_img, setup.style_imgs, style_names, image, task, paths["figure"],
                 net.description)
    for key, value in summary.items():
        if key.startswith(("quality/", "time/")):
            writer.add_scalar(key, value)
    writer.add_image("result", pixels(net, synth.result), sum(setup.steps))
    end_session(writer)
    writer.close()
    print_summary(setup, summary, paths, out_dir)
    return summary


def pixels(net: FeatureNet, x: torch.Tensor) -> torch.Tensor:
    """Network input (1, 3, H, W) -> pixels (3, H, W) in [0, 1] on the CPU (for TensorBoard)."""
    return net.norm.unnormalize(x.detach()[0]).clamp(0, 1).float().cpu()


def save_strip(snapshots: list[tuple[int, Image.Image]], path: Path) -> None:
    """The images over the steps, side by side, titled by step."""
    save_image_row([(img, f"step {step}") for step, img in snapshots], path, panel_size=(2.4, 2.6))


def _save_figure(content, styles, style_names, result, task, path: Path, net_description: str) -> None:
    blend = _as_list(task.style_blend) or [1.0] * len(styles)
    panels = [(content, f"content: {Path(str(task.content)).name}")] if content is not None else []
    panels += [
        (s, f"style: {n}" + (f" (x{b:g})" if len(styles) > 1 else ""))
        for s, n, b in zip(styles, style_names, blend, strict=True)
    ]
    panels.append((result, f"{task.name}"))
    save_image_row(panels, path, panel_size=(3.6, 3.9), title=net_description)


def print_summary(setup: Setup, summary: dict[str, float], paths: dict[str, Path], out_dir: Path) -> None:
    """A Rich table: network, images, scales, final losses, quality, time and where the outputs went."""
    task = setup.task
    table = Table(title=f"{task.name}: {sum(setup.steps)} {task.optimizer} steps")
    table.add_column("item")
    table.add_column("value")
    table.add_row("feature network", f"{task.feature_net}: {setup.net.description}")
    table.add_row("content image", str(task.content))
    table.add_row("style image(s)", ", ".join(setup.style_specs) or "(none)")
    table.add_row("scales x steps", ", ".join(f"{s:g} x {n}" for s, n in zip(setup.scales, setup.steps,
                                                                             strict=True)))
    for key, value in summary.items():
        table.add_row(key, f"{value:.5g}")
    for key, value in paths.items():
        table.add_row(key, str(value))
    table.add_row("tensorboard", f"tensorboard --logdir {out_dir}")
    Console().print(table)
