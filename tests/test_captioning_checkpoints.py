"""The captioner protocol and checkpoints: ``CaptioningModule`` trains any network that meets the protocol
(``BagCaptioner`` below is one of a user's own, not a visgrad class), stores the network's config, and
``load_captioner`` rebuilds exactly that network; files that are not captioner checkpoints, or were written
before checkpoints stored their network, are refused in one line naming the file."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visgrad.captioning import CaptioningModule, CaptioningTransformer, DecodingStrategy, load_captioner
from visgrad.captioning.harness import decode_features
from visgrad.errors import CheckpointError

WORDS = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "a", "red", "blue", "circle", "square"])}
IDX_TO_WORD = list(WORDS)
NULL, START, END = 0, 1, 2


class BagCaptioner(nn.Module):
    """A captioner of one's own: next-word scores from the image and the previous word only."""

    def __init__(self, word_to_idx: dict[str, int], input_dim: int, width: int = 16) -> None:
        super().__init__()
        self.word_to_idx, self.input_dim = dict(word_to_idx), input_dim
        self.null_idx, self.start_idx, self.end_idx = (word_to_idx[w] for w in ("<NULL>", "<START>", "<END>"))
        self.image = nn.Linear(input_dim, width)
        self.embed = nn.Embedding(len(word_to_idx), width)
        self.out = nn.Linear(width, len(word_to_idx))

    def scores(self, image: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(image + self.embed(words)))

    def loss(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        scores = self.scores(self.image(features)[:, None], captions[:, :-1])
        return F.cross_entropy(scores.flatten(0, 1), captions[:, 1:].flatten(), ignore_index=self.null_idx)

    def initial_state(self, features: torch.Tensor) -> torch.Tensor:
        return self.image(features)

    def step(self, words: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scores(state, words), state


def save_like_lightning(module: CaptioningModule, path: Path) -> Path:
    """What a Lightning checkpoint holds for loading: the module's hyperparameters and weights."""
    torch.save({"epoch": 0, "global_step": 1, "state_dict": module.state_dict(),
                "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.mark.usefixtures("one_torch_thread")
def test_a_captioner_of_ones_own_trains_decodes_and_round_trips_from_a_target_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = {"_target_": "test_captioning_checkpoints.BagCaptioner", "width": 24}
    module = CaptioningModule(config, word_to_idx=WORDS, input_dim=5, max_length=6)
    assert isinstance(module.net, BagCaptioner) and module.net.out.in_features == 24
    assert module.hparams.net == config
    features = torch.randn(3, 5)
    captions = torch.tensor([[START, 3, 4, 6, END], [START, 5, 7, END, NULL], [START, 7, END, NULL, NULL]])
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        module(features, captions).backward()
        optimizer.step()
    expected = ["a red circle", "blue square", "square"]
    for kind in ("greedy", "beam"):
        assert decode_features(module.net, features, DecodingStrategy(kind), IDX_TO_WORD, 6)[0] == expected
    loaded = load_captioner(save_like_lightning(module, tmp_path / "bag.ckpt"))
    assert isinstance(loaded.net, BagCaptioner) and loaded.net.out.in_features == 24 and not loaded.training
    assert decode_features(loaded.net, features, DecodingStrategy("beam"), IDX_TO_WORD, 6)[0] == expected


def test_transformer_round_trip_rebuilds_the_stored_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = functools.partial(CaptioningTransformer, wordvec_dim=8, num_heads=2, num_layers=2, max_length=40,
                            dim_feedforward=16, dropout=0.0)
    module = CaptioningModule(net, word_to_idx=WORDS, input_dim=6, max_length=35)
    loaded = load_captioner(save_like_lightning(module, tmp_path / "t.ckpt"))
    assert loaded.hparams.net == module.hparams.net and loaded.hparams.max_length == 35
    assert len(loaded.net.layers) == 2 and loaded.net.max_length == 40
    for name, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_net_outside_the_protocol_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^torch.nn.modules.linear.Linear is not a captioner network: it "
                                        r"lacks loss, initial_state, step, word_to_idx, null_idx, start_idx, "
                                        r"end_idx, input_dim \(see visgrad.captioning.protocol.Captioner\)$"):
        CaptioningModule(lambda word_to_idx, input_dim: nn.Linear(input_dim, 2), word_to_idx=WORDS,
                         input_dim=3)


def test_files_that_are_not_captioner_checkpoints_are_refused(tmp_path: Path) -> None:
    module = CaptioningModule({"_target_": "test_captioning_checkpoints.BagCaptioner"}, word_to_idx=WORDS,
                              input_dim=5)
    good = save_like_lightning(module, tmp_path / "good.ckpt")
    cases = {
        "gan.ckpt": ({"state_dict": {}, "hyper_parameters": {"lr": 1e-3, "noise_dim": 96}},
                     r"gan.ckpt is not a captioner checkpoint: its hyperparameters are lr, noise_dim \(a "
                     r"CaptioningModule stores net, word_to_idx, input_dim with net a _target_ config\)$"),
        "weights.ckpt": ({"W": torch.zeros(2)},
                         r"weights.ckpt is not a captioner checkpoint: it holds W, not the hyper_parameters "
                         r"and state_dict of a Lightning checkpoint$"),
        "old.ckpt": ({"state_dict": {"model.W_embed": torch.zeros(8, 4)},
                      "hyper_parameters": {"word_to_idx": WORDS, "input_dim": 5, "cell_type": "lstm"}},
                     r"old.ckpt was written by an older visgrad whose captioner checkpoints did not store "
                     r"their network's config \(net\); retrain it with this version$"),
        "mixed.ckpt": ({**torch.load(good, weights_only=False), "state_dict": {"net.bogus": torch.zeros(1)}},
                       r"mixed.ckpt: its weights do not fit the network of its stored config \(Error"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(CheckpointError, match=f"^{tmp_path / name}{message[len(name):]}"):
            load_captioner(tmp_path / name)
    with pytest.raises(CheckpointError, match=r"nope.ckpt: no such checkpoint file$"):
        load_captioner(tmp_path / "nope.ckpt")
