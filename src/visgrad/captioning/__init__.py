"""Image captioning (CS231n assignment 3): captioner networks (RNN/LSTM on the ``CELLS`` registry,
Transformer, Show-Attend-Tell, or your own ``Captioner``), decoding, metrics, Lightning training and
checkpoints."""

from visgrad.captioning.attention_lstm import AttentionLSTMCaptioner
from visgrad.captioning.cells import CELLS, Cell
from visgrad.captioning.checkpoints import load_captioner
from visgrad.captioning.decoding import (
    DecodingStrategy,
    beam_search,
    greedy_decode,
    sequence_log_prob,
    temperature_sample,
)
from visgrad.captioning.metrics import caption_metrics
from visgrad.captioning.model import CaptionerBase, CaptioningRNN
from visgrad.captioning.module import CaptioningModule
from visgrad.captioning.protocol import Captioner
from visgrad.captioning.spatial_transformer import SpatialCaptioningTransformer
from visgrad.captioning.transformer import (
    CaptioningTransformer,
    MultiHeadAttention,
    PositionalEncoding,
    TransformerDecoderLayer,
)

__all__ = [
    "AttentionLSTMCaptioner",
    "CELLS",
    "Captioner",
    "CaptionerBase",
    "CaptioningModule",
    "CaptioningRNN",
    "CaptioningTransformer",
    "Cell",
    "DecodingStrategy",
    "MultiHeadAttention",
    "PositionalEncoding",
    "SpatialCaptioningTransformer",
    "TransformerDecoderLayer",
    "beam_search",
    "caption_metrics",
    "greedy_decode",
    "load_captioner",
    "sequence_log_prob",
    "temperature_sample",
]
