"""The synthetic `shapes` dataset: content, grammar, features, determinism, caching and atomic generation."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from visgrad.data import shapes as shapes_module
from visgrad.data.coco import load_coco_data
from visgrad.data.shapes import ensure_shapes, load_shapes_images, load_shapes_objects
from visgrad.data.shapes_features import PALETTE, RAW_DIM, SLOT_DIM, SLOT_WEIGHT, Pca, colour_masks
from visgrad.data.vocab import SPECIAL_TOKENS, decode_captions

KINDS = ["circle", "square", "triangle", "diamond"]
COLOURS = ["red", "green", "blue", "yellow", "purple"]
SIZES = ["small", "large"]
TINY = dict(num_train=40, num_val=12)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset (seed 3) that tests only read."""
    return ensure_shapes(tmp_path_factory.mktemp("tiny") / "a", seed=3, **TINY)


def expected_captions(objects: np.ndarray) -> list[str]:
    """The grammar written out independently: all captions allowed for one image, in template order."""
    objs = [o for o in objects if o[0] >= 0]
    np_ = [f"a {SIZES[o[2]]} {COLOURS[o[1]]} {KINDS[o[0]]}" for o in objs]
    bare = [f"a {COLOURS[o[1]]} {KINDS[o[0]]}" for o in objs]
    if len(objs) == 1:
        forms = [
            np_[0],
            f"there is {np_[0]}",
            bare[0],
            f"the image shows {np_[0]}",
            f"{np_[0]} in the picture",
        ]
    elif len(objs) == 2:
        a, b = np_
        forms = [
            f"{a} left of {b}",
            f"{b} right of {a}",
            f"there is {a} and {b}",
            f"{a} and {b}",
            f"{bare[0]} left of {bare[1]}",
        ]
    else:
        a, b, c = np_
        forms = [
            f"{a} left of {b} left of {c}",
            f"{c} right of {b} right of {a}",
            f"there is {a} {b} and {c}",
            f"{a} {b} and {c}",
            f"{bare[0]} left of {bare[1]} left of {bare[2]}",
        ]
    return forms


def captions_per_image(root: Path, split: str) -> tuple[list[list[str]], np.ndarray]:
    """The decoded captions of each image of ``split`` (in file order) and the split's object annotations."""
    data = load_coco_data(root)
    objects = load_shapes_objects(root, split)
    captions = decode_captions(data[f"{split}_captions"], data["idx_to_word"])
    idxs = data[f"{split}_image_idxs"]
    assert np.all(np.diff(idxs) >= 0) and set(idxs.tolist()) == set(range(len(objects)))
    return [[c for c, j in zip(captions, idxs, strict=True) if j == i] for i in range(len(objects))], objects


def test_train_captions_are_3_to_5_grammar_forms_with_the_first_always_there(shapes_root: Path) -> None:
    mine, objects = captions_per_image(shapes_root, "train")
    counts = np.bincount([len(m) for m in mine], minlength=6)
    assert counts[:3].sum() == 0 and counts[3:].min() > 0  # 3, 4 and 5 captions all occur, nothing else
    for captions, image_objects in zip(mine, objects, strict=True):
        allowed = expected_captions(image_objects)
        assert captions[0] == allowed[0] and len(set(captions)) == len(captions)
        assert set(captions) <= set(allowed)
        assert captions == [c for c in allowed if c in captions]  # template order


def test_val_references_are_complete(shapes_root: Path) -> None:
    """Every val image has every caption the grammar allows for it, each exactly once, in template order
    (``CaptionDataModule.eval_set`` passes a val image's captions on as its references)."""
    mine, objects = captions_per_image(shapes_root, "val")
    for captions, image_objects in zip(mine, objects, strict=True):
        assert captions == expected_captions(image_objects)


def test_train_captions_and_all_images_are_those_of_format_2(tiny_root: Path) -> None:
    """Format 3 changed only the val captions, format 4 only how files are written: the train captions and
    the images are bit for bit those format 2 generated (this digest was computed with format 2), so the
    random stream is unchanged."""
    data = load_coco_data(tiny_root)
    digest = hashlib.sha256()
    for array in (
        data["train_captions"],
        data["train_image_idxs"],
        load_shapes_images(tiny_root, "val").images,
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    assert digest.hexdigest() == "edabbb553c5772891b64256199fde72d39611a50a1254130891a6a6cdc5bfbe9"
    assert json.loads((tiny_root / "manifest.json").read_text())["format_version"] == 4


def test_complete_and_sampled_captions_consume_the_random_stream_alike() -> None:
    scene = shapes_module.sample_scene(np.random.default_rng(1), 64)
    forms = [f.format(A="x", B="y", C="z", a="x", b="y", c="z") for f in shapes_module.TEMPLATES[len(scene)]]
    rngs = np.random.default_rng(5), np.random.default_rng(5)
    complete = shapes_module.captions_for(scene, rngs[0], complete=True)
    sampled = shapes_module.captions_for(scene, rngs[1])
    assert len(complete) == len(forms) == 5 and 3 <= len(sampled) <= 5
    assert sampled[0] == complete[0] and sampled == [c for c in complete if c in sampled]
    assert rngs[0].random() == rngs[1].random()


@pytest.mark.parametrize("split", ["train", "val"])
def test_images_masks_labels_agree_with_the_objects(shapes_root: Path, split: str) -> None:
    images, masks, labels, label_names = load_shapes_images(shapes_root, split)
    objects = load_shapes_objects(shapes_root, split)
    n = len(objects)
    assert images.shape == (n, 64, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (n, 64, 64) and masks.dtype == bool
    assert labels.shape == (n,) and labels.dtype == np.int64 and label_names == KINDS
    assert np.array_equal(colour_masks(images).any(1), masks)  # object pixels = palette-coloured pixels
    for image, mask, label, objs in zip(images, masks, labels, objects, strict=True):
        present = objs[objs[:, 0] >= 0]
        assert 1 <= len(present) <= 3 and np.all(np.diff(present[:, 3]) > 0)  # left to right
        assert label in present[:, 0]
        for _, colour, _, cx, cy in present:
            assert np.abs(image[cy, cx].astype(int) - PALETTE[colour]).max() < 16
        if len(present) == 1:
            assert label == present[0, 0]
            assert (mask.sum() < 150) == (present[0, 2] == SIZES.index("small"))
    assert len(np.unique(labels)) == len(KINDS)


def test_vocab_and_file_shapes(shapes_root: Path) -> None:
    data = load_coco_data(shapes_root)
    raw = load_coco_data(shapes_root, pca_features=False)
    assert data["idx_to_word"][:4] == list(SPECIAL_TOKENS)
    assert all(data["word_to_idx"][w] == i for i, w in enumerate(data["idx_to_word"]))
    assert set(KINDS + COLOURS + SIZES + ["left", "right", "of", "there", "is", "and"]) <= set(
        data["idx_to_word"]
    )
    for split, n in (("train", 200), ("val", 60)):
        assert data[f"{split}_features"].shape == (n, 200) and data[f"{split}_features"].dtype == np.float32
        assert raw[f"{split}_features"].shape == (n, RAW_DIM)
        assert data[f"{split}_captions"].dtype == np.int32 and data[f"{split}_captions"].ndim == 2
        assert list(data[f"{split}_urls"]) == [f"images/{split}/{i:06d}.png" for i in range(n)]
    png = np.asarray(Image.open(shapes_root / data["val_urls"][7]))
    assert np.array_equal(png, load_shapes_images(shapes_root, "val").images[7])
    assert (shapes_root / "preview.png").stat().st_size > 10_000


def test_raw_features_describe_each_object(shapes_root: Path) -> None:
    """The extractor's object slots recover every object's colour, position, count and size class."""
    raw = load_coco_data(shapes_root, pca_features=False)["val_features"]
    objects = load_shapes_objects(shapes_root, "val")
    occupancy = len(PALETTE) * 16 * 16
    for row, objs in zip(raw, objects, strict=True):
        present = objs[objs[:, 0] >= 0]
        assert row[occupancy + 3 * SLOT_DIM + len(present)] == 1.0
        for slot, (_, colour, size, cx, _) in enumerate(present):
            d = row[occupancy + slot * SLOT_DIM : occupancy + (slot + 1) * SLOT_DIM] / SLOT_WEIGHT
            assert d[0] == 1.0 and d[1 : 1 + len(PALETTE)].argmax() == colour
            assert abs(d[1 + len(PALETTE)] * 64 - cx) <= 1.0
            assert (d[1 + len(PALETTE) + 4] * 64 > 12.5) == (size == 1)  # sqrt(area) separates the sizes
        assert not row[occupancy + len(present) * SLOT_DIM : occupancy + 3 * SLOT_DIM].any()


def test_kinds_are_separable_from_the_object_descriptors(shapes_root: Path) -> None:
    """Nearest class mean on the first object's descriptor tells the four kinds apart on val."""
    occupancy = len(PALETTE) * 16 * 16
    data = load_coco_data(shapes_root, pca_features=False)
    x = {s: data[f"{s}_features"][:, occupancy : occupancy + SLOT_DIM] for s in ("train", "val")}
    y = {s: load_shapes_objects(shapes_root, s)[:, 0, 0] for s in ("train", "val")}
    means = np.stack([x["train"][y["train"] == k].mean(0) for k in range(len(KINDS))])
    predicted = ((x["val"][:, None] - means) ** 2).sum(-1).argmin(1)
    assert (predicted == y["val"]).mean() >= 0.95


def test_pca_is_an_orthonormal_projection_with_unit_mean_variance() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20)) + 5
    pca = Pca.fit(x, 8)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(8), atol=1e-5)
    z = pca(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    assert abs(z.var(0).mean() - 1) < 1e-3 and np.all(np.diff(z.var(0)) <= 1e-6)  # sorted by variance
    full = Pca.fit(x, 20)
    back = full(x) * full.scale @ full.components + full.mean
    np.testing.assert_allclose(back, x, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="PCA components"):
        Pca.fit(x[:5], 8)


def test_pca_fitted_block_by_block_equals_one_block() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12)) + 3).astype(np.float32)
    whole, blocks = Pca.fit(x, 6, block=10**6), Pca.fit(x, 6, block=37)
    np.testing.assert_allclose(blocks.components, whole.components, atol=1e-5)
    np.testing.assert_allclose(blocks.mean, whole.mean, rtol=1e-6)
    top = np.linalg.eigvalsh(np.cov(x.astype(np.float64), rowvar=False, bias=True))[::-1][:6]
    np.testing.assert_allclose([whole.scale**2, blocks.scale**2], top.mean(), rtol=1e-6)


def test_worker_processes_and_chunks_do_not_change_the_files(
    tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """52 images in chunks of 16 finished by 2 worker processes give the files of one inline chunk."""
    monkeypatch.setattr(shapes_module, "CHUNK", 16)
    pooled = ensure_shapes(tmp_path / "pooled", seed=3, processes=2, **TINY)
    files = sorted(str(p.relative_to(tiny_root)) for p in tiny_root.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(tiny_root, pooled, files, shallow=False)
    assert len(files) == 64 and mismatch == [] and errors == []


def test_same_seed_gives_identical_files_and_another_seed_different_data(
    tmp_path: Path, tiny_root: Path
) -> None:
    a = tiny_root
    b = ensure_shapes(tmp_path / "b", seed=3, **TINY)
    c = ensure_shapes(tmp_path / "c", seed=4, **TINY)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 12 + 52 and sorted(  # 11 data files and the owner marker, 52 PNGs
        p.relative_to(b) for p in b.rglob("*") if p.is_file()) == files
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []
    for name in ("coco2014_captions.h5", "train2014_vgg16_fc7_pca.h5", "shapes_images.h5"):
        assert not filecmp.cmp(a / name, c / name, shallow=False)


def test_cache_is_reused_and_regenerated_when_parameters_or_files_change(tmp_path: Path) -> None:
    root = ensure_shapes(tmp_path / "s", **TINY)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert ensure_shapes(root, **TINY) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp

    ensure_shapes(root, num_train=50, num_val=12)
    assert json.loads((root / "manifest.json").read_text())["num_train"] == 50
    assert len(load_coco_data(root)["train_features"]) == 50
    assert not any(p.name.startswith(".s.") for p in tmp_path.iterdir())  # no temp or old copies left

    (root / "val2014_vgg16_fc7.h5").unlink()
    ensure_shapes(root, num_train=50, num_val=12)
    assert (root / "val2014_vgg16_fc7.h5").is_file()


def test_failed_generation_leaves_no_partial_dataset(
    tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    root = tiny_root
    before = (root / "coco2014_captions.h5").read_bytes()
    monkeypatch.setattr(shapes_module, "save_preview", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_shapes(tmp_path / "fresh", **TINY)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_shapes(root, seed=3, num_train=41, num_val=12)
    assert (root / "coco2014_captions.h5").read_bytes() == before  # the old dataset is untouched
    assert json.loads((root / "manifest.json").read_text())["num_train"] == 40
    assert list(tmp_path.iterdir()) == [] and sorted(p.name for p in root.parent.iterdir()) == ["a"]


def test_refuses_to_overwrite_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="mine"):
        ensure_shapes(tmp_path / "mine", **TINY)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="num_train"):
        ensure_shapes(tmp_path / "x", num_train=0)


def test_regenerates_only_a_folder_it_owns(tmp_path: Path, tiny_root: Path) -> None:
    """A copy of a generated folder with a user's file in it is not replaced (the file would be deleted),
    nor is a folder with only a manifest.json of some other tool; a clean generated folder is."""
    import shutil

    copy = tmp_path / "s2"
    shutil.copytree(tiny_root, copy)
    assert (copy / ".visgrad-shapes").is_file()
    (copy / "my_notes.txt").write_text("precious")
    (copy / "images" / "val" / "mine.jpg").write_bytes(b"jpeg")
    expected = (r"s2 cannot take a new `shapes` dataset: it holds files the generator did not write "
                r"\(images/val/mine.jpg, my_notes.txt\)")
    with pytest.raises(FileExistsError, match=expected):
        ensure_shapes(copy, seed=4, **TINY)
    assert (copy / "my_notes.txt").read_text() == "precious"
    assert json.loads((copy / "manifest.json").read_text())["seed"] == 3

    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"name": "not shapes"}')
    with pytest.raises(FileExistsError, match=r"not a generated `shapes` folder"):
        ensure_shapes(other, **TINY)
    assert [p.name for p in other.iterdir()] == ["manifest.json"]

    (copy / "my_notes.txt").unlink()
    (copy / "images" / "val" / "mine.jpg").unlink()
    ensure_shapes(copy, seed=4, **TINY)  # owned and clean: replaced
    assert json.loads((copy / "manifest.json").read_text())["seed"] == 4


def test_stale_temporary_folders_of_killed_generators_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".s.tmp-999999999-abc"  # no process can have this pid
    live = tmp_path / f".s.tmp-{os.getppid()}-xyz"  # a running process (pytest's parent) may still write it
    stash = tmp_path / ".s.old-999999999-def"
    for folder in (dead, live, stash):
        (folder / "images").mkdir(parents=True)
    ensure_shapes(tmp_path / "s", **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "s"]


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL of the generating process: its worker processes end too instead of waiting forever."""
    script = ("import sys, time\n"
              "from visgrad.data.shapes import _worker_pool\n"
              "with _worker_pool(2) as pool:\n"
              "    print(*(p.pid for p in pool._processes.values()), flush=True)\n"
              "    time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.kill()
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_running(pid) for pid in workers)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_h5_files_store_label_names_and_mask_dtype(shapes_root: Path) -> None:
    with h5py.File(shapes_root / "shapes_images.h5", "r") as f:
        assert json.loads(f.attrs["label_names"]) == KINDS
        assert f["train_masks"].dtype == bool and f["train_labels"].dtype == np.int64


def test_cli_generates_and_prints_statistics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shapes_module.main(
        ["--root", str(tmp_path / "cli"), "--num-train", "30", "--num-val", "10", "--seed", "1"]
    )
    out = capsys.readouterr().out
    assert "vocabulary: 27 words" in out and "preview" in out
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["seed"] == 1


def test_linear_probe_reads_objects_from_pca_features(shapes_root: Path) -> None:
    """With only 200 training images, linear read-outs of the PCA features find object count, kind, colour."""
    from visgrad.data.shapes_probe import ALL_SLOTS, probe_accuracies

    targets = ["count", "object 1 kind", "object 2 colour"]
    results = probe_accuracies(shapes_root, only=targets, max_iter=50)
    assert set(results) == {*targets, ALL_SLOTS}
    for name, (train, val) in results.items():
        assert train == 1.0 and val >= 0.95, (name, train, val)


@pytest.mark.slow
def test_linear_probe_on_the_default_dataset(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Default dataset (4000/500): every object attribute (the caption content) is linear in the features."""
    from visgrad.data.shapes_probe import ALL_SLOTS, probe_accuracies

    results = probe_accuracies(ensure_shapes(tmp_path_factory.mktemp("default") / "shapes"))
    assert len(results) == 11
    for name, (train, val) in results.items():
        assert train >= 0.99 and val >= (0.97 if name == ALL_SLOTS else 0.99), (name, train, val)
