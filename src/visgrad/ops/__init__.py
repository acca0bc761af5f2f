"""Recurrent and attention layers as ``torch.autograd.Function``s with hand-written backward, and functional
wrappers.

Same argument order as ``visgrad.reference`` (CS231n), any floating dtype, any device::

    import visgrad.ops as ops
    h = ops.lstm(x, h0, Wx, Wh, b)                      # x (N, T, D), Wx (D, 4H) -> h (N, T, H)
    h = ops.word_lstm(words, W_embed, h0, Wx, Wh, b)    # = lstm(word_embedding(words, W_embed), ...)
    scores = ops.temporal_affine(h, W_vocab, b_vocab)   # (N, T, V)
    loss = ops.temporal_softmax_loss(scores, y, mask)   # scalar; .backward() runs the hand-written backward
    out = ops.attention(q, k, v, mask)                  # q (N, h, S, d), k, v (N, h, T, d) -> (N, h, S, d)
    h, c, context, alpha = ops.attention_lstm_step(x, h, c, features, projected, ...)  # Show-Attend-Tell

Double backward is not supported (the backward passes are ``once_differentiable``).
"""

from visgrad.ops.attention import Attention, attention
from visgrad.ops.attention_lstm import AttentionLSTMStep, attention_lstm_step
from visgrad.ops.layers import (
    TemporalAffine,
    TemporalSoftmaxLoss,
    WordEmbedding,
    temporal_affine,
    temporal_softmax_loss,
    word_embedding,
)
from visgrad.ops.lstm import LSTM, LSTMStep, WordLSTM, lstm, lstm_step, word_lstm
from visgrad.ops.rnn import RNN, RNNStep, WordRNN, rnn, rnn_step, word_rnn

__all__ = [
    "Attention",
    "AttentionLSTMStep",
    "LSTM",
    "LSTMStep",
    "RNN",
    "RNNStep",
    "TemporalAffine",
    "TemporalSoftmaxLoss",
    "WordEmbedding",
    "WordLSTM",
    "WordRNN",
    "attention",
    "attention_lstm_step",
    "lstm",
    "lstm_step",
    "rnn",
    "rnn_step",
    "temporal_affine",
    "temporal_softmax_loss",
    "word_embedding",
    "word_lstm",
    "word_rnn",
]
