"""Image captioning (CS231n assignment 3): RNN/LSTM and Transformer captioners,
 decoding, metrics, Lightning training."""

from visgrad.captioning.decoding import (
    DecodingStrategy,
    beam_search,
    greedy_decode,
    sequence_log_prob,
    temperature_sample,
)
from visgrad.captioning.metrics import caption_metrics
from visgrad.captioning.model import CaptioningRNN
from visgrad.captioning.module import CaptioningModule
from visgrad.captioning.transformer import (
    CaptioningTransformer,
    MultiHeadAttention,
    PositionalEncoding,
    TransformerDecoderLayer,
)

__all__ = [
    "CaptioningModule",
    "CaptioningRNN",
    "CaptioningTransformer",
    "DecodingStrategy",
    "MultiHeadAttention",
    "PositionalEncoding",
    "TransformerDecoderLayer",
    "beam_search",
    "caption_metrics",
    "greedy_decode",
    "sequence_log_prob",
    "temperature_sample",
]
