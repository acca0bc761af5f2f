"""The offline shapes classifier: trained by train.py (experiment=shapes_classifier) as every other model,
exported, loaded by ``classifier=shapes``, and trained through the same pipeline when its file is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from visgrad.classification import ClassifierModule, load_export, save_export
from visgrad.data.shapes import load_shapes_images
from visgrad.errors import CheckpointError, ConfigError
from visgrad.models.shapes_cnn import ShapesCNN, load_shapes_cnn
from visgrad.tasks.config import load_classifier
from visgrad.tasks.shapes_classifier import load_shapes_classifier
from visgrad.training import train

TINY = ["model.net.width=8", "trainer.max_epochs=2", "data.batch_size=32", "model.optimizer.lr=0.01",
        "trainer.accelerator=cpu", "callbacks.rich_progress_bar=null"]
DATASET = {"num_train": 200, "num_val": 60, "seed": 0, "image_size": 64}
SHAPES_CNN = "visgrad.models.shapes_cnn.ShapesCNN"


def visualize_classifier(compose_cfg, shapes_root: Path, checkpoint: Path, log_dir: Path, *extra: str):
    """The ``classifier=shapes`` node of a visualize.py config, on the tiny `shapes` set."""
    return compose_cfg("visualize", [
        "classifier=shapes", f"classifier.checkpoint={checkpoint}", f"classifier.data_root={shapes_root}",
        "classifier.dataset.num_train=200", "classifier.dataset.num_val=60", f"classifier.log_dir={log_dir}",
        f"classifier.train_overrides=[{','.join(repr(o) for o in TINY)}]", *extra,
    ]).classifier


def test_train_py_trains_and_exports_what_classifier_shapes_loads(compose_cfg, shapes_root, tmp_path):
    checkpoint = tmp_path / "exported.pt"
    cfg = compose_cfg("train", ["experiment=shapes_classifier", f"data.root={shapes_root}",
                                "data.dataset.num_train=200", "data.dataset.num_val=60",
                                f"callbacks.export_classifier.path={checkpoint}", *TINY])
    assert cfg.monitor.metric == "val/acc" and cfg.model._target_ == "visgrad.classification.ClassifierModule"
    value = train(cfg)
    assert 0.0 <= value <= 1.0
    exported = torch.load(checkpoint, weights_only=True)
    assert exported["val_acc"] == pytest.approx(value)
    assert exported["net"] == {"_target_": SHAPES_CNN, "width": 8, "num_classes": 4}
    # the checkpoint rebuilds the module (network and optimizer from their stored configs)
    rebuilt = ClassifierModule.load_from_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert isinstance(rebuilt.net, ShapesCNN) and rebuilt.hparams.class_names == ["circle", "square",
                                                                                   "triangle", "diamond"]

    stamp = checkpoint.stat().st_mtime_ns
    node = visualize_classifier(compose_cfg, shapes_root, checkpoint, tmp_path / "logs")
    classifier = load_classifier(node)
    assert checkpoint.stat().st_mtime_ns == stamp and not (tmp_path / "logs").exists()  # loaded, not trained
    assert classifier.name == "shapes" and classifier.image_size == 64
    assert classifier.class_names == load_shapes_images(shapes_root, "val").label_names
    assert not classifier.model.training and not any(p.requires_grad for p in classifier.model.parameters())
    assert classifier.model(torch.zeros(2, 3, 64, 64)).shape == (2, 4)


def test_classifier_shapes_trains_a_missing_file_through_train_py(compose_cfg, shapes_root, tmp_path, capsys):
    """A fresh machine: classifier=shapes composes experiment=shapes_classifier and runs training.train,
    which gives exactly the weights of `python train.py experiment=shapes_classifier` with the same data."""
    checkpoint = tmp_path / "classifiers" / "shapes_cnn.pt"
    node = visualize_classifier(compose_cfg, shapes_root, checkpoint, tmp_path / "logs")
    classifier = load_classifier(node)
    printed = capsys.readouterr().out
    assert f"no shapes classifier at {checkpoint} yet: training it once, as python train.py " \
           "experiment=shapes_classifier" in printed.replace("\n", "")
    assert list(checkpoint.parent.iterdir()) == [checkpoint]  # atomic export: no temporary files left
    (run,) = (tmp_path / "logs" / "shapes_classifier" / "runs").iterdir()
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert classifier.class_names == ["circle", "square", "triangle", "diamond"]

    direct = tmp_path / "direct.pt"
    train(compose_cfg("train", ["experiment=shapes_classifier", f"data.root={shapes_root}",
                                *(f"data.dataset.{k}={v}" for k, v in DATASET.items()),
                                f"callbacks.export_classifier.path={direct}", *TINY]))
    trained, by_train_py = (torch.load(p, weights_only=True)["state_dict"] for p in (checkpoint, direct))
    assert all(torch.equal(trained[key], value) for key, value in by_train_py.items())


def test_a_file_that_is_not_an_export_is_never_overwritten(compose_cfg, shapes_root, tmp_path):
    """classifier.checkpoint=<a captioner's last.ckpt> (classifier.retrain=true or not): refused before any
    training, with the key to change; the file unchanged."""
    captioner = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": {"cfg": OmegaConf.create({"a": 1})}, "state_dict": {}}, captioner)
    before = captioner.read_bytes()
    for retrain in (True, False):
        node = visualize_classifier(compose_cfg, shapes_root, captioner, tmp_path / "logs",
                                    f"classifier.retrain={retrain}")
        with pytest.raises(ConfigError, match=r"^classifier.checkpoint=.*last.ckpt is not an exported "
                           r"classifier .* never overwritten. Point classifier.checkpoint"):
            load_classifier(node)
    assert captioner.read_bytes() == before and not (tmp_path / "logs").exists()
    export = f"callbacks.export_classifier.path={captioner}"
    cfg = compose_cfg("train", ["experiment=shapes_classifier", export])
    with pytest.raises(ConfigError, match=r"^callbacks.export_classifier.path='.*last.ckpt': not an exported "
                                          r"classifier .*, which is never overwritten; export to a new file"):
        train(cfg)
    assert not Path(cfg.paths.data_dir).exists()  # refused before any data work
    with pytest.raises(CheckpointError, match=r"last.ckpt is not an exported classifier .* overwritten$"):
        save_export(captioner, ShapesCNN(4), {"_target_": SHAPES_CNN}, ["a"], 64, 0.5)
    assert captioner.read_bytes() == before


def test_unloadable_exports_name_the_file_and_the_loader_adds_the_fix(tmp_path):
    stale = tmp_path / "shapes_cnn.pt"
    torch.save({"format": 99, "state_dict": {}}, stale)  # an export of another format version: replaceable
    with pytest.raises(CheckpointError, match=r"^cannot load the exported classifier .*shapes_cnn.pt "
                                              r"\(format 99, expected 2\)$"):
        load_shapes_cnn(stale)
    with pytest.raises(CheckpointError, match=r"\(format 99, expected 2\); pass classifier.retrain=true"):
        load_shapes_classifier(str(stale), str(tmp_path / "shapes"), DATASET)
    net = ShapesCNN(4, width=4)
    config = {"_target_": SHAPES_CNN, "num_classes": 4, "width": 4}
    good = save_export(tmp_path / "good.pt", net, config, list("abcd"), 64, None)
    loaded, meta = load_export(good)
    assert meta["class_names"] == list("abcd") and meta["val_acc"] is None
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())


@pytest.mark.slow
def test_default_shapes_classifier_is_accurate(compose_cfg, tmp_path):
    """The default recipe (experiment=shapes_classifier) reaches high validation accuracy (about a minute)."""
    checkpoint = tmp_path / "shapes_cnn.pt"
    export = f"callbacks.export_classifier.path={checkpoint}"
    train(compose_cfg("train", ["experiment=shapes_classifier", export]))
    assert torch.load(checkpoint, weights_only=True)["val_acc"] > 0.9
