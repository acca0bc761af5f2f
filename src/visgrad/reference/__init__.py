"""NumPy reference layers (recurrent, attention) with the CS231n signatures and the numeric gradient-check
helpers.

Example::

    from visgrad.reference import lstm_forward, lstm_backward, eval_numerical_gradient_array, rel_error
    h, cache = lstm_forward(x, h0, Wx, Wh, b)            # x (N, T, D) -> h (N, T, H)
    dx, dh0, dWx, dWh, db = lstm_backward(dh, cache)
    dx_num = eval_numerical_gradient_array(lambda x: lstm_forward(x, h0, Wx, Wh, b)[0], x, dh)
    print(rel_error(dx, dx_num))                          # ~1e-9
"""

from visgrad.reference.attention import attention_backward, attention_forward, causal_mask
from visgrad.reference.attention_lstm import (
    attention_lstm_step_backward,
    attention_lstm_step_forward,
    soft_attention_backward,
    soft_attention_forward,
)
from visgrad.reference.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from visgrad.reference.rnn_layers import (
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

__all__ = [
    "attention_backward",
    "attention_forward",
    "attention_lstm_step_backward",
    "attention_lstm_step_forward",
    "causal_mask",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "rel_error",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "sigmoid",
    "soft_attention_backward",
    "soft_attention_forward",
    "temporal_affine_backward",
    "temporal_affine_forward",
    "temporal_softmax_loss",
    "word_embedding_backward",
    "word_embedding_forward",
]
