"""CaptioningRNN: CS231n parameters, initialisation, loss semantics and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from visgrad.captioning import CaptioningRNN
from visgrad.reference import eval_numerical_gradient

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "red": 5, "circle": 6}


def linspace_params(model: CaptioningRNN) -> None:
    """CS231n's test initialisation: every parameter = linspace(-1.4, 1.3) over its size, float64."""
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.linspace(-1.4, 1.3, p.numel(), dtype=torch.float64).reshape(p.shape))


@pytest.mark.parametrize("cell_type,m", [("rnn", 1), ("lstm", 4)])
def test_parameter_names_shapes_and_init(cell_type: str, m: int) -> None:
    torch.manual_seed(0)
    V, D, W, H = len(WORDS), 300, 200, 100
    model = CaptioningRNN(WORDS, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell_type)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "W_embed": (V, W), "W_proj": (D, H), "b_proj": (H,), "Wx": (W, m * H), "Wh": (H, m * H),
        "b": (m * H,), "W_vocab": (H, V), "b_vocab": (V,),
    }
    stds = {"W_embed": 1 / 100, "W_proj": 1 / math.sqrt(D), "Wx": 1 / math.sqrt(W), "Wh": 1 / math.sqrt(H),
            "W_vocab": 1 / math.sqrt(H)}
    for name, std in stds.items():
        p = getattr(model, name)
        assert abs(p.std().item() / std - 1) < 0.15, name
        assert abs(p.mean().item()) < 0.2 * std, name
    for name in ("b_proj", "b", "b_vocab"):
        assert torch.count_nonzero(getattr(model, name)) == 0


def test_constructor_validates_inputs() -> None:
    with pytest.raises(ValueError, match=r"^cell_type: unknown recurrent cell 'bogus_cell'; one of rnn, "
                                         r"lstm, or the dotted path of a Cell in your own package"):
        CaptioningRNN(WORDS, cell_type="bogus_cell")
    with pytest.raises(ValueError, match=r"<START>"):
        CaptioningRNN({"<NULL>": 0, "<END>": 1, "a": 2})
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer"):
        CaptioningRNN(WORDS, hidden_dim=0)
    with pytest.raises(ValueError, match="0..V-1"):
        CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 5})
    model = CaptioningRNN(WORDS, input_dim=8)
    with pytest.raises(ValueError, match=r"D = input_dim = 8, got \(2, 7\)"):
        model.loss(torch.zeros(2, 7), torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="captions must have shape"):
        model.loss(torch.zeros(2, 8), torch.ones(3, 5, dtype=torch.long))


@pytest.mark.parametrize("cell_type,feature_range,expected", [
    ("rnn", (-1.5, 0.3), 9.83235591003), ("lstm", (-0.5, 1.7), 9.82445935443)])
def test_loss_matches_cs231n_published_value(cell_type: str, feature_range, expected: float) -> None:
    """The expected losses of the CS231n RNN/LSTM captioning notebooks (linspace parameters and features)."""
    N, D, W, H, T = 10, 20, 30, 40, 13
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    model = CaptioningRNN(vocab, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell_type)
    linspace_params(model)
    features = torch.linspace(*feature_range, N * D, dtype=torch.float64).reshape(N, D)
    captions = (torch.arange(N * T) % 3).reshape(N, T)
    assert model.loss(features, captions).item() == pytest.approx(expected, abs=1e-9)


def numpy_loss(params: dict[str, np.ndarray], features, captions, cell_type: str, null: int = 0) -> float:
    """Direct float64 formula: teacher forcing, masked cross-entropy summed over time, mean over N."""
    x_in, y = captions[:, :-1], captions[:, 1:]
    h = features @ params["W_proj"] + params["b_proj"]
    c = np.zeros_like(h)
    sigmoid = lambda a: 1 / (1 + np.exp(-a))
    total = 0.0
    for t in range(x_in.shape[1]):
        a = params["W_embed"][x_in[:, t]] @ params["Wx"] + h @ params["Wh"] + params["b"]
        if cell_type == "rnn":
            h = np.tanh(a)
        else:
            H = h.shape[1]
            i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
            g = np.tanh(a[:, 3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
        scores = h @ params["W_vocab"] + params["b_vocab"]
        log_z = np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1)) + scores.max(1)
        nll = log_z - scores[np.arange(len(y)), y[:, t]]
        total += (nll * (y[:, t] != null)).sum()
    return total / len(features)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_loss_matches_float64_formula_with_null_masking(cell_type: str) -> None:
    torch.manual_seed(1)
    model = CaptioningRNN(WORDS, input_dim=6, wordvec_dim=5, hidden_dim=4, cell_type=cell_type).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    features = torch.randn(3, 6, dtype=torch.float64)
    captions = torch.tensor([[1, 4, 5, 6, 2, 0, 0], [1, 5, 2, 0, 0, 0, 0], [1, 4, 4, 5, 6, 6, 2]])
    params = {n: p.detach().numpy() for n, p in model.named_parameters()}
    expected = numpy_loss(params, features.numpy(), captions.numpy(), cell_type)
    assert model.loss(features, captions).item() == pytest.approx(expected, rel=1e-12)
    # <NULL> targets are ignored: changing the words after a caption's end leaves the loss unchanged
    # only when they stay <NULL>; a non-null target changes it.
    other = captions.clone()
    other[1, 4] = 5
    assert model.loss(features, other).item() != pytest.approx(expected, rel=1e-6)


def test_loss_with_zero_vocab_weights_is_log_v_per_target_word() -> None:
    """Scores are all 0, so every unmasked target costs log V: loss = log V * (#non-null targets) / N."""
    model = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type="lstm")
    with torch.no_grad():
        model.W_vocab.zero_()
    captions = torch.tensor([[1, 4, 5, 2, 0], [1, 6, 2, 0, 0]])  # 3 + 2 non-null targets
    loss = model.loss(torch.randn(2, 4), captions)
    assert loss.item() == pytest.approx(math.log(len(WORDS)) * 5 / 2, rel=1e-6)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_gradients_reach_every_parameter_and_match_numerical(cell_type: str) -> None:
    torch.manual_seed(2)
    model = CaptioningRNN(WORDS, input_dim=5, wordvec_dim=4, hidden_dim=3, cell_type=cell_type).double()
    features = torch.randn(2, 5, dtype=torch.float64)
    captions = torch.tensor([[1, 4, 5, 6, 2, 0], [1, 6, 5, 4, 4, 2]])
    model.loss(features, captions).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # CS231n's check: numerical gradients by perturbing each parameter in place (float64).
    for name, p in model.named_parameters():
        view = p.data.numpy()  # shares memory with the parameter
        numeric = eval_numerical_gradient(lambda _: model.loss(features, captions).item(), view)
        np.testing.assert_allclose(p.grad.numpy(), numeric, rtol=1e-6, atol=1e-9, err_msg=name)
