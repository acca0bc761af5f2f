"""The CS231n Transformer captioner (Vaswani et al., 2017) on the hand-written ``visgrad.ops.attention``.

A decoder-only Transformer: the image feature (N, D) is projected to one memory vector (N, 1, W); the
caption words are embedded (W) with sinusoidal positions; each ``TransformerDecoderLayer`` runs causal
self-attention, cross-attention to the memory and a ReLU feed-forward block, each followed by dropout, a
residual connection and LayerNorm (post-norm, as the course); a linear layer scores the vocabulary.
Module names, arguments and the weight initialisation (normal(0, 0.02), zero biases) follow CS231n's
``transformer_layers.py`` and ``classifiers/transformer.py``. The loss is ``CaptionerBase.loss``: summed over
time and averaged over the N captions, as ``CaptioningRNN``'s (CS231n's Transformer solver instead takes the
mean over all N T positions, masked ones included, which only rescales it by 1 / T).

Decoding steps cache every layer's self-attention keys and values (and the memory's keys and values), so
word t costs one position's projections and attention over t + 1 keys instead of re-running the prefix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from visgrad import ops
from visgrad.captioning.model import CaptionerBase


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with input projections ``query``, ``key``, ``value`` and an
    output projection ``proj`` (``nn.Linear(embed_dim, embed_dim)`` each); ``dropout`` on the attention
    weights while training."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads})")
        self.key = nn.Linear(embed_dim, embed_dim)
        self.query = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.dropout = float(dropout)
        self.n_head = num_heads
        self.emd_dim = embed_dim
        self.head_dim = embed_dim // num_heads

    def heads(self, x: Tensor, linear: nn.Linear) -> Tensor:
        """Project x (N, L, E) with ``linear`` and split the heads: (N, h, L, E / h)."""
        N, L, _ = x.shape
        return linear(x).view(N, L, self.n_head, self.head_dim).transpose(1, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attention of split heads q (N, h, S, d) over k, v (N, h, T, d), heads merged and projected:
        (N, S, E). ``mask``: as ``ops.attention`` (bool True = may attend, or additive)."""
        out = ops.attention(q, k, v, mask, self.dropout if self.training else 0.0)
        N, _, S, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(N, S, self.emd_dim))

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """query (N, S, E), key and value (N, T, E), attn_mask (S, T) or None -> (N, S, E).

        ``attn_mask[i, j] == 0`` blocks target position i from attending to source position j.
        """
        mask = None if attn_mask is None else attn_mask.to(query.device) != 0
        return self.attend(self.heads(query, self.query), self.heads(key, self.key),
                           self.heads(value, self.value), mask)


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal positions of Vaswani et al.: pe[t, 2i] = sin(t / 10000^(2i / E)),
    pe[t, 2i + 1] = cos(t / 10000^(2i / E)); then dropout. x (N, S, E) -> (N, S, E)."""

    def __init__(self, embed_dim: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even for the sine/cosine pairs, got {embed_dim}")
        position = torch.arange(max_len, dtype=torch.float64)[:, None]
        frequency = 10000.0 ** (-torch.arange(0, embed_dim, 2, dtype=torch.float64) / embed_dim)
        pe = torch.zeros(1, max_len, embed_dim, dtype=torch.float64)
        pe[0, :, 0::2] = torch.sin(position * frequency)
        pe[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", pe.float(), persistent=False)  # rebuilt, not stored in checkpoints
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """Positions ``start .. start + S - 1`` added to x (N, S, E)."""
        if start + x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"positions up to {start + x.shape[1]} exceed max_len = {self.pe.shape[1]} of "
                             f"the positional encoding; build it with a larger max_len (max_length)")
        return self.dropout(x + self.pe[:, start : start + x.shape[1]].to(x.dtype))


class TransformerDecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the memory, feed-forward; each with dropout, residual and
    LayerNorm after it. tgt (N, T, E), memory (N, M, E) -> (N, T, E)."""

    def __init__(self, input_dim: int, num_heads: int, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(input_dim, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(input_dim, num_heads, dropout)
        self.linear1 = nn.Linear(input_dim, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, input_dim)
        self.norm1 = nn.LayerNorm(input_dim)
        self.norm2 = nn.LayerNorm(input_dim)
        self.norm3 = nn.LayerNorm(input_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = nn.ReLU()

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None) -> Tensor:
        """tgt (N, T, E), memory (N, M, E), tgt_mask (T, T) (0 blocks) -> (N, T, E)."""
        attended = self.self_attn(tgt, tgt, tgt, tgt_mask)
        return self._rest(tgt, attended, *self.memory_kv(memory))

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """The cross-attention's keys and values of the memory (N, M, E): two (N, h, M, d)."""
        attn = self.cross_attn
        return attn.heads(memory, attn.key), attn.heads(memory, attn.value)

    def step(self, tgt: Tensor, cache: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One new position tgt (N, 1, E) given ``cache`` = (self keys, self values (N, h, t, d), memory keys,
        memory values): its output (N, 1, E) and the cache with its own key and value appended."""
        keys, values, memory_k, memory_v = cache
        attn = self.self_attn
        keys = torch.cat([keys, attn.heads(tgt, attn.key)], dim=2)
        values = torch.cat([values, attn.heads(tgt, attn.value)], dim=2)
        attended = attn.attend(attn.heads(tgt, attn.query), keys, values)
        return self._rest(tgt, attended, memory_k, memory_v), (keys, values, memory_k, memory_v)

    def _rest(self, tgt: Tensor, attended: Tensor, memory_k: Tensor, memory_v: Tensor) -> Tensor:
        tgt = self.norm1(tgt + self.dropout1(attended))
        cross = self.cross_attn.attend(self.cross_attn.heads(tgt, self.cross_attn.query), memory_k, memory_v)
        tgt = self.norm2(tgt + self.dropout2(cross))
        feedforward = self.linear2(self.dropout(self.activation(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(feedforward))


class CaptioningTransformer(CaptionerBase):
    """Transformer image captioner (CS231n).

    Args:
        word_to_idx: vocabulary ``{word: index}`` of V words, with ``<NULL>``, ``<START>`` and ``<END>``.
        input_dim: D, size of an image feature vector.
        wordvec_dim: W, the model width (word vectors, attention, residual stream); even, a multiple of
            num_heads.
        num_heads: attention heads per layer.
        num_layers: decoder layers.
        max_length: longest sequence (positions of the positional encoding).
        dim_feedforward: hidden width of each layer's feed-forward block (the course's default 2048).
        dropout: dropout probability (positional encoding, attention weights, residual branches).

    Submodules: ``visual_projection`` Linear(D, W), ``embedding`` Embedding(V, W), ``positional_encoding``,
    ``layers`` (num_layers ``TransformerDecoderLayer``), ``output`` Linear(W, V).
    """

    def __init__(
        self,
        word_to_idx: dict[str, int],
        input_dim: int,
        wordvec_dim: int,
        num_heads: int = 4,
        num_layers: int = 2,
        max_length: int = 50,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim, num_heads=num_heads,
                         num_layers=num_layers, max_length=max_length, dim_feedforward=dim_feedforward)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        V, W = len(word_to_idx), wordvec_dim
        self.visual_projection = nn.Linear(input_dim, W)
        self.embedding = nn.Embedding(V, W, padding_idx=self.null_idx)
        self.positional_encoding = PositionalEncoding(W, dropout=dropout, max_len=max_length)
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(W, num_heads, dim_feedforward, dropout) for _ in range(num_layers))
        self.output = nn.Linear(W, V)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    @property
    def input_dim(self) -> int:
        return self.visual_projection.in_features

    @property
    def max_length(self) -> int:
        return self.positional_encoding.pe.shape[1]

    def forward(self, features: Tensor, words: Tensor) -> Tensor:
        """Teacher-forced vocabulary scores.

        Inputs:
        - features: (N, D) image features.
        - words: (N, T) int64 input word indices (``<START>`` first), T <= max_length.

        Returns: scores (N, T, V); scores[:, t] predicts the word after ``words[:, t]`` from words[:, :t + 1].
        """
        T = words.shape[1]
        x = self.positional_encoding(self.embedding(words))
        memory = self.memory(features)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril_()
        for layer in self.layers:
            x = layer(x, memory, causal)
        return self.output(x)

    def memory(self, features: Tensor) -> Tensor:
        """What the cross-attention reads: the projected feature vector as one token, (N, 1, W)."""
        self._check_features(features)
        return self.visual_projection(features)[:, None]

    # One decoding step at a time (used by greedy, beam and temperature decoding).

    def initial_state(self, features: Tensor) -> tuple[int, tuple]:
        """State before ``<START>``: (position 0, per layer (empty self keys and values, memory keys and
        values)); every tensor has the batch first, so beam search can reorder them."""
        memory = self.memory(features)
        caches = []
        for layer in self.layers:
            memory_k, memory_v = layer.memory_kv(memory)
            empty = memory_k[:, :, :0]
            caches.append((empty, empty, memory_k, memory_v))
        return 0, tuple(caches)

    def step(self, words: Tensor, state: tuple[int, tuple]) -> tuple[Tensor, tuple[int, tuple]]:
        """Feed words (N,) at the state's position: vocabulary scores (N, V) and the next state."""
        position, caches = state
        x = self.positional_encoding(self.embedding(words[:, None]), start=position)
        new_caches = []
        for layer, cache in zip(self.layers, caches, strict=True):
            x, cache = layer.step(x, cache)
            new_caches.append(cache)
        return self.output(x[:, 0]), (position + 1, tuple(new_caches))
