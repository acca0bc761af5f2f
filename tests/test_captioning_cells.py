"""The recurrent cell registry: every registered cell is consistent with its NumPy reference and its
gradients; the checks catch a wrong cell; and a cell defined outside visgrad (``TOY`` below, chosen by its
dotted path ``test_captioning_cells.TOY``) trains, decodes and round-trips through a checkpoint with no edit
to visgrad."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from visgrad import ops
from visgrad.captioning import (
    CELLS,
    CaptioningModule,
    CaptioningRNN,
    Cell,
    beam_search,
    greedy_decode,
    load_captioner,
)
from visgrad.captioning.cell_checks import cell_problems
from visgrad.utils.preflight import config_problems

WORDS = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "a", "red", "blue", "circle", "square"])}
NULL, START, END = 0, 1, 2
TOY_PATH = "test_captioning_cells.TOY"


# A toy cell as a user would write it in their own package: two gate blocks, two state tensors (h, s),
# plain torch ops (autograd gives the backward), no sequence ops (the captioner loops the step).
#   a = x Wx + h Wh + b = [a_z, a_n], z = sigmoid(a_z), n = tanh(a_n); s' = s + n; h' = (1 - z) h + z tanh(s')

def toy_step(x, state, Wx, Wh, b):
    h, s = state
    H = h.shape[1]
    a = x @ Wx + h @ Wh + b
    z, n = torch.sigmoid(a[:, :H]), torch.tanh(a[:, H:])
    s = s + n
    return (1 - z) * h + z * torch.tanh(s), s


def toy_reference_step(x, state, Wx, Wh, b):
    h, s = state
    H = h.shape[1]
    a = x @ Wx + h @ Wh + b
    z, n = 1 / (1 + np.exp(-a[:, :H])), np.tanh(a[:, H:])
    s = s + n
    return (1 - z) * h + z * np.tanh(s), s


def toy_reference_sequence(x, h0, Wx, Wh, b):
    state, hs = (h0, np.zeros_like(h0)), []
    for t in range(x.shape[1]):
        state = toy_reference_step(x[:, t], state, Wx, Wh, b)
        hs.append(state[0])
    return np.stack(hs, axis=1)


TOY = Cell(name="toy", label="Toy", gates=2, state=("h", "s"), step=toy_step,
           reference_step=toy_reference_step, reference_sequence=toy_reference_sequence)


@pytest.mark.parametrize("name", CELLS.names())
def test_registered_cells_match_their_reference_and_numerical_gradients(name: str) -> None:
    assert cell_problems(CELLS.get(name)) == []


def test_builtin_entries() -> None:
    assert CELLS.names() == ["rnn", "lstm"]
    rnn, lstm = CELLS.get("rnn"), CELLS.get("lstm")
    assert (rnn.label, rnn.gates, rnn.state, rnn.word_sequence) == ("RNN", 1, ("h",), ops.word_rnn)
    assert (lstm.label, lstm.gates, lstm.state, lstm.word_sequence) == ("LSTM", 4, ("h", "c"), ops.word_lstm)
    h0 = torch.randn(2, 3)
    h, c = lstm.initial_state(h0)
    assert h is h0 and torch.equal(c, torch.zeros(2, 3))  # CS231n's LSTM starts from c0 = 0
    assert CELLS.get(TOY_PATH) is TOY and CELLS.label(TOY_PATH) == "Toy"


class WrongBackward(torch.autograd.Function):
    """tanh with a backward that is off by a factor of 2."""

    @staticmethod
    def forward(ctx, a):
        out = a.tanh()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return 2 * grad * (1 - out * out)


def test_cell_problems_catch_a_wrong_reference_sequence_and_backward() -> None:
    rnn = CELLS.get("rnn")

    def off_reference(x, state, Wx, Wh, b):
        h, s = toy_reference_step(x, state, Wx, Wh, b)
        return h, s + 1e-6

    wrong_reference = dataclasses.replace(TOY, reference_step=off_reference)
    assert cell_problems(wrong_reference) == ["Toy cell: step differs from reference_step by 1.0e-06"]
    wrong_sequence = dataclasses.replace(rnn, sequence=lambda x, h0, Wx, Wh, b: ops.rnn(x, 0 * h0, Wx, Wh, b))
    problems = cell_problems(wrong_sequence)
    assert problems[0].startswith("RNN cell: sequence differs from looping step (from the state (h0, 0, ...)")
    wrong_gradient = Cell(name="bogus_cell", label="Bogus", gates=1, state=("h",),
                          step=lambda x, state, Wx, Wh, b: (WrongBackward.apply(x @ Wx + state[0] @ Wh + b),))
    assert cell_problems(wrong_gradient) == [
        f"Bogus cell: the gradients of {op} differ from numerical ones"
        for op in ("step", "sequence", "word_sequence")]
    with pytest.raises(ValueError, match="state must start with 'h'"):
        Cell(name="bogus_cell", label="Bogus", gates=1, state=("c", "h"), step=toy_step)


def memorise(module: CaptioningModule, features: torch.Tensor, captions: torch.Tensor, epochs: int) -> None:
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(TensorDataset(features, captions), batch_size=len(captions)))
    return trainer


@pytest.mark.usefixtures("one_torch_thread")
def test_a_cell_of_ones_own_package_trains_decodes_and_round_trips(tmp_path: Path, compose_cfg) -> None:
    assert cell_problems(TOY) == []
    torch.manual_seed(0)
    net = functools.partial(CaptioningRNN, cell_type=TOY_PATH, wordvec_dim=8, hidden_dim=16)
    adam = functools.partial(torch.optim.Adam, lr=0.03)
    module = CaptioningModule(net, adam, word_to_idx=WORDS, input_dim=6, max_length=8)
    assert module.net.cell is TOY and module.net.Wx.shape == (8, 2 * 16)
    features = torch.randn(4, 6)
    captions = torch.tensor([[START, 3, 4, 6, END, NULL], [START, 5, 7, END, NULL, NULL],
                             [START, 3, 5, 6, 3, END], [START, 7, END, NULL, NULL, NULL]])
    trainer = memorise(module, features, captions, epochs=150)
    module.eval()
    expected = torch.cat([captions[:, 1:], torch.full((4, 3), NULL)], dim=1)  # the sample layout, 8 words
    assert torch.equal(greedy_decode(module.net, features, 8), expected)
    assert torch.equal(beam_search(module.net, features, 3, 8)[0], expected)  # beam reorders (h, s) rows

    path = tmp_path / "toy.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, weights_only=False)["hyper_parameters"]["net"] == {
        "_target_": "visgrad.captioning.model.CaptioningRNN", "cell_type": TOY_PATH, "wordvec_dim": 8,
        "hidden_dim": 16}
    for loaded in (load_captioner(path), CaptioningModule.load_from_checkpoint(path).eval()):
        assert loaded.net.cell is TOY
        assert torch.equal(greedy_decode(loaded.net, features, 8), expected)
    cfg = compose_cfg("train", ["model=lstm", f"model.net.cell_type={TOY_PATH}"])
    assert config_problems(cfg) == []
