"""The Vision Transformer: the course's PatchEmbedding and TransformerEncoderLayer against NumPy forwards in
float64, the ViT's gradients, attention maps and attention rollout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visgrad.models.classifier import Classifier
from visgrad.models.shapes_cnn import ShapesCNN
from visgrad.models.vit import ConvStem, PatchEmbedding, TransformerEncoderLayer, ViT
from visgrad.reference import rel_error
from visgrad.vision.attention_rollout import attention_rollout, rollout
from visgrad.vision.attribution import ATTRIBUTIONS, attribution_maps


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def test_patch_embedding_cuts_patches_in_the_courses_order() -> None:
    """Patch k = (row i, column j), row-major; its vector lists pixels (p, q) row by row with their C
    channels: x[n, c, i P + p, j P + q] at index (p P + q) C + c."""
    torch.manual_seed(0)
    N, C, S, P, E = 2, 3, 8, 4, 5
    embed = PatchEmbedding(S, P, C, E).double()
    x = torch.randn(N, C, S, S, dtype=torch.float64)
    out = embed(x)
    assert out.shape == (N, (S // P) ** 2, E) and embed.num_patches == 4 and embed.patch_dim == P * P * C
    xs, W, b = _np(x), _np(embed.proj.weight), _np(embed.proj.bias)
    expected = np.zeros((N, 4, E))
    for n in range(N):
        for i in range(S // P):
            for j in range(S // P):
                patch = np.array([xs[n, c, i * P + p, j * P + q] for p in range(P) for q in range(P)
                                  for c in range(C)])
                expected[n, i * (S // P) + j] = W @ patch + b
    assert rel_error(_np(out), expected) < 1e-12


def test_patch_embedding_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of patch_size"):
        PatchEmbedding(30, 4, 3, 8)
    with pytest.raises(ValueError, match=r"expects images \(N, 3, 8, 8\)"):
        PatchEmbedding(8, 4, 3, 8)(torch.zeros(1, 1, 8, 8))


def _layer_norm(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _numpy_encoder_layer(layer: TransformerEncoderLayer, x: np.ndarray,
                         mask: np.ndarray | None) -> np.ndarray:
    """An independent NumPy forward of the pre-norm encoder layer (eval mode: no dropout)."""
    p = {k: _np(v) for k, v in layer.state_dict().items()}
    N, L, E = x.shape
    h = layer.self_attn.n_head
    d = E // h

    def split(t):
        return t.reshape(N, L, h, d).transpose(0, 2, 1, 3)

    y = _layer_norm(x, p["norm_self.weight"], p["norm_self.bias"])
    q = split(y @ p["self_attn.query.weight"].T + p["self_attn.query.bias"])
    k = split(y @ p["self_attn.key.weight"].T + p["self_attn.key.bias"])
    v = split(y @ p["self_attn.value.weight"].T + p["self_attn.value.bias"])
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    if mask is not None:
        scores = np.where(mask == 0, -np.inf, scores)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = (weights @ v).transpose(0, 2, 1, 3).reshape(N, L, E)
    x = x + attended @ p["self_attn.proj.weight"].T + p["self_attn.proj.bias"]
    y = _layer_norm(x, p["norm_mlp.weight"], p["norm_mlp.bias"])
    hidden = y @ p["mlp.0.weight"].T + p["mlp.0.bias"]
    hidden = 0.5 * hidden * (1 + np.vectorize(__import__("math").erf)(hidden / np.sqrt(2)))  # exact GELU
    return x + hidden @ p["mlp.3.weight"].T + p["mlp.3.bias"]


@pytest.mark.parametrize("masked", [False, True])
def test_encoder_layer_matches_a_numpy_forward(masked: bool) -> None:
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(input_dim=8, num_heads=2, dim_feedforward=12, dropout=0.1).double().eval()
    for param in layer.parameters():  # LayerNorm starts at (1, 0): move it so that its parameters count
        torch.nn.init.normal_(param, std=0.5)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    mask = torch.tril(torch.ones(5, 5)) if masked else None
    out = layer(x, mask)
    expected = _numpy_encoder_layer(layer, _np(x), None if mask is None else _np(mask))
    assert out.shape == (3, 5, 8)
    assert rel_error(_np(out), expected) < 1e-10


def test_encoder_layer_attention_weights_are_what_the_op_applies() -> None:
    """attention_weights rows sum to 1, and weights @ values reproduces the layer's attention output."""
    torch.manual_seed(1)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0).double().eval()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    weights = layer.attention_weights(x)
    assert weights.shape == (2, 2, 6, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 6, dtype=torch.float64))
    attn, normed = layer.self_attn, layer.norm_self(x)
    merged = (weights @ attn.heads(normed, attn.value)).transpose(1, 2).reshape(2, 6, 8)
    torch.testing.assert_close(attn.proj(merged), attn(normed, normed, normed))


@pytest.mark.parametrize("pool,positions", [("cls", "learned"), ("mean", "sinusoidal")])
def test_vit_gradients_match_numerical_ones(pool: str, positions: str) -> None:
    """The whole ViT (hand-written attention backward included) passes gradcheck in float64."""
    torch.manual_seed(0)
    net = ViT(3, img_size=8, patch_size=4, in_channels=1, embed_dim=8, num_layers=2, num_heads=2,
              dim_feedforward=8, dropout=0.0, pool=pool, positions=positions).double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    # fast mode: the Jacobian against random directions (the op's own full gradcheck is in test_attention.py)
    assert torch.autograd.gradcheck(lambda inp: net(inp), (x,), eps=1e-6, atol=1e-6, fast_mode=True)
    weight = net.layers[0].self_attn.query.weight
    assert torch.autograd.gradcheck(lambda w: torch.func.functional_call(
        net, {"layers.0.self_attn.query.weight": w}, (x.detach(),)), (weight.detach().requires_grad_(),),
        eps=1e-6, atol=1e-6, fast_mode=True)
    assert net(x).shape == (2, 3) and net.embed(x).shape == (2, 8) and net.embed_dim == 8


def test_vit_tokens_and_attention_maps() -> None:
    torch.manual_seed(0)
    net = ViT(10, img_size=28, patch_size=4, in_channels=1, embed_dim=16, num_layers=3, num_heads=4).eval()
    x = torch.randn(5, 1, 28, 28)
    assert net.tokens(x).shape == (5, 50, 16) and net.grid_size == 7
    maps = net.attention_maps(x)
    assert len(maps) == 3 and all(m.shape == (5, 4, 50, 50) for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(5, 4, 50))
    with pytest.raises(ValueError, match="pool must be one of cls, mean"):
        ViT(10, pool="bogus_pool")
    with pytest.raises(ValueError, match="positions must be one of learned, sinusoidal"):
        ViT(10, positions="bogus_positions")


def test_conv_stem_gives_the_patch_embeddings_token_grid() -> None:
    """log2(P) stride-2 conv blocks and a 1x1 projection: token k is the stem's output at (k // G, k % G)."""
    torch.manual_seed(0)
    stem = ConvStem(img_size=16, patch_size=4, in_channels=3, embed_dim=6, width=5).eval()
    assert [m.stride for m in stem.convs if isinstance(m, torch.nn.Conv2d)] == [(2, 2), (2, 2)]
    assert [m.out_channels for m in stem.convs if isinstance(m, torch.nn.Conv2d)] == [5, 10]
    x = torch.randn(2, 3, 16, 16)
    tokens = stem(x)
    assert tokens.shape == (2, 16, 6) and stem.num_patches == 16
    grid = stem.proj(stem.convs(x))  # (2, 6, 4, 4)
    torch.testing.assert_close(tokens[:, 1 * 4 + 2], grid[:, :, 1, 2])
    # a pixel only moves the tokens whose receptive field holds it: the top-left one, not the bottom-right
    moved = x.clone()
    moved[:, :, 0, 0] += 10
    change = (stem(moved) - tokens).abs().sum(dim=(0, 2))
    assert change[0] > 0 and change[-1] == 0
    # every token's receptive field is centred on its patch: token (1, 2) on pixel (5.5, 9.5)
    ones = ConvStem(img_size=16, patch_size=4, in_channels=1, embed_dim=1, width=1).eval()
    for param in ones.parameters():
        torch.nn.init.ones_(param)
    image = torch.ones(1, 1, 16, 16, requires_grad=True)
    ones(image)[0, 1 * 4 + 2].sum().backward()
    rows, cols = image.grad[0, 0].nonzero(as_tuple=True)
    assert (rows.min() + rows.max()) / 2 == 5.5 and (cols.min() + cols.max()) / 2 == 9.5
    with pytest.raises(ValueError, match="power of two.*got 6"):
        ConvStem(24, 6)
    with pytest.raises(ValueError, match=r"expects images \(N, 3, 16, 16\)"):
        stem(torch.zeros(1, 1, 16, 16))


def test_vit_with_a_conv_stem_passes_gradcheck_and_rolls_out() -> None:
    torch.manual_seed(0)
    net = ViT(3, img_size=8, patch_size=4, in_channels=1, embed_dim=8, num_layers=1, num_heads=2,
              dim_feedforward=8, dropout=0.0, stem="conv", stem_width=2).double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: net(inp), (x,), eps=1e-6, atol=1e-6, fast_mode=True)
    assert isinstance(net.patch_embed, ConvStem) and net.grid_size == 2
    maps = attribution_maps("attention_rollout", x.detach(), torch.zeros(2, dtype=torch.long),
                            Classifier("vit", net, ["a", "b", "c"], 8))
    assert maps.shape == (2, 8, 8)
    with pytest.raises(ValueError, match="stem must be one of patch, conv"):
        ViT(10, stem="bogus_stem")


def test_vit_is_about_the_size_of_the_digits_cnn() -> None:
    """The configured pair of conf/model/vit.yaml and conf/model/small_cnn.yaml (the ViT-vs-CNN table)."""
    vit = ViT(10, img_size=28, patch_size=4, in_channels=1, embed_dim=64, num_layers=2, num_heads=4,
              dim_feedforward=128)
    cnn = ShapesCNN(10, width=16, in_channels=1)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.8 < count(vit) / count(cnn) < 1.25


def test_rollout_multiplies_the_residual_adjusted_layers() -> None:
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(2, 3, 4, 4, dtype=torch.float64), -1) for _ in range(3)]
    expected = np.stack([np.eye(4)] * 2)
    for weights in maps:
        a = _np(weights).mean(axis=1) + np.eye(4)
        a /= a.sum(-1, keepdims=True)
        expected = a @ expected
    assert rel_error(_np(rollout(maps)), expected) < 1e-12
    fused_max = rollout(maps[:1], "max")
    a = _np(maps[0]).max(axis=1) + np.eye(4)
    assert rel_error(_np(fused_max), a / a.sum(-1, keepdims=True)) < 1e-12


def test_attention_rollout_is_a_registered_attribution_method() -> None:
    torch.manual_seed(0)
    net = ViT(4, img_size=16, patch_size=4, in_channels=3, embed_dim=16, num_layers=2, num_heads=2).eval()
    classifier = Classifier("vit", net, ["a", "b", "c", "d"], 16)
    X = torch.randn(3, 3, 16, 16)
    maps = attribution_maps("attention_rollout", X, torch.zeros(3, dtype=torch.long), classifier)
    assert maps.shape == (3, 16, 16) and bool((maps > 0).all())
    assert ATTRIBUTIONS.label("attention_rollout") == "attention rollout"
    # the class token's row over the patches, upsampled: its 4x4 grid means are the rollout's patch entries
    R = rollout(net.attention_maps(X))[:, 0, 1:].reshape(3, 4, 4)
    pooled = torch.nn.functional.avg_pool2d(maps[:, None], 4)[:, 0]
    assert torch.corrcoef(torch.stack([pooled.flatten(), R.flatten()]))[0, 1] > 0.9
    cnn = Classifier("cnn", ShapesCNN(4).eval(), ["a", "b", "c", "d"], 16)
    with pytest.raises(ValueError, match="needs a Vision Transformer.*classifier=vit_shapes"):
        attention_rollout(X, torch.zeros(3, dtype=torch.long), cnn)
