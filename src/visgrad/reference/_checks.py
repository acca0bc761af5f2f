"""Shape checks shared by the NumPy reference and the torch ops (pure Python, works on shape tuples).

Each check raises ``ValueError`` naming the argument, the expected shape (symbolic and numeric) and the
shape it got, so a wrong weight never surfaces as an opaque matmul error.
"""

from __future__ import annotations

from collections.abc import Sequence


def _fmt(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + (",)" if len(shape) == 1 else ")")


def _expect(name: str, shape: Sequence[int], symbolic: str, expected: Sequence[int], what: str = "") -> None:
    if tuple(shape) != tuple(expected):
        suffix = f" for {what}" if what else ""
        raise ValueError(f"{name} must be {symbolic} = {_fmt(expected)}{suffix}, got {_fmt(shape)}")


def _ndim(name: str, shape: Sequence[int], symbolic: str) -> None:
    if len(shape) != symbolic.count(",") + 1:
        raise ValueError(f"{name} must be a {symbolic.count(',') + 1}-D array of shape {symbolic}, "
                         f"got shape {_fmt(shape)}")


def check_recurrent(x, h, Wx, Wh, b, gates: int, sequence: bool, label: str, h_name: str = "h0",
                    c=None) -> None:
    """Check the shapes of a recurrent layer's inputs (a cell with ``gates`` gate blocks: RNN 1, LSTM 4).

    Inputs are shape tuples: x (N, T, D) if ``sequence`` else (N, D); h (N, H); Wx (D, gH); Wh (H, gH);
    b (gH,); c (N, H) for an LSTM step's previous cell state. ``label`` names the cell in messages
    (``"LSTM"``: "... for the LSTM cell").
    """
    cell = f"the {label} cell"
    g = "" if gates == 1 else str(gates)
    _ndim("x", x, "(N, T, D)" if sequence else "(N, D)")
    _ndim(h_name, h, "(N, H)")
    N, D = x[0], x[-1]
    H = h[1]
    if sequence and x[1] < 1:
        raise ValueError(f"x must hold at least one time step, got shape {_fmt(x)}")
    _expect(h_name, h, "(N, H)", (N, H), f"{cell} whose input x has N = {N} rows")
    if c is not None:
        _expect("prev_c", c, "(N, H)", (N, H), f"{cell} whose prev_h is {_fmt(h)}")
    _expect("Wx", Wx, f"(D, {g}H)", (D, gates * H), cell)
    _expect("Wh", Wh, f"(H, {g}H)", (H, gates * H), cell)
    _expect("b", b, f"({g}H,)", (gates * H,), cell)


def check_temporal_affine(x, w, b) -> None:
    """Check shapes for a temporal affine layer: x (N, T, D), w (D, M), b (M,)."""
    _ndim("x", x, "(N, T, D)")
    _ndim("w", w, "(D, M)")
    _expect("w", w, "(D, M)", (x[2], w[1]), f"inputs x of shape {_fmt(x)}")
    _expect("b", b, "(M,)", (w[1],), f"weights w of shape {_fmt(w)}")


def check_embedding(x, W) -> None:
    """Check shapes for a word embedding: x (N, T) integer ids, W (V, D)."""
    _ndim("x", x, "(N, T)")
    _ndim("W", W, "(V, D)")


def check_word_ids(name: str, lo: int, hi: int, vocab_size: int, first_bad=None) -> None:
    """Raise if the smallest id ``lo`` or largest id ``hi`` lies outside ``[0, vocab_size)``.

    ``first_bad`` is a callable returning ``(id, position)`` of the first offending entry for the message.
    """
    if lo < 0 or hi >= vocab_size:
        bad, where = first_bad()
        raise ValueError(f"{name} holds word id {bad} at position {where}, outside the vocabulary of size "
                         f"{vocab_size} (valid ids are 0..{vocab_size - 1})")


def check_softmax_loss(x, y, mask) -> None:
    """Check shapes for the temporal softmax loss: x (N, T, V) scores, y (N, T) targets, mask (N, T)."""
    _ndim("x", x, "(N, T, V)")
    _expect("y", y, "(N, T)", tuple(x[:2]), f"scores x of shape {_fmt(x)}")
    _expect("mask", mask, "(N, T)", tuple(x[:2]), f"scores x of shape {_fmt(x)}")


def check_attention(q, k, v, mask=None) -> None:
    """Check shapes for attention over split heads: q (N, h, S, d), k and v (N, h, T, d), and an additive
    mask broadcastable to (N, h, S, T) (e.g. (S, T)) or None."""
    for name, shape in (("q", q), ("k", k), ("v", v)):
        _ndim(name, shape, "(N, h, S, d)" if name == "q" else "(N, h, T, d)")
    N, h, S, d = q
    _expect("k", k, "(N, h, T, d)", (N, h, k[2], d), f"queries q of shape {_fmt(q)}")
    _expect("v", v, "(N, h, T, d)", tuple(k), f"keys k of shape {_fmt(k)}")
    if k[2] < 1:
        raise ValueError(f"k and v must hold at least one source position (T >= 1), got k {_fmt(k)}")
    if mask is not None:
        full = (N, h, S, k[2])
        if len(mask) > 4 or any(m not in (1, f) for m, f in zip(mask[::-1], full[::-1], strict=False)):
            raise ValueError(f"mask must broadcast to (N, h, S, T) = {_fmt(full)} (e.g. (S, T) = "
                             f"{_fmt(full[2:])}), got {_fmt(mask)}")


def check_soft_attention(h, features, projected, W_ha, w_a) -> None:
    """Check shapes for soft attention over a grid: h (N, H), features (N, L, C), projected (N, L, A),
    W_ha (H, A), w_a (A,)."""
    _ndim("h", h, "(N, H)")
    _ndim("features", features, "(N, L, C)")
    _ndim("projected", projected, "(N, L, A)")
    N, H = h
    if features[1] < 1:
        raise ValueError(f"features must hold at least one grid cell (L >= 1), got {_fmt(features)}")
    _expect("features", features, "(N, L, C)", (N, *features[1:]), f"a state h of shape {_fmt(h)}")
    _expect("projected", projected, "(N, L, A)", (N, features[1], projected[2]),
            f"features of shape {_fmt(features)}")
    _expect("W_ha", W_ha, "(H, A)", (H, projected[2]), f"h {_fmt(h)} and projected {_fmt(projected)}")
    _expect("w_a", w_a, "(A,)", (projected[2],), f"projected of shape {_fmt(projected)}")


def check_attention_lstm_step(x, prev_h, prev_c, features, projected, W_ha, w_a, W_beta, b_beta, Wx, Wz, Wh,
                              b) -> None:
    """Check shapes for one attention-LSTM step: x (N, W), prev_h and prev_c (N, H), the soft attention's
    (see ``check_soft_attention``), W_beta (H, 1), b_beta (1,), Wx (W, 4H), Wz (C, 4H), Wh (H, 4H),
    b (4H,)."""
    check_soft_attention(prev_h, features, projected, W_ha, w_a)
    _ndim("x", x, "(N, W)")
    N, H = prev_h
    cell = "the attention-LSTM cell"
    _expect("x", x, "(N, W)", (N, x[1]), f"{cell} whose prev_h is {_fmt(prev_h)}")
    _expect("prev_c", prev_c, "(N, H)", (N, H), f"{cell} whose prev_h is {_fmt(prev_h)}")
    _expect("W_beta", W_beta, "(H, 1)", (H, 1), cell)
    _expect("b_beta", b_beta, "(1,)", (1,), cell)
    _expect("Wx", Wx, "(W, 4H)", (x[1], 4 * H), cell)
    _expect("Wz", Wz, "(C, 4H)", (features[2], 4 * H), f"{cell} over features {_fmt(features)}")
    _expect("Wh", Wh, "(H, 4H)", (H, 4 * H), cell)
    _expect("b", b, "(4H,)", (4 * H,), cell)
