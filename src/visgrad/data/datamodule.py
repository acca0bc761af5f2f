"""``CaptionDataModule``: CS231n-format captioning data (COCO or the synthetic `shapes`) for Lightning.

Batches are ``(features, captions)``: the features float32 (B, D) of each caption's image (or, with
``grid``, its grid (B, h, w, C): ``visgrad.data.grid_features``) and the caption token ids int64 (B, T).
``eval_set(split)`` groups a split by image, with all reference captions, for caption metrics and figures.
Vector features stay in their files (``open_features`` maps them): each batch reads its rows with plain
file reads, in the main process or in DataLoader workers, so the feature files cost page cache, not process
memory. Captions and grids are held in memory.

The datamodule, its file-row reader and the eval-set grouping are kept together (~340 lines): they share
the loaded arrays and the pickling rules that let DataLoader workers and DDP processes reopen the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from visgrad.data.coco import (
    CAPTIONS_FILE,
    SPLITS,
    VOCAB_FILE,
    CaptionDataError,
    features_file,
    load_coco_data,
    subsample_train,
)
from visgrad.data.grid_features import GRID_SOURCES, load_grid
from visgrad.data.shapes import MANIFEST, ensure_shapes, load_shapes_images, load_shapes_objects
from visgrad.data.vocab import decode_captions
from visgrad.errors import ConfigError

DATASETS = ("shapes", "coco")


class FileRows:
    """Rows of a memory-mapped float32 (N, D) feature array, read with plain file reads.

    Batches never map the file into the process: the pages they read stay in the OS page cache, outside
    the memory of the process (and of every DataLoader worker). Each process opens its own file (forked
    workers included), and the object pickles as its location (path, offset, shape), not its data.
    """

    def __init__(self, features: np.memmap) -> None:
        self.path, self.offset, self.shape = features.filename, features.offset, features.shape
        self._file, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), D): the given rows, read in increasing file order."""
        if self._pid != os.getpid():
            self._file, self._pid = open(self.path, "rb", buffering=0), os.getpid()
        rows = np.asarray(rows)
        out = np.empty((len(rows), self.shape[1]), np.float32)
        row_bytes = 4 * self.shape[1]
        for i in np.argsort(rows, kind="stable").tolist():
            self._file.seek(self.offset + int(rows[i]) * row_bytes)
            self._file.readinto(out[i])
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}


def seeded_loader(dataset: Dataset, trainer: pl.Trainer | None, batch_size: int, shuffle: bool, seed: int,
                  num_workers: int = 0, collate_fn=None) -> DataLoader:
    """A loader whose order depends only on ``seed`` and the epoch (Lightning calls ``set_epoch``).

    The same ``DistributedSampler`` serves one process and DDP: rank r of W takes every W-th item of
    the epoch's permutation, so a DDP step with W x B items sees exactly the B-item batch of a
    single-process run with batch W x B, and a resumed run replays the epoch order of an
    uninterrupted one.
    """
    sampler = DistributedSampler(
        dataset,
        num_replicas=trainer.world_size if trainer else 1,
        rank=trainer.global_rank if trainer else 0,
        shuffle=shuffle,
        seed=seed,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


class CaptionDataset(Dataset):
    """Captions paired with their image's features.

    Inputs: ``features`` float32 (N_images, D), an array or an ``np.memmap`` (then read through
    ``FileRows``: nothing is mapped into memory, and pickling for DataLoader workers sends only the file's
    location); ``captions`` int64 (N_captions, T); ``image_idxs`` int64 (N_captions,) indexing
    ``features``. Item i is ``(features[image_idxs[i]], captions[i])``; ``__getitems__`` reads a whole
    batch at once.
    """

    def __init__(self, features: np.ndarray, captions: torch.Tensor, image_idxs: torch.Tensor) -> None:
        # a memmap that came through pickle holds its data, not a file
        file_backed = isinstance(features, np.memmap) and features.filename is not None
        self.features = FileRows(features) if file_backed else features
        self.captions, self.image_idxs = captions, image_idxs

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        features, captions = self.__getitems__([i])
        return features[0], captions[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch ``(features (B, ...) float32, captions (B, T))`` of ``indices`` (DataLoaders call it)."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        rows = self.features[self.image_idxs[index].numpy()]  # a new array, whatever ``features`` is
        return torch.from_numpy(rows.astype(np.float32, copy=False)), self.captions[index]


def collate(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The DataLoader's collate function: ``CaptionDataset.__getitems__`` already returns the stacked
    ``(features (B, D), captions (B, T))``."""
    return batch


@dataclass(frozen=True)
class EvalSet:
    """One split grouped by image (M unique images, in image-idx order).

    ``features`` float32 (M, D) (or grids (M, h, w, C)); ``references`` M lists of all caption strings of
    each image (no ``<START>``/``<END>``/``<NULL>``); ``image_idxs`` int (M,); ``images`` uint8 (M, H, W, 3)
    or None (COCO has only URLs); ``urls`` M strings (relative paths resolved against the data folder) or
    None; ``objects`` int16 (M, 3, 5) the `shapes` object annotations (``load_shapes_objects``) or None.
    """

    split: str
    features: torch.Tensor
    references: list[list[str]]
    image_idxs: np.ndarray
    images: np.ndarray | None
    urls: list[str] | None
    idx_to_word: list[str]
    word_to_idx: dict[str, int]
    objects: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_idxs)


class CaptionDataModule(pl.LightningDataModule):
    """Captioning data in the CS231n COCO folder format.

    Args:
        root: the data folder (``coco2014_captions.h5`` etc.); for ``dataset="shapes"`` it is generated there.
        dataset: ``"shapes"`` (synthetic, generated on first use) or ``"coco"`` (CS231n's download).
        pca_features: use the 512-d ``*_pca.h5`` features instead of the raw ``*_fc7.h5`` ones.
        max_train: keep a random subset of this many training captions (None: all), drawn with ``seed``;
            at most the number of training captions.
        batch_size, num_workers: for the DataLoaders (workers are persistent; each reads its batches'
            feature rows from the memory-mapped files).
        shapes: parameters of ``ensure_shapes`` (num_train, num_val, seed, image_size, feature_dim); None:
            use the folder as it is (generated with the defaults if missing). Ignored for COCO.
        seed: seed of the ``max_train`` subset and of the training order (reshuffled every epoch).
        max_eval_images: default size limit of ``eval_set`` (the first that many images; None: all), so
            that caption metrics on COCO's 40k val images stay affordable.
        grid: grid features instead of vectors (``visgrad.data.grid_features.GRID_SOURCES``: ``"lite0"``,
            ``"pixels"``, or ``"lite0_pooled"`` vectors), held in memory; None: the folder's vector features.
        images_dir: for ``grid`` on COCO, the folder of the downloaded images (None: paths in the folder).
    """

    def __init__(
        self,
        root: str | Path,
        dataset: str = "shapes",
        pca_features: bool = True,
        max_train: int | None = None,
        batch_size: int = 100,
        num_workers: int = 0,
        shapes: Mapping | None = None,
        seed: int = 0,
        max_eval_images: int | None = None,
        grid: str | None = None,
        images_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ConfigError(f"data.dataset must be one of {DATASETS}, got {dataset!r}")
        if grid is not None and grid not in GRID_SOURCES:
            raise ConfigError(f"data.grid must be one of {GRID_SOURCES} or null, got {grid!r}")
        if not isinstance(pca_features, bool):
            raise ConfigError(f"data.pca_features must be true or false, got {pca_features!r}")
        for name, value, low, optional in (
            ("batch_size", batch_size, 1, False),
            ("num_workers", num_workers, 0, False),
            ("max_train", max_train, 1, True),
            ("max_eval_images", max_eval_images, 1, True),
        ):
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                none = " or null" if optional else ""
                raise ConfigError(f"data.{name} must be an integer >= {low}{none}, got {value!r}")
        self.root = Path(root).expanduser()
        self.dataset = dataset
        self.pca_features = pca_features
        self.max_train = max_train
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shapes = dict(shapes or {})
        self.seed = seed
        self.max_eval_images = max_eval_images
        self.grid, self.images_dir = grid, images_dir
        self.save_hyperparameters()
        self._data: dict | None = None
        self._eval_sets: dict[tuple[str, int | None], EvalSet] = {}

    def prepare_data(self) -> None:
        """Generate the `shapes` dataset if needed; COCO is never downloaded (see scripts/).

        With ``shapes`` parameters the folder is made to match them; without, an existing `shapes` folder is
        used as it is and a missing one is generated with the defaults.
        """
        if self.dataset == "shapes" and (self.shapes or not (self.root / MANIFEST).is_file()):
            ensure_shapes(self.root, **self.shapes)

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def __getstate__(self) -> dict:
        """Pickled (into ddp_spawn or spawned processes) without the loaded data, which each process loads
        from the files itself in ``setup``, instead of receiving in-memory copies of the features."""
        return {**self.__dict__, "_data": None, "_eval_sets": {}}

    def _load(self) -> dict:
        """Load (and check) the folder once with ``load_coco_data``; features stay memory-mapped."""
        if self._data is None:
            self.prepare_data()  # a no-op unless a `shapes` folder is missing or outdated
            data = load_coco_data(self.root, max_train=None, pca_features=self.pca_features)
            data["all_train_captions"] = data["train_captions"]
            data["all_train_image_idxs"] = data["train_image_idxs"]
            for split in SPLITS if self.grid else ():
                data[f"{split}_features"] = load_grid(self.root, split, self.grid, self.images_dir)
            if self.max_train is not None:
                available = len(data["train_captions"])
                if self.max_train > available:
                    raise ConfigError(f"data.max_train={self.max_train} is larger than the {available} "
                                      f"training captions of {self.root / CAPTIONS_FILE}; set data.max_train "
                                      f"to at most {available} (or null: all)")
                data = subsample_train(data, self.max_train, self.seed, source=self.root / CAPTIONS_FILE)
            self._data = data
        return self._data

    def model_kwargs(self) -> dict:
        """What a captioner needs from the data: ``{"word_to_idx": dict, "input_dim": int}`` (the size of the
        features' last axis: D, or a grid's channels C)."""
        data = self._load()
        return {"word_to_idx": dict(data["word_to_idx"]), "input_dim": int(data["train_features"].shape[-1])}

    def check_compatible(self, input_dim: int, word_to_idx: Mapping[str, int]) -> None:
        """Raise ``CaptionDataError`` unless a model with this ``input_dim`` and vocabulary fits the data
        (e.g. one fixed by a checkpoint or config), naming the file, both values and the fix."""
        data = self._load()
        dim = int(data["train_features"].shape[-1])
        if input_dim != dim and self.grid:
            raise CaptionDataError(f"the model takes {input_dim}-d features (input_dim) but the {self.grid} "
                                   f"grid of {self.root} has {dim} channels; use the data.grid the model had")
        if input_dim != dim:
            other = self.root / features_file("train", not self.pca_features)
            fix = "train a new model on these features"
            if other.is_file():
                with h5py.File(other, "r") as f:
                    if f["features"].shape[1] == input_dim:
                        fix = f"set data.pca_features={str(not self.pca_features).lower()} ({other.name})"
            raise CaptionDataError(
                f"the model takes {input_dim}-d features (input_dim) but "
                f"{self.root / features_file('train', self.pca_features)} holds {dim}-d ones; {fix}"
            )
        model, here = dict(word_to_idx), data["word_to_idx"]
        if model != here:
            changed = [w for w in sorted(set(model) | set(here)) if model.get(w) != here.get(w)]
            detail = ", ".join(f"{w!r} {model.get(w)} vs {here.get(w)}" for w in changed[:3])
            raise CaptionDataError(
                f"the model's vocabulary ({len(model)} words) differs from {self.root / VOCAB_FILE} "
                f"({len(here)} words; ids in the model vs the data: {detail}); use the data the model was "
                "trained on (data=..., data.root=...) or train a new model"
            )

    @property
    def idx_to_word(self) -> list[str]:
        return list(self._load()["idx_to_word"])

    @property
    def word_to_idx(self) -> dict[str, int]:
        return dict(self._load()["word_to_idx"])

    def dataset_for(self, split: str) -> CaptionDataset:
        """The captions of ``split`` (after ``max_train`` for train) with their features."""
        data = self._split_check(split)
        return CaptionDataset(
            data[f"{split}_features"],
            torch.from_numpy(data[f"{split}_captions"].astype(np.int64)),
            torch.from_numpy(data[f"{split}_image_idxs"].astype(np.int64)),
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return seeded_loader(self.dataset_for(split), self.trainer, self.batch_size, shuffle, self.seed,
                             self.num_workers, collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The val split (CS231n's COCO captioning set has no test split)."""
        return self._loader("val", shuffle=False)

    def _split_check(self, split: str) -> dict:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._load()

    def eval_set(self, split: str = "val", max_images: int | None = None) -> EvalSet:
        """``split`` grouped by image: the images its captions use (for train: after ``max_train``), each with
        all of its captions in the folder as references. Keeps the first ``max_images`` images (default:
        the datamodule's ``max_eval_images``; None there too: all).
        """
        max_images = max_images if max_images is not None else self.max_eval_images
        key = (split, max_images)
        if key not in self._eval_sets:
            self._eval_sets[key] = self._make_eval_set(split, max_images)
        return self._eval_sets[key]

    def _make_eval_set(self, split: str, max_images: int | None) -> EvalSet:
        data = self._split_check(split)
        image_idxs = np.unique(data[f"{split}_image_idxs"])[:max_images]
        prefix = "all_train" if split == "train" else split
        all_idxs = data[f"{prefix}_image_idxs"]
        wanted = np.isin(all_idxs, image_idxs)
        references: dict[int, list[str]] = {int(i): [] for i in image_idxs}
        captions = decode_captions(data[f"{prefix}_captions"][wanted], data["idx_to_word"])
        for idx, caption in zip(all_idxs[wanted].tolist(), captions, strict=True):
            references[idx].append(caption)
        features = torch.from_numpy(data[f"{split}_features"][image_idxs].astype(np.float32))  # a copy
        images = objects = None
        if self.dataset == "shapes":
            images = load_shapes_images(self.root, split, rows=image_idxs).images
            objects = load_shapes_objects(self.root, split)[image_idxs]
        urls = [self._resolve(u) for u in data[f"{split}_urls"][image_idxs]]
        return EvalSet(
            split=split,
            features=features,
            references=[references[int(i)] for i in image_idxs],
            image_idxs=image_idxs,
            images=images,
            urls=urls,
            idx_to_word=list(data["idx_to_word"]),
            word_to_idx=dict(data["word_to_idx"]),
            objects=objects,
        )

    def _resolve(self, url: str) -> str:
        return url if "://" in url or Path(url).is_absolute() else str(self.root / url)
