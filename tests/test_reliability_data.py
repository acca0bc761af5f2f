"""Data, weights and training at the edges: values that ran as nonsense are refused
(``data.pca_features=maybe``, a sample-quality judge trained on a handful of images, ``data.max_train``
beyond the split); unreadable, truncated and corrupt files and file/folder mix-ups are named as such,
without a traceback and without advice that does not fit (no 1 GB download for a permission problem); a
GAN stopped by skip mode is not told to use skip mode."""

from __future__ import annotations

import errno
import functools
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from visgrad.callbacks import NonFiniteError, NonFiniteGuard
from visgrad.data.coco import CAPTIONS_FILE, CaptionDataError, load_coco_data
from visgrad.data.datamodule import CaptionDataModule
from visgrad.data.digits import DigitsDataModule
from visgrad.data.mnist import MNISTDataError, MNISTDataModule
from visgrad.data.shapes import IMAGES_FILE, ensure_shapes, load_shapes_images
from visgrad.errors import CheckpointError, ConfigError, UserError
from visgrad.models.efficientnet_lite0 import load_efficientnet_lite0
from visgrad.models.pretrained import WeightsNotFoundError, read_state_dict
from visgrad.tasks import run_task
from visgrad.utils.preflight import config_problems

GAN_TINY = ["experiment=gan_vanilla", "model.generator.hidden=32", "model.discriminator.hidden=16"]


@pytest.mark.parametrize(("overrides", "expected"), [
    (["data.pca_features=maybe"], ["data.pca_features='maybe': must be true or false; e.g. "
                                   "data.pca_features=true"]),
    ([*GAN_TINY, "callbacks.sample_quality.judge_epochs=0"],
     ["callbacks.sample_quality.judge_epochs=0: must be a positive integer (an untrained judge's distances "
      "mean nothing); e.g. callbacks.sample_quality.judge_epochs=5"]),
    ([*GAN_TINY, "data.num_val=1790"],
     ["data.num_val=1790: leaves 7 training images, too few for the sample-quality judge (at least 100; on "
      "fewer its Fréchet distances look excellent and mean nothing); e.g. data.num_val=300"]),
    ([*GAN_TINY, "callbacks.sample_quality.max_train=20"],
     ["callbacks.sample_quality.max_train=20: the sample-quality judge would train on 20 images, too few for "
      "its distances to mean anything (at least 100); e.g. callbacks.sample_quality.max_train=10000"]),
    ([*GAN_TINY, "data=mnist", "data.max_train=50"],
     ["data.max_train=50: keeps 50 training images, too few for the sample-quality judge (at least 100; on "
      "fewer its Fréchet distances look excellent and mean nothing); e.g. data.max_train=null"]),
    ([*GAN_TINY, "data.num_val=1697", "callbacks.sample_quality.max_train=100"], []),  # the tests' tiny runs
    (["+model.net.hiden_dim=512"],
     ["model.net.hiden_dim: not an argument of visgrad.captioning.CaptioningRNN; did you mean "
      "model.net.hidden_dim? it takes wordvec_dim, hidden_dim, cell_type"]),
])
def test_values_that_gave_nonsense_are_refused_before_work(compose_cfg, overrides, expected) -> None:
    assert config_problems(compose_cfg("train", overrides)) == expected


def test_the_judge_itself_refuses_a_handful_of_images() -> None:
    """The callback outside train.py: refused in setup, before its judge trains."""
    from visgrad.gan.callbacks import SampleQualityMetrics

    data = DigitsDataModule(num_val=1790, batch_size=8)
    data.setup("fit")
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.datamodule = data
    with pytest.raises(ConfigError, match=r"^the sample-quality judge would train on 7 images .* least 100$"):
        SampleQualityMetrics(judge_epochs=1).setup(trainer, None, "fit")
    with pytest.raises(ValueError, match=r"^judge_epochs=0: must be a positive integer"):
        SampleQualityMetrics(judge_epochs=0)


def test_caption_data_refusals(shapes_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^data.pca_features must be true or false, got 'maybe'$"):
        CaptionDataModule(shapes_root, pca_features="maybe")
    data = CaptionDataModule(shapes_root, max_train=10**6)
    with pytest.raises(ConfigError, match=rf"^data.max_train=1000000 is larger than the (\d+) training "
                                          rf"captions of {shapes_root / CAPTIONS_FILE}; set data.max_train "
                                          r"to at most \1 \(or null: all\)$"):
        data.setup("fit")


@pytest.fixture
def coco_copy(shapes_root: Path, tmp_path: Path) -> Path:
    """A copy of the tiny shapes folder (CS231n's COCO layout) to break."""
    import shutil

    return Path(shutil.copytree(shapes_root, tmp_path / "coco"))


def test_unreadable_data_file_is_not_called_corrupt(coco_copy: Path, monkeypatch) -> None:
    """Permission denied: "not readable" with the chmod fix, no 1 GB re-download (as root every file is
    readable: the permission check is made to answer as for a user without read permission)."""
    captions = coco_copy / CAPTIONS_FILE
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != captions and real_access(path, mode))
    with pytest.raises(CaptionDataError) as caught:
        load_coco_data(coco_copy)
    assert str(caught.value) == (f"{captions} is not readable (permission denied): give your user read "
                                 f"access (chmod u+r {captions})")


def test_shapes_images_unreadable_or_truncated_are_named(coco_copy: Path, monkeypatch) -> None:
    images = coco_copy / IMAGES_FILE
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(CaptionDataError, match=rf"^{images} is not a readable HDF5 file: it is truncated or "
                                               r"corrupt .*delete it .* generated again"):
        load_shapes_images(coco_copy, "val")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != images and real_access(path, mode))
    with pytest.raises(CaptionDataError, match=rf"^{images} is not readable \(permission denied\)"):
        load_shapes_images(coco_copy, "val")
    images.unlink()
    with pytest.raises(CaptionDataError, match=rf"^missing file {images}; generate the dataset with "):
        load_shapes_images(coco_copy, "val")


def test_data_files_and_folders_mixed_up_are_named(coco_copy: Path, tmp_path: Path) -> None:
    captions = coco_copy / CAPTIONS_FILE
    captions.unlink()
    captions.mkdir()
    with pytest.raises(CaptionDataError, match=rf"^{captions} is a folder, not a file; move it away"):
        load_coco_data(coco_copy)
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    with pytest.raises(CaptionDataError, match=rf"^captioning data folder: {file} is a file, not a folder; "):
        load_coco_data(file)
    with pytest.raises(UserError, match=rf"^{file / 'shapes'} lies inside {file}, which is a file, not a "
                                        r"folder; point data.root"):
        ensure_shapes(file / "shapes", num_train=10, num_val=5)
    with pytest.raises(MNISTDataError, match=rf"^data.root={file}: {file} is a file, not a folder; give the "
                                             r"folder that holds MNIST/raw$"):
        MNISTDataModule(str(file)).prepare_data()
    assert file.read_text() == "mine"


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: a type code (0x08: uint8), the number of dimensions, big-endian sizes, the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_files_missing_truncated_or_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(MNISTDataError, match=r"missing .*train-images-idx3-ubyte") as caught:
        MNISTDataModule(str(tmp_path)).prepare_data()
    assert isinstance(caught.value, UserError)  # one line, not a traceback
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 12), ("t10k", 6)):
        write_idx(raw / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(MNISTDataError, match=rf"^{images} is not a readable IDX file: it is truncated or "
                                             r"corrupt .*; download MNIST again$"):
        MNISTDataModule(str(tmp_path), num_val=2).setup("fit")
    images.unlink()
    images.mkdir()
    with pytest.raises(MNISTDataError, match=rf"{images} should be files .*, not folders$"):
        MNISTDataModule(str(tmp_path)).prepare_data()
    images.rmdir()
    write_idx(images, np.zeros((12, 28, 28)))
    with pytest.raises(ConfigError, match=r"^data.max_train=13: MNIST under .* has only 12"):
        MNISTDataModule(str(tmp_path), max_train=13).setup("fit")


def test_weights_files_corrupt_unreadable_or_folders_are_named(tmp_path: Path, monkeypatch) -> None:
    corrupt = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(100)}, corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=rf"^cannot read EfficientNet-Lite0 weights file {corrupt} as a "
                                              r"PyTorch state dict \(truncated or corrupt: "):
        load_efficientnet_lite0(corrupt)
    with pytest.raises(CheckpointError, match=rf"^EfficientNet-Lite0 weights file {tmp_path} is a folder, "
                                              r"not a file; give the .pth file$"):
        load_efficientnet_lite0(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=r"^EfficientNet-Lite0 weights file not found: "):
        load_efficientnet_lite0(tmp_path / "nowhere.pth")
    torch.save([1, 2], corrupt)
    with pytest.raises(CheckpointError, match=r"holds a list, not a state dict of tensors$"):
        read_state_dict(corrupt)

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(CheckpointError, match=rf"^weights file: {corrupt} is not readable \(permission "
                                              rf"denied\): give your user read access \(chmod u\+r "
                                              rf"{corrupt}\)$"):
        read_state_dict(corrupt)


def test_a_corrupt_classifier_weights_path_is_refused_before_the_run_folder(compose_cfg, tmp_path) -> None:
    corrupt = tmp_path / "lite0.pth"
    corrupt.write_bytes(b"PK\x03\x04 not a state dict")
    cfg = compose_cfg("visualize", [f"classifier.weights_path={corrupt}", "device=cpu"])
    with pytest.raises(CheckpointError, match=rf"weights file {corrupt} as a PyTorch state dict \(truncated"):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def test_a_gan_stopped_by_skip_mode_is_not_told_to_use_skip_mode(tiny_digits) -> None:
    """faults.max_skipped reached: the advice is about diverging training and max_skipped, not "run with
    faults.nonfinite=skip" (it did)."""
    from fault_injection import PoisonGradient

    from visgrad.gan import GANModule
    from visgrad.gan.models import FCDiscriminator, FCGenerator

    module = GANModule(functools.partial(FCGenerator, hidden=32),
                       functools.partial(FCDiscriminator, hidden=16))
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu",
                         callbacks=[NonFiniteGuard("skip", max_skipped=0),
                                    PoisonGradient(0, "discriminator.1.weight")])
    with pytest.raises(NonFiniteError) as caught:
        trainer.fit(module, datamodule=tiny_digits)
    message = str(caught.value)
    assert "skipped step 1, more than faults.max_skipped=0: the run is stopped" in message
    assert "resume with a larger faults.max_skipped" in message
    assert "faults.nonfinite=skip" not in message


@pytest.mark.slow
def test_a_misspelt_network_key_leaves_no_run_folder(tmp_path: Path) -> None:
    """train.py +model.net.hiden_dim=512: one line naming the key (with the right one), and no folder (no
    .hydra/, no train.log, no logs/ folders above the run)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(root / "src")}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run([sys.executable, str(root / "train.py"), "+model.net.hiden_dim=512",
                             "print_config=false"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1, result.stderr
    assert ("Error: model.net.hiden_dim: not an argument of visgrad.captioning.CaptioningRNN; did you mean "
            "model.net.hidden_dim?") in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(tmp_path.iterdir()) == []
