"""The CS231n COCO captioning folder format: loading (with validation) and writing.

A folder holds::

    coco2014_captions.h5          train_captions int (Nc, T), train_image_idxs int (Nc,), val_* likewise
    coco2014_vocab.json           {"idx_to_word": [...], "word_to_idx": {...}}: <NULL>=0 <START> <END> <UNK>
    train2014_vgg16_fc7.h5        features float (N_train, 4096)   (and val2014_vgg16_fc7.h5)
    train2014_vgg16_fc7_pca.h5    features float (N_train, 512)    (and val2014_vgg16_fc7_pca.h5)
    train2014_urls.txt            one image URL (or path relative to the folder) per feature row
    val2014_urls.txt

Get the real one with ``bash scripts/get_coco_captioning.sh DIR``; the synthetic `shapes` dataset
(``visgrad.data.shapes``) is written in the same format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from visgrad.data.vocab import SPECIAL_TOKENS

SPLITS = ("train", "val")
CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
DOWNLOAD_HINT = (
    "Get the CS231n COCO captioning data with `bash scripts/get_coco_captioning.sh {root}` "
    "(downloads http://cs231n.stanford.edu/coco_captioning.zip, about 1 GB), or train on the offline "
    "synthetic dataset instead: `python train.py data=shapes`."
)


class CaptionDataError(FileNotFoundError):
    """A captioning data folder is missing or incomplete; the message names the file and the fix."""


def features_file(split: str, pca_features: bool) -> str:
    """File name of a split's features, e.g. ``train2014_vgg16_fc7_pca.h5``."""
    return f"{split}2014_vgg16_fc7{'_pca' if pca_features else ''}.h5"


def urls_file(split: str) -> str:
    return f"{split}2014_urls.txt"


def _fail(root: Path, problem: str) -> CaptionDataError:
    return CaptionDataError(f"{problem}\n{DOWNLOAD_HINT.format(root=root)}")


def _read_h5(root: Path, name: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    path = root / name
    if not path.is_file():
        raise _fail(root, f"missing file {path}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise _fail(root, f"{path} lacks the dataset(s) {missing} (it has {sorted(f.keys())})")
            return {k: f[k][()] for k in keys}
    except OSError as err:
        raise _fail(root, f"{path} is not a readable HDF5 file ({err})") from err


def _read_vocab(root: Path) -> dict:
    path = root / VOCAB_FILE
    if not path.is_file():
        raise _fail(root, f"missing file {path}")
    try:
        vocab = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(root, f"{path} is not valid JSON ({err})") from err
    if not isinstance(vocab, dict) or not {"idx_to_word", "word_to_idx"} <= set(vocab):
        raise _fail(root, f"{path} must hold the keys 'idx_to_word' and 'word_to_idx'")
    idx_to_word, word_to_idx = vocab["idx_to_word"], vocab["word_to_idx"]
    missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
    if missing:
        raise _fail(root, f"{path} lacks the special token(s) {missing}")
    if word_to_idx["<NULL>"] != 0:
        raise _fail(root, f"{path}: '<NULL>' must have index 0, found {word_to_idx['<NULL>']}")
    if word_to_idx != {word: idx for idx, word in enumerate(idx_to_word)}:
        raise _fail(root, f"{path}: 'idx_to_word' and 'word_to_idx' do not describe the same vocabulary")
    return {"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}


def _read_urls(root: Path, split: str) -> np.ndarray:
    path = root / urls_file(split)
    if not path.is_file():
        raise _fail(root, f"missing file {path}")
    return np.asarray([line.strip() for line in path.read_text().splitlines()])


def load_coco_data(
    base_dir: str | Path, max_train: int | None = None, pca_features: bool = True, seed: int = 0
) -> dict:
    """Load a CS231n COCO captioning folder, with CS231n's keys, after checking it is complete.

    Returns a dict with ``train_captions`` int (Nc, T), ``train_image_idxs`` int (Nc,), ``val_*`` likewise,
    ``train_features`` float32 (N_train, D), ``val_features`` float32 (N_val, D), ``idx_to_word``,
    ``word_to_idx``, ``train_urls`` / ``val_urls`` str arrays (one per feature row).

    ``pca_features`` picks the ``*_pca.h5`` (512-d) files; ``max_train`` keeps a random subset of that many
    training captions (CS231n's option; here drawn without replacement by ``np.random.default_rng(seed)``).
    Raises ``CaptionDataError`` naming the file when something is missing or inconsistent.
    """
    root = Path(base_dir).expanduser()
    if not root.is_dir():
        raise _fail(root, f"captioning data folder {root} does not exist")
    data: dict = _read_h5(
        root, CAPTIONS_FILE, [f"{s}_{k}" for s in SPLITS for k in ("captions", "image_idxs")]
    )
    data.update(_read_vocab(root))
    vocab_size = len(data["idx_to_word"])
    for split in SPLITS:
        name = features_file(split, pca_features)
        features = _read_h5(root, name, ["features"])["features"]
        if features.ndim != 2:
            raise _fail(root, f"{root / name}: 'features' must be 2-D (N, D), got shape {features.shape}")
        data[f"{split}_features"] = features.astype(np.float32, copy=False)
        data[f"{split}_urls"] = _read_urls(root, split)
        captions, idxs = data[f"{split}_captions"], data[f"{split}_image_idxs"]
        where = root / CAPTIONS_FILE
        if captions.ndim != 2 or idxs.shape != (len(captions),):
            raise _fail(
                root,
                f"{where}: {split}_captions {captions.shape} and {split}_image_idxs "
                f"{idxs.shape} must be (N, T) and (N,)",
            )
        if len(idxs) and (idxs.min() < 0 or idxs.max() >= len(features)):
            raise _fail(
                root,
                f"{where}: {split}_image_idxs range {idxs.min()}..{idxs.max()} does not fit the "
                f"{len(features)} feature rows of {root / name}",
            )
        if captions.size and (captions.min() < 0 or captions.max() >= vocab_size):
            raise _fail(
                root,
                f"{where}: {split}_captions has token ids outside the {vocab_size}-word "
                f"vocabulary of {root / VOCAB_FILE}",
            )
        if len(data[f"{split}_urls"]) != len(features):
            raise _fail(
                root,
                f"{root / urls_file(split)} lists {len(data[f'{split}_urls'])} images but "
                f"{root / name} has {len(features)} feature rows",
            )
    if data["train_features"].shape[1] != data["val_features"].shape[1]:
        raise _fail(
            root,
            f"train and val features differ in size: {data['train_features'].shape[1]} vs "
            f"{data['val_features'].shape[1]} ({features_file('train', pca_features)}, "
            f"{features_file('val', pca_features)})",
        )
    return subsample_train(data, max_train, seed) if max_train is not None else data


def subsample_train(data: dict, max_train: int, seed: int = 0) -> dict:
    """``data`` with a random subset of ``max_train`` training captions (and their image idxs), in file order.

    The subset is drawn without replacement by ``np.random.default_rng(seed)``; all captions are kept when
    there are no more than ``max_train``. The features stay whole (image idxs index into them).
    """
    if max_train < 1:
        raise ValueError(f"max_train must be a positive number of captions or None, got {max_train}")
    num_train = len(data["train_captions"])
    if max_train >= num_train:
        return data
    keep = np.sort(np.random.default_rng(seed).choice(num_train, size=max_train, replace=False))
    return {
        **data,
        "train_captions": data["train_captions"][keep],
        "train_image_idxs": data["train_image_idxs"][keep],
    }


def write_h5(path: Path, arrays: dict[str, np.ndarray], attrs: dict[str, str] | None = None) -> None:
    """Write arrays (and string attributes) to an HDF5 file, byte-for-byte reproducibly (no timestamps)."""
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, track_times=False)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value


def write_coco_folder(
    root: Path,
    splits: dict[str, dict[str, np.ndarray | Sequence[str]]],
    idx_to_word: list[str],
    word_to_idx: dict[str, int],
) -> None:
    """Write a CS231n COCO captioning folder.

    ``splits[split]`` holds ``captions`` int32 (Nc, T), ``image_idxs`` int32 (Nc,), ``features`` float32
    (N, D_raw), ``features_pca`` float32 (N, D_pca) and ``urls`` (N strings).
    """
    write_h5(
        root / CAPTIONS_FILE, {f"{s}_{k}": splits[s][k] for s in SPLITS for k in ("captions", "image_idxs")}
    )
    (root / VOCAB_FILE).write_text(json.dumps({"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}))
    for split in SPLITS:
        write_h5(root / features_file(split, False), {"features": splits[split]["features"]})
        write_h5(root / features_file(split, True), {"features": splits[split]["features_pca"]})
        (root / urls_file(split)).write_text("".join(f"{url}\n" for url in splits[split]["urls"]))
