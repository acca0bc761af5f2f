"""Lazy features: the memory-mapped files, read row by row, give exactly the eagerly loaded data, in the main
process, in forked and spawned DataLoader workers, and after pickling; the 4096-d `shapes` extractor."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, SequentialSampler

from visgrad.data import CaptionDataModule, load_coco_data
from visgrad.data.coco import SPLITS, features_file
from visgrad.data.datamodule import FileRows, collate
from visgrad.data.shapes import ensure_shapes, load_shapes_images
from visgrad.data.shapes_features import RAW_DIM, extract_features


@pytest.fixture(scope="module")
def root_4096(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `shapes` folder with COCO's 4096-d raw features."""
    root = tmp_path_factory.mktemp("wide") / "s"
    return ensure_shapes(root, num_train=40, num_val=12, seed=2, feature_dim=4096)


def eager_features(root: Path, split: str, pca: bool) -> np.ndarray:
    with h5py.File(root / features_file(split, pca), "r") as f:
        return f["features"][()]


@pytest.mark.parametrize("pca", [False, True])
def test_mapped_features_equal_the_h5_contents(root_4096: Path, pca: bool) -> None:
    data = load_coco_data(root_4096, pca_features=pca)
    for split, n in (("train", 40), ("val", 12)):
        mapped = data[f"{split}_features"]
        assert isinstance(mapped, np.memmap) and not mapped.flags.writeable and mapped.dtype == np.float32
        assert mapped.shape == (n, 40 if pca else 4096)
        np.testing.assert_array_equal(mapped, eager_features(root_4096, split, pca))


def test_4096_d_features_extend_the_raw_extractor(root_4096: Path) -> None:
    """The first RAW_DIM columns are the extractor's own; the rest are non-negative random ReLU features,
    a smaller feature_dim gives a prefix, and the files hold exactly what the extractor computes."""
    images = load_shapes_images(root_4096, "val").images
    wide = extract_features(images, 4096)
    assert wide.shape == (12, 4096) and wide.dtype == np.float32
    np.testing.assert_array_equal(wide[:, :RAW_DIM], extract_features(images))
    assert wide[:, RAW_DIM:].min() == 0 and (wide[:, RAW_DIM:] > 0).mean() > 0.3
    np.testing.assert_array_equal(extract_features(images, 2048), wide[:, :2048])
    np.testing.assert_allclose(eager_features(root_4096, "val", False), wide, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="feature_dim must be at least"):
        extract_features(images, RAW_DIM - 1)


def test_file_rows_read_any_rows_and_pickle_as_a_location(root_4096: Path) -> None:
    mapped = load_coco_data(root_4096, pca_features=False)["train_features"]
    rows = FileRows(mapped)
    picks = np.array([39, 0, 7, 7, 12])
    np.testing.assert_array_equal(rows[picks], np.asarray(mapped)[picks])
    blob = pickle.dumps(rows)  # after a read: the open file is not pickled
    assert len(blob) < 1000
    np.testing.assert_array_equal(pickle.loads(blob)[picks[::-1]], np.asarray(mapped)[picks[::-1]])
    assert len(rows) == 40 and rows[np.array([], int)].shape == (0, 4096)


def test_datasets_pickle_without_their_features(root_4096: Path) -> None:
    dm = CaptionDataModule(root_4096, pca_features=False, batch_size=8)
    dataset = dm.dataset_for("train")
    blob = pickle.dumps(dataset)
    assert len(blob) < dataset.captions.numel() * 8 + 10_000  # the 40 x 4096 features are not in it
    clone = pickle.loads(blob)
    indices = [5, 1, 100, 3]
    for a, b in zip(dataset.__getitems__(indices), clone.__getitems__(indices), strict=True):
        assert torch.equal(a, b)
    features, captions = dataset[100]
    assert features.shape == (4096,) and captions.dtype == torch.int64


def test_a_pickled_datamodule_loads_the_files_again(root_4096: Path) -> None:
    """ddp_spawn pickles the datamodule into each process: the features must not travel as data."""
    dm = CaptionDataModule(root_4096, pca_features=False, batch_size=8)
    dm.setup("fit")
    dm.eval_set("val")
    blob = pickle.dumps(dm)
    assert len(blob) < 20_000  # no features, captions or eval sets
    clone = pickle.loads(blob)
    clone.setup("fit")
    assert isinstance(clone.dataset_for("train").features, FileRows)
    indices = [3, 0, 77]
    for a, b in zip(dm.dataset_for("train").__getitems__(indices),
                    clone.dataset_for("train").__getitems__(indices), strict=True):
        assert torch.equal(a, b)


def _epoch(dm: CaptionDataModule, split: str, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


@pytest.mark.parametrize("split", SPLITS)
def test_worker_processes_give_the_same_batches_as_the_eager_data(root_4096: Path, split: str) -> None:
    """Batches from 0 and 2 (persistent, forked) workers are identical, two epochs running, and equal to
    gathering from the eagerly read file in the sampler's order."""
    single = CaptionDataModule(root_4096, pca_features=False, batch_size=16, num_workers=0, seed=4)
    workers = CaptionDataModule(root_4096, pca_features=False, batch_size=16, num_workers=2, seed=4)
    for dm in (single, workers):
        dm.setup("fit")
        dm.dataset_for(split).__getitems__([0])  # the parent has opened the file before the workers fork
    eager = eager_features(root_4096, split, pca=False)
    data = load_coco_data(root_4096, pca_features=False)
    for epoch in (0, 1):
        a, b = _epoch(single, split, epoch), _epoch(workers, split, epoch)
        assert len(a) == len(b) > 1
        for (fa, ca), (fb, cb) in zip(a, b, strict=True):
            assert torch.equal(fa, fb) and torch.equal(ca, cb)
        loader = single.train_dataloader() if split == "train" else single.val_dataloader()
        loader.sampler.set_epoch(epoch)
        order = np.asarray(list(loader.sampler))
        np.testing.assert_array_equal(torch.cat([f for f, _ in a]).numpy(),
                                      eager[data[f"{split}_image_idxs"][order]])
        np.testing.assert_array_equal(torch.cat([c for _, c in a]).numpy(), data[f"{split}_captions"][order])


@pytest.mark.timeout(120)
def test_spawned_workers_map_the_file_themselves(root_4096: Path) -> None:
    """spawn (macOS, Windows) and forkserver start workers from a pickled dataset."""
    dataset = CaptionDataModule(root_4096, pca_features=False).dataset_for("val")
    loader = DataLoader(dataset, batch_size=7, sampler=SequentialSampler(dataset), collate_fn=collate,
                        num_workers=1, multiprocessing_context="spawn")
    features = torch.cat([f for f, _ in loader])
    data = load_coco_data(root_4096, pca_features=False)
    np.testing.assert_array_equal(features.numpy(), np.asarray(data["val_features"])[data["val_image_idxs"]])


def test_eval_set_reads_only_its_images(root_4096: Path) -> None:
    dm = CaptionDataModule(root_4096, pca_features=False, max_eval_images=5)
    es = dm.eval_set("val")
    assert es.features.shape == (5, 4096) and es.features.dtype == torch.float32
    np.testing.assert_array_equal(es.features.numpy(), eager_features(root_4096, "val", False)[:5])
    np.testing.assert_array_equal(es.images, load_shapes_images(root_4096, "val").images[:5])
    rows = np.array([1, 4, 9])
    full = load_shapes_images(root_4096, "train")
    part = load_shapes_images(root_4096, "train", rows=rows)
    for a, b in zip(part, full, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b[rows])
