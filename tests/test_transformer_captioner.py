"""CaptioningTransformer: the course's modules, loss masking, cached decoding against the full forward, a
decoding round trip, training through ``train.py model=transformer`` and resume of a Transformer run."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_resume import finish, start  # tests/ is on the path

from visgrad.captioning import (
    CaptioningModule,
    CaptioningTransformer,
    DecodingStrategy,
    beam_search,
    greedy_decode,
    sequence_log_prob,
)
from visgrad.captioning.decoding import PrefixRerun, decode
from visgrad.training import train
from visgrad.utils.preflight import config_problems

WORDS = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "a", "red", "blue", "circle", "square"])}
NULL, START, END = 0, 1, 2

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(dropout: float = 0.0, **kw) -> CaptioningTransformer:
    torch.manual_seed(0)
    sizes = {"input_dim": 6, "wordvec_dim": 8, "num_heads": 2, "num_layers": 2, "max_length": 12,
             "dim_feedforward": 16, **kw}
    return CaptioningTransformer(WORDS, dropout=dropout, **sizes).double()


def test_course_modules_names_and_sizes():
    model = tiny()
    names = dict(model.named_parameters())
    for prefix in ("layers.0.self_attn", "layers.1.cross_attn"):
        for linear in ("query", "key", "value", "proj"):
            assert names[f"{prefix}.{linear}.weight"].shape == (8, 8)
    assert names["embedding.weight"].shape == (8, 8) and names["visual_projection.weight"].shape == (8, 6)
    assert names["output.weight"].shape == (len(WORDS), 8)
    # per layer: 2 attentions (4 E x E + E), feed-forward (E F + F + F E + E), 3 LayerNorms (2 E)
    E, Fd, V, D = 8, 16, len(WORDS), 6
    per_layer = 2 * 4 * (E * E + E) + (2 * E * Fd + Fd + E) + 3 * 2 * E
    assert sum(p.numel() for p in model.parameters()) == 2 * per_layer + V * E + (D * E + E) + (E * V + V)
    with pytest.raises(ValueError, match="must be a multiple of num_heads"):
        tiny(wordvec_dim=6, num_heads=4)


def captions_batch() -> torch.Tensor:
    return torch.tensor([[START, 3, 4, 6, END, NULL, NULL],
                         [START, 5, 7, END, NULL, NULL, NULL],
                         [START, 3, 5, 6, 3, 7, END]])


def test_loss_masks_null_targets_sums_over_time_and_averages_over_captions():
    model = tiny().eval()
    features = torch.randn(3, 6, dtype=torch.float64)
    captions = captions_batch()
    loss = model.loss(features, captions)
    scores = model(features, captions[:, :-1])
    targets = captions[:, 1:]
    per_word = F.cross_entropy(scores.reshape(-1, len(WORDS)), targets.reshape(-1), reduction="none")
    expected = (per_word * (targets != NULL).reshape(-1)).sum() / 3
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    # More <NULL> padding changes nothing: padded inputs come after the words (causal) and their targets
    # are masked.
    padded = torch.cat([captions, torch.full((3, 4), NULL)], dim=1)
    torch.testing.assert_close(model.loss(features, padded), loss, rtol=1e-12, atol=1e-12)


def test_later_words_never_change_earlier_scores():
    model = tiny().eval()
    features = torch.randn(2, 6, dtype=torch.float64)
    words = torch.randint(3, len(WORDS), (2, 6))
    changed = words.clone()
    changed[:, 4:] = torch.randint(3, len(WORDS), (2, 2))
    changed[:, 4] = (words[:, 4] - 2) % (len(WORDS) - 3) + 3  # surely different at position 4
    a, b = model(features, words), model(features, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
    assert (a[:, 4] - b[:, 4]).abs().max() > 1e-6


def test_cached_steps_equal_the_full_forward():
    """Decoding step by step with the key/value cache gives the teacher-forced scores of every prefix."""
    model = tiny().eval()
    features = torch.randn(3, 6, dtype=torch.float64)
    words = captions_batch()
    state = model.initial_state(features)
    steps = []
    for t in range(words.shape[1]):
        scores, state = model.step(words[:, t], state)
        steps.append(scores)
    torch.testing.assert_close(torch.stack(steps, 1), model(features, words), rtol=1e-10, atol=1e-12)


def test_decoders_with_cache_match_prefix_rerun():
    model = tiny().eval()
    features = torch.randn(4, 6, dtype=torch.float64)
    rerun = PrefixRerun(model)
    assert torch.equal(greedy_decode(model, features, 10), greedy_decode(rerun, features, 10))
    cached, cached_lp = beam_search(model, features, 3, 10, 0.7)
    plain, plain_lp = beam_search(rerun, features, 3, 10, 0.7)
    assert torch.equal(cached, plain)
    torch.testing.assert_close(cached_lp, plain_lp)
    torch.testing.assert_close(sequence_log_prob(model, features, cached), cached_lp)
    assert torch.equal(beam_search(model, features, 1, 10)[0], greedy_decode(model, features, 10))
    hot = DecodingStrategy("temperature", temperature=1.0, seed=3)
    assert torch.equal(decode(model, features, hot, 10), decode(model, features, hot, 10))
    cold = DecodingStrategy("temperature", temperature=1e-4, seed=3)
    assert torch.equal(decode(model, features, cold, 10), greedy_decode(model, features, 10))


def test_decoding_round_trip_after_fitting_a_few_captions():
    """Trained on four image/caption pairs, greedy and beam decoding give the captions back."""
    model = tiny(dropout=0.1)
    features = torch.eye(6, dtype=torch.float64)[:4]
    captions = torch.tensor([[START, 3, 4, 6, END, NULL], [START, 5, 7, END, NULL, NULL],
                             [START, 3, 5, 6, 4, END], [START, 7, 7, 6, END, NULL]])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(150):
        optimizer.zero_grad()
        model.loss(features, captions).backward()
        optimizer.step()
    model.eval()
    expected = torch.cat([captions[:, 1:], torch.full((4, 3), NULL)], dim=1)  # sample layout, 8 words
    assert torch.equal(model.sample(features, max_length=8), expected)
    assert torch.equal(beam_search(model, features, 3, 8, 0.7)[0], expected)


def test_longer_than_the_positional_encoding_is_a_clear_error():
    model = tiny(max_length=5)
    with pytest.raises(ValueError, match="positions up to 6 exceed max_len = 5"):
        model.loss(torch.zeros(1, 6, dtype=torch.float64), torch.ones(1, 7, dtype=torch.long))
    state = model.initial_state(torch.zeros(1, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="exceed max_len = 5"):
        model.step(torch.ones(1, dtype=torch.long), (5, state[1]))


def test_module_builds_the_transformer_and_preflight_checks_its_keys(compose_cfg):
    net = functools.partial(CaptioningTransformer, wordvec_dim=8, num_heads=2, num_layers=1, max_length=30,
                            dim_feedforward=16)
    module = CaptioningModule(net, word_to_idx=WORDS, input_dim=6)
    assert isinstance(module.net, CaptioningTransformer) and len(module.net.layers) == 1
    assert module.hparams.net == {"_target_": "visgrad.captioning.transformer.CaptioningTransformer",
                                  "wordvec_dim": 8, "num_heads": 2, "num_layers": 1, "max_length": 30,
                                  "dim_feedforward": 16}
    cfg = compose_cfg("train", ["model=transformer", "model.net.wordvec_dim=30", "model.net.num_heads=4",
                                "model.net.dropout=1.5", "model.net.num_layers=0"])
    assert config_problems(cfg) == [
        "model.net.num_layers=0: must be a positive integer; e.g. model.net.num_layers=1",
        "model.net.dropout=1.5: must be a probability in [0, 1); e.g. model.net.dropout=0.0",
        "model.net.wordvec_dim=30: the Transformer's width must be even and a multiple of "
        "model.net.num_heads=4; e.g. model.net.wordvec_dim=24",
    ]


def test_module_checks_the_net_positions_cover_decoding_and_training_captions(compose_cfg):
    """A net of 12 positions decodes 12 words (the last word is never fed back) and trains on captions of
    13 words (12 inputs); one more either way is refused naming both settings."""
    net = functools.partial(CaptioningTransformer, wordvec_dim=8, num_heads=2, num_layers=1, max_length=12,
                            dim_feedforward=16)
    with pytest.raises(ValueError, match=r"^max_length=13: decoding that many words needs 13 positions but "
                                         r"the net takes at most 12 \(its max_length\); build the net with "
                                         r"max_length >= 13"):
        CaptioningModule(net, word_to_idx=WORDS, input_dim=6, max_length=13)
    module = CaptioningModule(net, word_to_idx=WORDS, input_dim=6, max_length=12).eval()
    features = torch.randn(2, 6)
    assert decode(module.net, features, DecodingStrategy("beam"), 12).shape == (2, 12)
    assert sequence_log_prob(module.net, features, greedy_decode(module.net, features, 12)).isfinite().all()
    assert module(features, torch.ones(2, 13, dtype=torch.long)).isfinite()
    with pytest.raises(ValueError, match=r"^captions of 14 words feed 13 positions but the net takes at most "
                                         r"12 \(its max_length\)"):
        module(features, torch.ones(2, 14, dtype=torch.long))
    cfg = compose_cfg("train", ["model=transformer", "model.net.max_length=20", "model.max_length=30"])
    assert config_problems(cfg) == ["model.net.max_length=20: the Transformer's positions must cover the "
                                    "model.max_length=30 decoded words; e.g. model.net.max_length=50"]


def run_overrides(shapes_root: Path) -> list[str]:
    """200 captions in batches of 50: 4 steps per epoch, 2 epochs; dropout off, so a resumed run equals an
    uninterrupted one exactly (the global RNG that dropout draws from is not checkpointed)."""
    return ["model=transformer", f"data.root={shapes_root}", "data.shapes.num_train=200",
            "data.shapes.num_val=60", "data.batch_size=50", "data.max_train=200",
            "model.net.wordvec_dim=16", "model.net.num_heads=2", "model.net.num_layers=1",
            "model.net.dim_feedforward=32", "model.net.dropout=0.0", "model.meteor=false",
            "model.num_samples=2", "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
            "trainer.deterministic=true", "print_config=false", "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled"]


def test_train_one_epoch_in_process(compose_cfg, shapes_root: Path):
    cfg = compose_cfg("train", [*run_overrides(shapes_root), "trainer.max_epochs=1"])
    metric = train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metric == metrics["val/bleu4"] and 0.0 <= metric <= 1.0
    assert math.isfinite(metrics["train/loss_epoch"]) and math.isfinite(metrics["val/loss"])
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    net = checkpoint["hyper_parameters"]["net"]
    assert net["_target_"] == "visgrad.captioning.transformer.CaptioningTransformer"
    assert net["max_length"] == 50  # conf/model/transformer.yaml
    assert (net["wordvec_dim"], net["num_heads"], net["num_layers"]) == (16, 2, 1)
    assert "net.layers.0.self_attn.query.weight" in checkpoint["state_dict"]


@pytest.mark.slow
def test_kill_and_resume_a_transformer_run(shapes_root: Path, tmp_path: Path):
    """Killed at step 6 (epoch 2, after last.ckpt of epoch 1), ``resume=RUN`` ends like the whole run."""
    base = run_overrides(shapes_root)
    whole = start([*base, f"hydra.run.dir={tmp_path / 'whole'}"], tmp_path)
    killed = start([*base, "+callbacks.kill._target_=fault_injection.KillAtStep", "+callbacks.kill.step=6"],
                   tmp_path)
    code, err = finish(killed)
    assert code == -9, err[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    code, err = finish(start([f"resume={run}"], tmp_path))
    assert code == 0, err[-3000:]
    code, err = finish(whole)
    assert code == 0, err[-3000:]
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    uninterrupted = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == uninterrupted["global_step"] == 8
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=1e-6, atol=1e-7, msg=name)
    resumed_metrics = json.loads((run / "metrics.json").read_text())
    whole_metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert "val/bleu4" in whole_metrics
    assert resumed_metrics == pytest.approx(whole_metrics, rel=1e-6, abs=1e-9)
