"""Show, Attend and Tell (Xu et al., 2015): an LSTM captioner with soft attention over a grid of features.

The image is a grid of annotation vectors a_i, features (N, *grid, C) (e.g. (N, 8, 8, C)), read as L cells
in row-major order. The initial states are h0 = tanh(mean_i a_i W_init_h + b_init_h), c0 likewise; each
word then runs one step of the hand-written ``visgrad.ops.attention_lstm_step`` (Bahdanau attention of the
previous h over the cells, the context gate beta, an LSTM on [word vector, gated context]), and the
vocabulary is scored from [h, context] (the paper's deep output, one affine layer). The loss is CS231n's
(summed over time, averaged over the captions) plus the paper's doubly stochastic regulariser,
``doubly_stochastic`` * (1 - sum_t alpha_ti)^2 averaged over the L cells and the captions, over the steps that
predict a word (not ``<NULL>`` padding): it asks every cell to be looked at about once over a caption. The
paper sums over the cells; with 64 cells and ~10 words a caption that sum (~45) outweighs the caption loss
(~20) and pulls the attention towards uniform, so here it is averaged, as the common PyTorch
implementation does (docs/attention.md measures both).

``attention(features, words)`` returns the weights of every step over the grid, what the grounding score
and the per-word figures read. With ``encoder_channels`` the features are images (N, S, S, 3) and a
``visgrad.captioning.encoders.SmallCNN`` trained with the captioner makes the grid (N, S/8, S/8, channels).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from visgrad import ops
from visgrad.captioning.encoders import SmallCNN
from visgrad.captioning.model import CaptionerBase


class AttentionLSTMCaptioner(CaptionerBase):
    """Show-Attend-Tell captioner.

    Args:
        word_to_idx: vocabulary ``{word: index}`` of V words, with ``<NULL>``, ``<START>`` and ``<END>``.
        input_dim: the size of the features' last axis: C, the channels of a grid cell (or the images'
            channels with ``encoder_channels``).
        wordvec_dim: W, size of a word vector.
        hidden_dim: H, size of the LSTM state.
        attention_dim: A, size of the attention's hidden layer.
        doubly_stochastic: weight of the doubly stochastic regulariser (0: off).
        encoder_channels: None (the features are the grid) or C: the features are images and a ``SmallCNN``
            with C channels (parameters ``encoder.*``) makes the grid.

    Parameters (C: the grid's channels, input_dim or encoder_channels): W_embed (V, W); W_fa (C, A),
    b_fa (A,), W_ha (H, A), w_a (A,) (attention); W_beta (H, 1), b_beta (1,) (gate); W_init_h, W_init_c
    (C, H), b_init_h, b_init_c (H,) (initial states); Wx (W, 4H), Wz (C, 4H), Wh (H, 4H), b (4H,) (LSTM,
    gates i, f, o, g); W_vocab (H + C, V), b_vocab (V,); encoder.* (with ``encoder_channels``).
    """

    def __init__(
        self,
        word_to_idx: dict[str, int],
        input_dim: int,
        wordvec_dim: int = 64,
        hidden_dim: int = 128,
        attention_dim: int = 64,
        doubly_stochastic: float = 1.0,
        encoder_channels: int | None = None,
    ) -> None:
        sizes = {} if encoder_channels is None else {"encoder_channels": encoder_channels}
        super().__init__(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim, hidden_dim=hidden_dim,
                         attention_dim=attention_dim, **sizes)
        if not (isinstance(doubly_stochastic, (int, float)) and doubly_stochastic >= 0):
            raise ValueError(f"doubly_stochastic must be a number >= 0 (0: off), got {doubly_stochastic!r}")
        self.doubly_stochastic = float(doubly_stochastic)
        self._input_dim = int(input_dim)
        C = int(input_dim if encoder_channels is None else encoder_channels)  # the grid's channels
        V, W, H, A = len(word_to_idx), wordvec_dim, hidden_dim, attention_dim
        self.W_embed = nn.Parameter(torch.randn(V, W) / 100)
        self.W_fa = nn.Parameter(torch.randn(C, A) / math.sqrt(C))
        self.b_fa = nn.Parameter(torch.zeros(A))
        self.W_ha = nn.Parameter(torch.randn(H, A) / math.sqrt(H))
        self.w_a = nn.Parameter(torch.randn(A) / math.sqrt(A))
        self.W_beta = nn.Parameter(torch.randn(H, 1) / math.sqrt(H))
        self.b_beta = nn.Parameter(torch.zeros(1))
        self.W_init_h = nn.Parameter(torch.randn(C, H) / math.sqrt(C))
        self.b_init_h = nn.Parameter(torch.zeros(H))
        self.W_init_c = nn.Parameter(torch.randn(C, H) / math.sqrt(C))
        self.b_init_c = nn.Parameter(torch.zeros(H))
        self.Wx = nn.Parameter(torch.randn(W, 4 * H) / math.sqrt(W))
        self.Wz = nn.Parameter(torch.randn(C, 4 * H) / math.sqrt(C))
        self.Wh = nn.Parameter(torch.randn(H, 4 * H) / math.sqrt(H))
        self.b = nn.Parameter(torch.zeros(4 * H))
        self.W_vocab = nn.Parameter(torch.randn(H + C, V) / math.sqrt(H + C))
        self.b_vocab = nn.Parameter(torch.zeros(V))
        self.encoder = None if encoder_channels is None else SmallCNN(self._input_dim, int(encoder_channels))

    @property
    def input_dim(self) -> int:
        return self._input_dim

    @classmethod
    def feature_kind(cls, encoder_channels: int | None = None, **arguments: object) -> str:
        """Images (N, S, S, C) with ``encoder_channels``, else a grid (N, h, w, C)."""
        return "grid" if encoder_channels is None else "images"

    def _check_features(self, features: Tensor) -> None:
        if features.dim() < 3 or features.shape[-1] != self.input_dim:
            what = "images (N, S, S, C)" if self.encoder is not None else "a grid (N, *grid, C)"
            raise ValueError(f"features must be {what} with C = input_dim = {self.input_dim} channels last, "
                             f"e.g. (N, 8, 8, {self.input_dim}); got {tuple(features.shape)}")

    def grid(self, features: Tensor) -> Tensor:
        """The grid (N, h, w, C) the decoder attends over: the features, or the encoder's output."""
        self._check_features(features)
        return features if self.encoder is None else self.encoder(features)

    def _start(self, grid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(h0, c0 (N, H), cells (N, L, C), projected (N, L, A)) of a grid (N, *grid, C)."""
        cells = grid.reshape(grid.shape[0], -1, grid.shape[-1])
        mean = cells.mean(1)
        h0 = torch.addmm(self.b_init_h, mean, self.W_init_h).tanh()
        c0 = torch.addmm(self.b_init_c, mean, self.W_init_c).tanh()
        return h0, c0, cells, ops.temporal_affine(cells, self.W_fa, self.b_fa)

    def _step(self, x: Tensor, h: Tensor, c: Tensor, cells: Tensor, projected: Tensor):
        return ops.attention_lstm_step(x, h, c, cells, projected, self.W_ha, self.w_a, self.W_beta,
                                       self.b_beta, self.Wx, self.Wz, self.Wh, self.b)

    def _run(self, features: Tensor, words: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced scores (N, T, V) and attention weights (N, T, *grid) of the input words (N, T)."""
        grid = self.grid(features)
        h, c, cells, projected = self._start(grid)
        x = ops.word_embedding(words, self.W_embed)
        outputs, alphas = [], []
        for t in range(words.shape[1]):
            h, c, context, alpha = self._step(x[:, t], h, c, cells, projected)
            outputs.append(torch.cat([h, context], dim=1))
            alphas.append(alpha)
        scores = ops.temporal_affine(torch.stack(outputs, dim=1), self.W_vocab, self.b_vocab)
        return scores, torch.stack(alphas, dim=1).reshape(*words.shape, *grid.shape[1:-1])

    def forward(self, features: Tensor, words: Tensor) -> Tensor:
        """Teacher-forced vocabulary scores (N, T, V) of features (N, *grid, C) and input words (N, T)
        (``<START>`` first); scores[:, t] predicts the word after ``words[:, t]``."""
        return self._run(features, words)[0]

    def attention(self, features: Tensor, words: Tensor) -> Tensor:
        """Attention weights (N, T, h, w) over the grid (``grid(features)``): weights[:, t] are those of the
        step that reads ``words[:, t]`` (N, T) and predicts the next word; each sums to 1 over the grid."""
        return self._run(features, words)[1]

    def loss(self, features: Tensor, captions: Tensor) -> Tensor:
        """CS231n's loss of captions (N, T) (``CaptionerBase.loss``) + the doubly stochastic regulariser."""
        self._check_features(features)
        if captions.dim() != 2 or captions.shape[0] != features.shape[0] or captions.shape[1] < 2:
            raise ValueError(f"captions must have shape (N, T) with N = {features.shape[0]} rows and T >= 2, "
                             f"got {tuple(captions.shape)}")
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        scores, alphas = self._run(features, captions_in)
        mask = captions_out != self.null_idx
        loss = ops.temporal_softmax_loss(scores, captions_out, mask)
        if self.doubly_stochastic:
            looked = (alphas.flatten(2) * mask[:, :, None]).sum(1)  # (N, L): each cell's total attention
            loss = loss + self.doubly_stochastic * (1 - looked).square().mean()
        return loss

    # One decoding step at a time (used by greedy, beam and temperature decoding).

    def initial_state(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(h0, c0, cells (N, L, C), projected (N, L, A)): every tensor batch first."""
        return self._start(self.grid(features))

    def step(self, words: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Feed words (N,): vocabulary scores (N, V) and the next state."""
        h, c, cells, projected = state
        x = ops.word_embedding(words[:, None], self.W_embed)[:, 0]
        h, c, context, _ = self._step(x, h, c, cells, projected)
        scores = torch.addmm(self.b_vocab, torch.cat([h, context], dim=1), self.W_vocab)
        return scores, (h, c, cells, projected)
