"""Decoding: greedy (CS231n layout), beam search (exactness, beam 1 = greedy), temperature sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from visgrad.captioning import (
    CaptioningRNN,
    beam_search,
    greedy_decode,
    sequence_log_prob,
    temperature_sample,
)
from visgrad.captioning.decoding import DecodingStrategy, length_penalty

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "red": 5, "circle": 6, "blue": 7}


def random_model(cell_type: str, seed: int = 0, scale: float = 1.0, vocab=WORDS) -> CaptioningRNN:
    """A random captioner with large enough weights that its captions vary in words and length."""
    torch.manual_seed(seed)
    model = CaptioningRNN(vocab, input_dim=6, wordvec_dim=5, hidden_dim=7, cell_type=cell_type).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, scale)
    return model


def cs231n_greedy(model: CaptioningRNN, features: torch.Tensor, max_length: int) -> np.ndarray:
    """CS231n's sample loop in NumPy (argmax at every step, never stopping), then <NULL> after each <END>."""
    p = {n: t.detach().numpy() for n, t in model.named_parameters()}
    h = features.numpy() @ p["W_proj"] + p["b_proj"]
    c = np.zeros_like(h)
    H = h.shape[1]
    sig = lambda a: 1 / (1 + np.exp(-a))
    words = np.full(len(h), model.start_idx)
    out = np.zeros((len(h), max_length), dtype=np.int64)
    for t in range(max_length):
        a = p["W_embed"][words] @ p["Wx"] + h @ p["Wh"] + p["b"]
        if model.cell_type == "rnn":
            h = np.tanh(a)
        else:
            c = sig(a[:, H:2 * H]) * c + sig(a[:, :H]) * np.tanh(a[:, 3 * H:])
            h = sig(a[:, 2 * H:3 * H]) * np.tanh(c)
        words = (h @ p["W_vocab"] + p["b_vocab"]).argmax(1)
        out[:, t] = words
    for row in out:
        ends = np.flatnonzero(row == model.end_idx)
        if len(ends):
            row[ends[0] + 1:] = model.null_idx
    return out


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_greedy_matches_cs231n_loop_and_pads_with_null(cell_type: str) -> None:
    model = random_model(cell_type)
    features = torch.randn(16, 6, dtype=torch.float64)
    captions = model.sample(features, max_length=9)
    assert captions.dtype == torch.long and captions.shape == (16, 9)
    np.testing.assert_array_equal(captions.numpy(), cs231n_greedy(model, features, 9))
    ended = (captions == model.end_idx).any(1)
    assert 0 < ended.sum() < 16, "the fixture should produce both finished and unfinished captions"


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_beam_size_one_equals_greedy(cell_type: str) -> None:
    model = random_model(cell_type, seed=3)
    features = torch.randn(32, 6, dtype=torch.float64)
    captions, log_probs = beam_search(model, features, beam_size=1, max_length=10)
    torch.testing.assert_close(captions, greedy_decode(model, features, max_length=10), rtol=0, atol=0)
    torch.testing.assert_close(log_probs, sequence_log_prob(model, features, captions))


def brute_force_best(model, features: torch.Tensor, max_length: int, alpha: float):
    """Score every word sequence of length max_length (canonicalised: <NULL> after the first <END>)."""
    V = model.vocab_size
    seqs = torch.tensor(list(itertools.product(range(V), repeat=max_length)))
    ended = torch.cumsum((seqs == model.end_idx).long(), 1)
    after_end = torch.cat([torch.zeros(len(seqs), 1, dtype=torch.long), ended[:, :-1]], 1) > 0
    seqs = torch.unique(seqs.masked_fill(after_end, model.null_idx), dim=0)
    is_end = seqs == model.end_idx
    lengths = torch.where(is_end.any(1), is_end.long().argmax(1) + 1, max_length)
    best = []
    for feature in features:
        lp = sequence_log_prob(model, feature.expand(len(seqs), -1), seqs)
        best.append((lp / length_penalty(lengths, alpha)).max())
    return torch.stack(best)


@pytest.mark.parametrize("cell_type,alpha", [("rnn", 0.0), ("lstm", 0.0), ("lstm", 1.0)])
def test_wide_beam_is_exact_search(cell_type: str, alpha: float) -> None:
    """With beam_size >= V^(T-1) nothing is ever pruned, so beam search finds the best caption."""
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3}
    model = random_model(cell_type, seed=5, scale=1.5, vocab=vocab)
    features = torch.randn(6, 6, dtype=torch.float64)
    T = 4
    captions, log_probs = beam_search(model, features, beam_size=4 ** (T - 1), max_length=T,
                                      length_alpha=alpha)
    lengths = torch.where((captions == 2).any(1), (captions == 2).long().argmax(1) + 1, T)
    found = log_probs / length_penalty(lengths, alpha)
    torch.testing.assert_close(found, brute_force_best(model, features, T, alpha))
    torch.testing.assert_close(log_probs, sequence_log_prob(model, features, captions))


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_beam_log_prob_at_least_greedy(cell_type: str) -> None:
    model = random_model(cell_type, seed=7)
    features = torch.randn(64, 6, dtype=torch.float64)
    greedy = greedy_decode(model, features, max_length=12)
    greedy_lp = sequence_log_prob(model, features, greedy)
    captions, beam_lp = beam_search(model, features, beam_size=5, max_length=12)
    torch.testing.assert_close(beam_lp, sequence_log_prob(model, features, captions))
    assert (beam_lp >= greedy_lp - 1e-9).all()
    assert (beam_lp > greedy_lp + 1e-6).any(), "beam search should improve on greedy for some images"
    # every finished caption is padded with <NULL> after <END>, as greedy's
    after_end = torch.cumsum((captions == model.end_idx).long(), 1) - (captions == model.end_idx).long() > 0
    assert (captions[after_end] == model.null_idx).all()


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_temperature_to_zero_is_greedy_and_sampling_is_seeded(cell_type: str) -> None:
    model = random_model(cell_type, seed=11)
    features = torch.randn(32, 6, dtype=torch.float64)
    greedy = greedy_decode(model, features, max_length=10)
    cold = temperature_sample(model, features, 1e-4, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(cold, greedy, rtol=0, atol=0)

    def draw(seed: int) -> torch.Tensor:
        return temperature_sample(model, features, 1.0, 10, torch.Generator().manual_seed(seed))

    torch.testing.assert_close(draw(1), draw(1), rtol=0, atol=0)
    assert not torch.equal(draw(1), draw(2))
    assert not torch.equal(draw(1), greedy)


def test_strategy_validation_and_labels() -> None:
    with pytest.raises(ValueError, match="decoding kind must be one of"):
        DecodingStrategy("nucleus")
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        DecodingStrategy("beam", beam_size=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DecodingStrategy("temperature", temperature=0.0)
    assert DecodingStrategy("beam", beam_size=5, length_alpha=0.7).label == "beam-5 (a=0.7)"
    assert DecodingStrategy("temperature", temperature=0.5).label == "temperature-0.5"
