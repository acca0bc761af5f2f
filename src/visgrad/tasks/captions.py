"""``python visualize.py task=captions ckpt_path=PATH``: evaluate a trained captioner checkpoint.

Decodes one split of ``cfg.data`` with every strategy of ``task.strategies`` (greedy, beam, temperature),
tabulates BLEU-1..4 / METEOR / CIDEr-D / mean log-probability / time, writes ``captions.png`` (images with
generated and reference captions, when the data has images) and ``captions.json`` (all generated
captions) into the run folder, and logs the metrics, the sample table and the figure to TensorBoard. For a
network with ``attention`` (``model=lstm_attention``) on `shapes`, it also scores each strategy's grounding
(``<strategy>/grounding/mass``, ``.../pointing`` and their uniform baselines, a table) and draws
``attention.png``: each image's greedy caption with the attention map of every word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from visgrad.captioning import checkpoints
from visgrad.captioning.decoding import DecodingStrategy
from visgrad.captioning.figures import attention_figure, caption_grid, samples_markdown
from visgrad.captioning.grounding import attention_maps, grounding
from visgrad.captioning.harness import evaluate_strategies
from visgrad.captioning.metrics import METRIC_NAMES
from visgrad.captioning.module import CaptioningModule
from visgrad.errors import CheckpointError, ConfigError
from visgrad.options import non_negative_int, one_of, option, positive_int
from visgrad.tasks.figures import save_figure, save_text
from visgrad.tasks.lifecycle import Task, TaskRun

DEFAULT_STRATEGIES = {
    "greedy": {"kind": "greedy"},
    "beam": {"kind": "beam", "beam_size": 3, "length_alpha": 0.7},
    "temperature": {"kind": "temperature", "temperature": 0.5, "seed": 0},
}


def _strategies(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


@dataclass
class CaptionsOptions:
    """``task=captions`` (the checkpoint is the top-level ``ckpt_path``, the data ``data=``)."""

    split: str = option("val", one_of("train", "val"), "train or val")
    max_length: int = option(30, positive_int, "a positive integer")
    batch_size: int = option(512, positive_int, "a positive integer")
    meteor: bool | str = option("auto", one_of(True, False, "auto"),
                                "true, false or auto (METEOR needs Java)")
    strategies: dict[str, dict[str, Any]] = option(
        DEFAULT_STRATEGIES, _strategies, "a mapping of names to decoding strategies ({kind: greedy}, {kind: "
        "beam, beam_size, length_alpha}, {kind: temperature, temperature, seed})")
    num_images: int = option(12, non_negative_int, "an integer >= 0")

    def problems(self) -> list[str]:
        problems = []
        for name, spec in self.strategies.items():
            try:
                DecodingStrategy(**spec)
            except (TypeError, ValueError) as err:
                problems.append(f"strategies.{name}={spec}: {err}")
        return problems


HOW_TO = "pass ckpt_path=PATH to a checkpoint written by `python train.py model=rnn|lstm|transformer` " \
         "(e.g. logs/train/runs/<time>/checkpoints/last.ckpt)"


def load_captioner(ckpt_path: str | Path | None, device: torch.device) -> CaptioningModule:
    """Load a ``CaptioningModule`` checkpoint, with a clear error if it is missing or of another kind."""
    if not ckpt_path:
        raise ConfigError(f"task=captions needs a checkpoint: {HOW_TO}")
    try:
        return checkpoints.load_captioner(Path(str(ckpt_path)).expanduser(), device)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; {HOW_TO}") from None


@dataclass
class Prepared:
    """The loaded captioner, the evaluation set and the strategies by name."""

    module: CaptioningModule
    eval_set: Any
    strategies: dict[str, DecodingStrategy]


def prepare(run: TaskRun) -> Prepared:
    """Load the checkpoint and the split of ``cfg.data``, check that they fit, build the strategies."""
    opts = run.options
    module = load_captioner(run.cfg.get("ckpt_path"), run.device)
    datamodule = instantiate(run.cfg.data)
    datamodule.prepare_data()
    eval_set = datamodule.eval_set(opts.split)
    datamodule.check_compatible(module.net.input_dim, module.net.word_to_idx)
    strategies = {name: DecodingStrategy(**spec) for name, spec in opts.strategies.items()}
    return Prepared(module, eval_set, strategies)


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """Decode and score ``task.split``; returns ``{"<strategy>/<metric>": value}`` (metrics and
    ``log_prob``, the mean caption log-probability)."""
    opts, eval_set = run.options, prepared.eval_set
    results = evaluate_strategies(prepared.module.net, eval_set, prepared.strategies, opts.max_length,
                                  opts.meteor, opts.batch_size)
    summary = {f"{name}/{key}": value for name, result in results.items()
               for key, value in result.metrics.items()}
    summary.update({f"{name}/log_prob": result.mean_log_prob for name, result in results.items()})
    _grounding(run, prepared, results, summary)

    names = [m for m in METRIC_NAMES if any(m in r.metrics for r in results.values())]
    run.add_table(f"caption quality on {len(eval_set.references)} {opts.split} images",
                  ["decoding", *(HEADERS[name] for name in names), "log P", "s"],
                  [[r.strategy.label, *(f"{r.metrics[n]:.3f}" for n in names), f"{r.mean_log_prob:.2f}",
                    f"{r.seconds:.1f}"] for r in results.values()])
    generated = {result.strategy.label: result.captions for result in results.values()}
    save_text(json.dumps({"ckpt_path": str(run.cfg.ckpt_path), "split": opts.split,
                          "references": eval_set.references, "generated": generated, "metrics": summary},
                         indent=1), run.add_file(run.output_dir / "captions.json"))
    samples = samples_markdown(eval_set.references, generated, opts.num_images)
    run.writer.add_text("captions/samples", samples, 0)
    if eval_set.images is None:
        run.note("figure", "none: the data has no images")
    else:
        figure = caption_grid(eval_set.images, eval_set.references, generated, limit=opts.num_images)
        run.writer.add_figure("captions/samples", figure, 0, close=False)
        save_figure(figure, run.add_file(run.output_dir / "captions.png"), dpi=120, bbox_inches=None)
    return summary


def _grounding(run: TaskRun, prepared: Prepared, results: dict, summary: dict[str, float]) -> None:
    """Grounding scores (into ``summary`` and a table) and the per-word attention figure, for a network with
    ``attention`` on data with scene objects."""
    net, eval_set, opts = prepared.module.net, prepared.eval_set, run.options
    scores = {name: grounding(net, eval_set, result.captions) for name, result in results.items()}
    if any(s is None for s in scores.values()):
        run.note("grounding", "none: the network has no attention maps or the data no scene objects")
        return
    for name, values in scores.items():
        summary.update({f"{name}/grounding/{key}": value for key, value in values.items()})
    run.add_table("grounding: attention on the object each word names (uniform attention in brackets)",
                  ["decoding", "mass", "pointing", "words", "unmatched"],
                  [[results[name].strategy.label, f"{v['mass']:.3f} ({v['mass_uniform']:.3f})",
                    f"{v['pointing']:.3f} ({v['pointing_uniform']:.3f})", f"{v['words']:.0f}",
                    f"{v['unmatched']:.3f}"] for name, v in scores.items()])
    if opts.num_images:
        first = next(iter(results.values()))
        n = min(opts.num_images, len(first.captions))
        maps = attention_maps(net, eval_set.features[:n], first.captions[:n], eval_set.word_to_idx)
        figure = attention_figure(eval_set.images[:n], first.captions[:n], maps, limit=n)
        run.writer.add_figure("captions/attention", figure, 0, close=False)
        save_figure(figure, run.add_file(run.output_dir / "attention.png"), dpi=120, bbox_inches=None)


HEADERS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "cider_d": "CIDEr-D",
           "meteor": "METEOR"}


TASK = Task("captions", "caption quality", prepare, run, CaptionsOptions, uses_classifier=False)
