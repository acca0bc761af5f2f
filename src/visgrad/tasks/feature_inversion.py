"""``python visualize.py task=feature_inversion``: reconstruct the content image from its features, from
noise, with no style term (Mahendran & Vedaldi 2015), at each layer of ``task.content_layer``.

It is the style-transfer optimisation with ``style_weights: 0`` (``conf/task/feature_inversion.yaml``
composes ``style_transfer.yaml``) and shares its runner parts. For each layer it reports PSNR (dB) and SSIM
of the reconstruction against the content image at the same size (:func:`reconstruction_scores`), logs
them to TensorBoard (``quality/psnr/layer_<i>``), and writes ``layer_<i>.png`` per layer and
``figure.png`` (the original and every reconstruction, titled with its scores) into the run folder.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from PIL import Image

from visgrad.style.quality import reconstruction_scores
from visgrad.tasks.figures import save_image_row
from visgrad.tasks.runner import open_writer
from visgrad.tasks.style_transfer import pixels, prepare, print_summary, save_strip, synthesize
from visgrad.utils.hparams import end_session


def run(cfg: DictConfig) -> dict[str, float]:
    """Feature inversion at every layer of ``task.content_layer``; returns PSNR, SSIM, losses and time per
    layer (keys ``quality/psnr/layer_<i>``, ``quality/ssim/layer_<i>``, ``loss/content/layer_<i>``,
    ``time/seconds/layer_<i>``) and, for the last layer, the plain keys of the style-transfer runner."""
    setup = prepare(cfg)
    if setup.content_img is None:
        raise ValueError("task=feature_inversion needs a content image; set content=PATH")
    out_dir = Path(cfg.paths.output_dir)
    writer = open_writer(cfg, out_dir)
    summary: dict[str, float] = {}
    panels: list[tuple[Image.Image, str]] = []
    paths: dict[str, Path] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for layer in setup.content_layers:
        synth = synthesize(setup, layer, writer, f"layer_{layer}/")
        original = synth.inputs.content
        psnr, ssim = reconstruction_scores(pixels(setup.net, synth.result), pixels(setup.net, original))
        scores = {"quality/psnr": psnr, "quality/ssim": ssim, "loss/content": synth.final["loss/content"],
                  "time/seconds": synth.seconds}
        for key, value in scores.items():
            summary[f"{key}/layer_{layer}"] = value
            writer.add_scalar(f"{key}/layer_{layer}", value)
        image = setup.net.norm.deprocess(synth.result)
        paths[f"layer {layer}"] = out_dir / f"layer_{layer}.png"
        image.save(paths[f"layer {layer}"])
        save_strip(synth.snapshots, out_dir / f"snapshots_layer_{layer}.png")
        panels.append((image, f"layer {layer}: PSNR {psnr:.1f} dB, SSIM {ssim:.2f}"))
    summary.update(scores)  # the last layer's, under the plain keys
    panels.insert(0, (setup.net.norm.deprocess(original), f"content: {Path(str(setup.task.content)).name}"))
    paths["figure"] = out_dir / "figure.png"
    save_image_row(panels, paths["figure"], panel_size=(3.0, 3.3), fontsize=8,
                   title=f"feature inversion, {setup.net.description}", dpi=100)
    end_session(writer)
    writer.close()
    print_summary(setup, summary, paths, out_dir)
    return summary
