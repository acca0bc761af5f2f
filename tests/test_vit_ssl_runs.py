"""The ViT / SimCLR experiments of train.py, task=linear_probe and attention rollout in task=saliency, end to
end on small settings (the default runs' numbers are in docs/vit_ssl.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from visgrad.classification import load_export, save_export
from visgrad.errors import ConfigError
from visgrad.models.shapes_cnn import ShapesCNN
from visgrad.models.vit import ConvStem, ViT
from visgrad.tasks import run_task
from visgrad.training import train

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.accelerator=cpu",
         "callbacks.rich_progress_bar=null", "callbacks.feature_monitor.bank_size=200",
         "callbacks.feature_monitor.projection=pca"]


@pytest.mark.parametrize("experiment", ["vit_digits", pytest.param("simclr_digits", marks=pytest.mark.slow)])
def test_experiments_train_export_and_monitor_knn(compose_cfg, tmp_path: Path, experiment: str,
                                                  capsys: pytest.CaptureFixture) -> None:
    export = tmp_path / "encoder.pt"
    cfg = compose_cfg("train", [f"experiment={experiment}", *QUICK,
                                f"callbacks.export_classifier.path={export}"])
    train(cfg)
    # a classifier's export line gives its val/acc; SimCLR's encoder has none (not a made-up 0.000)
    out_lines = capsys.readouterr().out.splitlines()
    line = next(line for line in out_lines if line.startswith("exported the network"))
    assert ("(val/acc " in line) == (experiment == "vit_digits")
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["val/knn_acc"] <= 1.0
    assert (out / "features_pca.png").stat().st_size > 1000
    assert list((out / "tensorboard").rglob("projector_config.pbtxt"))  # the projector's features
    net, meta = load_export(export)
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["image_size"] == 28
    assert net.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 64)
    assert isinstance(net, ViT if experiment == "vit_digits" else ShapesCNN)


def test_vit_shapes_trains_a_vit_with_a_conv_stem(compose_cfg, shapes_root: Path, tmp_path: Path) -> None:
    export = tmp_path / "vit_shapes.pt"
    cfg = compose_cfg("train", ["experiment=vit_shapes", f"data.root={shapes_root}",
                                "data.dataset.num_train=200", "data.dataset.num_val=60",
                                "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                "trainer.accelerator=cpu", "callbacks.rich_progress_bar=null",
                                f"callbacks.export_classifier.path={export}"])
    train(cfg)
    net, meta = load_export(export)
    assert isinstance(net, ViT) and isinstance(net.patch_embed, ConvStem) and net.grid_size == 8
    assert meta["image_size"] == 64 and net(torch.zeros(2, 3, 64, 64)).shape == (2, 4)


CNN_CONFIG = {"_target_": "visgrad.models.shapes_cnn.ShapesCNN", "width": 4, "in_channels": 1,
              "num_classes": 10}


def _export(path: Path, net: torch.nn.Module, config: dict, size: int = 28) -> Path:
    return save_export(path, net, config, [str(d) for d in range(10)], size, None)


def test_linear_probe_tabulates_every_encoder_and_fraction(compose_cfg, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = dict(CNN_CONFIG)
    first = _export(tmp_path / "a.pt", ShapesCNN(10, 4, 1), config)
    second = _export(tmp_path / "b.pt", ShapesCNN(10, 4, 1), config)
    cfg = compose_cfg("visualize", ["task=linear_probe", "device=cpu", "task.repeats=2",
                                    "task.projection=pca", "task.fractions=[0.05,1.0]",
                                    "task.optimized_metric=probe/simclr/acc_5pct",
                                    f"task.encoders.simclr.checkpoint={first}",
                                    f"task.encoders.supervised.checkpoint={second}"])
    accuracy = run_task(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probe/simclr/acc_5pct"] == pytest.approx(accuracy)
    for encoder in ("simclr", "supervised", "random_init"):
        for percent in ("5", "100"):
            assert 0.0 < metrics[f"probe/{encoder}/acc_{percent}pct"] <= 1.0
    # 5% of each class, rounded per class
    assert metrics["probe/labels_100pct"] == 1497 and 70 <= metrics["probe/labels_5pct"] <= 80
    table = (out / "linear_probe.md").read_text()
    assert "| random_init |" in table and "5% labels (" in table
    assert (out / "features.png").stat().st_size > 1000


def test_linear_probe_refuses_an_encoder_of_other_data(compose_cfg, tmp_path: Path) -> None:
    config = dict(CNN_CONFIG)
    other = _export(tmp_path / "a.pt", ShapesCNN(10, 4, 1), config, size=32)
    cfg = compose_cfg("visualize", ["task=linear_probe", "device=cpu",
                                    f"task.encoders.simclr.checkpoint={other}",
                                    "~task.encoders.supervised"])
    with pytest.raises(ConfigError, match=r"task.encoders.simclr.checkpoint=.*a.pt was trained on other data "
                                          r"\(10 classes, 32-pixel images\)"):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()
    cfg = compose_cfg("visualize", ["task=linear_probe", "task.fractions=[0.1,2]"])
    with pytest.raises(ConfigError, match=r"task.fractions=\[0.1,2\]: must be a list of label fractions in "
                                          r"\(0, 1\]"):
        run_task(cfg)


def test_attention_rollout_is_scored_like_the_saliency_methods(compose_cfg, shapes_root: Path,
                                                               tmp_path: Path) -> None:
    torch.manual_seed(0)
    vit = ViT(4, img_size=64, patch_size=8, in_channels=3, embed_dim=16, num_layers=2, num_heads=2)
    config = {"_target_": "visgrad.models.vit.ViT", "img_size": 64, "patch_size": 8, "in_channels": 3,
              "embed_dim": 16, "num_layers": 2, "num_heads": 2, "num_classes": 4}
    names = ["circle", "square", "triangle", "diamond"]
    path = save_export(tmp_path / "vit_shapes.pt", vit, config, names, 64, None)
    cfg = compose_cfg("visualize", [
        "classifier=vit_shapes", f"classifier.checkpoint={path}", f"classifier.data_root={shapes_root}",
        "classifier.dataset.num_train=200", "classifier.dataset.num_val=60", "device=cpu", "task=saliency",
        "task.methods=[vanilla,attention_rollout]", "task.num_images=6", "task.num_show=2",
        "task.metrics.steps=4", "task.attention_rollout.head_fusion=max",
        "task.optimized_metric=saliency/attention_rollout/insertion_auc"])
    insertion = run_task(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert 0.0 <= insertion <= 1.0
    for key in ("deletion_auc", "insertion_auc", "pointing_game", "mass_in_mask"):
        assert 0.0 <= metrics[f"saliency/attention_rollout/{key}"] <= 1.0
