"""The hard caption grammar of `shapes` (``visgrad.data.shapes_hard``, ``data=shapes_hard``)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from visgrad.data import shapes as shapes_module
from visgrad.data import shapes_hard
from visgrad.data.coco import CAPTIONS_FILE, features_file, load_coco_data
from visgrad.data.shapes import Shape, ensure_shapes, load_shapes_objects
from visgrad.data.shapes_features import PALETTE, SLOT_DIM, SLOT_WEIGHT
from visgrad.data.shapes_scene import Grammar
from visgrad.data.vocab import decode_captions

KINDS = ["circle", "square", "triangle", "diamond"]
COLOURS = ["red", "green", "blue", "yellow", "purple"]
TINY = dict(num_train=40, num_val=30, seed=2, grammar="hard")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def shape(kind: str, colour: str, size: str, cx: float, cy: float) -> Shape:
    half = 5.0 if size == "small" else 10.0
    return Shape(KINDS.index(kind), COLOURS.index(colour), ["small", "large"].index(size), cx, cy, half)


@pytest.fixture(scope="module")
def hard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_shapes(tmp_path_factory.mktemp("hard") / "a", processes=1, **TINY)


def test_two_objects_vertical_relations_and_word_order() -> None:
    low = shape("circle", "red", "small", 10, 50)
    high = shape("square", "blue", "large", 40, 20)
    assert shapes_hard.forms([low, high], 64) == [
        "a small red circle below and left of a large blue square",
        "a large blue square above and right of a small red circle",
        "a large blue square above a small red circle",  # top first: the word order follows the heights
        "there is a red circle and a blue square",
        "a red circle below and left of a blue square",
    ]
    level = shape("square", "blue", "large", 40, 52)
    assert shapes_hard.forms([low, level], 64)[:3] == [
        "a small red circle left of a large blue square",
        "a large blue square right of a small red circle",
        "a small red circle beside a large blue square",  # level: left first
    ]


def test_counts_group_identical_objects_in_order_of_their_leftmost() -> None:
    blue = shape("square", "blue", "small", 10, 30)
    red1 = shape("circle", "red", "small", 30, 10)
    red2 = shape("circle", "red", "large", 50, 50)
    assert shapes_hard.forms([blue, red1, red2], 64)[3] == "there is a blue square and two red circles"
    assert shapes_hard.forms([red1, dataclasses.replace(blue, cx=40), red2], 64)[3] == (
        "there are two red circles and a blue square"
    )
    three = [shape("diamond", "green", "small", x, 32) for x in (10, 30, 50)]
    forms = shapes_hard.forms(three, 64)
    assert forms[3] == "there are three green diamonds"
    assert forms[2] == "a small green diamond beside a small green diamond beside a small green diamond"


def test_three_objects_chain_and_top_to_bottom_rows() -> None:
    a = shape("circle", "red", "small", 10, 40)
    b = shape("triangle", "green", "small", 30, 10)  # centre of mass at 10 + 5/3
    c = shape("diamond", "yellow", "large", 50, 42)
    forms = shapes_hard.forms([a, b, c], 64)
    assert forms[0] == ("a small red circle below and left of a small green triangle above and left of "
                        "a large yellow diamond")
    assert forms[1] == ("a large yellow diamond below and right of a small green triangle above and right of "
                        "a small red circle")
    assert forms[2] == "a small green triangle above a small red circle beside a large yellow diamond"
    assert forms[4].startswith("a red circle below and left of a green triangle")


def test_one_object_says_where_it_is() -> None:
    assert shapes_hard.forms([shape("circle", "red", "large", 30, 12)], 64)[0] == (
        "a large red circle at the top"
    )
    assert shapes_hard.forms([shape("circle", "red", "large", 30, 32)], 64)[0] == (
        "a large red circle in the middle"
    )
    assert shapes_hard.forms([shape("circle", "red", "large", 30, 52)], 64)[0] == (
        "a large red circle at the bottom"
    )


def test_sampled_scenes_are_clear_and_repeat_objects() -> None:
    rng = np.random.default_rng(0)
    scenes = [shapes_hard.sample_scene(rng, 64) for _ in range(300)]
    assert all(shapes_hard._clear(s, 64) for s in scenes)
    assert all(b.cx - a.cx >= 8 for s in scenes for a, b in zip(s, s[1:], strict=False))
    sizes = np.bincount([len(s) for s in scenes], minlength=4)
    assert sizes[3] > sizes[2] > sizes[1] > 0
    assert sum(len({(o.kind, o.colour) for o in s}) < len(s) for s in scenes) > 40  # repeated objects
    for s in scenes:  # the vocabulary covers every form
        words = {w for f in shapes_hard.forms(s, 64) for w in f.split()}
        assert words <= set(shapes_hard.vocabulary()[0])


def test_complete_and_sampled_captions_consume_the_random_stream_alike() -> None:
    scene = shapes_hard.sample_scene(np.random.default_rng(1), 64)
    rngs = np.random.default_rng(5), np.random.default_rng(5)
    complete = shapes_hard.captions_for(scene, rngs[0], 64, complete=True)
    sampled = shapes_hard.captions_for(scene, rngs[1], 64)
    assert complete == shapes_hard.forms(scene, 64) and 3 <= len(sampled) <= 5
    assert sampled[0] == complete[0] and sampled == [c for c in complete if c in sampled]
    assert rngs[0].random() == rngs[1].random()


def captions_per_image(root: Path, split: str) -> list[list[str]]:
    data = load_coco_data(root)
    captions = decode_captions(data[f"{split}_captions"], data["idx_to_word"])
    idxs = data[f"{split}_image_idxs"]
    return [[c for c, j in zip(captions, idxs, strict=True) if j == i] for i in range(idxs.max() + 1)]


def test_generated_set_vocabulary_references_and_manifest(hard_root: Path) -> None:
    data = load_coco_data(hard_root)
    assert data["idx_to_word"][4:] == shapes_hard.vocabulary()[0][4:]
    assert "above" in data["word_to_idx"] and "circles" in data["word_to_idx"]
    val = captions_per_image(hard_root, "val")
    assert all(len(c) == 5 == len(set(c)) for c in val)  # complete references
    assert all(3 <= len(c) <= 5 for c in captions_per_image(hard_root, "train"))
    manifest = json.loads((hard_root / "manifest.json").read_text())
    assert manifest["grammar"] == "hard"


def test_features_support_the_vertical_relations(hard_root: Path) -> None:
    """The relations of each val image's last form, recomputed from the extractor's object slots (centroid
    y), colours from the slots and kinds from the annotations, give that caption."""
    raw = load_coco_data(hard_root, pca_features=False)["val_features"]
    objects = load_shapes_objects(hard_root, "val")
    occupancy = len(PALETTE) * 16 * 16
    checked = 0
    for row, objs, captions in zip(raw, objects, captions_per_image(hard_root, "val"), strict=True):
        present = objs[objs[:, 0] >= 0]
        if len(present) < 2:
            continue
        slots = [row[occupancy + i * SLOT_DIM : occupancy + (i + 1) * SLOT_DIM] / SLOT_WEIGHT
                 for i in range(len(present))]
        names = [f"a {COLOURS[d[1:1 + len(PALETTE)].argmax()]} {KINDS[o[0]]}" for d, o in zip(slots, present,
                                                                                              strict=True)]
        words = [names[0]]
        for i in range(1, len(slots)):
            dy = (slots[i - 1][2 + len(PALETTE)] - slots[i][2 + len(PALETTE)]) * 64
            vertical = "" if abs(dy) < 6 else ("above and " if dy < 0 else "below and ")  # 6: inside the gap
            words += [f"{vertical}left of", names[i]]
        assert captions[4] == " ".join(words)
        checked += 1
    assert checked >= 15


def test_same_seed_gives_the_same_files_and_grammar_change_regenerates(
    hard_root: Path, tmp_path: Path
) -> None:
    again = ensure_shapes(tmp_path / "b", processes=1, **TINY)
    for name in (CAPTIONS_FILE, features_file("train", False)):
        with h5py.File(hard_root / name) as f, h5py.File(again / name) as g:
            assert all(np.array_equal(f[k][()], g[k][()]) for k in f)
    ensure_shapes(again, processes=1, **{**TINY, "grammar": "default"})
    assert "grammar" not in json.loads((again / "manifest.json").read_text())
    assert "above" not in load_coco_data(again)["word_to_idx"]
    with pytest.raises(ValueError, match=r"grammar must be one of default, hard, or the dotted path of a "
                                         r"Grammar .*, got 'bogus_grammar'"):
        ensure_shapes(tmp_path / "c", grammar="bogus_grammar")
    assert not (tmp_path / "c").exists()


def test_default_grammar_is_unchanged_and_reused(tmp_path: Path) -> None:
    """Passing grammar="default" is the old call: same manifest (no grammar key), so an existing default
    folder is reused as it is; the default grammar's vocabulary has none of the hard words."""
    root = ensure_shapes(tmp_path / "d", num_train=20, num_val=8, seed=3, processes=1)
    stamp = (root / CAPTIONS_FILE).stat().st_mtime_ns
    ensure_shapes(root, num_train=20, num_val=8, seed=3, processes=1, grammar="default")
    assert (root / CAPTIONS_FILE).stat().st_mtime_ns == stamp
    assert set(shapes_module.vocabulary()[0]).isdisjoint({"above", "below", "two", "circles", "beside"})


def shout_captions(shapes: list[Shape], rng: np.random.Generator, size: int, complete: bool) -> list[str]:
    """The default grammar's captions, followed by 'indeed' (a grammar of the user's own)."""
    return [f"{caption} indeed" for caption in shapes_module.captions_for(shapes, rng, size, complete)]


def shout_vocabulary() -> tuple[list[str], dict[str, int]]:
    idx_to_word = [*shapes_module.vocabulary()[0], "indeed"]
    return idx_to_word, {word: i for i, word in enumerate(idx_to_word)}


SHOUT = Grammar("shout", "emphatic", shapes_module.sample_scene, shout_captions, shout_vocabulary)


def test_a_grammar_of_the_users_own_by_dotted_path(tmp_path: Path) -> None:
    """A Grammar defined here generates a set (same scenes and images as the default grammar's) without any
    registration; its path is recorded in the manifest."""
    grammar = f"{__name__}.SHOUT"
    root = ensure_shapes(tmp_path / "shout", num_train=12, num_val=6, seed=4, processes=1, grammar=grammar)
    default = ensure_shapes(tmp_path / "default", num_train=12, num_val=6, seed=4, processes=1)
    assert json.loads((root / "manifest.json").read_text())["grammar"] == grammar
    shouted, plain = captions_per_image(root, "val"), captions_per_image(default, "val")
    assert shouted == [[f"{caption} indeed" for caption in image] for image in plain]
    with h5py.File(root / "shapes_images.h5") as f, h5py.File(default / "shapes_images.h5") as g:
        assert np.array_equal(f["val_images"][()], g["val_images"][()])


def test_grammar_modules_import_no_circle() -> None:
    """The grammars build on visgrad.data.shapes_scene; shapes_hard does not import the generator."""
    code = ("import sys; import visgrad.data.shapes_hard; "
            "assert 'visgrad.data.shapes' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": SRC})
