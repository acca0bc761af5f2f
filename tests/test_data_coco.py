"""The CS231n COCO folder loader (checks, max_train, pca_features), vocabulary and download script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from visgrad.data.coco import CaptionDataError, load_coco_data
from visgrad.data.shapes import expected_files
from visgrad.data.vocab import SPECIAL_TOKENS, build_vocab, decode_captions, encode_captions

COCO_FILES = [
    "coco2014_captions.h5",
    "coco2014_vocab.json",
    "train2014_vgg16_fc7_pca.h5",
    "val2014_vgg16_fc7_pca.h5",
    "train2014_urls.txt",
    "val2014_urls.txt",
]


@pytest.fixture
def copy_root(shapes_root: Path, tmp_path: Path) -> Path:
    """A private copy of the shapes folder's COCO-format files (no `shapes` manifest), for corrupting."""
    root = tmp_path / "coco_captioning"
    root.mkdir()
    for name in expected_files():
        if name != "manifest.json":
            shutil.copy(shapes_root / name, root / name)
    return root


def test_load_has_cs231n_keys_and_consistent_arrays(shapes_root: Path) -> None:
    data = load_coco_data(shapes_root)
    assert set(data) == {
        "train_captions", "train_image_idxs", "val_captions", "val_image_idxs", "train_features",
        "val_features", "idx_to_word", "word_to_idx", "train_urls", "val_urls",
    }  # fmt: skip
    for split in ("train", "val"):
        captions, idxs = data[f"{split}_captions"], data[f"{split}_image_idxs"]
        assert captions.shape[0] == idxs.shape[0] and idxs.max() < len(data[f"{split}_features"])
        assert np.all(captions[:, 0] == data["word_to_idx"]["<START>"])
        assert len(data[f"{split}_urls"]) == len(data[f"{split}_features"])


def test_pca_features_switch_picks_the_file(shapes_root: Path) -> None:
    pca, raw = load_coco_data(shapes_root, pca_features=True), load_coco_data(shapes_root, pca_features=False)
    with h5py.File(shapes_root / "train2014_vgg16_fc7.h5", "r") as f:
        np.testing.assert_array_equal(raw["train_features"], f["features"][()])
    assert pca["train_features"].shape[1] == 200 < raw["train_features"].shape[1]
    assert raw["train_features"].dtype == pca["val_features"].dtype == np.float32
    np.testing.assert_array_equal(pca["train_captions"], raw["train_captions"])


def test_max_train_is_a_seeded_random_subset_of_captions(shapes_root: Path) -> None:
    full = load_coco_data(shapes_root)
    rows = {
        tuple(r) + (i,)
        for r, i in zip(full["train_captions"].tolist(), full["train_image_idxs"], strict=True)
    }
    a = load_coco_data(shapes_root, max_train=50)
    b = load_coco_data(shapes_root, max_train=50)
    c = load_coco_data(shapes_root, max_train=50, seed=1)
    assert (
        a["train_captions"].shape == (50, full["train_captions"].shape[1])
        and len(a["train_image_idxs"]) == 50
    )
    picked = [
        tuple(r) + (i,) for r, i in zip(a["train_captions"].tolist(), a["train_image_idxs"], strict=True)
    ]
    assert set(picked) <= rows and len(set(picked)) == 50  # drawn without replacement
    np.testing.assert_array_equal(a["train_captions"], b["train_captions"])
    assert not np.array_equal(a["train_captions"], c["train_captions"])
    np.testing.assert_array_equal(a["val_captions"], full["val_captions"])
    num_train = len(full["train_captions"])
    assert len(load_coco_data(shapes_root, max_train=num_train)["train_captions"]) == num_train
    with pytest.raises(ValueError, match=f"max_train={num_train + 1} is larger than the {num_train} training "
                       r"captions of .*coco2014_captions.h5; set max_train to at most"):
        load_coco_data(shapes_root, max_train=num_train + 1)
    with pytest.raises(ValueError, match="max_train"):
        load_coco_data(shapes_root, max_train=0)


@pytest.mark.parametrize("name", COCO_FILES)
def test_missing_file_is_named_with_the_fix(copy_root: Path, name: str) -> None:
    (copy_root / name).unlink()
    with pytest.raises(CaptionDataError, match=name) as err:
        load_coco_data(copy_root)
    assert "scripts/get_coco_captioning.sh" in str(err.value) and "cs231n.stanford.edu" in str(err.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CaptionDataError, match="does not exist"):
        load_coco_data(tmp_path / "nowhere")


def _rewrite_h5(path: Path, change) -> None:
    with h5py.File(path, "r") as f:
        arrays = {k: f[k][()] for k in f}
    change(arrays)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("coco2014_captions.h5", lambda a: a.pop("val_image_idxs"), "lacks the dataset.*val_image_idxs"),
        (
            "train2014_vgg16_fc7_pca.h5",
            lambda a: a.update(features=a["features"][:10]),
            "does not fit the 10",
        ),
        ("coco2014_captions.h5", lambda a: a.update(val_captions=a["val_captions"] + 100), "outside the"),
        ("coco2014_captions.h5", lambda a: a.update(train_image_idxs=a["train_image_idxs"][:5]), r"\(N,\)"),
        ("val2014_vgg16_fc7_pca.h5", lambda a: a.update(features=a["features"][:, :7]), "differ in size"),
        ("val2014_vgg16_fc7_pca.h5", lambda a: a.update(features=a["features"][0]), "a non-empty 2-D"),
    ],
)
def test_inconsistent_h5_contents_are_named(copy_root: Path, name: str, change, message: str) -> None:
    _rewrite_h5(copy_root / name, change)
    with pytest.raises(CaptionDataError, match=message) as err:
        load_coco_data(copy_root)
    assert name in str(err.value)


def test_bad_vocab_urls_and_h5_are_named(copy_root: Path) -> None:
    vocab_path = copy_root / "coco2014_vocab.json"
    good = json.loads(vocab_path.read_text())
    bad = {"idx_to_word": [w for w in good["idx_to_word"] if w != "<END>"]}
    bad["word_to_idx"] = {w: i for i, w in enumerate(bad["idx_to_word"])}
    vocab_path.write_text(json.dumps(bad))
    with pytest.raises(
        CaptionDataError, match=r"coco2014_vocab.json lacks the special token\(s\) \['<END>'\]"
    ):
        load_coco_data(copy_root)
    vocab_path.write_text(json.dumps({**good, "word_to_idx": {**good["word_to_idx"], "circle": 999}}))
    with pytest.raises(CaptionDataError, match="do not describe the same vocabulary"):
        load_coco_data(copy_root)
    vocab_path.write_text("{not json")
    with pytest.raises(CaptionDataError, match="coco2014_vocab.json is not valid JSON"):
        load_coco_data(copy_root)
    vocab_path.write_text(json.dumps(good))

    urls = copy_root / "val2014_urls.txt"
    urls.write_text("".join(urls.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(CaptionDataError, match="val2014_urls.txt lists 59 images"):
        load_coco_data(copy_root)

    (copy_root / "train2014_vgg16_fc7_pca.h5").write_bytes(b"this is not HDF5")
    with pytest.raises(CaptionDataError, match="train2014_vgg16_fc7_pca.h5 is not a readable HDF5 file"):
        load_coco_data(copy_root)


def test_decode_captions_drops_start_and_null_and_stops_at_end() -> None:
    idx_to_word = [*SPECIAL_TOKENS, "a", "red", "circle"]
    captions = np.array([[1, 4, 5, 6, 2, 0, 4], [1, 4, 3, 2, 0, 0, 0], [1, 0, 4, 0, 5, 6, 0]])
    expected = ["a red circle", "a <UNK>", "a red circle"]
    assert decode_captions(captions, idx_to_word) == expected
    assert decode_captions(torch.from_numpy(captions), idx_to_word) == expected
    assert decode_captions(captions[0], idx_to_word) == ["a red circle"]
    assert decode_captions(captions, {str(i): w for i, w in enumerate(idx_to_word)}) == expected
    with pytest.raises(ValueError, match="token id 9"):
        decode_captions(np.array([[1, 9]]), idx_to_word)


def test_build_encode_decode_round_trip() -> None:
    idx_to_word, word_to_idx = build_vocab(["a red circle", "a blue square left of a red circle"])
    assert idx_to_word[:4] == list(SPECIAL_TOKENS) and idx_to_word[4:] == sorted(idx_to_word[4:])
    assert word_to_idx["<NULL>"] == 0
    encoded = encode_captions(["a red circle", "a green circle"], word_to_idx, length=6)
    assert encoded.dtype == np.int32 and encoded.shape == (2, 6)
    assert encoded[0].tolist() == [1, word_to_idx["a"], word_to_idx["red"], word_to_idx["circle"], 2, 0]
    assert decode_captions(encoded, idx_to_word) == ["a red circle", "a <UNK> circle"]
    with pytest.raises(ValueError, match="needs 5 tokens"):
        encode_captions(["a red circle"], word_to_idx, length=4)


@pytest.mark.skipif(
    shutil.which("curl") is None and shutil.which("wget") is None, reason="needs curl or wget"
)
def test_download_script_installs_and_checks_a_zip(
    copy_root: Path, tmp_path: Path, project_root: Path
) -> None:
    """The script run against a local file:// zip shaped like CS231n's (no network)."""
    archive = tmp_path / "coco_captioning.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in copy_root.iterdir():
            z.write(path, f"coco_captioning/{path.name}")
    env = {**os.environ, "COCO_CAPTIONING_URL": archive.as_uri()}
    dest = tmp_path / "data" / "coco_captioning"
    script = project_root / "scripts" / "get_coco_captioning.sh"
    result = subprocess.run(["bash", str(script), str(dest)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok: " in result.stdout and (dest / "coco2014_captions.h5").is_file()
    assert [p.name for p in dest.parent.iterdir()] == ["coco_captioning"]  # no download leftovers
    again = subprocess.run(["bash", str(script), str(dest)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to download" in again.stdout

    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as z:
        z.writestr("something/else.txt", "not the captioning data")
    other = tmp_path / "other" / "coco_captioning"
    env["COCO_CAPTIONING_URL"] = wrong.as_uri()
    failed = subprocess.run(["bash", str(script), str(other)], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "nothing was installed" in failed.stderr
    assert list(other.parent.iterdir()) == []
