"""Show-Attend-Tell: the captioner (loss, attention weights, decoding over a grid state, the learned encoder),
the grounding score (word-to-object matching, masks from the dataset, oracle and uniform attention), the grid
data, and end to end ``train.py model=lstm_attention`` then ``visualize.py task=captions``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_captioning import tensorboard_tags

import visgrad.ops as ops
from visgrad.captioning import (
    AttentionLSTMCaptioner,
    SpatialCaptioningTransformer,
    beam_search,
    greedy_decode,
)
from visgrad.captioning.grounding import (
    cell_fractions,
    grounding_scores,
    object_masks,
    word_objects,
)
from visgrad.data import CaptionDataModule
from visgrad.data.shapes import load_shapes_images, load_shapes_objects
from visgrad.data.shapes_scene import COLOURS, KINDS
from visgrad.errors import ConfigError
from visgrad.tasks import run_task
from visgrad.training import train
from visgrad.utils.preflight import validate_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "red": 4, "circle": 5}


def _net(**kwargs) -> AttentionLSTMCaptioner:
    torch.manual_seed(0)
    return AttentionLSTMCaptioner(VOCAB, input_dim=6, wordvec_dim=4, hidden_dim=8, attention_dim=5, **kwargs)


def _batch():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(3, 4, 4, 6, generator=g)
    captions = torch.tensor([[1, 3, 4, 5, 2], [1, 5, 2, 0, 0], [1, 4, 4, 5, 2]])
    return features, captions


def test_loss_is_cs231n_loss_plus_doubly_stochastic_regulariser():
    features, captions = _batch()
    net = _net()
    scores = net(features, captions[:, :-1])
    mask = captions[:, 1:] != 0
    plain = ops.temporal_softmax_loss(scores, captions[:, 1:], mask)
    alphas = net.attention(features, captions[:, :-1]).flatten(2)
    looked = (alphas * mask[:, :, None]).sum(1)
    expected = plain + (1 - looked).square().mean()  # over cells and captions
    torch.testing.assert_close(net.loss(features, captions), expected)
    torch.testing.assert_close(_net(doubly_stochastic=0).loss(features, captions), plain)


def test_attention_is_a_distribution_over_the_grid_per_word():
    features, captions = _batch()
    weights = _net().attention(features, captions[:, :-1])
    assert weights.shape == (3, 4, 4, 4)
    torch.testing.assert_close(weights.sum((2, 3)), torch.ones(3, 4))
    assert (weights >= 0).all()


def test_stepping_matches_teacher_forcing_and_beam_search_reorders_the_grid_state():
    features, captions = _batch()
    net = _net()
    teacher = net(features, captions[:, :-1])
    state = net.initial_state(features)
    for t in range(captions.shape[1] - 1):
        scores, state = net.step(captions[:, t], state)
        torch.testing.assert_close(scores, teacher[:, t])
    greedy = greedy_decode(net, features, max_length=6)
    beam1 = beam_search(net, features, beam_size=1, max_length=6)[0]
    assert torch.equal(greedy, beam1)  # a beam of one is greedy, with the (N, L, C) state rows reordered
    assert beam_search(net, features, beam_size=3, max_length=6)[0].shape == (3, 6)


def test_encoder_makes_the_grid_from_images_and_trains_with_the_captioner():
    net = AttentionLSTMCaptioner(VOCAB, input_dim=3, wordvec_dim=4, hidden_dim=8, encoder_channels=16)
    images = torch.randint(0, 256, (2, 32, 32, 3)).float()
    captions = _batch()[1][:2]
    assert net.attention(images, captions[:, :-1]).shape == (2, 4, 4, 4)  # 32 / 8 cells a side
    net.loss(images, captions).backward()
    assert net.encoder.net[0].weight.grad.abs().sum() > 0


def test_vector_features_are_refused_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"grid \(N, \*grid, C\) with C = input_dim = 6"):
        _net().loss(torch.zeros(3, 6), _batch()[1])
    with pytest.raises(ValueError, match="doubly_stochastic"):
        _net(doubly_stochastic=-1)


def _spatial(**kwargs) -> SpatialCaptioningTransformer:
    torch.manual_seed(0)
    return SpatialCaptioningTransformer(VOCAB, input_dim=6, wordvec_dim=16, num_heads=2, dim_feedforward=32,
                                        dropout=0.0, **kwargs)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_spatial_transformer_attention_is_the_cross_attention_it_computes(monkeypatch, num_layers):
    """attention() equals the last layer's cross-attention weights (head mean) of the forward pass, and
    the cached decoding steps equal teacher forcing over the grid memory."""
    import visgrad.captioning.transformer as transformer

    features, captions = _batch()
    net = _spatial(num_layers=num_layers)
    seen = []
    real = transformer.ops.attention

    def spy(q, k, v, mask=None, dropout=0.0):
        if k.shape[2] == 16:  # the 4 x 4 grid memory: a cross-attention call
            seen.append(torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1).mean(1))
        return real(q, k, v, mask, dropout)

    monkeypatch.setattr(transformer.ops, "attention", spy)
    teacher = net(features, captions[:, :-1])
    weights = net.attention(features, captions[:, :-1])
    assert weights.shape == (3, 4, 4, 4) and len(seen) >= num_layers
    torch.testing.assert_close(weights.flatten(2), seen[num_layers - 1])
    state = net.initial_state(features)
    for t in range(captions.shape[1] - 1):
        scores, state = net.step(captions[:, t], state)
        torch.testing.assert_close(scores, teacher[:, t])


def test_spatial_transformer_memory_knows_where_each_cell_is():
    """Identical cells still differ in the memory (their 2D positions), and rows and columns apart."""
    from visgrad.captioning.spatial_transformer import grid_positions

    memory = _spatial().memory(torch.ones(1, 3, 3, 6))[0]
    assert torch.cdist(memory, memory).fill_diagonal_(1.0).min() > 0.1
    positions = grid_positions(2, 3, 8)
    assert torch.equal(positions[0, :4], positions[2, :4])  # same row: same first half
    assert torch.equal(positions[1, 4:], positions[4, 4:])  # same column: same second half
    with pytest.raises(ValueError, match=r"grid \(N, h, w, C\)"):
        _spatial().loss(torch.zeros(3, 6), _batch()[1])


# ------------------------------------------------------------------------------------- grounding

SCENE = np.array([[0, 0, 1, 10, 10], [1, 2, 0, 40, 30], [0, 0, 0, 50, 50]])  # kind, colour, size, cx, cy


def test_word_objects_matches_phrases_to_the_scene():
    words = "two red circles left of a large blue square and a green diamond".split()
    named = word_objects(words, SCENE)
    assert named == [(1, [0, 2]), (2, [0, 2]), (7, [1]), (8, [1]), (11, None), (12, None)]
    assert word_objects("a circle and a square".split(), SCENE) == [(1, [0, 2]), (4, [1])]


def test_object_masks_come_from_the_dataset(shapes_root: Path):
    """The union of the objects' masks is the scene mask the generator stored."""
    images = load_shapes_images(shapes_root, "val", rows=np.arange(20))
    objects = load_shapes_objects(shapes_root, "val")[:20]
    for image, scene, stored in zip(images.images, objects, images.masks, strict=True):
        masks = object_masks(image, scene)
        assert len(masks) == (scene[:, 0] >= 0).sum() and all(m.any() for m in masks)
        union = np.logical_or.reduce(masks)
        assert (union == stored).mean() > 0.99  # anti-aliasing noise at a few edge pixels at most


def test_oracle_attention_beats_uniform_which_scores_its_baseline(shapes_root: Path):
    images = load_shapes_images(shapes_root, "val", rows=np.arange(20)).images
    objects = load_shapes_objects(shapes_root, "val")[:20]
    captions, oracle, uniform = [], [], []
    for image, scene in zip(images, objects, strict=True):
        kind, colour = scene[0, :2]
        captions.append(f"a {COLOURS[colour]} {KINDS[kind]}")
        fractions = cell_fractions(object_masks(image, scene)[0], (8, 8))
        on_object = fractions / fractions.sum()
        oracle.append(np.stack([np.full((8, 8), 1 / 64), on_object, on_object]))  # "a", colour, kind
        uniform.append(np.full((3, 8, 8), 1 / 64))
    perfect = grounding_scores(oracle, captions, images, objects)
    flat = grounding_scores(uniform, captions, images, objects)
    assert perfect["words"] == 40 and perfect["unmatched"] == 0
    assert flat["mass"] == pytest.approx(flat["mass_uniform"])
    assert perfect["mass"] > 3 * perfect["mass_uniform"] and perfect["pointing"] == 1.0
    assert 0 < perfect["pointing_uniform"] < 0.5


# ------------------------------------------------------------------------------------- data and end to end


def test_datamodule_pixels_grid_gives_images_batch_first(shapes_root: Path):
    dm = CaptionDataModule(shapes_root, grid="pixels", batch_size=8)
    dm.setup()
    assert dm.model_kwargs()["input_dim"] == 3
    features, captions = next(iter(dm.train_dataloader()))
    assert features.shape == (8, 64, 64, 3) and features.dtype == torch.float32
    eval_set = dm.eval_set("val", max_images=5)
    assert eval_set.features.shape == (5, 64, 64, 3) and eval_set.objects.shape == (5, 3, 5)
    with pytest.raises(ValueError, match="data.grid must be one of"):
        CaptionDataModule(shapes_root, grid="bogus_grid")


def test_lite0_grid_float16_keeps_the_features():
    from visgrad.data.grid_features import lite0_grid

    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    grid = lite0_grid(images)
    assert grid.shape == (2, 8, 8, 80)
    half = grid.astype(np.float16).astype(np.float32)
    assert np.abs(half - grid).max() <= 1e-3 * max(1.0, np.abs(grid).max())


def test_train_lstm_attention_then_draw_per_word_maps(compose_cfg, shapes_root: Path, tmp_path: Path):
    data = [f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
            "data.batch_size=50", "data.grid=pixels", "data.max_train=100"]
    cfg = compose_cfg("train", [*data, "model=lstm_attention", "model.net.encoder_channels=16",
                                "model.net.hidden_dim=32", "model.net.wordvec_dim=16", "model.meteor=false",
                                "model.num_samples=2", "trainer.max_epochs=1", "data.max_eval_images=20"])
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert "val/attention" in tensorboard_tags(Path(cfg.paths.output_dir) / "tensorboard")["images"]
    words = metrics["val/grounding/words"]  # object words of the greedy captions (few after one epoch)
    assert words == int(words) >= 0
    for key in ("val/grounding/mass", "val/grounding/pointing"):
        assert np.isnan(metrics[key]) == (words == 0), key
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    vis = compose_cfg("visualize", ["task=captions", f"ckpt_path={ckpt}", *data[:3], "data.grid=pixels",
                                    "task.meteor=false", "task.num_images=3", "device=cpu",
                                    "task.strategies={greedy: {kind: greedy}}", "data.max_eval_images=20"])
    run_task(vis)
    out = Path(vis.paths.output_dir)
    assert (out / "attention.png").is_file()
    summary = json.loads((out / "captions.json").read_text())["metrics"]
    assert "greedy/grounding/pointing" in summary


@pytest.mark.parametrize(("overrides", "message"), [
    (["data=shapes"], r"^data.grid=null gives vectors \(N, D\), but model.net \(AttentionLSTMCaptioner, as "
                      r"configured\) reads a grid \(N, h, w, C\); e.g. data.grid=lite0 \(data=shapes_grid"),
    (["data=shapes_grid", "data.grid=pixels"], r"data.grid='pixels' gives images .* reads a grid .*; e.g. "
                                               r"data.grid=lite0"),
    (["data=shapes_grid", "model.net.encoder_channels=8"], r"data.grid='lite0' gives a grid .* reads images "
                                                           r"\(N, S, S, 3\); e.g. data.grid=pixels$"),
    (["data=shapes_grid", "data.grid=bogus_grid"],
     r"data.grid='bogus_grid': must be null, lite0, pixels or lite0_pooled"),
    (["model=transformer_spatial", "data=shapes_grid", "data.grid=pixels"],
     r"data.grid='pixels' gives images .* model.net \(SpatialCaptioningTransformer, as configured\) reads a "
     r"grid"),
    # the vector captioners on a grid: refused before any data work, not a shape error in the first step
    (["model=lstm", "data=shapes_grid"], r"^data.grid='lite0' gives a grid \(N, h, w, C\), but model.net "
                                         r"\(CaptioningRNN, as configured\) reads vectors \(N, D\); e.g. "
                                         r"data.grid=null \(or data.grid=lite0_pooled\)$"),
    (["model=transformer", "data.grid=pixels"], r"gives images .* \(CaptioningTransformer, as configured\) "
                                                r"reads vectors"),
])
def test_train_config_check_names_the_missing_grid(compose_cfg, overrides, message):
    model = [] if any(o.startswith("model=") for o in overrides) else ["model=lstm_attention"]
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg("train", [*model, *overrides]))


@pytest.mark.slow
def test_lite0_grid_folder_is_extracted_once_and_pooled_on_request(shapes_root: Path):
    from visgrad.data.grid_features import ensure_lite0_grid, grid_folder, load_grid

    folder = ensure_lite0_grid(shapes_root)
    assert folder == grid_folder(shapes_root, "lite0") and not (shapes_root / folder.name).exists()
    stamp = (folder / "val2014_grid.h5").stat().st_mtime_ns
    grid = load_grid(shapes_root, "val", "lite0")
    assert grid.shape == (60, 8, 8, 80) and grid.dtype == np.float16
    assert (folder / "val2014_grid.h5").stat().st_mtime_ns == stamp  # current: not extracted again
    pooled = load_grid(shapes_root, "val", "lite0_pooled")
    np.testing.assert_allclose(pooled, grid.astype(np.float32).mean((1, 2)), rtol=1e-6)
    dm = CaptionDataModule(shapes_root, grid="lite0_pooled")
    assert dm.model_kwargs()["input_dim"] == 80


def test_coco_grid_images_come_from_disk_or_a_clear_error(tmp_path: Path):
    """A COCO folder's grid reads the images its urls file lists from images_dir (nothing downloaded)."""
    from PIL import Image

    from visgrad.data import CaptionDataError
    from visgrad.data.grid_features import split_images

    root, images = tmp_path / "coco", tmp_path / "jpgs"
    root.mkdir()
    images.mkdir()
    urls = [f"http://images.cocodataset.org/train2014/COCO_{i}.jpg" for i in range(3)]
    (root / "train2014_urls.txt").write_text("\n".join(urls) + "\n")
    for i in range(3):
        Image.new("RGB", (40 + i, 30), (10 * i, 0, 0)).save(images / f"COCO_{i}.jpg")
    (chunk,) = split_images(root, "train", images)
    assert chunk.shape == (3, 224, 224, 3) and chunk.dtype == np.uint8
    (images / "COCO_2.jpg").unlink()
    with pytest.raises(CaptionDataError, match=r"COCO_2.jpg is not .*data.images_dir"):
        list(split_images(root, "train", images))


def test_a_corrupt_grid_file_is_named_with_the_folder_to_remove(tmp_path: Path):
    """A truncated or corrupt extracted grid is one line naming the file and the folder whose removal
    re-extracts it (not an h5py traceback)."""
    import json

    from visgrad.data.coco import MANIFEST, CaptionDataError
    from visgrad.data.grid_features import LITE0_SIZE, _manifest, grid_file, grid_folder, load_grid

    root = tmp_path / "data"
    root.mkdir()
    (root / MANIFEST).write_text(json.dumps({"kind": "test"}))
    folder = grid_folder(root, "lite0")
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps(_manifest(root, LITE0_SIZE), indent=1))
    for split in ("train", "val"):
        (folder / grid_file(split)).write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(CaptionDataError) as info:
        load_grid(root, "val", "lite0")
    message = str(info.value)
    assert str(folder / grid_file("val")) in message and f"remove the folder {folder}" in message
    assert "\n" not in message
