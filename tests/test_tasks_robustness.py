"""The digits classifiers (``experiment=digits_classifier``, PGD adversarial training
``experiment=adv_train_digits``, ``classifier=digits``) and ``visualize.py task=robustness`` end to end, on
tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hparams_dashboard import read_dashboard

from visgrad.classification import AdversarialClassifierModule, load_export
from visgrad.data.digits_images import DigitsImagesDataModule, digits_inputs
from visgrad.errors import ConfigError
from visgrad.images import Normalization
from visgrad.models.digits_cnn import DIGITS_NORM, DigitsCNN
from visgrad.tasks import run_task
from visgrad.tasks.config import load_classifier
from visgrad.training import train

TINY = ["model.net.width=4", "model.net.hidden=16", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "callbacks.rich_progress_bar=null", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("digits") / "classifiers" / "digits_cnn.pt"


def _digits_node(compose_cfg, checkpoint: Path, log_dir: Path) -> list[str]:
    overrides = ",".join(repr(o) for o in TINY)
    return [f"task.classifiers.digits.checkpoint={checkpoint}", f"task.classifiers.digits.log_dir={log_dir}",
            f"task.classifiers.digits.train_overrides=[{overrides}]"]


def test_digits_inputs_are_the_held_out_split_as_8_bit_images() -> None:
    norm = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    batch = digits_inputs(28, 10, {"num_val": 50, "seed": 0}, norm)
    val = DigitsImagesDataModule(num_val=50, seed=0).load()["val"]
    assert batch.images.shape == (10, 3, 28, 28) and torch.equal(batch.labels, val.labels[:10])
    pixels = norm.unnormalize(batch.images)
    assert torch.allclose(pixels * 255, (pixels * 255).round(), atol=1e-4)
    assert (pixels[:, 0] - (val.images[:10, 0] + 1) / 2).abs().max() <= 0.5 / 255 + 1e-6
    # the CNN reads grey: the same output for the grey image and its RGB copy
    net = DigitsCNN(10, width=4, hidden=8).eval()
    assert torch.allclose(net(batch.images), net(batch.images[:, :1]), atol=1e-6)


def test_adversarial_training_trains_on_pgd_images_within_the_budget(compose_cfg, tmp_path) -> None:
    checkpoint = tmp_path / "adv.pt"
    cfg = compose_cfg("train", ["experiment=adv_train_digits", "model.steps=2", "model.init_from=null", *TINY,
                                f"callbacks.export_classifier.path={checkpoint}"])
    assert cfg.model._target_ == "visgrad.classification.AdversarialClassifierModule"
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert 0.0 <= metrics["val/robust_acc"] <= 1.0 and checkpoint.is_file()
    # adversarial fine-tuning starts from an exported model's weights
    net, _ = load_export(checkpoint)
    tuned = AdversarialClassifierModule(lambda num_classes: DigitsCNN(num_classes, 4, 16), list("0123456789"),
                                        28, init_from=str(checkpoint))
    for key, value in net.state_dict().items():
        assert torch.equal(tuned.net.state_dict()[key], value), key
    module = AdversarialClassifierModule(lambda num_classes: DigitsCNN(num_classes, 4, 8), list("0123456789"),
                                         28, eps=16, steps=3)
    images = DIGITS_NORM.normalize(torch.rand(5, 3, 28, 28))
    labels = torch.arange(5)
    module.train()
    adversarial = module.adversarial(images, labels)
    assert module.net.training  # back in train mode after the attack
    delta = DIGITS_NORM.unnormalize(adversarial) - DIGITS_NORM.unnormalize(images)
    assert delta.abs().max() <= 16 / 255 + 1e-5 and delta.abs().max() > 0
    pixels = DIGITS_NORM.unnormalize(adversarial)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="bogus_norm"):
        AdversarialClassifierModule(lambda num_classes: DigitsCNN(num_classes), list("01"), 28,
                                    norm="bogus_norm")


def test_robustness_end_to_end_on_a_digits_classifier_trained_on_first_use(compose_cfg, digits_checkpoint,
                                                                         tmp_path) -> None:
    cfg = compose_cfg("visualize", [
        "task=robustness", "device=cpu", "~task.classifiers.shapes",
        "task.classifiers.efficientnet_lite0=null", "task.num_images.digits=24",
        "task.attacks=[fgsm,pgd,carlini_wagner]", "task.eps.linf=[0,8,64]", "task.eps.l2=[0,64,2000]",
        "task.pgd.steps=2", "task.carlini_wagner.steps=20", "task.carlini_wagner.lr=0.1",
        "task.batch_size=16",
        "task.optimized_metric=robustness/digits/pgd/acc_eps8",
        *_digits_node(compose_cfg, digits_checkpoint, tmp_path / "logs"),
    ])
    value = run_task(cfg)
    assert digits_checkpoint.is_file()  # trained once through train.py's pipeline
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["robustness/digits/pgd/acc_eps8"] == pytest.approx(value)
    clean = metrics["robustness/digits/clean_acc"]
    assert metrics["robustness/digits/num_images"] == 24
    for attack in ("fgsm", "pgd", "carlini_wagner"):
        assert metrics[f"robustness/digits/{attack}/acc_eps0"] == clean
    # L-inf 64/255 breaks a barely trained CNN; C&W's curve can only fall as the budget grows
    assert metrics["robustness/digits/pgd/acc_eps64"] < clean
    cw = [metrics[f"robustness/digits/carlini_wagner/acc_eps{e}"] for e in (0, 64, 2000)]
    assert cw == sorted(cw, reverse=True)
    assert all(0 <= metrics[k] <= 1 for k in metrics if "/acc" in k)
    assert (out / "robustness.png").stat().st_size > 1000
    assert (out / "robustness_table.md").read_text().count("\n") == 5  # header, rule, three attacks
    (row,) = read_dashboard(out).rows.values()
    assert row.status == "STATUS_SUCCESS" and row.hparams["task"] == "robustness"
    key = "robustness/digits/fgsm/acc_eps8"
    assert row.metrics[key] == pytest.approx(metrics[key])
    # the classifier=digits config loads the same file as a Classifier
    node = compose_cfg("visualize", ["classifier=digits",
                                     f"classifier.checkpoint={digits_checkpoint}"]).classifier
    classifier = load_classifier(node)
    assert classifier.name == "digits" and classifier.norm == DIGITS_NORM and classifier.image_size == 28


@pytest.mark.parametrize(("overrides", "message"), [
    (["task.attacks=[pgd,pgd]"], r"^task.attacks=\['pgd','pgd'\]: pgd more than once"),
    (["task.classifiers.digits=null", "task.classifiers.shapes=null",
      "task.classifiers.efficientnet_lite0=null"], r"^task.classifiers=.*: must be a mapping name -> "),
    (["task.attacks=[bogus_attack]"], r"task.attacks=\['bogus_attack'\]: unknown attack 'bogus_attack'"),
    (["task.eps.linf=[-1]"], r"task.eps.linf=\[-1\]: must be a list of numbers >= 0"),
])
def test_robustness_refuses_bad_options_before_any_work(compose_cfg, overrides, message, tmp_path) -> None:
    cfg = compose_cfg("visualize", ["task=robustness", *overrides])
    with pytest.raises(ConfigError, match=message):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists() or not any(Path(cfg.paths.output_dir).iterdir())


def test_robustness_names_the_classifiers_own_keys_when_it_refuses_a_file(compose_cfg, tmp_path) -> None:
    """A digits checkpoint that is not an export: refused before any training, naming
    task.classifiers.digits.checkpoint (not the classifier=... key of the single-classifier tasks)."""
    foreign = tmp_path / "notes.pt"
    foreign.write_bytes(b"not a checkpoint")
    overrides = _digits_node(compose_cfg, foreign, tmp_path / "logs")
    cfg = compose_cfg("visualize", ["task=robustness", *overrides])
    with pytest.raises(ConfigError, match=r"^task.classifiers.digits.checkpoint=.*notes.pt is .* never "
                                          r"overwritten. Point task.classifiers.digits.checkpoint at "):
        run_task(cfg)
    assert foreign.read_bytes() == b"not a checkpoint" and not (tmp_path / "logs").exists()
    assert not Path(cfg.paths.output_dir).exists()
