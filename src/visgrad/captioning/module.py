"""``CaptioningModule``: Lightning training of the captioner network it is given (``CaptioningRNN``,
``CaptioningTransformer`` or any ``visgrad.captioning.protocol.Captioner``), with caption metrics and samples.

The module builds its network from a factory, ``net(word_to_idx=..., input_dim=...)`` (a ``_partial_`` config
or a ``{_target_: ...}`` mapping), and stores the network's config in its hyperparameters, so a checkpoint
rebuilds the same network: ``CaptioningModule.load_from_checkpoint(path)`` or
``visgrad.captioning.checkpoints.load_captioner(path)``.

Logged: ``train/loss`` (step and epoch), ``val/loss``, and at every validation epoch end (greedy
decoding of the datamodule's ``eval_set("val")``, one row per image) ``val/bleu1..4``, ``val/cider_d``
and ``val/meteor`` (when Java is present); beam-search metrics too under ``val/beam/*`` if
``beam_metrics`` is set; for a network with ``attention`` on data with scene objects (`shapes`), the
grounding score of the greedy captions, ``val/grounding/{mass,pointing}`` and their uniform baselines
(``visgrad.captioning.grounding``). On rank zero, a Markdown table of sample captions (reference, greedy,
beam) and, when the eval set has images, a matplotlib grid of images with their captions (and, for a
network with ``attention``, ``val/attention``: each word's attention map).
Under DDP (``trainer=ddp``) every process decodes its share of the eval set (images rank, rank + W, ...),
the token ids are gathered, rank zero scores the whole set once and broadcasts the metrics, so every
process logs the same values, equal to a single-process run's; ``train/loss`` and ``val/loss`` are
averaged over all processes (``sync_dist``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger

from visgrad.captioning.decoding import DecodingStrategy
from visgrad.captioning.figures import attention_figure, caption_grid, samples_markdown
from visgrad.captioning.grounding import METRICS as GROUNDING_METRICS
from visgrad.captioning.grounding import attention_maps, grounding
from visgrad.captioning.harness import decode_features, decode_sharded
from visgrad.captioning.metrics import METRIC_NAMES, caption_metrics, java_available
from visgrad.captioning.protocol import check_captioner
from visgrad.registry import build, partial_config

log = logging.getLogger(__name__)


class CaptioningModule(pl.LightningModule):
    """Train a captioner network (``self.net``) with its loss.

    Args:
        net: the network's factory: a ``functools.partial`` (a Hydra ``_partial_: true`` node) or a
            ``{_target_: ..., **arguments}`` mapping, called with ``word_to_idx`` and ``input_dim``.
        optimizer: ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_`` config).
        scheduler: ``optimizer -> LRScheduler`` stepped once per epoch, or None.
        word_to_idx, input_dim: from the datamodule (``model_kwargs()``).
        max_length: longest decoded caption (words); a network with a ``max_length`` must take that many
            positions.
        beam_size, length_alpha: beam search used for the sample table (and ``val/beam/*`` metrics).
        beam_metrics: also score beam search at every validation epoch (slower).
        meteor: METEOR in the metrics: True | False | "auto" (when Java is installed).
        num_samples: images in the logged sample table / grid (0: none).
    """

    def __init__(
        self,
        net: Callable | Mapping[str, Any],
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        *,
        word_to_idx: dict[str, int],
        input_dim: int,
        max_length: int = 30,
        beam_size: int = 3,
        length_alpha: float = 0.0,
        beam_metrics: bool = False,
        meteor: bool | str = "auto",
        num_samples: int = 8,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.hparams["net"] = _plain(partial_config(net))  # what a checkpoint rebuilds the network from
        self.net = build(net, word_to_idx=dict(word_to_idx), input_dim=int(input_dim))
        check_captioner(self.net)
        limit = getattr(self.net, "max_length", None)
        if limit is not None and limit < max_length:
            raise ValueError(f"max_length={max_length}: decoding that many words needs {max_length} "
                             f"positions but the net takes at most {limit} (its max_length); build the net "
                             f"with max_length >= {max_length} or decode shorter captions")
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.greedy = DecodingStrategy("greedy")
        self.beam = DecodingStrategy("beam", beam_size=beam_size, length_alpha=length_alpha)

    @property
    def metric_names(self) -> list[str]:
        """Every metric this module logs: what ``monitor.metric`` can name (checked before training)."""
        metrics = [m for m in METRIC_NAMES if m != "meteor" or self._meteor_logged()]
        names = ["train/loss", "train/loss_step", "train/loss_epoch", "val/loss"]
        names += [f"val/{m}" for m in metrics]
        names += [f"val/grounding/{m}" for m in GROUNDING_METRICS] * hasattr(self.net, "attention")
        return names + [f"val/beam/{m}" for m in metrics] * bool(self.hparams.beam_metrics)

    def _meteor_logged(self) -> bool:
        return self.hparams.meteor is True or (self.hparams.meteor == "auto" and java_available())

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """The network's loss of captions (B, T) given image features (B, D)."""
        limit = getattr(self.net, "max_length", None)
        if limit is not None and captions.shape[1] - 1 > limit:
            raise ValueError(f"captions of {captions.shape[1]} words feed {captions.shape[1] - 1} positions "
                             f"but the net takes at most {limit} (its max_length); build the net with "
                             f"max_length >= {captions.shape[1] - 1}")
        return self.net.loss(features, captions)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        features, captions = batch
        loss = self(features, captions)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=len(captions))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        features, captions = batch
        loss = self(features, captions)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(captions))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        eval_set = self._val_eval_set()
        if eval_set is None:
            return
        strategies = {"greedy": self.greedy}
        if self.hparams.beam_metrics:
            strategies["beam"] = self.beam
        captions = {
            name: decode_sharded(self.net, eval_set.features, strategy, eval_set.idx_to_word,
                                 self.hparams.max_length, self.trainer.global_rank, self.trainer.world_size,
                                 self.all_gather)
            for name, strategy in strategies.items()
        }
        metrics = None
        if self.trainer.is_global_zero:
            metrics = {name: caption_metrics(generated, eval_set.references, meteor=self.hparams.meteor)
                       for name, generated in captions.items()}
            scores = grounding(self.net, eval_set, captions["greedy"])
            metrics["greedy"].update({f"grounding/{k}": v for k, v in (scores or {}).items()})
        metrics = self.trainer.strategy.broadcast(metrics, src=0)
        for name, values in metrics.items():
            prefix = "val/" if name == "greedy" else f"val/{name}/"
            for key, value in values.items():
                show = name == "greedy" and key in ("bleu4", "cider_d")
                # The same value on every process: the mean over processes leaves it as it is.
                self.log(prefix + key, value, prog_bar=show, sync_dist=True)
        if self.trainer.is_global_zero and self.hparams.num_samples > 0:
            self._log_samples(eval_set, captions["greedy"])

    def _val_eval_set(self):
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "eval_set"):
            log.warning("no datamodule with eval_set('val'): caption metrics are not computed")
            return None
        return datamodule.eval_set("val")

    def _log_samples(self, eval_set, greedy_captions: list[str]) -> None:
        """Log a sample table (and image grid) of the first ``num_samples`` val images to TensorBoard."""
        writers = [lg.experiment for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        if not writers:
            return
        n = min(self.hparams.num_samples, len(eval_set.references))
        beam, _ = decode_features(self.net, eval_set.features[:n], self.beam, eval_set.idx_to_word,
                                  self.hparams.max_length)
        references = eval_set.references[:n]
        generated = {"greedy": greedy_captions[:n], self.beam.label: beam}
        table = samples_markdown(references, generated, limit=n)
        figures = {}
        if eval_set.images is not None:
            figures["val/samples"] = caption_grid(eval_set.images[:n], references, generated, limit=n)
        if eval_set.images is not None and hasattr(self.net, "attention"):
            greedy = greedy_captions[:n]
            maps = attention_maps(self.net, eval_set.features[:n], greedy, eval_set.word_to_idx)
            figures["val/attention"] = attention_figure(eval_set.images[:n], greedy, maps, limit=n)
        for writer in writers:
            writer.add_text("val/samples", table, self.global_step)
            for tag, figure in figures.items():
                writer.add_figure(tag, figure, self.global_step, close=False)
        for figure in figures.values():
            plt.close(figure)

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("CaptioningModule has no optimizer: pass optimizer=<params -> Optimizer> "
                             "(conf/model/*.yaml sets a _partial_ torch.optim.Adam)")
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}



def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """A net config with OmegaConf containers (from Hydra) turned into plain dicts and lists."""
    return {key: OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig))
            else value for key, value in config.items()}
