"""Caption vocabulary in the CS231n format: special tokens, building, encoding and decoding.

The vocabulary is a pair ``idx_to_word`` (list of str) / ``word_to_idx`` (dict) with ``<NULL>`` = 0 (padding),
then ``<START>``, ``<END>`` and ``<UNK>``, as in CS231n's ``coco2014_vocab.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS = (NULL, START, END, UNK)


def build_vocab(captions: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """The vocabulary of whitespace-separated ``captions``: special tokens first, then the words sorted.

    Returns ``(idx_to_word, word_to_idx)`` with ``idx_to_word[0] == "<NULL>"``.
    """
    words = sorted({word for caption in captions for word in caption.split()} - set(SPECIAL_TOKENS))
    idx_to_word = [*SPECIAL_TOKENS, *words]
    return idx_to_word, {word: idx for idx, word in enumerate(idx_to_word)}


def encode_captions(captions: Sequence[str], word_to_idx: Mapping[str, int], length: int) -> np.ndarray:
    """Token ids of ``captions`` as CS231n stores them: ``<START> w1 ... wn <END> <NULL> ...``.

    Inputs:
    - captions: N strings of whitespace-separated words; words missing from the vocabulary become ``<UNK>``.
    - word_to_idx: the vocabulary.
    - length: T, the padded length (at least the longest caption + 2).

    Returns an int32 array of shape (N, T).
    """
    out = np.full((len(captions), length), word_to_idx[NULL], dtype=np.int32)
    unk = word_to_idx[UNK]
    for i, caption in enumerate(captions):
        ids = [word_to_idx[START], *(word_to_idx.get(w, unk) for w in caption.split()), word_to_idx[END]]
        if len(ids) > length:
            raise ValueError(
                f"caption {caption!r} needs {len(ids)} tokens with <START>/<END> but length={length}"
            )
        out[i, : len(ids)] = ids
    return out


def decode_captions(
    captions: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
    idx_to_word: Sequence[str] | Mapping[int, str],
) -> list[str]:
    """Words of token-id captions: drop ``<START>`` and ``<NULL>``, stop at (and drop) ``<END>``.

    Inputs:
    - captions: token ids of shape (N, T), or (T,) for a single caption (then a list of one string).
    - idx_to_word: list of words, or a mapping id -> word (JSON-style string keys are accepted too).

    Returns N strings of space-separated words (``<UNK>`` is kept as a word).
    """
    if isinstance(captions, torch.Tensor):
        captions = captions.detach().cpu().numpy()
    captions = np.asarray(captions)
    if captions.ndim == 1:
        captions = captions[None]
    if captions.ndim != 2:
        raise ValueError(f"captions must have shape (N, T) or (T,), got {captions.shape}")
    if isinstance(idx_to_word, Mapping):
        idx_to_word = {int(k): v for k, v in idx_to_word.items()}
        lookup = idx_to_word.get
    else:
        lookup = lambda i: idx_to_word[i] if 0 <= i < len(idx_to_word) else None
    decoded = []
    for row in captions.tolist():
        words = []
        for idx in row:
            word = lookup(idx)
            if word is None:
                raise ValueError(f"token id {idx} is not in the vocabulary (size {len(idx_to_word)})")
            if word == END:
                break
            if word not in (START, NULL):
                words.append(word)
        decoded.append(" ".join(words))
    return decoded
