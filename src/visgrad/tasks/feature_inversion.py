"""``python visualize.py task=feature_inversion``: reconstruct the content image from its features, from
noise, with no style term (Mahendran & Vedaldi 2015), at each layer of ``task.content_layer``.

It is the style-transfer optimisation with ``style_weights: 0`` (``conf/task/feature_inversion.yaml``
composes ``style_transfer.yaml``; the same options with other defaults). For each layer it reports PSNR (dB)
and SSIM of the reconstruction against the content image at the same size (:func:`reconstruction_scores`),
logs them to TensorBoard (``quality/psnr/layer_<i>``), and writes ``layer_<i>.png`` per layer and
``figure.png`` (the original and every reconstruction, titled with its scores) into the run folder.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from visgrad.errors import ConfigError
from visgrad.style.quality import reconstruction_scores
from visgrad.tasks import style_transfer
from visgrad.tasks.figures import save_image, save_image_row
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.tasks.style_synthesis import Setup, pixels, save_strip, synthesize

FeatureInversionOptions = style_transfer.with_defaults(
    style_transfer.StyleOptions, "FeatureInversionOptions",
    "``task=feature_inversion``: style transfer from noise with no style term, one run per content layer.",
    style=None, content_layer=[0, 1, 3, 5, 8], style_weights=0, tv_weight=0.05, init="noise", steps=200,
    lr=0.05, decayed_lr=0.01, decay_lr_at=150,
)


def prepare(run: TaskRun) -> Setup:
    """Style transfer's checks, and a content image to invert."""
    if run.options.content is None:
        raise ConfigError("content=null: task=feature_inversion needs a content image; set content=PATH")
    return style_transfer.prepare(run)


def run(run: TaskRun, setup: Setup) -> dict[str, float]:
    """Feature inversion at every layer of ``task.content_layer``; returns PSNR, SSIM, losses and time per
    layer (keys ``quality/psnr/layer_<i>``, ``quality/ssim/layer_<i>``, ``loss/content/layer_<i>``,
    ``time/seconds/layer_<i>``) and, for the last layer, the plain keys of the style-transfer runner."""
    summary: dict[str, float] = {}
    panels: list[tuple[Image.Image, str]] = []
    out_dir = run.output_dir
    for layer in setup.content_layers:
        synth = synthesize(setup, layer, run.writer, f"layer_{layer}/")
        original = synth.inputs.content
        psnr, ssim = reconstruction_scores(pixels(setup.net, synth.result), pixels(setup.net, original))
        scores = {"quality/psnr": psnr, "quality/ssim": ssim, "loss/content": synth.final["loss/content"],
                  "time/seconds": synth.seconds}
        for key, value in scores.items():
            summary[f"{key}/layer_{layer}"] = value
            run.writer.add_scalar(f"{key}/layer_{layer}", value)
        image = setup.net.norm.deprocess(synth.result)
        save_image(image, run.add_file(out_dir / f"layer_{layer}.png"))
        save_strip(synth.snapshots, out_dir / f"snapshots_layer_{layer}.png")
        panels.append((image, f"layer {layer}: PSNR {psnr:.1f} dB, SSIM {ssim:.2f}"))
    summary.update(scores)  # the last layer's, under the plain keys
    content_name = Path(str(setup.options.content)).name
    panels.insert(0, (setup.net.norm.deprocess(original), f"content: {content_name}"))
    save_image_row(panels, run.add_file(out_dir / "figure.png"), panel_size=(3.0, 3.3), fontsize=8,
                   title=f"feature inversion, {setup.net.description}", dpi=100)
    style_transfer.describe(run, setup)
    return summary


TASK = Task("feature_inversion", "feature inversion", prepare, run, FeatureInversionOptions,
            uses_classifier=False)
