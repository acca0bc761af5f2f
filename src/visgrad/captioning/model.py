"""The CS231n image captioner (``CaptioningRNN``) on a recurrent cell of the ``CELLS`` registry.

Image features (N, D) are projected to the initial hidden state h0 (N, H); words are embedded (W);
the cell (a vanilla RNN, an LSTM with c0 = 0, or a ``Cell`` of your own) runs over the embedded caption and
an affine layer scores the vocabulary (V) at every step. Parameter names, shapes and initialisation follow
CS231n's ``classifiers/rnn.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from visgrad import ops
from visgrad.captioning.cells import CELLS
from visgrad.captioning.decoding import greedy_decode
from visgrad.registry import RegistryError

SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>")


class CaptionerBase(nn.Module):
    """A base for captioners (``visgrad.captioning.protocol.Captioner``): the CS231n vocabulary members, the
    teacher-forced loss and greedy sampling.

    A subclass defines ``input_dim``, ``forward(features (N, D), words (N, T)) -> scores (N, T, V)`` and the
    decoding steps ``initial_state(features) -> state`` and ``step(words (N,), state) -> (scores (N, V),
    state)`` (see ``visgrad.captioning.decoding``).

    Args:
        word_to_idx: vocabulary ``{word: index}`` of V words, with ``<NULL>``, ``<START>`` and ``<END>``.
        sizes: named sizes that must be positive integers (for the error message).
    """

    def __init__(self, word_to_idx: dict[str, int], **sizes: int) -> None:
        super().__init__()
        missing = [token for token in SPECIAL_TOKENS if token not in word_to_idx]
        if missing:
            raise ValueError(
                f"word_to_idx lacks the special token(s) {missing}; a CS231n vocabulary maps "
                f"{list(SPECIAL_TOKENS)} to indices (<NULL> = 0)"
            )
        for name, value in sizes.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        indices = sorted(word_to_idx.values())
        if indices != list(range(len(indices))):
            raise ValueError("word_to_idx must map its V words onto the indices 0..V-1 exactly once")
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.null_idx = word_to_idx["<NULL>"]
        self.start_idx = word_to_idx["<START>"]
        self.end_idx = word_to_idx["<END>"]

    @classmethod
    def feature_kind(cls, **arguments: object) -> str:
        """The features this network reads when built with ``arguments``: vectors (N, D)."""
        return "vectors"

    def _check_features(self, features: Tensor) -> None:
        if features.dim() != 2 or features.shape[1] != self.input_dim:
            raise ValueError(
                f"features must have shape (N, D) with D = input_dim = {self.input_dim}, "
                f"got {tuple(features.shape)}"
            )

    def loss(self, features: Tensor, captions: Tensor) -> Tensor:
        """CS231n's training loss with teacher forcing.

        Inputs:
        - features: (N, D) image features.
        - captions: (N, T) int64 word indices; the model reads ``captions[:, :-1]`` and predicts
          ``captions[:, 1:]``; targets equal to ``<NULL>`` are masked out.

        Returns: scalar cross-entropy, summed over time steps and averaged over the N captions.
        """
        self._check_features(features)
        if captions.dim() != 2 or captions.shape[0] != features.shape[0] or captions.shape[1] < 2:
            raise ValueError(
                f"captions must have shape (N, T) with N = {features.shape[0]} rows and T >= 2, "
                f"got {tuple(captions.shape)}"
            )
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        scores = self(features, captions_in)
        return ops.temporal_softmax_loss(scores, captions_out, captions_out != self.null_idx)

    def sample(self, features: Tensor, max_length: int = 30) -> Tensor:
        """Greedy decoding as in CS231n: (N, D) features -> (N, max_length) int64 word indices.

        The first input is ``<START>``; positions after a caption's ``<END>`` hold ``<NULL>``.
        """
        return greedy_decode(self, features, max_length=max_length)


class CaptioningRNN(CaptionerBase):
    """Image captioner: features -> h0, then a recurrent cell over word embeddings -> vocabulary scores.

    Args:
        word_to_idx: vocabulary ``{word: index}`` of V words, with ``<NULL>``, ``<START>`` and ``<END>``.
        input_dim: D, size of an image feature vector.
        wordvec_dim: W, size of a word vector.
        hidden_dim: H, size of the recurrent hidden state.
        cell_type: a cell of ``visgrad.captioning.CELLS`` (``"rnn"``, ``"lstm"``) or the dotted path of a
            ``Cell`` in your own package.

    Parameters (m = the cell's gates: 1 for an RNN, 4 for an LSTM with gate order i, f, o, g):
        W_embed (V, W), W_proj (D, H), b_proj (H,), Wx (W, mH), Wh (H, mH), b (mH,),
        W_vocab (H, V), b_vocab (V,).
    """

    def __init__(
        self,
        word_to_idx: dict[str, int],
        input_dim: int = 512,
        wordvec_dim: int = 128,
        hidden_dim: int = 128,
        cell_type: str = "rnn",
    ) -> None:
        try:
            cell = CELLS.get(cell_type)
        except RegistryError as error:
            raise RegistryError(f"cell_type: {error}") from None
        super().__init__(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim, hidden_dim=hidden_dim)
        self.cell_type = cell_type
        self.cell = cell

        V, D, W, H = len(word_to_idx), input_dim, wordvec_dim, hidden_dim
        mH = cell.gates * H
        self.W_embed = nn.Parameter(torch.randn(V, W) / 100)
        self.W_proj = nn.Parameter(torch.randn(D, H) / math.sqrt(D))
        self.b_proj = nn.Parameter(torch.zeros(H))
        self.Wx = nn.Parameter(torch.randn(W, mH) / math.sqrt(W))
        self.Wh = nn.Parameter(torch.randn(H, mH) / math.sqrt(H))
        self.b = nn.Parameter(torch.zeros(mH))
        self.W_vocab = nn.Parameter(torch.randn(H, V) / math.sqrt(H))
        self.b_vocab = nn.Parameter(torch.zeros(V))

    @property
    def vocab_size(self) -> int:
        return self.W_embed.shape[0]

    @property
    def input_dim(self) -> int:
        return self.W_proj.shape[0]

    @property
    def hidden_dim(self) -> int:
        return self.W_proj.shape[1]

    def forward(self, features: Tensor, words: Tensor) -> Tensor:
        """Teacher-forced vocabulary scores.

        Inputs:
        - features: (N, D) image features.
        - words: (N, T) int64 input word indices (``<START>`` first).

        Returns: scores (N, T, V); scores[:, t] predicts the word after ``words[:, t]``.
        """
        h0 = torch.addmm(self.b_proj, features, self.W_proj)
        # = cell over ops.word_embedding(words, W_embed); the built-in cells project the vocabulary once
        h = self.cell.forward_words(words, self.W_embed, h0, self.Wx, self.Wh, self.b)
        return ops.temporal_affine(h, self.W_vocab, self.b_vocab)

    # One decoding step at a time (used by greedy, beam and temperature decoding).

    def initial_state(self, features: Tensor) -> tuple[Tensor, ...]:
        """Decoder state before the ``<START>`` token: h0 = features W_proj + b_proj (N, H), then the cell's
        other states at zero (LSTM: c0 = 0)."""
        self._check_features(features)
        return self.cell.initial_state(torch.addmm(self.b_proj, features, self.W_proj))

    def step(self, words: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Feed words (N,) to the cell: returns vocabulary scores (N, V) and the next state (h, ...)."""
        x = ops.word_embedding(words[:, None], self.W_embed)[:, 0]
        state = self.cell.step(x, state, self.Wx, self.Wh, self.b)
        return state[0] @ self.W_vocab + self.b_vocab, state
