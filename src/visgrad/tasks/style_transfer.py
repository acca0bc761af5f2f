"""``python visualize.py task=style_transfer``: style transfer, and the parts that texture synthesis
(:mod:`visgrad.tasks.texture`) and feature inversion (:mod:`visgrad.tasks.feature_inversion`) share.

``prepare`` reads and checks every input (images first, then the feature network of ``task.feature_net``,
:data:`~visgrad.models.feature_nets.FEATURE_NETS`, and its layers); ``run`` optimises the pixels (coarse
to fine over ``task.scales``) and writes ``result.png`` (full resolution), ``snapshots.png`` (the image over
the steps) and ``figure.png`` (content, styles, result) into the run folder; TensorBoard gets the loss
terms every ``task.log_every`` steps, the image every ``task.image_every`` steps and the quality measures
of :mod:`visgrad.style.quality` at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from visgrad.errors import ConfigError, UserError
from visgrad.images import ImageError
from visgrad.models.feature_nets import feature_net_allowed, is_feature_net, load_feature_net
from visgrad.options import (
    ALLOWED,
    CHECK,
    as_list,
    boolean,
    each,
    fmt,
    non_negative_int,
    non_negative_number,
    one_of,
    option,
    optional,
    positive_int,
    positive_number,
)
from visgrad.style.images import load_image_spec, luminance, match_colors, with_content_colors
from visgrad.style.multiscale import check_scales
from visgrad.style.objective import (
    OPTIMIZERS,
    check_layers,
    check_weights,
)
from visgrad.style.quality import loss_ratios
from visgrad.tasks.config import config_keys
from visgrad.tasks.figures import save_image, save_image_row
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.tasks.style_synthesis import Setup, pixels, save_strip, synthesize

INITS = ("content", "noise")  # the start image: the content image, or uniform noise over the pixel range
PRESERVE_COLOR = ("none", "luminance", "histogram")
IMAGE_ALLOWED = "null, an image file, skimage:NAME or generated:strokes[:SEED]"


def _image(value) -> bool:
    return isinstance(value, str) and bool(value)


def _size(value) -> bool:
    return positive_int(value) and value >= 16


@dataclass
class StyleOptions:
    """``task=style_transfer`` (``conf/task/style_transfer.yaml`` explains each)."""

    content: str | None = option("skimage:chelsea", optional(_image), IMAGE_ALLOWED)
    style: str | list[str] | None = option("generated:strokes", optional(each(_image)),
                                           f"{IMAGE_ALLOWED}, or a list of them")
    style_blend: list[float] | None = option(None, optional(each(non_negative_number)),
                                             "null (equal) or one number >= 0 per style image")
    image_size: int = option(192, _size, "an integer >= 16")
    style_size: int = option(192, _size, "an integer >= 16")
    scales: list[float] = option([1.0], each(positive_number), "a list of positive numbers")
    feature_net: str = option("efficientnet_lite0", is_feature_net, feature_net_allowed())
    weights_path: str | None = option(None, optional(_image), "null or the path of a .pth state dict")
    content_layer: int | list[int] | None = option(None, optional(each(non_negative_int)),
                                                   "null (the network's), a module index or a list of them")
    style_layers: list[int] | None = option(None, optional(each(non_negative_int)),
                                            "null (the network's) or a list of module indices")
    content_weight: float = option(1.0, non_negative_number, "a number >= 0")
    style_weights: float | list[float] = option(1.0, each(non_negative_number),
                                                "a number >= 0 or a list of them (one per style layer)")
    tv_weight: float = option(0.1, non_negative_number, "a number >= 0")
    normalize_weights: bool = option(True, boolean, "true or false")
    init: str = option("content", one_of(*INITS), f"one of {', '.join(INITS)}")
    optimizer: str = option("adam", one_of(*OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}")
    steps: int | list[int] = option(150, each(positive_int), "a positive integer (or one per scale)")
    lr: float = option(0.02, positive_number, "a positive number")
    decayed_lr: float = option(0.01, positive_number, "a positive number")
    decay_lr_at: int = option(120, non_negative_int, "an integer >= 0")
    preserve_color: str = option("none", one_of(*PRESERVE_COLOR), f"one of {', '.join(PRESERVE_COLOR)}")
    log_every: int = option(10, positive_int, "a positive integer")
    image_every: int = option(25, positive_int, "a positive integer")
    num_snapshots: int = option(6, non_negative_int, "an integer >= 0")

    def problems(self) -> list[str]:
        """Scales and steps that do not fit together, and images that the weights or the start need."""
        problems = []
        scales, steps = as_list(self.scales), as_list(self.steps)
        try:  # the library names its arguments scales= and steps=, the names of these options
            check_scales(scales, steps * len(scales) if len(steps) == 1 else steps)
        except ValueError as err:
            problems.append(str(err))
        if self.content is None:
            needs = [f"{key}={fmt(getattr(self, key))}" for key in ("init", "preserve_color")
                     if getattr(self, key) not in ("noise", "none")]
            needs += [f"content_weight={fmt(self.content_weight)}"] * (self.content_weight != 0)
            if needs:
                problems.append(f"content=null: {', '.join(needs)} need a content image; set content=PATH")
        if self.style is None and any(w != 0 for w in as_list(self.style_weights)):
            problems.append(f"style=null: style_weights={fmt(self.style_weights)} need a style image; set "
                            "style=PATH (or task.style_weights=0)")
        return problems


def with_defaults(options_type: type, name: str, doc: str, **defaults) -> type:
    """The options of a task that is another with other settings: a subclass of the dataclass
    ``options_type`` whose fields ``defaults`` default to other values (same checks and descriptions)."""
    fields = [(f.name, f.type, option(defaults[f.name], f.metadata.get(CHECK), f.metadata.get(ALLOWED)))
              for f in dataclasses.fields(options_type) if f.name in defaults]
    subclass = dataclasses.make_dataclass(name, fields, bases=(options_type,), namespace={"__doc__": doc})
    subclass.__module__ = options_type.__module__
    return subclass


def _load(spec: str, key: str) -> Image.Image:
    try:
        return load_image_spec(spec)
    except ImageError as err:
        raise ImageError(
            f"{key}: {err}. Give {key}=PATH (an image file, skimage:NAME or generated:strokes)"
        ) from None


def prepare(run: TaskRun) -> Setup:
    """Read and check every input (files first, then the network and its layers); nothing is written."""
    opts = run.options
    content_img = _load(opts.content, "content") if opts.content else None
    style_specs = [str(s) for s in as_list(opts.style)]
    style_weights = as_list(opts.style_weights)
    needs_style = any(w != 0 for w in style_weights)
    style_imgs = [_load(s, "style") for s in style_specs] if needs_style else []
    if opts.preserve_color == "histogram":
        style_imgs = [match_colors(s, content_img) for s in style_imgs]
    elif opts.preserve_color == "luminance":
        style_imgs = [luminance(s, like=content_img) for s in style_imgs]

    try:
        with config_keys(weights_path="task.weights_path"):
            net = load_feature_net(opts.feature_net, opts.weights_path)
    except UserError as err:
        raise type(err)(f"task.feature_net={fmt(opts.feature_net)}: {err}") from err
    content_layers = as_list(opts.content_layer) or [net.content_layer] * (net.content_layer is not None)
    style_layers = as_list(opts.style_layers) or list(net.style_layers or ())
    if not content_layers or not style_layers:
        raise ConfigError(f"task.feature_net={fmt(opts.feature_net)} has no default layers; set "
                          "task.content_layer and task.style_layers")
    if len(style_weights) == 1:
        style_weights = style_weights * len(style_layers)
    with config_keys(style_layers="task.style_layers", style_weights="task.style_weights",
                     blend="task.style_blend"):
        check_weights(style_layers, style_weights, as_list(opts.style_blend) or None, len(style_imgs))
        check_layers(net.cnn, {"task.content_layer": content_layers, "task.style_layers": style_layers})
    net.cnn.to(run.device)
    scales = as_list(opts.scales) or [1.0]
    steps = as_list(opts.steps)
    steps = steps * len(scales) if len(steps) == 1 else steps
    style_specs = style_specs if needs_style else []
    return Setup(opts, run.task.name, run.device, net, content_img, style_imgs, style_specs, content_layers,
                 style_layers, style_weights, scales, steps)


def run(run: TaskRun, setup: Setup) -> dict[str, float]:
    """Style transfer / texture synthesis; returns the final loss terms, quality measures and wall time."""
    opts, net, out_dir = setup.options, setup.net, run.output_dir
    synth = synthesize(setup, setup.content_layers[0], run.writer, "")
    summary = dict(synth.final)
    summary.update(loss_ratios(synth.objective, synth.result, synth.inputs.content, synth.inputs.styles,
                               synth.start))
    summary["time/seconds"] = synth.seconds
    summary["time/steps_per_s"] = sum(setup.steps) / synth.seconds

    image, snapshots = net.norm.deprocess(synth.result), synth.snapshots
    if opts.preserve_color == "luminance":
        image = with_content_colors(image, setup.content_img)
        snapshots = [(s, with_content_colors(im, setup.content_img)) for s, im in snapshots]
    save_image(image, run.add_file(out_dir / "result.png"))
    save_strip(snapshots, run.add_file(out_dir / "snapshots.png"))
    blend = as_list(opts.style_blend) or [1.0] * len(setup.style_imgs)
    panels = [] if setup.content_img is None else [
        (setup.content_img, f"content: {Path(str(opts.content)).name}")]
    panels += [(s, f"style: {Path(n).name}" + (f" (x{b:g})" if len(setup.style_imgs) > 1 else ""))
               for s, n, b in zip(setup.style_imgs, setup.style_specs, blend, strict=True)]
    panels.append((image, setup.name))
    save_image_row(panels, run.add_file(out_dir / "figure.png"), panel_size=(3.6, 3.9), title=net.description)
    run.writer.add_image("result", pixels(net, synth.result), sum(setup.steps))
    describe(run, setup)
    return summary


def describe(run: TaskRun, setup: Setup) -> None:
    """The summary's notes: network, images, scales x steps."""
    opts = setup.options
    run.note("feature network", f"{opts.feature_net}: {setup.net.description}")
    run.note("content image", opts.content)
    run.note("style image(s)", ", ".join(setup.style_specs) or "(none)")
    steps = zip(setup.scales, setup.steps, strict=True)
    run.note("scales x steps", ", ".join(f"{scale:g} x {count}" for scale, count in steps))
    run.note("optimizer", f"{sum(setup.steps)} {opts.optimizer} steps")


TASK = Task("style_transfer", "style transfer", prepare, run, StyleOptions, uses_classifier=False)
