"""CIDEr-D (Vedantam et al., 2015), the variant of the COCO caption server and self-critical training.

For each image, candidate and references become TF-IDF vectors of their 1..4-grams; the document
frequency of an n-gram is the number of images of the evaluated set whose references contain it, and
idf = log(M) - log(max(1, df)) over M images. Per n, the similarity to one reference is
sum_g min(c_g, r_g) r_g / (|c| |r|) (clipped counts), damped by the Gaussian length penalty
exp(-(len(c) - len(r))^2 / (2 sigma^2)) with lengths in words; CIDEr-D averages over n and over the
references and multiplies by 10.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np


def ngram_counts(sentence: str, n: int = 4) -> Counter:
    """Counts of all 1..n-grams (as word tuples) of a whitespace-tokenised sentence."""
    words = sentence.split()
    return Counter(tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def _tfidf(counts: Counter, idf: dict, default_idf: float, n: int) -> tuple[list[dict], np.ndarray]:
    """Per-order TF-IDF vectors (list of n dicts) and their L2 norms (n,)."""
    vectors: list[dict] = [{} for _ in range(n)]
    for gram, tf in counts.items():
        vectors[len(gram) - 1][gram] = tf * idf.get(gram, default_idf)
    norms = np.array([math.sqrt(sum(v * v for v in vec.values())) for vec in vectors])
    return vectors, norms


def _clipped_dot(candidate: dict, reference: dict) -> float:
    """sum_g min(c_g, r_g) * r_g over the candidate's n-grams g."""
    total = 0.0
    for gram, value in candidate.items():
        r = reference.get(gram, 0.0)
        total += min(value, r) * r
    return total


def cider_d(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0
) -> tuple[float, np.ndarray]:
    """CIDEr-D of M candidate captions against their reference captions.

    Args:
        candidates: M strings, one generated caption per image (words separated by spaces).
        references: M non-empty lists of reference strings.
        n: largest n-gram order; sigma: width of the length penalty.

    Returns: (mean score over the M images, per-image scores (M,)).
    """
    if len(candidates) != len(references):
        raise ValueError(f"got {len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError("CIDEr-D needs at least one candidate caption")
    empty = [i for i, refs in enumerate(references) if len(refs) == 0]
    if empty:
        raise ValueError(f"images {empty[:5]} have no reference captions")

    ref_counts = [[ngram_counts(r, n) for r in refs] for refs in references]
    df: Counter = Counter()
    for refs in ref_counts:
        df.update(set().union(*refs))
    log_m = math.log(len(candidates))
    idf = {gram: log_m - math.log(count) for gram, count in df.items()}

    scores = np.zeros(len(candidates))
    for i, (candidate, refs) in enumerate(zip(candidates, ref_counts, strict=True)):
        c_vec, c_norm = _tfidf(ngram_counts(candidate, n), idf, log_m, n)
        c_len = len(candidate.split())
        total = np.zeros(n)
        for ref, ref_text in zip(refs, references[i], strict=True):
            r_vec, r_norm = _tfidf(ref, idf, log_m, n)
            dots = np.array([_clipped_dot(c_vec[k], r_vec[k]) for k in range(n)])
            denom = c_norm * r_norm
            sims = np.divide(dots, denom, out=np.zeros(n), where=denom != 0)
            delta = c_len - len(ref_text.split())
            total += sims * math.exp(-(delta**2) / (2 * sigma**2))
        scores[i] = 10.0 * total.mean() / len(refs)
    return float(scores.mean()), scores
