"""The CS231n Vision Transformer (Dosovitskiy et al., 2021) on the hand-written ``visgrad.ops.attention``.

An image (N, C, S, S) is cut into (S / P)^2 non-overlapping P x P patches, each flattened in (row, column,
channel) order and projected to E (``PatchEmbedding``, the course's); a learned class token is prepended
(``pool="cls"``) and learned or sinusoidal positions are added; pre-norm ``TransformerEncoderLayer``s (the
course's: LayerNorm, multi-head self-attention, dropout, residual; LayerNorm, Linear-GELU-dropout-Linear,
dropout, residual) run over the tokens; a final LayerNorm and a linear head score the classes from the class
token (or from the mean of the patch tokens, ``pool="mean"``, as the course's classifier does). Attention is
:class:`visgrad.captioning.MultiHeadAttention`, the captioner's, on ``ops.attention``.

:meth:`ViT.attention_maps` returns every layer's attention weights (N, h, L, L) for attention rollout
(:mod:`visgrad.vision.attention_rollout`); :meth:`ViT.embed` the pooled features (N, E) that a linear probe
or SimCLR's projection head reads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from visgrad.captioning.transformer import MultiHeadAttention, PositionalEncoding

POOLS = ("cls", "mean")
POSITIONS = ("learned", "sinusoidal")
STEMS = ("patch", "conv")


class PatchEmbedding(nn.Module):
    """Non-overlapping P x P patches of an image, flattened and projected: (N, C, S, S) -> (N, (S/P)^2, E).

    Patch k = (row i, column j) in row-major order; its vector lists the pixels row by row, column by column,
    each with its C channels (the course's (P, P, C) order), and ``proj`` is ``nn.Linear(P * P * C, E)``.
    """

    def __init__(self, img_size: int, patch_size: int, in_channels: int = 3, embed_dim: int = 128) -> None:
        super().__init__()
        if patch_size < 1 or img_size % patch_size:
            raise ValueError(f"img_size ({img_size}) must be a multiple of patch_size ({patch_size})")
        self.img_size, self.patch_size = img_size, patch_size
        self.in_channels, self.embed_dim = in_channels, embed_dim
        self.num_patches = (img_size // patch_size) ** 2
        self.patch_dim = patch_size * patch_size * in_channels
        self.proj = nn.Linear(self.patch_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        if (C, H, W) != (self.in_channels, self.img_size, self.img_size):
            raise ValueError(f"PatchEmbedding expects images (N, {self.in_channels}, {self.img_size}, "
                             f"{self.img_size}), got {tuple(x.shape)}")
        P, G = self.patch_size, self.img_size // self.patch_size
        patches = x.reshape(N, C, G, P, G, P).permute(0, 2, 4, 3, 5, 1).reshape(N, G * G, self.patch_dim)
        return self.proj(patches)


class ConvStem(nn.Module):
    """A convolutional stem in place of the patch embedding (Xiao et al., 2021, "Early convolutions help
    transformers see better"): (N, C, S, S) -> (N, (S/P)^2, E), the same tokens' grid as ``PatchEmbedding``.

    log2(P) blocks of 4x4 stride-2 convolution (padding 1), BatchNorm and ReLU (``width`` channels, doubled at
    every block after the first), then a 1x1 convolution to E; the (S/P) x (S/P) outputs are the tokens in
    row-major order. P must be a power of two. The even kernel centres each token's receptive field on its
    patch (Xiao et al.'s 3x3 kernels would centre it on the patch's top-left pixel, and shift attention
    rollout's maps by (P - 1) / 2 pixels).
    """

    def __init__(self, img_size: int, patch_size: int, in_channels: int = 3, embed_dim: int = 128,
                 width: int = 16) -> None:
        super().__init__()
        if patch_size < 2 or patch_size & (patch_size - 1) or img_size % patch_size:
            raise ValueError(f"a conv stem needs a patch_size that is a power of two (2, 4, 8, ...) and "
                             f"divides img_size ({img_size}), got {patch_size}")
        self.img_size, self.patch_size = img_size, patch_size
        self.in_channels, self.embed_dim = in_channels, embed_dim
        self.num_patches = (img_size // patch_size) ** 2
        blocks, channels = [], in_channels
        for i in range(patch_size.bit_length() - 1):
            out = width * 2 ** i
            blocks += [nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            channels = out
        self.convs = nn.Sequential(*blocks)
        self.proj = nn.Conv2d(channels, embed_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != (self.in_channels, self.img_size, self.img_size):
            raise ValueError(f"ConvStem expects images (N, {self.in_channels}, {self.img_size}, "
                             f"{self.img_size}), got {tuple(x.shape)}")
        return self.proj(self.convs(x)).flatten(2).transpose(1, 2)


class TransformerEncoderLayer(nn.Module):
    """Pre-norm encoder layer: src + dropout(attn(norm(src))), then + dropout(mlp(norm(.))).

    src (N, L, E), src_mask (L, L) (``0`` blocks, as ``MultiHeadAttention``) or None -> (N, L, E).
    """

    def __init__(self, input_dim: int, num_heads: int, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(input_dim, num_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(input_dim, dim_feedforward), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim_feedforward, input_dim))
        self.norm_self = nn.LayerNorm(input_dim)
        self.norm_mlp = nn.LayerNorm(input_dim)
        self.dropout_self = nn.Dropout(dropout)
        self.dropout_mlp = nn.Dropout(dropout)

    def forward(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        normed = self.norm_self(src)
        src = src + self.dropout_self(self.self_attn(normed, normed, normed, src_mask))
        return src + self.dropout_mlp(self.mlp(self.norm_mlp(src)))

    def attention_weights(self, src: Tensor) -> Tensor:
        """The softmax attention weights of this layer's heads for src (N, L, E): (N, h, L, L), rows sum
        to 1 (what ``ops.attention`` multiplies the values by, before dropout)."""
        attn, normed = self.self_attn, self.norm_self(src)
        q, k = attn.heads(normed, attn.query), attn.heads(normed, attn.key)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim), dim=-1)


class ViT(nn.Module):
    """Vision Transformer classifier: images (N, C, S, S) -> logits (N, num_classes).

    Args:
        num_classes: K.
        img_size, patch_size, in_channels: S, P, C (S a multiple of P).
        embed_dim: E (a multiple of num_heads; even for sinusoidal positions).
        num_layers, num_heads, dim_feedforward, dropout: the encoder layers.
        pool: ``"cls"`` (a learned class token; its final state is the image's feature) or ``"mean"`` (the
            mean of the patch tokens, as the course's classifier).
        positions: ``"learned"`` (a parameter (1, L, E), normal(0, 0.02)) or ``"sinusoidal"`` (fixed).
        stem: ``"patch"`` (the course's ``PatchEmbedding``) or ``"conv"`` (a :class:`ConvStem` of
            ``stem_width`` channels with the same P: the same tokens, from convolutions).

    Submodules: ``patch_embed``, ``layers`` (``TransformerEncoderLayer``), ``norm``, ``head``; parameters
    ``cls_token`` (1, 1, E) with ``pool="cls"``, ``pos_embed`` (1, L, E) with learned positions. Weights:
    normal(0, 0.02), zero biases (as the captioner).
    """

    def __init__(self, num_classes: int, img_size: int = 32, patch_size: int = 4, in_channels: int = 3,
                 embed_dim: int = 64, num_layers: int = 2, num_heads: int = 4, dim_feedforward: int = 128,
                 dropout: float = 0.1, pool: str = "cls", positions: str = "learned", stem: str = "patch",
                 stem_width: int = 16) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        self.pool, self.embed_dim = pool, embed_dim
        if stem == "patch":
            self.patch_embed = PatchEmbedding(img_size, patch_size, in_channels, embed_dim)
        else:
            self.patch_embed = ConvStem(img_size, patch_size, in_channels, embed_dim, stem_width)
        tokens = self.patch_embed.num_patches + (pool == "cls")
        if pool == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if positions == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))
            self.positional_encoding = None
        else:
            self.pos_embed = None
            self.positional_encoding = PositionalEncoding(embed_dim, dropout=0.0, max_len=tokens)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(TransformerEncoderLayer(embed_dim, num_heads, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(self._init_weights)
        for param in (getattr(self, "cls_token", None), self.pos_embed):
            if param is not None:
                nn.init.normal_(param, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def tokens(self, x: Tensor) -> Tensor:
        """The encoder's input: patch embeddings (with the class token first) plus positions, (N, L, E)."""
        tokens = self.patch_embed(x)
        if self.pool == "cls":
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        if self.pos_embed is not None:
            return self.dropout(tokens + self.pos_embed)
        return self.dropout(self.positional_encoding(tokens))

    def embed(self, x: Tensor) -> Tensor:
        """The image features (N, E) the head reads: the final (normed) class token, or mean patch token."""
        tokens = self.tokens(x)
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 0] if self.pool == "cls" else tokens.mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Every layer's attention weights for images x (N, C, S, S): ``num_layers`` tensors (N, h, L, L),
        token 0 the class token with ``pool="cls"``, then the patches in row-major order."""
        tokens, maps = self.tokens(x), []
        for layer in self.layers:
            maps.append(layer.attention_weights(tokens))
            tokens = layer(tokens)
        return maps

    @property
    def grid_size(self) -> int:
        """Patches per side, S / P."""
        return self.patch_embed.img_size // self.patch_embed.patch_size
