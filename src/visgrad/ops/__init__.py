"""Recurrent layers as ``torch.autograd.Function``s with hand-written backward, and functional wrappers.

Same argument order as ``visgrad.reference`` (CS231n), any floating dtype, any device::

    import visgrad.ops as ops
    h = ops.lstm(x, h0, Wx, Wh, b)                      # x (N, T, D), Wx (D, 4H) -> h (N, T, H)
    scores = ops.temporal_affine(h, W_vocab, b_vocab)   # (N, T, V)
    loss = ops.temporal_softmax_loss(scores, y, mask)   # scalar; .backward() runs the hand-written backward

Double backward is not supported (the backward passes are ``once_differentiable``).
"""

from visgrad.ops.layers import (
    TemporalAffine,
    TemporalSoftmaxLoss,
    WordEmbedding,
    temporal_affine,
    temporal_softmax_loss,
    word_embedding,
)
from visgrad.ops.lstm import LSTM, LSTMStep, lstm, lstm_step
from visgrad.ops.rnn import RNN, RNNStep, rnn, rnn_step

__all__ = [
    "LSTM",
    "LSTMStep",
    "RNN",
    "RNNStep",
    "TemporalAffine",
    "TemporalSoftmaxLoss",
    "WordEmbedding",
    "lstm",
    "lstm_step",
    "rnn",
    "rnn_step",
    "temporal_affine",
    "temporal_softmax_loss",
    "word_embedding",
]
