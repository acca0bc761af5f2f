"""The captioner protocol: what ``CaptioningModule``, the decoders and the evaluation harness need from a
network. ``CaptioningRNN`` and ``CaptioningTransformer`` meet it; so can a network of your own.

A captioner network is a ``torch.nn.Module`` (its parameters are what the LightningModule trains) with the
members of :class:`Captioner` and a constructor ``Net(word_to_idx, input_dim, **its_own_arguments)``:
``CaptioningModule`` builds it with the data's vocabulary and feature size. Configure it as the model's
``net`` (``_partial_``: the module adds ``word_to_idx`` and ``input_dim``)::

    # conf/model/my_captioner.yaml
    _target_: visgrad.captioning.CaptioningModule
    net:
      _target_: my_pkg.MyCaptioner
      _partial_: true
      width: 256
    optimizer: {_target_: torch.optim.Adam, _partial_: true, lr: 1.0e-3}
    scheduler: null

Subclassing ``visgrad.captioning.model.CaptionerBase`` gives the vocabulary members, the CS231n loss (from a
teacher-forced ``forward``) and greedy ``sample``.

Features are any tensor with the batch first: vectors (N, D) (``CaptioningRNN``, ``CaptioningTransformer``),
grids (N, h, w, C) (``data.grid``: ``AttentionLSTMCaptioner``) or images; ``input_dim`` is the size of their
last axis, and the datamodule, the decoders and the harness only ever slice, move and reorder their rows. A
network that attends over a grid may also define ``attention(features, words (N, T)) -> (N, T, h, w)``: the
weights of the step that reads each word (each sums to 1 over the grid cells); the grounding score
(``visgrad.captioning.grounding``) and the per-word figures read it. A network without it is scored and
drawn without them.

Which features a network reads, ``"vectors"``, ``"grid"`` or ``"images"`` (what ``data.grid`` gives:
:data:`visgrad.data.grid_features.FEATURE_KINDS`), it may say with a classmethod
``feature_kind(**arguments) -> str`` of the arguments in its config (``CaptionerBase``: vectors); train.py's
config check then refuses data of another kind before any data work, naming both. Without it, nothing is
checked before training.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Captioner(Protocol):
    """A captioning network (an ``nn.Module``).

    Attributes:
        word_to_idx: the vocabulary ``{word: index}`` of V words it was built with.
        null_idx, start_idx, end_idx: the indices of ``<NULL>`` (padding), ``<START>`` and ``<END>``.
        input_dim: the size of the features' last axis (D of vectors (N, D), C of grids (N, h, w, C)).
        max_length: optional; the most input positions (words) it can take; absent or None: no limit.
            ``CaptioningModule`` checks it covers decoding and the training captions.

    The decoding state is anything the network likes: a tensor, or nested tuples / lists of tensors with
    the batch first (beam search repeats and reorders their rows), ints or None.
    """

    word_to_idx: dict[str, int]
    null_idx: int
    start_idx: int
    end_idx: int
    input_dim: int

    def loss(self, features: Tensor, captions: Tensor) -> Tensor:
        """Training loss: features (N, ...) batch first, captions (N, T) int64 with ``<START>`` first and
        ``<NULL>`` padding (reads ``captions[:, :-1]``, predicts ``captions[:, 1:]``) -> a scalar."""

    def initial_state(self, features: Tensor) -> Any:
        """The decoding state before ``<START>`` for features (N, ...)."""

    def step(self, words: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed words (N,) int64: vocabulary scores (N, V) for the next word, and the next state."""


MEMBERS = ("loss", "initial_state", "step", "word_to_idx", "null_idx", "start_idx", "end_idx", "input_dim")


def check_captioner(net: object) -> None:
    """Raise ``TypeError`` naming what ``net`` lacks if it does not meet the protocol."""
    missing = [name for name in MEMBERS if not hasattr(net, name)]
    if not isinstance(net, nn.Module):
        missing.insert(0, "nn.Module as base class")
    if missing:
        raise TypeError(f"{type(net).__module__}.{type(net).__qualname__} is not a captioner network: it "
                        f"lacks {', '.join(missing)} (see visgrad.captioning.protocol.Captioner)")
