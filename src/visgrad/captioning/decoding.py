"""Caption decoding: greedy, batched beam search and temperature sampling, plus sequence log-probabilities.

Every decoder works with any network of the captioner protocol (``visgrad.captioning.protocol.Captioner``:
``initial_state(features) -> state``, ``step(words (N,), state) -> (scores (N, V), state)`` and the indices
``null_idx``, ``start_idx``, ``end_idx``); the state is any nest of tuples of tensors with the batch first
(see ``map_state``). Decoding runs under ``torch.no_grad()``. Outputs follow
CS231n's ``sample``: an int64 tensor (N, max_length) whose first column is the first generated word (no
``<START>``); a caption's ``<END>`` is kept and every later position holds ``<NULL>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

STRATEGY_KINDS = ("greedy", "beam", "temperature")


@dataclass(frozen=True)
class DecodingStrategy:
    """How to decode: ``kind`` is ``"greedy"``, ``"beam"`` (``beam_size``, ``length_alpha``) or
    ``"temperature"`` (``temperature`` > 0, ``seed`` for a dedicated random generator)."""

    kind: str = "greedy"
    beam_size: int = 3
    length_alpha: float = 0.0
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in STRATEGY_KINDS:
            raise ValueError(f"decoding kind must be one of {STRATEGY_KINDS}, got {self.kind!r}")
        if self.kind == "beam" and int(self.beam_size) < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size!r}")
        if self.kind == "temperature" and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (small values approach greedy), "
                             f"got {self.temperature!r}")

    @property
    def label(self) -> str:
        """A short name for tables: ``greedy``, ``beam-5 (a=0.7)``, ``temperature-0.5``."""
        if self.kind == "beam":
            return f"beam-{self.beam_size}" + (f" (a={self.length_alpha:g})" if self.length_alpha else "")
        if self.kind == "temperature":
            return f"temperature-{self.temperature:g}"
        return "greedy"


def map_state(fn: Callable[[Tensor], Tensor], state):
    """Apply ``fn`` to every tensor of a decoder state (nested tuples/lists of tensors, None, ints):
    beam search repeats and reorders the rows of each tensor, whose first dimension is the batch."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    return state


class PrefixRerun:
    """Decoding steps for a captioner that only scores whole sequences, ``model(features, words (N, t))
    -> scores (N, t, V)``: every step re-runs the prefix (the reference for cached steps; no cache).

    The state is (features, prefix so far (N, t)).
    """

    def __init__(self, model) -> None:
        self.model = model
        self.null_idx, self.start_idx, self.end_idx = model.null_idx, model.start_idx, model.end_idx

    def initial_state(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return features, torch.empty(features.shape[0], 0, dtype=torch.long, device=features.device)

    def step(self, words: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        features, prefix = state
        prefix = torch.cat([prefix, words[:, None]], dim=1)
        return self.model(features, prefix)[:, -1], (features, prefix)


def _autoregressive(model, features: Tensor, max_length: int, choose: Callable[[Tensor], Tensor]) -> Tensor:
    """Feed back the word ``choose(scores (N, V)) -> (N,)`` picks at each step; ``<NULL>`` after ``<END>``."""
    N = features.shape[0]
    captions = torch.full((N, max_length), model.null_idx, dtype=torch.long, device=features.device)
    words = torch.full((N,), model.start_idx, dtype=torch.long, device=features.device)
    finished = torch.zeros(N, dtype=torch.bool, device=features.device)
    state = model.initial_state(features)
    for t in range(max_length):
        scores, state = model.step(words, state)
        words = choose(scores)
        captions[:, t] = words.masked_fill(finished, model.null_idx)
        finished |= words == model.end_idx
        if bool(finished.all()):
            break
    return captions


@torch.no_grad()
def greedy_decode(model, features: Tensor, max_length: int = 30) -> Tensor:
    """Most likely word at each step: (N, D) features -> (N, max_length) int64 captions."""
    return _autoregressive(model, features, max_length, lambda scores: scores.argmax(dim=1))


@torch.no_grad()
def temperature_sample(
    model, features: Tensor, temperature: float = 1.0, max_length: int = 30,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample each word from softmax(scores / temperature): (N, D) -> (N, max_length) int64 captions.

    ``generator`` (a ``torch.Generator`` on the features' device) makes the draw repeatable.
    As temperature -> 0 this approaches greedy decoding.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")

    def choose(scores: Tensor) -> Tensor:
        probs = torch.softmax(scores.double() / temperature, dim=1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return _autoregressive(model, features, max_length, choose)


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's length normalisation ((5 + L) / 6) ** alpha (Wu et al., 2016); 1 for alpha = 0."""
    return ((5.0 + lengths.double()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model, features: Tensor, beam_size: int = 3, max_length: int = 30, length_alpha: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Batched beam search over all N images at once.

    Each image keeps ``beam_size`` hypotheses ranked by log P(caption) / length_penalty(L, length_alpha),
    L = number of generated words including ``<END>``. A finished hypothesis stays in its beam (it can only
    be extended by ``<NULL>`` at log-probability 0) and competes with the open ones; the search stops when
    every beam has finished or after ``max_length`` words.

    Returns:
    - captions: (N, max_length) int64, the best hypothesis per image (CS231n ``sample`` layout).
    - log_probs: (N,) float64, its summed word log-probabilities (unnormalised).
    """
    if int(beam_size) < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size!r}")
    N, k, device = features.shape[0], int(beam_size), features.device
    rows = torch.arange(N, device=device)[:, None]
    state = map_state(lambda s: s.repeat_interleave(k, 0), model.initial_state(features))
    words = torch.full((N * k,), model.start_idx, dtype=torch.long, device=device)
    tokens = torch.full((N, k, max_length), model.null_idx, dtype=torch.long, device=device)
    log_probs = torch.full((N, k), float("-inf"), dtype=torch.float64, device=device)
    log_probs[:, 0] = 0.0  # the k beams start identical: keep one alive so step 1 picks k distinct words
    lengths = torch.zeros((N, k), dtype=torch.long, device=device)
    finished = torch.zeros((N, k), dtype=torch.bool, device=device)
    for t in range(max_length):
        scores, state = model.step(words, state)
        V = scores.shape[1]
        step = torch.log_softmax(scores.double(), dim=1).view(N, k, V)
        pad_only = torch.full((V,), float("-inf"), dtype=torch.float64, device=device)
        pad_only[model.null_idx] = 0.0
        step = torch.where(finished[..., None], pad_only, step)
        total = log_probs[..., None] + step  # (N, k, V)
        new_lengths = lengths + (~finished).long()
        ranked = total / length_penalty(new_lengths, length_alpha)[..., None]
        flat = ranked.view(N, k * V).topk(min(k, k * V), dim=1).indices  # (N, k)
        beam, word = flat // V, flat % V
        log_probs = total.view(N, k * V).gather(1, flat)
        lengths = new_lengths.gather(1, beam)
        tokens = tokens[rows, beam]
        tokens[:, :, t] = word
        finished = finished.gather(1, beam) | (word == model.end_idx)
        parents = (beam + rows * k).view(-1)
        state = map_state(lambda s, parents=parents: s[parents], state)
        words = word.view(-1)
        if bool(finished.all()):
            break
    best = (log_probs / length_penalty(lengths, length_alpha)).argmax(dim=1)
    return tokens[rows[:, 0], best], log_probs[rows[:, 0], best]


@torch.no_grad()
def sequence_log_prob(model, features: Tensor, captions: Tensor) -> Tensor:
    """Summed log-probability (N,) float64 of decoded captions (N, T) in the ``sample`` layout.

    Words count up to and including the first ``<END>`` (all T words if a caption never ends).
    """
    N, T = captions.shape
    state = model.initial_state(features)
    words = torch.full((N,), model.start_idx, dtype=torch.long, device=features.device)
    total = torch.zeros(N, dtype=torch.float64, device=features.device)
    open_ = torch.ones(N, dtype=torch.bool, device=features.device)
    for t in range(T):
        scores, state = model.step(words, state)
        words = captions[:, t]
        word_lp = torch.log_softmax(scores.double(), dim=1).gather(1, words[:, None]).squeeze(1)
        total += torch.where(open_, word_lp, torch.zeros_like(word_lp))
        open_ &= words != model.end_idx
    return total


def decode(
    model, features: Tensor, strategy: DecodingStrategy, max_length: int = 30,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Decode (N, D) features with ``strategy``: (N, max_length) int64 captions.

    Temperature sampling draws from ``generator``, or from a fresh one seeded with ``strategy.seed``.
    """
    if strategy.kind == "beam":
        return beam_search(model, features, strategy.beam_size, max_length, strategy.length_alpha)[0]
    if strategy.kind == "temperature":
        if generator is None:
            generator = torch.Generator(device=features.device).manual_seed(int(strategy.seed))
        return temperature_sample(model, features, strategy.temperature, max_length, generator)
    return greedy_decode(model, features, max_length)
