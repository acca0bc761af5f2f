"""The recurrent cells of ``CaptioningRNN``: one ``Cell`` entry per cell in the ``CELLS`` registry.

An entry says everything the captioner, the checks and the messages need about a cell: its name and label,
its number of gate blocks m (the weights are Wx (W, mH), Wh (H, mH), b (mH,)), its state layout (h first;
each state tensor is (N, H)), its torch step, optionally its torch sequence ops, and optionally its NumPy
reference. Built in: ``rnn`` (tanh RNN, state h) and ``lstm`` (gates i, f, o, g; state h, c; c0 = 0), both
on the hand-written ``visgrad.ops`` Functions.

A cell of your own is a ``Cell`` in your package, chosen by its dotted path (no registration in visgrad)::

    # my_pkg/cells.py
    def my_step(x, state, Wx, Wh, b):          # x (N, W), state (h,) -> (next_h,)
        return (torch.tanh(x @ Wx + state[0] @ Wh + b),)

    MY_CELL = Cell(name="mine", label="Mine", gates=1, state=("h",), step=my_step)

    # python train.py model=rnn model.net.cell_type=my_pkg.cells.MY_CELL

Without ``sequence`` ops the whole-sequence forward loops the step (autograd gives the backward);
``visgrad.captioning.cell_checks.cell_problems`` checks a cell's ops against each other, against its NumPy
reference and against numerical gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from visgrad import ops
from visgrad import reference as ref
from visgrad.registry import Registry


@dataclass(frozen=True)
class Cell:
    """A recurrent cell.

    Fields:
        name, label: the registry name (``cell_type``) and the label for tables and messages.
        gates: m, the number of (N, H) gate blocks of the pre-activations x Wx + h Wh + b (N, mH).
        state: names of the state tensors, h (the output) first: ``("h",)``, ``("h", "c")``. The captioner
            starts from (h0, 0, ...): h0 from the image features, every other state at zero.
        step: torch, ``(x (N, W), state, Wx (W, mH), Wh (H, mH), b (mH,)) -> next state`` (a tuple in the
            order of ``state``).
        sequence: torch, optional, ``(x (N, T, W), h0 (N, H), Wx, Wh, b) -> h (N, T, H)``: every step's h
            from the state (h0, 0, ...); the same values as looping ``step``.
        word_sequence: torch, optional, ``(words (N, T) int64, W_embed (V, W), h0, Wx, Wh, b) -> h (N, T, H)``
            = ``sequence(W_embed[words], h0, Wx, Wh, b)``, fused.
        reference_step, reference_sequence: NumPy float64 references of ``step`` and ``sequence`` (same
            arguments, arrays instead of tensors), optional.
    """

    name: str
    label: str
    gates: int
    state: tuple[str, ...]
    step: Callable
    sequence: Callable | None = None
    word_sequence: Callable | None = None
    reference_step: Callable | None = None
    reference_sequence: Callable | None = None

    def __post_init__(self) -> None:
        if int(self.gates) < 1 or not self.state or self.state[0] != "h":
            raise ValueError(f"cell {self.name!r}: gates must be >= 1 and state must start with 'h', got "
                             f"gates={self.gates!r}, state={self.state!r}")

    def initial_state(self, h0: Tensor) -> tuple[Tensor, ...]:
        """(h0, 0, ...): one (N, H) tensor per name of ``state``."""
        return (h0, *(torch.zeros_like(h0) for _ in self.state[1:]))

    def forward(self, x: Tensor, h0: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor) -> Tensor:
        """Hidden states h (N, T, H) of x (N, T, W) from (h0, 0, ...): ``sequence``, or ``step`` looped."""
        if self.sequence is not None:
            return self.sequence(x, h0, Wx, Wh, b)
        state, hs = self.initial_state(h0), []
        for t in range(x.shape[1]):
            state = self.step(x[:, t], state, Wx, Wh, b)
            hs.append(state[0])
        return torch.stack(hs, dim=1)

    def forward_words(self, words: Tensor, W_embed: Tensor, h0: Tensor, Wx: Tensor, Wh: Tensor,
                      b: Tensor) -> Tensor:
        """``forward(W_embed[words], h0, Wx, Wh, b)`` (N, T, H), fused when the cell has ``word_sequence``."""
        if self.word_sequence is not None:
            return self.word_sequence(words, W_embed, h0, Wx, Wh, b)
        return self.forward(ops.word_embedding(words, W_embed), h0, Wx, Wh, b)


CELLS: Registry[Cell] = Registry("recurrent cell", Cell)


def _rnn_step(x, state, Wx, Wh, b):
    return (ops.rnn_step(x, state[0], Wx, Wh, b),)


def _rnn_reference_step(x, state, Wx, Wh, b):
    return (ref.rnn_step_forward(x, state[0], Wx, Wh, b)[0],)


def _rnn_reference_sequence(x, h0, Wx, Wh, b):
    return ref.rnn_forward(x, h0, Wx, Wh, b)[0]


def _lstm_step(x, state, Wx, Wh, b):
    return ops.lstm_step(x, *state, Wx, Wh, b)


def _lstm_reference_step(x, state, Wx, Wh, b):
    return ref.lstm_step_forward(x, *state, Wx, Wh, b)[:2]


def _lstm_reference_sequence(x, h0, Wx, Wh, b):
    return ref.lstm_forward(x, h0, Wx, Wh, b)[0]


CELLS.add(Cell(
    name="rnn", label="RNN", gates=1, state=("h",), step=_rnn_step, sequence=ops.rnn,
    word_sequence=ops.word_rnn, reference_step=_rnn_reference_step,
    reference_sequence=_rnn_reference_sequence,
))
CELLS.add(Cell(
    name="lstm", label="LSTM", gates=4, state=("h", "c"), step=_lstm_step, sequence=ops.lstm,
    word_sequence=ops.word_lstm, reference_step=_lstm_reference_step,
    reference_sequence=_lstm_reference_sequence,
))
