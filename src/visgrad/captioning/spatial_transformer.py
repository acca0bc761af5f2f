"""The CS231n Transformer captioner cross-attending to a grid of features (``model=transformer_spatial``).

``CaptioningTransformer`` projects one feature vector to a single memory token, so its cross-attention has
nothing to choose from. Here the memory is the grid (N, h, w, C): every cell is projected to the model
width W (``visual_projection``) and gets a 2D sinusoidal position, the first W/2 channels encoding its row
and the last W/2 its column (each as ``PositionalEncoding``'s sines and cosines), so the decoder knows
where each token is. Everything else (layers, decoding cache, loss) is ``CaptioningTransformer``'s.

``attention(features, words)`` returns the last layer's cross-attention weights, averaged over the heads,
(N, T, h, w): what the grounding score and the per-word figures read.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from visgrad.captioning.transformer import CaptioningTransformer


def grid_positions(h: int, w: int, width: int) -> Tensor:
    """2D sinusoidal positions (h * w, width) of the cells of an h x w grid, row-major: row i's encoding
    in the first width / 2 channels, column j's in the last width / 2 (width divisible by 4)."""
    if width % 4:
        raise ValueError(f"the 2D positions need a width divisible by 4, got {width}")
    half = width // 2
    frequency = 10000.0 ** (-torch.arange(0, half, 2, dtype=torch.float64) / half)

    def encode(n: int) -> Tensor:
        angles = torch.arange(n, dtype=torch.float64)[:, None] * frequency
        return torch.stack([angles.sin(), angles.cos()], dim=2).flatten(1)  # (n, half): sin, cos interleaved

    rows, cols = encode(h), encode(w)
    return torch.cat([rows[:, None].expand(h, w, half), cols[None].expand(h, w, half)], dim=2).flatten(0, 1)


class SpatialCaptioningTransformer(CaptioningTransformer):
    """``CaptioningTransformer`` whose memory is the grid's cells with 2D positions (module docstring).

    Args: as ``CaptioningTransformer`` (``input_dim``: C, the channels of a cell; ``wordvec_dim`` divisible
    by 4 and by ``num_heads``).
    """

    @classmethod
    def feature_kind(cls, **arguments: object) -> str:
        """A grid (N, h, w, C)."""
        return "grid"

    def _check_features(self, features: Tensor) -> None:
        if features.dim() != 4 or features.shape[-1] != self.input_dim:
            raise ValueError(f"features must be a grid (N, h, w, C) with C = input_dim = {self.input_dim}, "
                             f"e.g. (N, 8, 8, {self.input_dim}); got {tuple(features.shape)}")

    def memory(self, features: Tensor) -> Tensor:
        """The grid's cells projected, plus their 2D positions: (N, h * w, W)."""
        self._check_features(features)
        N, h, w, _ = features.shape
        positions = grid_positions(h, w, self.output.in_features).to(features.device, features.dtype)
        return self.visual_projection(features).reshape(N, h * w, -1) + positions

    @torch.no_grad()
    def attention(self, features: Tensor, words: Tensor) -> Tensor:
        """The last layer's cross-attention weights averaged over heads, (N, T, h, w): row t for the step
        that reads ``words[:, t]`` (N, T) and predicts the next word; each sums to 1 over the grid."""
        T = words.shape[1]
        x = self.positional_encoding(self.embedding(words))
        memory = self.memory(features)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril_()
        for layer in self.layers[:-1]:
            x = layer(x, memory, causal)
        last = self.layers[-1]
        x = last.norm1(x + last.self_attn(x, x, x, causal))
        attn = last.cross_attn
        q, k = attn.heads(x, attn.query), attn.heads(memory, attn.key)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim), dim=-1).mean(1)
        return weights.reshape(*words.shape, *features.shape[1:3])
