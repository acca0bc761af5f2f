"""visualize.py task=saliency|fooling|class_viz end to end (on the offline shapes classifier, whose own tests
are in test_shapes_classifier.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hparams_dashboard import read_dashboard
from PIL import Image

from visgrad.errors import ConfigError
from visgrad.images import ImageError
from visgrad.models.pretrained import WeightsNotFoundError
from visgrad.tasks import run_task
from visgrad.tasks.shapes_classifier import load_shapes_classifier

TINY_DATASET = {"num_train": 200, "num_val": 60, "seed": 0, "image_size": 64}
TINY_TRAINING = ["model.net.width=8", "trainer.max_epochs=2", "data.batch_size=32", "model.optimizer.lr=0.01",
                 "trainer.accelerator=cpu", "callbacks.rich_progress_bar=null"]


@pytest.fixture(scope="module")
def tiny_classifier(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shapes classifier, trained through the ``classifier=shapes`` loader (no file yet)."""
    folder = tmp_path_factory.mktemp("classifier")
    path = folder / "classifiers" / "shapes_cnn.pt"
    load_shapes_classifier(str(path), str(shapes_root), TINY_DATASET, train_overrides=TINY_TRAINING,
                           log_dir=str(folder / "logs"))
    return path


def vis_overrides(shapes_root: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        "classifier=shapes",
        f"classifier.checkpoint={checkpoint}",
        f"classifier.data_root={shapes_root}",
        "classifier.dataset.num_train=200",
        "classifier.dataset.num_val=60",
        "device=cpu",
        *extra,
    ]


def test_visualize_saliency_end_to_end(compose_cfg, shapes_root, tiny_classifier):
    cfg = compose_cfg("visualize", vis_overrides(
        shapes_root, tiny_classifier, "task=saliency", "task.num_images=12", "task.num_show=3",
        "task.smoothgrad.num_samples=2", "task.integrated_gradients.steps=3", "task.metrics.steps=4",
        "task.optimized_metric=saliency/integrated_gradients/pointing_game",
    ))
    pointing = run_task(cfg)
    out = Path(cfg.paths.output_dir)
    (row,) = read_dashboard(out).rows.values()
    assert row.status == "STATUS_SUCCESS"
    assert row.metrics["saliency/integrated_gradients/pointing_game"] == pytest.approx(pointing)
    for method in ("vanilla", "smoothgrad", "integrated_gradients", "random"):
        for metric in ("deletion_auc", "insertion_auc", "pointing_game"):
            assert 0.0 <= row.metrics[f"saliency/{method}/{metric}"] <= 1.0
    assert (out / "saliency.png").stat().st_size > 1000 and (out / "saliency_curves.png").exists()
    # metrics.json (what a -m sweep's summary.md tabulates) holds the summary, as for train.py runs
    assert json.loads((out / "metrics.json").read_text())["saliency/integrated_gradients/pointing_game"] == (
        pytest.approx(pointing))
    # the run's row in TensorBoard's HParams dashboard: its options and its summary metrics
    assert {"task": "saliency", "classifier": "shapes", "num_images": 12, "smoothgrad.num_samples": 2,
            "device": "cpu"}.items() <= row.hparams.items()
    assert "run" not in row.hparams and "optimized_metric" not in row.hparams
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, "task=saliency",
                                                 "task.methods=[vanilla,bogus_method]"))
    with pytest.raises(ConfigError, match=r"task.methods=\['vanilla','bogus_method'\]: unknown attribution "
                                          r"method 'bogus_method'; one of vanilla"):
        run_task(cfg)


def test_visualize_fooling_end_to_end(compose_cfg, shapes_root, tiny_classifier):
    cfg = compose_cfg("visualize", vis_overrides(
        shapes_root, tiny_classifier, "task=fooling", "task.num_images=6", "task.num_show=2",
        "task.normalized_gradient.max_iter=200",
    ))
    success = run_task(cfg)
    assert success == 1.0  # an undertrained small CNN is easy to fool
    out = Path(cfg.paths.output_dir)
    assert (out / "fooling.png").stat().st_size > 1000
    assert len(list((out / "fooling_images").glob("*_to_*.png"))) == 6  # one random target per image
    assert (out / "fooling_table.md").read_text().count("\n") >= 3


def test_fooling_pairs_every_image_with_every_other_target(compose_cfg, shapes_root, tiny_classifier):
    from visgrad.tasks.fooling import make_pairs

    images, classes = make_pairs(torch.tensor([0, 2, 1]), [1, 2], num_classes=4, seed=0)
    assert list(zip(images.tolist(), classes.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 1), (2, 2)]
    cfg = compose_cfg("visualize", vis_overrides(
        shapes_root, tiny_classifier, "task=fooling", "task.num_images=3", "task.targets=[circle,diamond]",
        "task.normalized_gradient.max_iter=200", "task.num_show=2",
    ))
    run_task(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert 3 <= summary["fooling/num_pairs"] <= 6 and summary["fooling/success_rate"] == 1.0
    # the PNG round trip can only lose fooling images, never add any
    assert 0.0 <= summary["fooling/success_rate_png"] <= summary["fooling/success_rate"]
    pngs = sorted((Path(cfg.paths.output_dir) / "fooling_images").glob("*.png"))
    assert len(pngs) == summary["fooling/num_pairs"] and all("_to_" in p.name for p in pngs)
    table = (Path(cfg.paths.output_dir) / "fooling_table.md").read_text()
    assert "| circle |" in table or "| diamond |" in table


@pytest.mark.parametrize(("param", "size"), [("fourier", 48), ("pixel", 64)])
def test_visualize_class_viz_end_to_end(compose_cfg, shapes_root, tiny_classifier, param, size):
    cfg = compose_cfg("visualize", vis_overrides(
        shapes_root, tiny_classifier, "task=class_viz", "task.target=diamond", f"task.param={param}",
        "task.num_iterations=4", "task.show_every=2", "task.robustness.num_crops=4",
        "task.fourier.image_size=48",
    ))
    final_prob = run_task(cfg)  # task.optimized_metric: class_viz/final_prob
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())  # the summary, written by run_task
    assert metrics["class_viz/final_prob"] == final_prob
    assert 0.0 <= metrics["class_viz/final_prob"] <= 1.0 and metrics["class_viz/target"] == 3
    assert 0.0 <= metrics["class_viz/crop_prob"] <= 1.0
    assert metrics["class_viz/crop_top1"] in (0, 0.25, 0.5, 0.75, 1)
    assert (out / f"class_viz_3_diamond_{param}.png").stat().st_size > 1000
    assert Image.open(out / f"class_viz_3_diamond_{param}_final.png").size == (size, size)
    assert any((out / "tensorboard").iterdir())


def test_class_viz_refuses_an_unknown_method_before_writing(compose_cfg, shapes_root, tiny_classifier):
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, "task=class_viz",
                                                 "task.param=bogus_param"))
    with pytest.raises(ConfigError, match="task.param='bogus_param': unknown .* one of fourier, pixel"):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def test_visualize_reads_a_folder_with_grayscale_and_rgba_images(compose_cfg, shapes_root, tiny_classifier,
                                                                  tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(np.full((80, 100), 128, np.uint8)).save(folder / "gray.png")
    Image.new("RGBA", (50, 40), (200, 30, 30, 100)).save(folder / "rgba.png")
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, "task=saliency",
                                                 f"task.images={folder}", "task.methods=vanilla",
                                                 "task.optimized_metric=saliency/vanilla/insertion_auc"))
    assert 0.0 <= run_task(cfg) <= 1.0
    assert (Path(cfg.paths.output_dir) / "saliency.png").exists()


@pytest.mark.parametrize(("overrides", "error", "message"), [
    (["task.images=BROKEN"], ImageError, r"broken.jpg"),
    (["task.images=MISSING"], ImageError, r"image file or folder not found: .*nowhere.jpg"),
    (["task=class_viz", "task.target=triangel"], ConfigError, r"^task.target='triangel': .*'triangle'"),
    (["task=fooling", "task.target=7"], ConfigError, r"^task.target=7: class index 7 is out of range"),
    (["task=fooling", "task.targets=[circle,notaclass]"], ConfigError, r"^task.targets='notaclass': unknown"),
    (["task=saliency", "task.metrics.patch=65"], ConfigError,
     r"^task.metrics.patch=65: larger than the 64-pixel inputs of shapes; use at most 64"),
    (["task=saliency", "task.methods=[vanilla,vanilla]"], ConfigError, r"vanilla more than once"),
])
def test_refused_in_prepare_before_anything_is_written(compose_cfg, shapes_root, tiny_classifier, tmp_path,
                                                        overrides, error, message):
    bad = tmp_path / "broken.jpg"
    bad.write_text("no pixels here")
    overrides = [o.replace("BROKEN", str(bad)).replace("MISSING", str(tmp_path / "nowhere.jpg"))
                 for o in overrides]
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, *overrides))
    with pytest.raises(error, match=message):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def test_missing_imagenet_weights_say_how_to_get_them(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    cfg = compose_cfg("visualize", ["classifier=squeezenet", "task=saliency"])
    with pytest.raises(WeightsNotFoundError, match=r"(?s)squeezenet1_1-b8a52dc0.pth.*classifier.weights_path="
                                                   r"/path/to/squeezenet1_1-b8a52dc0.pth.*classifier=shapes"):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def _cached_squeezenet() -> bool:
    from visgrad.models.pretrained import cached_weights_path, imagenet_weights

    return cached_weights_path(imagenet_weights("squeezenet1_1")).is_file()


KITTEN = Path("/work/shared/assets/cs231n/kitten.jpg")


@pytest.mark.skipif(not (_cached_squeezenet() and KITTEN.is_file()),
                    reason="needs SqueezeNet weights in the torchvision cache and the CS231n kitten image")
def test_squeezenet_on_the_kitten(compose_cfg):
    cfg = compose_cfg("visualize", ["classifier=squeezenet", "task=fooling", f"task.images={KITTEN}",
                                    "task.target=stingray"])
    assert run_task(cfg) == 1.0


def test_visualize_with_a_torchvision_model_from_weights_path(compose_cfg, tmp_path):
    """The ImageNet path (224-pixel inputs, scikit-image sample photos, class names) with random weights."""
    import torchvision

    torch.manual_seed(0)
    weights = tmp_path / "squeezenet_random.pth"
    torch.save(torchvision.models.get_model("squeezenet1_1", weights=None).state_dict(), weights)
    cfg = compose_cfg("visualize", [
        "classifier=squeezenet", f"classifier.weights_path={weights}", "device=cpu", "task=fooling",
        "task.num_images=1", "task.normalized_gradient.max_iter=2", "task.target=gorilla",
    ])
    assert cfg.task.normalized_gradient.learning_rate == 1.0
    assert run_task(cfg) in (0.0, 1.0)
    assert (Path(cfg.paths.output_dir) / "fooling.png").exists()


def test_visualize_reads_cs231n_npz_with_labels(compose_cfg, shapes_root, tiny_classifier, tmp_path):
    rng = np.random.default_rng(0)
    archive = tmp_path / "imagenet_val_25.npz"
    np.savez(archive, X=rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8), y=np.array([0, 2, 3]))
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, f"task.images={archive}",
                                                 "task.optimized_metric=saliency/accuracy"))
    accuracy = run_task(cfg)  # computed against the true labels y: a multiple of 1/3
    assert accuracy * 3 == pytest.approx(round(accuracy * 3), abs=1e-6)
    np.savez(archive, X=rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8), y=np.array([76]))
    with pytest.raises(ValueError, match="not classes of shapes"):
        run_task(cfg)


def test_saliency_display_scale_shows_a_map_from_its_floor_to_its_99th_percentile() -> None:
    """A map with zeros (Grad-CAM after its ReLU) is scaled by its 99th percentile; a map positive everywhere
    (RISE's expected score, here an offset of 0.6) is shown from its 1st percentile, so that its variation is
    not one flat colour; negative values (an occlusion map's rises) keep the floor at 0."""
    from visgrad.tasks.figures import display_scale

    ramp = np.linspace(0.0, 1.0, 10_000).reshape(100, 100)
    with_zeros = np.clip(ramp - 0.02, 0, None)
    shown = display_scale(with_zeros)
    assert shown.min() == 0 and shown.max() == 1
    assert shown[50, 49] == pytest.approx(with_zeros[50, 49] / np.percentile(with_zeros, 99))
    offset = display_scale(0.6 + 0.01 * ramp)
    low, high = np.percentile(ramp, [1, 99])
    assert offset.max() == 1 and np.mean(offset == 0) == pytest.approx(0.01, abs=1e-3)
    assert offset[50, 49] == pytest.approx((ramp[50, 49] - low) / (high - low))
    signed = display_scale(ramp - 0.2)
    assert np.array_equal(signed, np.clip((ramp - 0.2) / np.percentile(ramp - 0.2, 99), 0, 1))
