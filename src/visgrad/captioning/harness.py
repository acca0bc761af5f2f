"""One evaluation harness for every decoding strategy: decode an ``EvalSet``, score it, time it.

Used by the LightningModule at validation epoch end, by ``visualize.py task=captions`` and by the
benchmarks, so the numbers they report are computed the same way. ``decode_sharded`` splits the
decoding across the processes of a distributed run and gathers the captions of the whole set. ``model`` is
any captioner network (``visgrad.captioning.protocol.Captioner``, an ``nn.Module``: decoding runs on the
device and in the dtype of its parameters).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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


def _decode_batches(model, features: torch.Tensor, strategy: DecodingStrategy, max_length: int,
                    batch_size: int):
    """Yield ``(batch, tokens)`` over (M, D) features: each batch (B, D) moved to the model's device and
    dtype, and its decoded word ids (B, max_length). Temperature sampling uses one generator, seeded with
    the strategy's seed, across the batches."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    generator = None
    if strategy.kind == "temperature":
        generator = torch.Generator(device=device).manual_seed(int(strategy.seed))
    for start in range(0, features.shape[0], batch_size):
        batch = features[start : start + batch_size].to(device=device, dtype=dtype)
        yield batch, decode(model, batch, strategy, max_length, generator)


@torch.no_grad()
def decode_features(
    model, features: torch.Tensor, strategy: DecodingStrategy, idx_to_word, max_length: int = 30,
    batch_size: int = 512,
) -> tuple[list[str], torch.Tensor]:
    """Decode (M, D) features in batches on the model's device.

    Returns the M captions as strings and their summed log-probabilities (M,) under the model.
    """
    captions, log_probs = [], []
    for batch, tokens in _decode_batches(model, features, strategy, max_length, batch_size):
        log_probs.append(sequence_log_prob(model, batch, tokens).cpu())
        captions.extend(decode_captions(tokens.cpu().numpy(), idx_to_word))
    return captions, torch.cat(log_probs)


def shard_indices(num_items: int, rank: int, world_size: int) -> torch.Tensor:
    """The items of process ``rank`` of ``world_size``: rank, rank + W, rank + 2W, ... (int64)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    return torch.arange(rank, num_items, world_size)


def gather_shards(
    tokens: torch.Tensor, indices: torch.Tensor, num_items: int, world_size: int,
    all_gather: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Reassemble per-process results into one (num_items, L) tensor, in item order, on every process.

    Inputs:
    - tokens: (S, L) results of this process for its items ``indices`` (S,), S <= ceil(num_items / W).
    - all_gather: ``tensor (P, ...) -> (W, P, ...)``, the same tensor from every process stacked by rank
      (``LightningModule.all_gather``). Shards are padded to P = ceil(num_items / W) rows with index -1
      so that every process sends the same shape; the padding is dropped here.

    Raises if the gathered indices do not cover every item exactly once.
    """
    rows = -(-num_items // world_size)
    padded_tokens = tokens.new_zeros((rows, *tokens.shape[1:]))
    padded_tokens[: len(tokens)] = tokens
    padded_indices = torch.full((rows,), -1, dtype=torch.long, device=tokens.device)
    padded_indices[: len(indices)] = indices.to(tokens.device)
    all_tokens = all_gather(padded_tokens).reshape(world_size * rows, *tokens.shape[1:])
    all_indices = all_gather(padded_indices).reshape(world_size * rows)
    keep = all_indices >= 0
    all_tokens, all_indices = all_tokens[keep], all_indices[keep]
    if not torch.equal(torch.sort(all_indices).values, torch.arange(num_items, device=all_indices.device)):
        raise RuntimeError(f"gathered shards hold {len(all_indices)} items ({len(all_indices.unique())} "
                           f"distinct), expected each of 0..{num_items - 1} once: do all {world_size} "
                           "processes decode the same set?")
    out = torch.empty_like(all_tokens)
    out[all_indices] = all_tokens
    return out


@torch.no_grad()
def decode_sharded(
    model, features: torch.Tensor, strategy: DecodingStrategy, idx_to_word, max_length: int = 30,
    rank: int = 0, world_size: int = 1, all_gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 512,
) -> list[str]:
    """Decode (M, D) features split across ``world_size`` processes; every process gets all M captions.

    Process ``rank`` decodes items rank, rank + W, ... and ``gather_shards`` collects the token ids with
    ``all_gather``. Greedy and beam decoding treat each image on its own, so the captions equal those of a
    single process; temperature sampling draws from per-process generators and does not.
    """
    if world_size > 1 and all_gather is None:
        raise ValueError(f"decode_sharded with world_size={world_size} needs all_gather "
                         "(e.g. LightningModule.all_gather)")
    mine = shard_indices(features.shape[0], rank, world_size)
    batches = _decode_batches(model, features[mine], strategy, max_length, batch_size)
    tokens = [tokens for _, tokens in batches]
    device = next(model.parameters()).device
    tokens = torch.cat(tokens) if tokens else torch.empty((0, max_length), dtype=torch.long, device=device)
    if world_size > 1:
        tokens = gather_shards(tokens, mine, features.shape[0], world_size, all_gather)
    return decode_captions(tokens.cpu().numpy(), idx_to_word)


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
