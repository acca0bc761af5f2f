"""Caption quality: corpus BLEU-1..4 and METEOR from pycocoevalcap, CIDEr-D from ``visgrad.captioning.cider``.

Captions are plain lower-case words separated by spaces (what ``decode_captions`` returns), so no
PTB tokenisation is applied. METEOR runs pycocoevalcap's Java scorer; it is computed when Java is
installed (``meteor="auto"``), and its JVM is started once per process and reused.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Sequence

from visgrad.captioning.cider import cider_d

METRIC_NAMES = ("bleu1", "bleu2", "bleu3", "bleu4", "cider_d", "meteor")


def java_available() -> bool:
    return shutil.which("java") is not None


@functools.lru_cache(maxsize=1)
def _meteor_scorer():
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def use_meteor(meteor: bool | str) -> bool:
    """Resolve ``meteor`` = True | False | "auto" (True when Java is installed)."""
    if meteor == "auto":
        return java_available()
    if meteor and not java_available():
        raise RuntimeError("meteor=true needs Java (the `java` command) for pycocoevalcap's METEOR; "
                           "install a JRE or set meteor=auto / false")
    return bool(meteor)


def caption_metrics(
    candidates: Sequence[str], references: Sequence[Sequence[str]], meteor: bool | str = "auto"
) -> dict[str, float]:
    """Corpus metrics of M generated captions against their references.

    Args:
        candidates: M generated captions.
        references: M non-empty lists of reference captions.
        meteor: True | False | "auto" (when Java is present).

    Returns: ``{"bleu1".."bleu4", "cider_d"[, "meteor"]}`` as floats.
    """
    from pycocoevalcap.bleu.bleu import Bleu

    if len(candidates) != len(references):
        raise ValueError(f"got {len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError("caption metrics need at least one candidate caption")
    gts = {i: list(refs) for i, refs in enumerate(references)}
    res = {i: [candidate] for i, candidate in enumerate(candidates)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    metrics = {f"bleu{n + 1}": float(value) for n, value in enumerate(bleu)}
    metrics["cider_d"] = cider_d(candidates, references)[0]
    if use_meteor(meteor):
        metrics["meteor"] = float(_meteor_scorer().compute_score(gts, res)[0])
    return metrics
