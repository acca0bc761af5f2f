"""visualize.py task=style_transfer|feature_inversion|texture end to end, presets, inputs and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hparams_dashboard import read_dashboard
from PIL import Image
from skimage.color import rgb2yiq
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.errors import ConfigError
from visgrad.images import ImageError
from visgrad.models.pretrained import WeightsNotFoundError
from visgrad.style.images import load_image_spec, match_colors, with_content_colors
from visgrad.tasks import run_task

TINY = [
    "task.image_size=32",
    "task.style_size=32",
    "task.steps=4",
    "task.num_snapshots=2",
    "task.log_every=1",
    "task.image_every=2",
    "device=cpu",
]
ASSETS = Path("/work/shared/assets/cs231n")


def _outputs(cfg) -> Path:
    return Path(cfg.paths.output_dir)


def run(cfg) -> dict[str, float]:
    """Run the task through its lifecycle; its summary from metrics.json."""
    run_task(cfg)
    return json.loads((_outputs(cfg) / "metrics.json").read_text())


def test_style_transfer_end_to_end_writes_images_and_tensorboard(compose_cfg):
    cfg = compose_cfg("visualize", ["task=style_transfer", *TINY, "task.lr=0.05"])
    assert cfg.task.content == "skimage:chelsea" and cfg.task.style == "generated:strokes"
    assert cfg.task.feature_net == "efficientnet_lite0" and cfg.task.normalize_weights is True
    summary = run(cfg)
    assert 0 < summary["quality/style_ratio"] < 1 and 0 < summary["quality/content_ratio"] < 1
    assert summary["time/seconds"] > 0
    out = _outputs(cfg)
    result = Image.open(out / "result.png")
    assert result.size == (48, 32)  # chelsea is 451 x 300; the shorter side is resized to image_size
    assert np.asarray(result).std() > 5  # an image, not a flat colour
    assert Image.open(out / "snapshots.png").width > Image.open(out / "snapshots.png").height
    assert (out / "figure.png").is_file()
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert {"loss/content", "loss/style", "loss/tv", "loss/total"} <= set(events.Tags()["scalars"])
    assert {"image", "result"} <= set(events.Tags()["images"])
    assert {"quality/style_ratio", "quality/content_ratio", "time/seconds"} <= set(events.Tags()["scalars"])
    totals = [e.value for e in events.Scalars("loss/total")]
    assert len(totals) == 4 and totals[-1] < totals[0]
    (row,) = read_dashboard(out).rows.values()  # the HParams dashboard: options and final losses
    assert row.hparams["content"] == "skimage:chelsea" and row.hparams["lr"] == 0.05
    assert row.hparams["task"] == "style_transfer" and row.metrics["loss/total"] == pytest.approx(totals[-1])


def test_multiscale_run_ends_at_full_size_and_logs_every_step(compose_cfg):
    cfg = compose_cfg(
        "visualize",
        ["task=style_transfer", *TINY, "task.scales=[0.5,1.0]", "task.steps=[3,2]", "task.optimizer=lbfgs"],
    )
    run_task(cfg)
    out = _outputs(cfg)
    assert Image.open(out / "result.png").size == (48, 32)
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("loss/total")] == [0, 1, 2, 3, 4]


def test_top_level_content_and_style_overrides_reach_the_task(compose_cfg):
    cfg = compose_cfg("visualize", ["task=style_transfer", "content=a.jpg", "style=[b.jpg,c.jpg]"])
    assert cfg.task.content == "a.jpg" and list(cfg.task.style) == ["b.jpg", "c.jpg"]


def test_texture_runs_from_noise(compose_cfg):
    cfg = compose_cfg("visualize", ["task=texture", *TINY])
    assert cfg.task.init == "noise" and cfg.task.feature_net == "efficientnet_lite0"
    summary = run(cfg)
    assert summary["loss/content"] == 0 and summary["loss/style"] > 0
    assert 0 < summary["quality/style_ratio"] < 1 and "quality/content_ratio" not in summary
    assert Image.open(_outputs(cfg) / "result.png").size == (32, 32)


def test_feature_inversion_reports_psnr_and_ssim_per_layer(compose_cfg):
    cfg = compose_cfg("visualize", ["task=feature_inversion", *TINY, "task.content_layer=[1,8]"])
    summary = run(cfg)
    assert cfg.task.init == "noise" and cfg.task.style_weights == 0
    for layer in (1, 8):
        assert 0 < summary[f"quality/psnr/layer_{layer}"] < 60
        assert -1 <= summary[f"quality/ssim/layer_{layer}"] <= 1
        assert summary[f"loss/content/layer_{layer}"] > 0
        assert (_outputs(cfg) / f"layer_{layer}.png").is_file()
    assert summary["quality/psnr"] == summary["quality/psnr/layer_8"]
    events = EventAccumulator(str(_outputs(cfg) / "tensorboard")).Reload()
    assert {"layer_1/loss/content", "layer_8/loss/content", "quality/psnr/layer_1"} <= set(
        events.Tags()["scalars"]
    )


def test_two_styles_with_blend_and_luminance_transfer_keep_the_content_colours(compose_cfg):
    cfg = compose_cfg(
        "visualize",
        [
            "task=style_transfer",
            *TINY,
            "style=[generated:strokes,skimage:coffee]",
            "task.style_blend=[0.7,0.3]",
            "task.preserve_color=luminance",
        ],
    )
    run(cfg)
    result = Image.open(_outputs(cfg) / "result.png")
    content = load_image_spec("skimage:chelsea").resize(result.size, Image.Resampling.BICUBIC)
    iq_result, iq_content, iq_style = (
        rgb2yiq(np.asarray(img) / 255.0)[..., 1:]
        for img in (result, content, load_image_spec("generated:strokes").resize(result.size))
    )
    # the chrominance is the content's up to RGB gamut clipping, far closer than the style's
    assert np.abs(iq_result - iq_content).mean() < 0.2 * np.abs(iq_style - iq_content).mean()


def test_colour_helpers():
    content, style = load_image_spec("skimage:chelsea"), load_image_spec("generated:strokes")
    matched = np.asarray(match_colors(style, content), dtype=float).reshape(-1, 3).mean(0)
    np.testing.assert_allclose(matched, np.asarray(content, dtype=float).reshape(-1, 3).mean(0), atol=2.0)
    style = style.resize(content.size)
    yiq_mixed, yiq_style, yiq_content = (
        rgb2yiq(np.asarray(im) / 255.0) for im in (with_content_colors(style, content), style, content)
    )
    # luminance from the style image, chrominance from the content image (up to gamut clipping)
    assert np.abs(yiq_mixed[..., 0] - yiq_style[..., 0]).mean() < 0.01
    assert np.abs(yiq_mixed[..., 1:] - yiq_content[..., 1:]).mean() < 0.01


def test_generated_painting_is_deterministic_per_seed():
    a, b = load_image_spec("generated:strokes"), load_image_spec("generated:strokes")
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(load_image_spec("generated:strokes:1")))


def test_squeezenet_from_an_explicit_weights_file(compose_cfg, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "squeezenet1_1.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    cfg = compose_cfg(
        "visualize",
        [
            "task=style_transfer",
            *TINY,
            "task.feature_net=squeezenet",
            f"task.weights_path={path}",
            "task.normalize_weights=false",
        ],
    )
    summary = run(cfg)
    assert np.isfinite(summary["loss/total"]) and summary["loss/style"] > 0


@pytest.mark.parametrize(
    ("preset", "style", "style_size", "content_weight", "style_weights", "tv_weight"),
    [
        ("style_composition_vii", "composition_vii.jpg", 512, 5e-2, [20000, 500, 12, 1], 5e-2),
        ("style_scream", "the_scream.jpg", 224, 3e-2, [200000, 800, 12, 1], 2e-2),
        ("style_starry_night", "starry_night.jpg", 192, 6e-2, [300000, 1000, 15, 3], 2e-2),
    ],
)
def test_cs231n_presets(compose_cfg, preset, style, style_size, content_weight, style_weights, tv_weight):
    cfg = compose_cfg("visualize", [f"experiment=cs231n_{preset}"])
    t = cfg.task
    assert (t.feature_net, t.content_layer, list(t.style_layers)) == ("squeezenet", 3, [1, 4, 6, 7])
    assert (t.steps, t.lr, t.decayed_lr, t.decay_lr_at, list(t.scales)) == (200, 3.0, 0.1, 180, [1.0])
    assert (t.image_size, t.style_size, t.content_weight, t.tv_weight) == (
        192,
        style_size,
        content_weight,
        tv_weight,
    )
    assert list(t.style_weights) == style_weights and t.normalize_weights is False
    assert t.content.endswith("styles/tubingen.jpg") and t.style.endswith(f"styles/{style}")
    with pytest.raises(ImageError, match=r"content: image file not found: .*tubingen.jpg.*content=PATH"):
        run(cfg)
    assert not _outputs(cfg).exists()


@pytest.mark.parametrize(
    ("preset", "task", "image"),
    [
        ("style_starry_night", "style_transfer", "starry_night.jpg"),
        ("style_scream", "style_transfer", "the_scream.jpg"),
        ("style_composition_vii", "style_transfer", "composition_vii.jpg"),
        ("style_texture", "texture", "starry_night.jpg"),
        ("style_inversion", "feature_inversion", None),
        ("cs231n_style_texture", "texture", "starry_night.jpg"),
        ("cs231n_style_inversion", "feature_inversion", None),
    ],
)
def test_presets_compose_and_refuse_missing_paintings(compose_cfg, preset, task, image):
    cfg = compose_cfg("visualize", [f"experiment={preset}"])
    t = cfg.task
    assert t.name == task
    expected_net = "squeezenet" if preset.startswith("cs231n") else "efficientnet_lite0"
    assert t.feature_net == expected_net and t.normalize_weights is (expected_net == "efficientnet_lite0")
    if image is not None:
        assert t.style.endswith(f"styles/{image}")
    missing = "content" if t.content else "style"
    with pytest.raises(ImageError, match=rf"{missing}: image file not found: .*styles/"):
        run_task(cfg)
    assert not _outputs(cfg).exists()


def _unreadable(tmp_path: Path) -> str:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image")
    return str(path)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["content=/no/such/photo.jpg"], ImageError, r"content: image file not found: /no/such/photo.jpg"),
        (["style=UNREADABLE"], ImageError, r"style: cannot read .*broken.jpg"),
        (["style=skimage:nope"], ImageError, r"unknown scikit-image picture 'nope'"),
        (["task.style_layers=[1,40]"], ValueError, r"task.style_layers contains layer 40.*modules 0..16"),
        (["task.content_layer=17"], ValueError, r"task.content_layer contains layer 17"),
        (["task.style_weights=[1,2]"], ConfigError,
         r"^task.style_layers=\[0, 1, 3, 5, 8\] has 5 entries but task.style_weights=\[1, 2\] has 2"),
        (["task.scales=[1.0,0.5]"], ConfigError, r"^task.scales=\[1.0, 0.5\] must be increasing"),
        (["task.scales=[0.5,1.0]", "task.steps=[1,2,3]"], ConfigError,
         r"^task.steps=\[1, 2, 3\] must hold one"),
        (["task.style_blend=[1,2]"], ConfigError, r"^task.style_blend=\[1, 2\] must hold one .* per style"),
        (["task.optimizer=sgd"], ConfigError, r"^task.optimizer='sgd': must be one of adam, lbfgs"),
        (["style=null"], ConfigError,
         r"^task.style=null: style_weights=1.0 need a style image; set style=PATH"),
        (
            ["task.feature_net=squeezenet"],
            WeightsNotFoundError,
            r"^task.feature_net='squeezenet': .*squeezenet1_1.*task.weights_path=.*efficientnet_lite0",
        ),
        (["task.feature_net=vgg19"], WeightsNotFoundError,
         r"feature net vgg19 needs torchvision's ImageNet weights, which are not in the cache"),
        (["task.feature_net=resnet"], ConfigError,
         r"^task.feature_net='resnet': must be one of efficientnet_lite0"),
        (["task.feature_net=random", "task.weights_path=w.pth"], ConfigError,
         r"feature net random has fixed random weights; task.weights_path=w.pth is not used"),
    ],
)
def test_bad_inputs_fail_clearly_before_optimising(
    compose_cfg, tmp_path, monkeypatch, overrides, error, message
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    overrides = [o.replace("UNREADABLE", _unreadable(tmp_path)) for o in overrides]
    cfg = compose_cfg("visualize", ["task=style_transfer", *TINY, *overrides])
    with pytest.raises(error, match=message):
        run(cfg)
    assert not _outputs(cfg).exists()


@pytest.mark.skipif(not (ASSETS / "starry_night.jpg").is_file(), reason="CS231n paintings not available")
def test_real_paintings_when_available(compose_cfg):
    cfg = compose_cfg(
        "visualize",
        [
            "task=style_transfer",
            *TINY,
            f"content={ASSETS / 'tubingen.jpg'}",
            f"style={ASSETS / 'starry_night.jpg'}",
        ],
    )
    summary = run(cfg)
    assert summary["loss/total"] > 0 and (_outputs(cfg) / "result.png").is_file()
