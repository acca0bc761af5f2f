"""Pieces shared by the sequence ops of both cells: the input terms x_t Wx + b of all steps (from input
vectors or from embedded words) with their gradients, and the gradients of h0 and Wh.

Everything here works on whole sequences at once, time-major (row t*N + n is step t of sequence n).

Word inputs x_t = W_embed[w_t]: with a vocabulary smaller than the number of words in the batch,
projecting the vocabulary once, W_embed Wx + b (V, G), and gathering its rows costs V W G multiply-adds
instead of N T W G, and the backward accumulates the gradient of each vocabulary row (index_add) before
two (V, .) GEMMs instead of whole-sequence ones. Larger vocabularies take the direct route: gather the
word vectors, then one GEMM.
"""

from __future__ import annotations

from visgrad.ops._checks import check_floating, check_ids
from visgrad.ops._gemm import mm
from visgrad.reference._checks import check_embedding, check_recurrent


def check_words(words, W_embed, h0, Wx, Wh, b, gates: int, label: str) -> None:
    """Check the inputs of a recurrent layer over embedded words (``gates`` gate blocks, RNN 1, LSTM 4;
    ``label`` names the cell): words (N, T) ids in [0, V), W_embed (V, W), h0 (N, H), Wx (W, gH), Wh (H, gH),
    b (gH,)."""
    check_floating(W_embed=W_embed, h0=h0, Wx=Wx, Wh=Wh, b=b)
    check_embedding(tuple(words.shape), tuple(W_embed.shape))
    check_ids("words", words, W_embed.shape[0])
    x_shape = (*words.shape, W_embed.shape[1])
    check_recurrent(x_shape, tuple(h0.shape), tuple(Wx.shape), tuple(Wh.shape), tuple(b.shape), gates, True,
                    label)


def time_major(x):
    """x (N, T, D) -> xs (T * N, D), time-major rows (a copy unless x is already time-major)."""
    N, T, D = x.shape
    return x.transpose(0, 1).reshape(T * N, D)


def project_inputs_backward(da, xs, Wx, x_shape, need_x: bool, need_Wx: bool, need_b: bool):
    """Gradients (dx (N, T, D), dWx (D, G), db (G,)) of ``xs Wx + b`` given da (T * N, G); None where not
    needed. xs (T * N, D) time-major; x_shape the (N, T, D) of the batch-first input."""
    N, T, D = x_shape
    return (mm(da, Wx.t()).view(T, N, D).transpose(0, 1) if need_x else None,
            mm(xs.t(), da) if need_Wx else None,
            da.sum(0) if need_b else None)


def _use_table(ids, W_embed) -> bool:
    return len(ids) > W_embed.shape[0]


def project_words(ids, W_embed, Wx, b):
    """ids (M,) word ids, W_embed (V, W), Wx (W, G), b (G,) -> W_embed[ids] Wx + b (M, G)."""
    if _use_table(ids, W_embed):
        return mm(W_embed, Wx, b).index_select(0, ids)  # (V, G) vocabulary terms, one row per word
    return mm(W_embed.index_select(0, ids), Wx, b)


def project_words_backward(da, ids, W_embed, Wx, need_embed: bool, need_Wx: bool, need_b: bool):
    """Gradients (dW_embed (V, W), dWx (W, G), db (G,)) of ``project_words`` given da (M, G); None where
    not needed."""
    V, G = W_embed.shape[0], da.shape[1]
    if _use_table(ids, W_embed):
        dtable = da.new_zeros(V, G).index_add_(0, ids, da)  # gradient of each projected vocabulary row
        return (mm(dtable, Wx.t()) if need_embed else None,
                mm(W_embed.t(), dtable) if need_Wx else None,
                dtable.sum(0) if need_b else None)
    dW_embed = da.new_zeros(V, W_embed.shape[1]).index_add_(0, ids, mm(da, Wx.t())) if need_embed else None
    dWx = mm(W_embed.index_select(0, ids).t(), da) if need_Wx else None
    return dW_embed, dWx, da.sum(0) if need_b else None


def hidden_grads(da, hs, Wh, need_h0: bool, need_Wh: bool):
    """dh0 = da_0 Wh^T (N, H) and dWh = sum_t h_{t-1}^T da_t (H, G), None where not needed.

    da (T, N, G): pre-activation gradients; hs (T + 1, N, H): h0 then the hidden state of every step.
    """
    T, N, G = da.shape
    dh0 = mm(da[0], Wh.t()) if need_h0 else None
    dWh = mm(hs[:-1].reshape(T * N, -1).t(), da.view(T * N, G)) if need_Wh else None
    return dh0, dWh
