"""Bad input to the torch ops: an error naming the argument and the expected shape, never a matmul error."""

from __future__ import annotations

import re

import pytest
import torch

import visgrad.ops as ops


def _z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize(("args", "message"), [
    ((_z(2, 3, 256), _z(2, 512), _z(256, 2048), _z(512, 512), _z(2048)),
     "Wh must be (H, 4H) = (512, 2048) for the LSTM cell, got (512, 512)"),
    ((_z(2, 3, 256), _z(2, 512), _z(256, 512), _z(512, 2048), _z(2048)),
     "Wx must be (D, 4H) = (256, 2048) for the LSTM cell, got (256, 512)"),
    ((_z(2, 3, 256), _z(2, 512), _z(256, 2048), _z(512, 2048), _z(512)),
     "b must be (4H,) = (2048,) for the LSTM cell, got (512,)"),
    ((_z(2, 3, 256), _z(5, 512), _z(256, 2048), _z(512, 2048), _z(2048)),
     "h0 must be (N, H) = (2, 512) for the LSTM cell whose input x has N = 2 rows, got (5, 512)"),
    ((_z(2, 256), _z(2, 512), _z(256, 2048), _z(512, 2048), _z(2048)),
     "x must be a 3-D array of shape (N, T, D), got shape (2, 256)"),
    ((_z(2, 0, 256), _z(2, 512), _z(256, 2048), _z(512, 2048), _z(2048)),
     "x must hold at least one time step, got shape (2, 0, 256)"),
])
def test_lstm_shape_errors(args, message):
    with pytest.raises(ValueError) as err:
        ops.lstm(*args)
    assert str(err.value) == message


def test_rnn_and_step_shape_errors():
    with pytest.raises(ValueError, match=r"^Wh must be \(H, H\) = \(4, 4\) for the RNN cell, got \(4, 16\)$"):
        ops.rnn(_z(2, 3, 5), _z(2, 4), _z(5, 4), _z(4, 16), _z(4))
    with pytest.raises(ValueError, match=r"^prev_h must be \(N, H\) = \(2, 4\) for the RNN cell"):
        ops.rnn_step(_z(2, 5), _z(3, 4), _z(5, 4), _z(4, 4), _z(4))
    with pytest.raises(ValueError, match=r"^prev_c must be \(N, H\) = \(2, 4\) for the LSTM cell whose "):
        ops.lstm_step(_z(2, 5), _z(2, 4), _z(2, 3), _z(5, 16), _z(4, 16), _z(16))


def test_dtype_and_type_errors():
    with pytest.raises(ValueError, match=r"Wh is torch.float64 on cpu but x is torch.float32 on cpu"):
        ops.rnn(_z(2, 3, 5), _z(2, 4), _z(5, 4), _z(4, 4, dtype=torch.float64), _z(4))
    with pytest.raises(TypeError, match=r"h0 must be a floating-point tensor, got dtype torch.int64"):
        ops.rnn(_z(2, 3, 5), _z(2, 4, dtype=torch.int64), _z(5, 4), _z(4, 4), _z(4))
    with pytest.raises(TypeError, match=r"b must be a torch.Tensor, got list"):
        ops.temporal_affine(_z(2, 3, 5), _z(5, 4), [0.0] * 4)


def _raises(exc, message):
    """Expect ``exc`` whose message is exactly ``message``."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


def test_word_ids_outside_vocabulary():
    W = _z(10, 3)
    with _raises(ValueError, "x holds word id 12 at position (1, 2), outside the vocabulary of size 10 "
                             "(valid ids are 0..9)"):
        ops.word_embedding(torch.tensor([[1, 2, 3], [4, 5, 12]]), W)
    with pytest.raises(ValueError, match=r"word id -1 at position \(0, 0\)"):
        ops.word_embedding(torch.tensor([[-1, 2]]), W)
    with _raises(TypeError, "x must be an integer tensor of word ids, got torch.float32"):
        ops.word_embedding(_z(2, 3), W)


def test_word_sequence_errors():
    W_embed, h0, Wx, Wh, b = _z(10, 3), _z(2, 4), _z(3, 16), _z(4, 16), _z(16)
    with _raises(ValueError, "words holds word id 10 at position (1, 0), outside the vocabulary of size 10 "
                             "(valid ids are 0..9)"):
        ops.word_lstm(torch.tensor([[1, 2], [10, 0]]), W_embed, h0, Wx, Wh, b)
    with pytest.raises(ValueError, match=r"^Wh must be \(H, 4H\) = \(4, 16\) for the LSTM cell, got \(4, 4"):
        ops.word_lstm(torch.tensor([[1, 2], [3, 0]]), W_embed, h0, Wx, _z(4, 4), b)
    with pytest.raises(ValueError, match=r"^Wx must be \(D, H\) = \(3, 4\)"):
        ops.word_rnn(torch.tensor([[1, 2], [3, 0]]), W_embed, h0, _z(5, 4), _z(4, 4), _z(4))


def test_loss_and_affine_errors():
    x = _z(2, 3, 10)
    y, mask = torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)
    with _raises(ValueError, "y holds word id 10 at position (0, 1), outside the vocabulary of size 10 "
                             "(valid ids are 0..9)"):
        ops.temporal_softmax_loss(x, torch.tensor([[0, 10, 1], [2, 3, 4]]), mask)
    with _raises(ValueError, "mask must be (N, T) = (2, 3) for scores x of shape (2, 3, 10), got (3, 2)"):
        ops.temporal_softmax_loss(x, y, mask.t())
    with _raises(ValueError, "w must be (D, M) = (10, 7) for inputs x of shape (2, 3, 10), got (9, 7)"):
        ops.temporal_affine(x, _z(9, 7), _z(7))
    with _raises(ValueError, "b must be (M,) = (7,) for weights w of shape (10, 7), got (8,)"):
        ops.temporal_affine(x, _z(10, 7), _z(8))
