"""One evaluation harness for every decoding strategy: decode an ``EvalSet``, score it, time it.

Used by the LightningModule at validation epoch end, by ``visualize.py task=captions`` and by the
benchmarks, so the numbers they report are computed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from visgrad.captioning.decoding import DecodingStrategy, decode, sequence_log_prob
from visgrad.captioning.metrics import caption_metrics
from visgrad.data.vocab import decode_captions


@dataclass
class StrategyResult:
    """Captions of one strategy on an eval set, their metrics and mean log-probability."""

    strategy: DecodingStrategy
    captions: list[str]
    metrics: dict[str, float]
    mean_log_prob: float
    seconds: float


@torch.no_grad()
def decode_features(
    model, features: torch.Tensor, strategy: DecodingStrategy, idx_to_word, max_length: int = 30,
    batch_size: int = 512,
) -> tuple[list[str], torch.Tensor]:
    """Decode (M, D) features in batches on the model's device.

    Returns the M captions as strings and their summed log-probabilities (M,) under the model.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    generator = None
    if strategy.kind == "temperature":
        generator = torch.Generator(device=device).manual_seed(int(strategy.seed))
    captions, log_probs = [], []
    for start in range(0, features.shape[0], batch_size):
        batch = features[start : start + batch_size].to(device=device, dtype=dtype)
        tokens = decode(model, batch, strategy, max_length, generator)
        log_probs.append(sequence_log_prob(model, batch, tokens).cpu())
        captions.extend(decode_captions(tokens.cpu().numpy(), idx_to_word))
    return captions, torch.cat(log_probs)


def evaluate_strategies(
    model, eval_set, strategies: Mapping[str, DecodingStrategy], max_length: int = 30,
    meteor: bool | str = "auto", batch_size: int = 512,
) -> dict[str, StrategyResult]:
    """Decode ``eval_set.features`` with each strategy and score against ``eval_set.references``."""
    was_training = model.training
    model.eval()
    results = {}
    try:
        for name, strategy in strategies.items():
            start = time.perf_counter()
            captions, log_probs = decode_features(
                model, eval_set.features, strategy, eval_set.idx_to_word, max_length, batch_size
            )
            seconds = time.perf_counter() - start
            metrics = caption_metrics(captions, eval_set.references, meteor=meteor)
            results[name] = StrategyResult(strategy, captions, metrics, float(log_probs.mean()), seconds)
    finally:
        model.train(was_training)
    return results
