"""Malformed captioning folders and settings: every corruption gives a clear one-line error naming the file
(or the setting) and the fix; never a hang, never a silently wrong load."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from visgrad.data import CaptionDataError, CaptionDataModule, load_coco_data
from visgrad.data.shapes import IMAGES_FILE, PREVIEW_FILE, ensure_shapes, expected_files

pytestmark = pytest.mark.timeout(60)

CAPTIONS, VOCAB = "coco2014_captions.h5", "coco2014_vocab.json"
TRAIN_PCA, VAL_PCA = "train2014_vgg16_fc7_pca.h5", "val2014_vgg16_fc7_pca.h5"
TRAIN_RAW = "train2014_vgg16_fc7.h5"


@pytest.fixture(scope="module")
def valid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny valid `shapes` folder (30 train / 10 val images) that tests only read."""
    return ensure_shapes(tmp_path_factory.mktemp("valid") / "shapes", num_train=30, num_val=10, seed=1)


@pytest.fixture
def fresh(valid_root: Path, tmp_path: Path) -> Callable[[], Path]:
    """Make a new private copy of the folder's loader files (COCO-like: no `shapes` manifest)."""
    count = iter(range(10**6))

    def copy() -> Path:
        root = tmp_path / f"coco_{next(count)}"
        root.mkdir()
        for name in expected_files():
            if name not in ("manifest.json", IMAGES_FILE, PREVIEW_FILE):
                shutil.copy(valid_root / name, root / name)
        return root

    return copy


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def rewrite(path: Path, **arrays) -> None:
    """Rewrite an HDF5 file with some arrays replaced (None: deleted), as another tool would (no CRC-32)."""
    data = {**arrays_of(path), **arrays}
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            if value is not None:
                f[key] = value


def expect_error(root: Path, name: str, message: str = "", **kwargs) -> CaptionDataError:
    with pytest.raises(CaptionDataError, match=message) as err:
        load_coco_data(root, **kwargs)
    text = str(err.value)
    assert str(root / name) in text and "\n" not in text, text
    assert "scripts/get_coco_captioning.sh" in text  # the fix for a COCO folder
    return err.value


def same_data(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(np.asarray(a[k]), np.asarray(b[k])) if isinstance(a[k], np.ndarray) else a[k] == b[k]
        for k in a
    )


@pytest.mark.parametrize("name", [CAPTIONS, TRAIN_PCA, VAL_PCA])
def test_truncated_h5_files_are_named(fresh, name: str) -> None:
    root = fresh()
    full = (root / name).read_bytes()
    for cut in sorted({0, 7, 100, 800, len(full) // 3, len(full) // 2, len(full) - 100, len(full) - 1}):
        (root / name).write_bytes(full[:cut])
        expect_error(root, name, "truncated or corrupt|is truncated")


@pytest.mark.parametrize("name", [CAPTIONS, TRAIN_PCA, TRAIN_RAW])
def test_flipped_bytes_give_an_error_or_the_same_data(fresh, name: str) -> None:
    """Flips anywhere (metadata: HDF5 checksums; data: our CRC-32 attributes) are detected; the rest fall in
    unused bytes and leave the loaded data unchanged."""
    root = fresh()
    pca = name != TRAIN_RAW
    original = load_coco_data(root, pca_features=pca)
    data = (root / name).read_bytes()
    offsets = sorted({*range(0, 64, 5), *np.linspace(64, len(data) - 1, 40).astype(int).tolist()})
    errors = 0
    for offset in offsets:
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        (root / name).write_bytes(bytes(flipped))
        try:
            loaded = load_coco_data(root, pca_features=pca)
        except CaptionDataError as err:
            assert str(root / name) in str(err)
            errors += 1
        else:
            assert same_data(loaded, original), f"byte {offset} of {name} changed the data silently"
    assert errors >= len(offsets) // 2


def test_a_plausible_change_of_stored_values_fails_the_crc(fresh) -> None:
    """A caption id changed to another valid id, in place, passes every range check but not the CRC-32."""
    root = fresh()
    with h5py.File(root / CAPTIONS, "r") as f:
        offset = f["val_captions"].id.get_offset()
        first = f["val_captions"][0]
    raw = bytearray((root / CAPTIONS).read_bytes())
    raw[offset + 4 : offset + 8] = np.int32(first[1] + 1).tobytes()  # second token of the first caption
    (root / CAPTIONS).write_bytes(bytes(raw))
    expect_error(root, CAPTIONS, "'val_captions' fails its CRC-32 check")

    root = fresh()
    with h5py.File(root / TRAIN_PCA, "r") as f:
        offset = f["features"].id.get_offset()
    raw = bytearray((root / TRAIN_PCA).read_bytes())
    raw[offset + 40] ^= 0x01  # the lowest mantissa bit of a feature
    (root / TRAIN_PCA).write_bytes(bytes(raw))
    expect_error(root, TRAIN_PCA, "'features' fails its CRC-32 check")


CAPTION_CORRUPTIONS = {
    "missing key": (lambda a: dict(val_image_idxs=None), r"lacks the dataset 'val_image_idxs'"),
    "float captions": (lambda a: dict(train_captions=a["train_captions"] * 1.0), "must hold integers"),
    "float idxs": (lambda a: dict(val_image_idxs=a["val_image_idxs"] + 0.5), "must hold integers"),
    "1-D captions": (lambda a: dict(val_captions=a["val_captions"][:, 0]), r"must be \(N, T\)"),
    "T = 1": (lambda a: dict(val_captions=a["val_captions"][:, :1]), r"T >= 2"),
    "idx count": (lambda a: dict(train_image_idxs=a["train_image_idxs"][:-1]), r"\(N,\)"),
    "id = V": (lambda a: dict(val_captions=np.where(a["val_captions"] == 2, 27, a["val_captions"])),
               "holds token id 27, outside the 27-word vocabulary"),
    "negative id": (lambda a: dict(train_captions=-a["train_captions"]), "outside the 27-word"),
    "idx past the features": (lambda a: dict(val_image_idxs=a["val_image_idxs"] + 1),
                              r"range 1..10 does not fit the 10 feature rows of .*val2014_vgg16_fc7_pca.h5"),
    "negative idx": (lambda a: dict(train_image_idxs=a["train_image_idxs"] - 1), "does not fit"),
    "empty train": (lambda a: {k: a[k][:0] for k in ("train_captions", "train_image_idxs")},
                    "train_captions is empty"),
    "empty val": (lambda a: {k: a[k][:0] for k in ("val_captions", "val_image_idxs")},
                  "val_captions is empty"),
    "no <START>": (lambda a: dict(train_captions=a["train_captions"][:, 1:]),
                   "row 0 does not begin with <START>"),
}  # fmt: skip


@pytest.mark.parametrize("case", CAPTION_CORRUPTIONS)
def test_bad_caption_arrays_are_named(fresh, case: str) -> None:
    root = fresh()
    change, message = CAPTION_CORRUPTIONS[case]
    rewrite(root / CAPTIONS, **change(arrays_of(root / CAPTIONS)))
    expect_error(root, CAPTIONS, message)


FEATURE_CORRUPTIONS = {
    "missing key": (TRAIN_PCA, lambda f: dict(features=None, feats=f), "lacks the dataset 'features'"),
    "integers": (VAL_PCA, lambda f: dict(features=f.astype(np.int32)), "must be floating point"),
    "1-D": (VAL_PCA, lambda f: dict(features=f[0]), "must be a non-empty 2-D"),
    "no rows": (TRAIN_PCA, lambda f: dict(features=f[:0]), "must be a non-empty 2-D"),
    "NaN": (TRAIN_PCA, lambda f: dict(features=np.where(np.arange(len(f))[:, None] == 3, np.nan, f)),
            "'features' row 3 holds NaN or infinite values"),
    "Inf in float64": (VAL_PCA, lambda f: dict(features=np.where(f > 1, np.inf, f).astype(np.float64)),
                       "NaN or infinite"),
    "fewer rows": (VAL_PCA, lambda f: dict(features=f[:5]), "does not fit the 5 feature rows"),
    "other size": (VAL_PCA, lambda f: dict(features=f[:, :7]), "features differ in size: 30 vs 7"),
}  # fmt: skip


@pytest.mark.parametrize("case", FEATURE_CORRUPTIONS)
def test_bad_feature_files_are_named(fresh, case: str) -> None:
    root = fresh()
    name, change, message = FEATURE_CORRUPTIONS[case]
    rewrite(root / name, **change(arrays_of(root / name)["features"]))
    expect_error(root, name, message)


def vocab_of(idx_to_word: list[str]) -> dict:
    return {"idx_to_word": idx_to_word, "word_to_idx": {w: i for i, w in enumerate(idx_to_word)}}


def _vocab(root: Path) -> dict:
    return json.loads((root / VOCAB).read_text())


VOCAB_CORRUPTIONS = {
    "not JSON": (lambda v: "{not json", "is not valid JSON"),
    "not UTF-8": (lambda v: b"\xff\xfe{}", "is not valid JSON"),
    "a list": (lambda v: [], "must hold the keys 'idx_to_word' and 'word_to_idx'"),
    "idx_to_word a dict": (lambda v: {**v, "idx_to_word": dict(enumerate(v["idx_to_word"]))},
                           "'idx_to_word' must be a list"),
    **{
        f"no {token}": (lambda v, t=token: vocab_of([w for w in v["idx_to_word"] if w != t]),
                        rf"lacks the special token\(s\) \['{token}'\]")
        for token in ("<NULL>", "<START>", "<END>")
    },
    "<NULL> not 0": (lambda v: vocab_of([v["idx_to_word"][1], v["idx_to_word"][0], *v["idx_to_word"][2:]]),
                     "'<NULL>' must have index 0, found 1"),
    "halves disagree": (lambda v: {**v, "word_to_idx": {**v["word_to_idx"], "circle": 3}},
                        "do not describe the same vocabulary"),
    "string ids": (lambda v: {**v, "word_to_idx": {w: str(i) for w, i in v["word_to_idx"].items()}},
                   "'<NULL>' must have index 0"),
}  # fmt: skip


@pytest.mark.parametrize("case", VOCAB_CORRUPTIONS)
def test_bad_vocabularies_are_named(fresh, case: str) -> None:
    root = fresh()
    change, message = VOCAB_CORRUPTIONS[case]
    new = change(_vocab(root))
    if isinstance(new, bytes):
        (root / VOCAB).write_bytes(new)
    else:
        (root / VOCAB).write_text(new if isinstance(new, str) else json.dumps(new))
    expect_error(root, VOCAB, message)


URLS = ("train2014_urls.txt", "val2014_urls.txt")


@pytest.mark.parametrize("name", [CAPTIONS, VOCAB, TRAIN_PCA, VAL_PCA, *URLS])
def test_missing_or_unreadable_files_are_named(fresh, name: str) -> None:
    root = fresh()
    (root / name).unlink()
    expect_error(root, name, f"missing file .*{name}")
    (root / name).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)  # an HDF5 signature, then junk
    if name.endswith(".h5"):
        expect_error(root, name, "is not a readable HDF5 file")
    elif name.endswith(".txt"):
        expect_error(root, name, "is not a text file")


def test_url_list_of_the_wrong_length(fresh) -> None:
    root = fresh()
    (root / "train2014_urls.txt").write_text("a.png\n" * 31)
    expect_error(root, "train2014_urls.txt", "lists 31 images but .* has 30 feature rows")


def test_a_shapes_folder_names_its_own_fix(valid_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    shutil.copytree(valid_root, root)
    rewrite(root / VAL_PCA, features=arrays_of(root / VAL_PCA)["features"][:, :3])
    with pytest.raises(CaptionDataError, match="differ in size") as err:
        load_coco_data(root)
    assert f"{root} is a generated `shapes` folder: delete it" in str(err.value)
    assert "get_coco_captioning" not in str(err.value)


def test_chunked_compressed_features_load_whole_and_equal(fresh) -> None:
    """Not an error: features stored chunked and gzip-compressed cannot be mapped, so they are read in."""
    root = fresh()
    features = arrays_of(root / TRAIN_PCA)["features"]
    with h5py.File(root / TRAIN_PCA, "w") as f:
        f.create_dataset("features", data=features.astype(np.float64), chunks=(8, 30), compression="gzip")
    data = load_coco_data(root)
    assert not isinstance(data["train_features"], np.memmap) and isinstance(data["val_features"], np.memmap)
    assert data["train_features"].dtype == np.float32
    np.testing.assert_array_equal(data["train_features"], features)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(batch_size=0), "data.batch_size must be an integer >= 1, got 0"),
        (dict(batch_size=-5), "data.batch_size must be an integer >= 1, got -5"),
        (dict(batch_size="64"), "data.batch_size must be an integer >= 1, got '64'"),
        (dict(num_workers=-1), "data.num_workers must be an integer >= 0, got -1"),
        (dict(max_train=0), "data.max_train must be an integer >= 1 or null, got 0"),
        (dict(max_train=True), "data.max_train must be an integer >= 1 or null, got True"),
        (dict(max_eval_images=0), "data.max_eval_images must be an integer >= 1 or null"),
        (dict(dataset="imagenet"), "data.dataset must be one of"),
    ],
)
def test_bad_datamodule_settings_fail_at_construction(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CaptionDataModule(tmp_path / "never_created", **kwargs)
    assert not (tmp_path / "never_created").exists()


def test_max_train_larger_than_the_split(valid_root: Path) -> None:
    num_train = len(load_coco_data(valid_root)["train_captions"])
    dm = CaptionDataModule(valid_root, max_train=num_train + 1)
    with pytest.raises(ValueError, match=f"max_train={num_train + 1} is larger than the {num_train} training "
                       f"captions of {valid_root}/coco2014_captions.h5"):  # fmt: skip
        dm.setup("fit")
    assert len(CaptionDataModule(valid_root, max_train=num_train).dataset_for("train")) == num_train


def test_check_compatible_names_dimension_and_vocabulary_mismatches(valid_root: Path) -> None:
    dm = CaptionDataModule(valid_root)  # PCA features: 30-d here
    kwargs = dm.model_kwargs()
    dm.check_compatible(**kwargs)
    with pytest.raises(CaptionDataError, match=r"the model takes 1518-d features \(input_dim\) but "
                       rf"{valid_root}/{TRAIN_PCA} holds 30-d ones; set data.pca_features=false"):
        dm.check_compatible(1518, kwargs["word_to_idx"])
    with pytest.raises(CaptionDataError, match="takes 99-d features .* train a new model on these features"):
        dm.check_compatible(99, kwargs["word_to_idx"])
    raw = CaptionDataModule(valid_root, pca_features=False)
    with pytest.raises(CaptionDataError, match="set data.pca_features=true"):
        raw.check_compatible(30, kwargs["word_to_idx"])
    other = {**kwargs["word_to_idx"], "hexagon": 27}
    with pytest.raises(CaptionDataError, match=r"vocabulary \(28 words\) differs from .*coco2014_vocab.json "
                       r"\(27 words; ids in the model vs the data: 'hexagon' 27 vs None\)"):
        dm.check_compatible(30, other)
    swapped = {**kwargs["word_to_idx"], "circle": kwargs["word_to_idx"]["square"],
               "square": kwargs["word_to_idx"]["circle"]}  # fmt: skip
    with pytest.raises(CaptionDataError, match="'circle' .* vs .*'square'"):
        dm.check_compatible(30, swapped)
