"""Deletion / insertion (RISE) on a toy model whose evidence is known, against hand-computed curves."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from visgrad.images import Normalization
from visgrad.vision.saliency_metrics import (
    RANDOM,
    ScoringOptions,
    auc,
    blurred_canvas,
    deletion,
    insertion,
    patch_ranks,
    pixel_ranks,
    probability_curves,
    random_saliency,
    score_maps,
)

IDENTITY = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # normalised = pixels, so black = 0
REGION = [(0, 1), (1, 1), (2, 2), (3, 0)]  # the 4 evidence pixels of a 4 x 4 image
SCALE = 1.5


class RegionModel(nn.Module):
    """Two classes: logit 0 is 0, logit 1 is SCALE times the summed channel means over REGION."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = sum(x[:, :, r, c].mean(dim=1) for r, c in REGION) * SCALE
        return torch.stack([torch.zeros_like(evidence), evidence], dim=1)


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _trapezoid(values: list[float]) -> float:
    k = len(values) - 1
    return sum((a + b) / 2 for a, b in zip(values[:-1], values[1:], strict=True)) / k


def _maps() -> tuple[torch.Tensor, torch.Tensor]:
    """An oracle map (the region first) and an adversarial one (the region last)."""
    oracle = torch.zeros(1, 4, 4)
    for r, c in REGION:
        oracle[0, r, c] = 1.0
    return oracle, 1 - oracle


def test_deletion_matches_hand_computed_curves() -> None:
    X, y = torch.ones(1, 3, 4, 4), torch.tensor([1])
    oracle, adversarial = _maps()
    # 16 steps = one pixel per step; after k deletions the region keeps max(4 - k, 0) (oracle) pixels, or
    # all 4 until the last 4 steps (adversarial).
    expect_oracle = [_sigmoid(SCALE * max(4 - k, 0)) for k in range(17)]
    expect_adversarial = [_sigmoid(SCALE * min(4, 16 - k)) for k in range(17)]
    good = deletion(X, y, RegionModel(), oracle, steps=16, norm=IDENTITY)
    bad = deletion(X, y, RegionModel(), adversarial, steps=16, norm=IDENTITY)
    torch.testing.assert_close(good.curves[0], torch.tensor(expect_oracle))
    torch.testing.assert_close(bad.curves[0], torch.tensor(expect_adversarial))
    assert good.auc.item() == pytest.approx(_trapezoid(expect_oracle))
    assert bad.auc.item() == pytest.approx(_trapezoid(expect_adversarial))
    random = deletion(X.expand(64, -1, -1, -1), y.expand(64), RegionModel(),
                      random_saliency(torch.zeros(64, 4, 4), seed=1), steps=16, norm=IDENTITY)
    assert good.auc.item() < random.auc.mean().item() < bad.auc.item()


def test_insertion_rewards_the_evidence_first() -> None:
    X, y = torch.ones(1, 3, 4, 4), torch.tensor([1])
    oracle, adversarial = _maps()
    start = torch.zeros_like(X)
    good = probability_curves(X, y, RegionModel(), oracle, start, X, steps=4)  # 4 pixels per step
    expect = [_sigmoid(SCALE * min(4, 4 * k)) for k in range(5)]  # step 1 already inserts all 4
    torch.testing.assert_close(good.curves[0], torch.tensor(expect))
    bad = probability_curves(X, y, RegionModel(), adversarial, start, X, steps=4)
    assert bad.curves[0, :4].allclose(torch.tensor(0.5)) and bad.auc.item() < good.auc.item()


def test_insertion_and_blur_deletion_use_the_rise_blur() -> None:
    torch.manual_seed(0)
    X, y = torch.randn(2, 3, 24, 24), torch.tensor([1, 1])
    saliency = torch.rand(2, 24, 24)
    ours = insertion(X, y, RegionModel(), saliency, steps=6)
    reference = probability_curves(X, y, RegionModel(), saliency, blurred_canvas(X), X, steps=6)
    torch.testing.assert_close(ours.curves, reference.curves)
    blurred = deletion(X, y, RegionModel(), saliency, steps=6, fill="blur")
    mirror = probability_curves(X, y, RegionModel(), saliency, X, blurred_canvas(X), steps=6)
    torch.testing.assert_close(blurred.curves, mirror.curves)
    with pytest.raises(ValueError, match=r"unknown deletion fill='grey'; choose one of blur, black"):
        deletion(X, y, RegionModel(), saliency, fill="grey")
    flat = torch.full((1, 3, 20, 20), 0.3)
    torch.testing.assert_close(blurred_canvas(flat), flat)
    assert not torch.allclose(blurred_canvas(X), X)


def test_pixel_ranks_and_auc() -> None:
    saliency = torch.tensor([[[0.1, 0.9], [0.5, 0.5]]])
    assert pixel_ranks(saliency).tolist() == [[[3, 0], [1, 2]]]  # ties keep row-major order
    curves = torch.stack([torch.full((5,), 0.3), torch.linspace(0, 1, 5), torch.tensor([1.0, 0, 0, 0, 0])])
    torch.testing.assert_close(auc(curves), torch.tensor([0.3, 0.5, 0.125]))


def test_patches_are_ranked_by_mean_saliency() -> None:
    saliency = torch.tensor([[[0.0, 0.0, 0.2, 0.2, 5.0],
                              [0.0, 0.0, 0.2, 0.2, 0.0],
                              [1.0, 0.0, 0.0, 0.0, 0.0]]])
    ranks, units = patch_ranks(saliency, 2)
    # 2 x 2 squares (partial at the borders): means 0, 0.2, 2.5 | 0.25, 0, 0 -> ranks 3, 2, 0 | 1, 4, 5
    assert units == 6
    assert ranks.tolist() == [[[3, 3, 2, 2, 0], [3, 3, 2, 2, 0], [1, 1, 4, 4, 5]]]
    assert torch.equal(patch_ranks(saliency, 1)[0], pixel_ranks(saliency))


def test_deletion_by_patches_matches_hand_computed_curve() -> None:
    X, y = torch.ones(1, 3, 4, 4), torch.tensor([1])
    oracle, _ = _maps()
    # 2 x 2 patches with region pixels: top-left (0,1),(1,1) = 2; bottom-right (2,2) = 1; bottom-left (3,0)
    # = 1. Ranked by mean: top-left (0.5) first, then bottom-left and bottom-right (0.25, row-major), then
    # the empty top-right. One patch per step leaves 4, 2, 1, 0, 0 region pixels.
    curve = deletion(X, y, RegionModel(), oracle, steps=4, norm=IDENTITY, patch=2).curves[0]
    torch.testing.assert_close(curve, torch.tensor([_sigmoid(SCALE * r) for r in (4, 2, 1, 0, 0)]))


def test_score_maps_scores_every_map_and_the_random_order() -> None:
    """The one scoring function of saliency and any attribution task: the curves of deletion and insertion,
    the pointing game and mass in mask with masks, and the random order's expected pointing game."""
    X, y = torch.ones(2, 3, 4, 4), torch.tensor([1, 1])
    oracle, _ = _maps()
    oracle = oracle.expand(2, -1, -1)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    for r, c in REGION:
        masks[:, r, c] = True
    masks[1] = False
    masks[1, 0, 0] = True  # the second image's object is a pixel the oracle does not point at
    options = ScoringOptions(steps=4, patch=1, deletion_fill="black", blur=1.0)
    scored = []
    scores = score_maps(X, y, RegionModel(), {"oracle": oracle}, options, IDENTITY, masks, seed=3,
                        on_scored=scored.append)
    assert list(scores) == scored == ["oracle", RANDOM]
    expected = deletion(X, y, RegionModel(), oracle, 4, IDENTITY, 1, "black", 1.0)
    torch.testing.assert_close(scores["oracle"].deletion.curves, expected.curves)
    inserted = insertion(X, y, RegionModel(), oracle, 4, 1.0, 1)
    torch.testing.assert_close(scores["oracle"].insertion.curves, inserted.curves)
    random_map = random_saliency(X[:, 0], seed=3)
    random_curves = deletion(X, y, RegionModel(), random_map, 4, IDENTITY, 1, "black", 1.0)
    torch.testing.assert_close(scores[RANDOM].deletion.curves, random_curves.curves)
    metrics = scores["oracle"].metrics()
    assert metrics["pointing_game"] == 0.5  # the peak is inside the first image's object only
    assert metrics["mass_in_mask"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["deletion_auc"] == pytest.approx(expected.auc.mean().item())
    random_metrics = scores[RANDOM].metrics()
    assert random_metrics["deletion_auc"] == pytest.approx(random_curves.auc.mean().item())
    assert random_metrics["pointing_game"] == pytest.approx(5 / 32) and "mass_in_mask" not in random_metrics
    unmasked = score_maps(X, y, RegionModel(), {"oracle": oracle}, options, IDENTITY)["oracle"].metrics()
    assert set(unmasked) == {"deletion_auc", "insertion_auc"}  # no masks: no pointing game
