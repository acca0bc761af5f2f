"""CIDEr-D against hand-derived values and pycocoevalcap; the caption metric bundle."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from visgrad.captioning.cider import cider_d
from visgrad.captioning.metrics import caption_metrics

# Two images with disjoint vocabularies: every n-gram has df = 1, so idf = log 2 =: w for all of them.
REFS = [["a b"], ["c d"]]


def test_identical_caption_scores_ten_times_mean_over_orders() -> None:
    """Candidate = reference "a b": cosine 1 for 1- and 2-grams, 0 for the (empty) 3-, 4-grams: 10 * 2/4."""
    mean, scores = cider_d(["a b", "c d"], REFS)
    np.testing.assert_allclose(scores, [5.0, 5.0])
    assert mean == pytest.approx(5.0)


def test_repeated_word_is_clipped() -> None:
    """"a a" vs "a b": unigram vectors c = {a: 2w}, r = {a: w, b: w}. Clipped: min(2w, w) w / (2w * sqrt2 w)
    = 1/(2 sqrt2); no shared bigram; equal lengths. CIDEr-D = 10 * (1/(2 sqrt2)) / 4. Plain CIDEr (no
    clipping) would give 10 * (1/sqrt2) / 4, twice as much."""
    _, scores = cider_d(["a a", "c d"], REFS)
    clipped = 10 * (1 / (2 * math.sqrt(2))) / 4
    assert scores[0] == pytest.approx(clipped, rel=1e-12)
    assert scores[0] != pytest.approx(2 * clipped, rel=1e-3)


def test_gaussian_length_penalty() -> None:
    """"a b x" vs "a b" (x unseen, idf w): unigrams 2w^2 / (sqrt3 w sqrt2 w) = 2/sqrt6, bigrams
    w^2 / (sqrt2 w w) = 1/sqrt2, 3-grams have no reference; length difference 1 -> exp(-1 / (2 * 6^2))."""
    _, scores = cider_d(["a b x", "c d"], REFS)
    expected = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    assert scores[0] == pytest.approx(expected, rel=1e-12)
    _, wide = cider_d(["a b x", "c d"], REFS, sigma=1e9)  # no penalty
    assert wide[0] == pytest.approx(expected * math.exp(1 / 72), rel=1e-12)


def test_ngrams_in_every_image_carry_no_weight() -> None:
    """"a" appears in the references of both images: idf = log 2 - log 2 = 0, so matching it scores 0."""
    _, scores = cider_d(["a", "a"], [["a b"], ["a c"]])
    np.testing.assert_allclose(scores, [0.0, 0.0])


def test_averages_over_references() -> None:
    """A second, unrelated reference halves the score of a perfect match with the first."""
    _, one = cider_d(["a b", "c d", "e f"], [["a b"], ["c d"], ["e f"]])
    _, two = cider_d(["a b", "c d", "e f"], [["a b", "g h"], ["c d"], ["e f"]])
    assert two[0] == pytest.approx(one[0] / 2, rel=1e-12)


def test_agrees_with_pycocoevalcap_on_random_corpora() -> None:
    """pycocoevalcap's ``Cider`` (coco-caption) computes the same CIDEr-D formula: identical scores."""
    rng = random.Random(0)
    words = "a big small red blue circle square above below left of the".split()
    for _ in range(5):
        candidates, references = [], []
        for _ in range(rng.randint(2, 40)):
            candidates.append(" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))))
            references.append([" ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))
                               for _ in range(rng.randint(1, 5))])
        mean, scores = cider_d(candidates, references)
        ref_mean, ref_scores = Cider().compute_score(
            {i: r for i, r in enumerate(references)}, {i: [c] for i, c in enumerate(candidates)})
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-12, atol=1e-12)
        assert mean == pytest.approx(ref_mean, rel=1e-12)


def test_cider_validates_inputs() -> None:
    with pytest.raises(ValueError, match="2 candidates but 1 reference lists"):
        cider_d(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no reference captions"):
        cider_d(["a", "b"], [["a"], []])


def test_caption_metrics_bundle() -> None:
    references = [["a red circle", "the red circle"], ["a blue square above a circle"], ["a small square"]]
    perfect = caption_metrics([r[0] for r in references], references, meteor=False)
    assert set(perfect) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider_d"}
    for n in range(1, 5):
        assert perfect[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6)
    worse = caption_metrics(["a red square", "a blue square", "circle"], references, meteor=False)
    assert worse["bleu1"] < 1 and worse["bleu4"] < worse["bleu1"] and worse["cider_d"] < perfect["cider_d"]
