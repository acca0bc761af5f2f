"""CaptionDataModule: batches, model_kwargs, max_train, pca_features, eval_set, Hydra configs, COCO errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from visgrad.data import CaptionDataError, CaptionDataModule, EvalSet, load_coco_data
from visgrad.data.shapes import load_shapes_images
from visgrad.data.shapes_features import RAW_DIM
from visgrad.data.vocab import decode_captions


@pytest.fixture
def datamodule(shapes_root: Path) -> CaptionDataModule:
    dm = CaptionDataModule(shapes_root, batch_size=32, shapes=dict(num_train=200, num_val=60, seed=0))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_pair_each_caption_with_its_image_features(
    datamodule: CaptionDataModule, shapes_root
) -> None:
    data = load_coco_data(shapes_root)
    batches = list(datamodule.val_dataloader())
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    assert [len(f) for f, _ in batches[:-1]] == [32] * (len(batches) - 1)
    features = torch.cat([f for f, _ in batches])
    captions = torch.cat([c for _, c in batches])
    assert features.dtype == torch.float32 and captions.dtype == torch.int64
    np.testing.assert_array_equal(captions.numpy(), data["val_captions"])
    np.testing.assert_array_equal(features.numpy(), data["val_features"][data["val_image_idxs"]])

    train = list(datamodule.train_dataloader())
    seen = torch.cat([c for _, c in train])
    assert len(seen) == len(data["train_captions"])

    def order(rows: np.ndarray) -> np.ndarray:
        return rows[np.lexsort(rows.T[::-1])]

    np.testing.assert_array_equal(order(seen.numpy()), order(data["train_captions"].astype(np.int64)))
    assert len(list(datamodule.test_dataloader())) == len(batches)


def test_training_order_depends_only_on_seed_and_epoch(shapes_root: Path) -> None:
    def epoch_order(seed: int, epoch: int) -> torch.Tensor:
        dm = CaptionDataModule(shapes_root, batch_size=32, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
        return torch.cat([c for _, c in loader])

    torch.manual_seed(123)  # the global RNG must not matter (a resumed run has a fresh one)
    first = epoch_order(seed=0, epoch=1)
    torch.manual_seed(456)
    assert torch.equal(first, epoch_order(seed=0, epoch=1))
    assert not torch.equal(first, epoch_order(seed=0, epoch=2))
    assert not torch.equal(first, epoch_order(seed=1, epoch=1))


def test_model_kwargs(datamodule: CaptionDataModule, shapes_root: Path) -> None:
    kwargs = datamodule.model_kwargs()
    assert set(kwargs) == {"word_to_idx", "input_dim"}
    assert kwargs["input_dim"] == 200 and kwargs["word_to_idx"] == load_coco_data(shapes_root)["word_to_idx"]
    raw = CaptionDataModule(shapes_root, pca_features=False)
    assert raw.model_kwargs()["input_dim"] == RAW_DIM
    assert next(iter(raw.train_dataloader()))[0].shape == (100, RAW_DIM)


def test_eval_set_groups_all_references_per_image(datamodule: CaptionDataModule, shapes_root: Path) -> None:
    data = load_coco_data(shapes_root)
    es = datamodule.eval_set("val")
    assert isinstance(es, EvalSet) and len(es) == 60 and datamodule.eval_set("val") is es
    np.testing.assert_array_equal(es.image_idxs, np.arange(60))
    np.testing.assert_array_equal(es.features.numpy(), data["val_features"])
    captions = decode_captions(data["val_captions"], data["idx_to_word"])
    for i, refs in zip(es.image_idxs, es.references, strict=True):
        assert refs == [c for c, j in zip(captions, data["val_image_idxs"], strict=True) if j == i]
        assert all("<" not in r for r in refs)
    assert sum(map(len, es.references)) == len(captions)
    assert all(len(set(refs)) == len(refs) == 5 for refs in es.references)  # complete val references
    np.testing.assert_array_equal(es.images, load_shapes_images(shapes_root, "val").images)
    assert np.array_equal(np.asarray(Image.open(es.urls[5])), es.images[5])
    assert es.idx_to_word == data["idx_to_word"] and es.word_to_idx == data["word_to_idx"]
    small = datamodule.eval_set("val", max_images=7)
    assert len(small) == 7 and small.references == es.references[:7] and small.features.shape == (7, 200)
    limited = CaptionDataModule(shapes_root, max_eval_images=9)
    assert len(limited.eval_set("val")) == 9 and len(limited.eval_set("val", max_images=60)) == 60
    with pytest.raises(ValueError, match="split"):
        datamodule.eval_set("test")


def test_max_train_subsets_training_captions_only(shapes_root: Path) -> None:
    full = load_coco_data(shapes_root)
    dm = CaptionDataModule(shapes_root, max_train=40, seed=5)
    subset = load_coco_data(shapes_root, max_train=40, seed=5)
    assert len(dm.dataset_for("train")) == 40 and len(dm.dataset_for("val")) == len(full["val_captions"])
    np.testing.assert_array_equal(dm.dataset_for("train").captions.numpy(), subset["train_captions"])
    es = dm.eval_set("train")
    np.testing.assert_array_equal(es.image_idxs, np.unique(subset["train_image_idxs"]))
    np.testing.assert_array_equal(es.features.numpy(), full["train_features"][es.image_idxs])
    counts = np.bincount(full["train_image_idxs"])
    assert [len(r) for r in es.references] == counts[es.image_idxs].tolist()  # all captions of those images
    assert es.urls[0].endswith(f"images/train/{es.image_idxs[0]:06d}.png")


def test_shapes_config_composes_and_generates_under_data_dir(compose_cfg, shapes_root: Path) -> None:
    cfg = compose_cfg("train", ["data=shapes"])
    assert cfg.data.batch_size == 100 and cfg.data.shapes.num_train == 4000 and cfg.data.shapes.num_val == 500
    assert cfg.data.root == f"{cfg.paths.data_dir}/shapes"
    cfg.data.root = str(shapes_root)
    cfg.data.shapes.num_train, cfg.data.shapes.num_val = 200, 60
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert isinstance(dm, CaptionDataModule) and dm.model_kwargs()["input_dim"] == 200


def test_coco_scale_shapes_config_composes(compose_cfg) -> None:
    cfg = compose_cfg("train", ["data=shapes_coco_scale"])
    assert cfg.data.dataset == "shapes" and cfg.data.root == f"{cfg.paths.data_dir}/shapes_coco_scale"
    shapes = dict(num_train=82783, num_val=40504, seed=0, image_size=64, feature_dim=4096)
    assert dict(cfg.data.shapes) == shapes
    assert cfg.data.max_eval_images == 2000 and cfg.data.pca_features is True


def test_coco_config_fails_before_training_with_the_download_command(compose_cfg) -> None:
    cfg = compose_cfg("train", ["data=coco"])
    assert cfg.data.dataset == "coco" and cfg.data.root.endswith("coco_captioning")
    assert cfg.data.max_eval_images == 2000
    dm = instantiate(cfg.data)
    dm.prepare_data()  # never downloads
    with pytest.raises(CaptionDataError, match="coco_captioning does not exist") as err:
        dm.setup("fit")
    assert "bash scripts/get_coco_captioning.sh" in str(err.value)
    assert not Path(cfg.data.root).exists()


def test_shapes_parameters_regenerate_only_when_given(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    CaptionDataModule(root, shapes=dict(num_train=30, num_val=10)).setup("fit")
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert CaptionDataModule(root).model_kwargs()["input_dim"] == 30  # used as it is
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    dm = CaptionDataModule(root, shapes=dict(num_train=35, num_val=10))
    dm.setup("fit")
    assert dm.model_kwargs()["input_dim"] == 35 and len(dm.eval_set("train")) == 35


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset"):
        CaptionDataModule(tmp_path, dataset="imagenet")
    with pytest.raises(ValueError, match="batch_size"):
        CaptionDataModule(tmp_path, batch_size=0)
