"""The sanity checks (Adebayo et al. 2018): the similarity measures against SciPy / scikit-image, the
randomisation of a copy (the trained network untouched), ``task=sanity_checks`` end to end on the shapes
classifier, and ``task=saliency`` with the methods beyond CS231n's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from test_tasks_vision import tiny_classifier, vis_overrides  # noqa: F401  (a fixture)

from visgrad.errors import ConfigError
from visgrad.models.efficientnet_lite0 import EfficientNetLite0
from visgrad.models.shapes_cnn import ShapesCNN
from visgrad.tasks import run_task
from visgrad.vision import sanity


def read_scalars(folder: Path) -> dict[str, list[float]]:
    """The scalars of the TensorBoard event files in ``folder``, by tag, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_spearman_equals_scipy_with_ties_and_constant_maps_correlate_zero():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 6, 7), generator=generator).double()  # many ties
    b = a + torch.randn(3, 6, 7, generator=generator, dtype=torch.float64) * 2
    ours = sanity.spearman(a, b)
    expected = [spearmanr(x.flatten(), z.flatten()).statistic for x, z in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
    assert sanity.spearman(torch.ones(1, 4, 4), b[:1, :4, :4]).item() == 0.0


def test_similarities_of_a_map_with_itself_are_one_and_signed_flips():
    maps = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1)) - 0.5
    reference = sanity.Reference.of(maps.abs(), maps)
    same = sanity.similarities(reference, maps.abs(), maps)
    for measure in sanity.MEASURES:
        np.testing.assert_allclose(same[measure], 1.0, rtol=1e-9)
    flipped = sanity.similarities(reference, maps.abs(), -maps)
    np.testing.assert_allclose(flipped["spearman_signed"], -1.0, rtol=1e-9)
    noise = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(2))
    other = sanity.similarities(reference, noise, noise)
    assert all(abs(v) < 0.2 for v in other["spearman_abs"]) and all(v < 0.5 for v in other["ssim"])


def test_randomization_blocks_of_lite0_and_of_the_shapes_cnn():
    names = [block.name for block in sanity.randomization_blocks(EfficientNetLite0())]
    assert names == ["_fc", "_conv_head", *(f"_blocks.{i}" for i in range(15, -1, -1)), "_conv_stem"]
    blocks = sanity.randomization_blocks(ShapesCNN(num_classes=3, width=4))
    assert [b.modules for b in blocks] == [("classifier",), ("features.11", "features.12"),
                                           ("features.8", "features.9"), ("features.4", "features.5"),
                                           ("features.0", "features.1")]  # conv + its BatchNorm
    assert [[b.name for b in g] for g in sanity.group_blocks(blocks, 2)] == [
        ["classifier", "features.11"], ["features.8", "features.4"], ["features.0"]]


def test_randomizer_works_on_a_copy_with_a_seeded_fresh_initialisation():
    torch.manual_seed(0)
    trained = EfficientNetLite0().eval().fold_batchnorm().requires_grad_(False)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    state = torch.random.get_rng_state()
    fresh = sanity.fresh_model(trained, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is left alone
    again = sanity.fresh_model(trained, seed=7)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in fresh.state_dict().items())
    assert isinstance(fresh._bn0, torch.nn.Identity) and not torch.equal(fresh._fc.weight, trained._fc.weight)
    randomizer = sanity.Randomizer(trained, fresh)
    head, stem = sanity.randomization_blocks(trained)[1], sanity.randomization_blocks(trained)[-1]
    randomizer.randomize(head)
    assert torch.equal(randomizer.model._conv_head.weight, fresh._conv_head.weight)
    assert torch.equal(randomizer.model._conv_stem.weight, trained._conv_stem.weight)
    randomizer.randomize(stem)
    randomizer.restore(head)
    assert torch.equal(randomizer.model._conv_head.weight, trained._conv_head.weight)
    assert not torch.equal(randomizer.model._conv_stem.weight, trained._conv_stem.weight)
    # the trained network is untouched
    assert all(torch.equal(v, before[k]) for k, v in trained.state_dict().items())
    assert randomizer.module(trained.head_activation, trained) is randomizer.model.head_activation


def test_sanity_checks_end_to_end_on_shapes(compose_cfg, shapes_root, tiny_classifier):  # noqa: F811
    cfg = compose_cfg("visualize", vis_overrides(
        shapes_root, tiny_classifier, "task=sanity_checks", "task.methods=[vanilla,guided_backprop,gradcam]",
        "task.num_images=4", "task.blocks_per_step=2"))
    value = run_task(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert value == pytest.approx(metrics["sanity/vanilla/cascade_spearman_abs"])
    assert metrics["sanity/num_steps"] == 3 and metrics["sanity/threshold"] == 0.5
    curves = read_scalars(out / "tensorboard")
    for method in ("vanilla", "guided_backprop", "gradcam"):
        steps = curves[f"sanity/{method}/cascading/spearman_abs"]
        assert len(steps) == 3 and len(curves[f"sanity/{method}/independent/hog"]) == 3
        assert metrics[f"sanity/{method}/cascade_spearman_abs"] == pytest.approx(np.mean(steps))
        assert metrics[f"sanity/{method}/spearman_abs"] == pytest.approx(steps[-1])  # all blocks random
        assert metrics[f"sanity/{method}/passed"] == float(np.mean(steps) < 0.5)
    table = (out / "sanity_table.md").read_text()
    assert "| Guided Backprop |" in table and ("pass" in table or "FAIL" in table)
    assert "Spearman \\|map\\|" in table  # a "|" inside a cell is escaped: every line has the same columns
    assert len({len(re.split(r"(?<!\\)\|", line)) for line in table.splitlines()}) == 1
    assert (out / "sanity_cascade.png").stat().st_size > 1000 and (out / "sanity_curves.png").exists()


def test_sanity_checks_refuse_before_writing(compose_cfg, shapes_root, tiny_classifier):  # noqa: F811
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, "task=sanity_checks",
                                                 "task.methods=[vanilla,vanilla]", "task.threshold=2"))
    with pytest.raises(ConfigError, match=r"task.threshold=2"):
        run_task(cfg)
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, "task=sanity_checks",
                                                 "task.methods=[vanilla,vanilla]"))
    with pytest.raises(ConfigError, match="vanilla more than once"):
        run_task(cfg)


def test_saliency_task_with_the_new_methods_on_shapes(compose_cfg, shapes_root, tiny_classifier):  # noqa: F811
    """``task=saliency task.methods=[gradcam,rise,occlusion,...]``: maps and scores (the pointing game on
    shapes), and a method's check refusing its options in ``prepare``."""
    cfg = compose_cfg("visualize", vis_overrides(
        shapes_root, tiny_classifier, "task=saliency", "task.num_images=6", "task.num_show=2",
        "task.methods=[gradcam,rise,occlusion,guided_backprop,guided_gradcam,input_x_gradient]",
        "task.rise.num_masks=40", "task.occlusion.patch=16", "task.occlusion.stride=16",
        "task.metrics.steps=4",
        "task.optimized_metric=saliency/gradcam/pointing_game"))
    run_task(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    for method in ("gradcam", "rise", "occlusion", "guided_backprop", "guided_gradcam", "input_x_gradient"):
        for key in ("deletion_auc", "insertion_auc", "pointing_game", "seconds"):
            assert f"saliency/{method}/{key}" in metrics
        assert 0 <= metrics[f"saliency/{method}/pointing_game"] <= 1
    cfg = compose_cfg("visualize", vis_overrides(shapes_root, tiny_classifier, "task=saliency",
                                                 "task.methods=[occlusion]", "task.occlusion.patch=65"))
    with pytest.raises(ConfigError, match=r"^task.occlusion.patch=65: larger than the 64-pixel inputs"):
        run_task(cfg)
