"""``python visualize.py task=captions ckpt_path=PATH``: evaluate a trained captioner checkpoint.

Decodes one split of ``cfg.data`` with every strategy of ``cfg.task.strategies`` (greedy, beam,
temperature), prints a Rich table of BLEU-1..4 / METEOR / CIDEr-D / mean log-probability / time, writes
``captions.png`` (images with generated and reference captions, when the data has images) and
``captions.json`` (all generated captions) into ``cfg.paths.output_dir``, and logs the metrics, the
sample table and the figure to TensorBoard under ``<output_dir>/tensorboard``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from visgrad.captioning.decoding import DecodingStrategy
from visgrad.captioning.figures import caption_grid, samples_markdown
from visgrad.captioning.harness import evaluate_strategies
from visgrad.captioning.metrics import METRIC_NAMES
from visgrad.captioning.module import CaptioningModule
from visgrad.errors import CheckpointError, ConfigError
from visgrad.tasks.runner import open_writer
from visgrad.utils import resolve_device
from visgrad.utils.checkpoint_io import read_checkpoint
from visgrad.utils.hparams import end_session

HOW_TO = "pass ckpt_path=PATH to a checkpoint written by `python train.py model=rnn|lstm|transformer` " \
         "(e.g. logs/train/runs/<time>/checkpoints/last.ckpt)"


def load_captioner(ckpt_path: str | Path | None, device: torch.device) -> CaptioningModule:
    """Load a ``CaptioningModule`` checkpoint, with a clear error if it is missing or of another kind."""
    if not ckpt_path:
        raise ConfigError(f"task=captions needs a checkpoint: {HOW_TO}")
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; {HOW_TO}")
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    state = checkpoint.get("state_dict", {}) if isinstance(checkpoint, dict) else {}
    embedding = "model.embedding.weight" if hparams.get("cell_type") == "transformer" else "model.W_embed"
    if "word_to_idx" not in hparams or embedding not in state:
        raise CheckpointError(f"{path} is not a captioning checkpoint (no CaptioningModule hyperparameters / "
                              f"{embedding} weights); {HOW_TO}")
    module = CaptioningModule(**hparams)
    module.load_state_dict(state)
    return module.to(device).eval()


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path`` on split ``cfg.task.split`` of ``cfg.data``.

    Returns ``{"<strategy>/<metric>": value}`` (metrics and ``log_prob``, the mean caption log-probability).
    """
    task = cfg.task
    device = resolve_device(cfg.get("device", "auto"))
    module = load_captioner(cfg.get("ckpt_path"), device)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    eval_set = datamodule.eval_set(task.split)
    datamodule.check_compatible(module.model.input_dim, module.model.word_to_idx)

    strategies = {name: DecodingStrategy(**OmegaConf.to_container(spec, resolve=True))
                  for name, spec in task.strategies.items()}
    results = evaluate_strategies(module.model, eval_set, strategies, task.max_length, task.meteor,
                                  task.batch_size)

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {f"{name}/{key}": value for name, result in results.items()
               for key, value in result.metrics.items()}
    summary.update({f"{name}/log_prob": result.mean_log_prob for name, result in results.items()})

    console = Console(width=max(Console().width, 110))
    console.print(_metrics_table(results, len(eval_set.references), task.split))
    generated = {result.strategy.label: result.captions for result in results.values()}
    (output_dir / "captions.json").write_text(json.dumps(
        {"ckpt_path": str(cfg.ckpt_path), "split": task.split, "references": eval_set.references,
         "generated": generated, "metrics": summary}, indent=1))

    writer = open_writer(cfg, output_dir)
    for key, value in summary.items():
        writer.add_scalar(f"captions/{key}", value, 0)
    writer.add_text("captions/samples", samples_markdown(eval_set.references, generated, task.num_images), 0)
    figure_path = None
    if eval_set.images is not None:
        figure = caption_grid(eval_set.images, eval_set.references, generated, limit=task.num_images)
        figure_path = output_dir / "captions.png"
        figure.savefig(figure_path, dpi=120)
        writer.add_figure("captions/samples", figure, 0)
    end_session(writer)
    writer.close()

    console.print(f"captions: {output_dir / 'captions.json'}")
    console.print(f"figure: {figure_path or '(none: the data has no images)'}")
    console.print(f"TensorBoard: tensorboard --logdir {output_dir}")
    return summary


HEADERS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "cider_d": "CIDEr-D",
           "meteor": "METEOR"}


def _metrics_table(results: dict, count: int, split: str) -> Table:
    table = Table(title=f"caption quality on {count} {split} images")
    names = [m for m in METRIC_NAMES if any(m in r.metrics for r in results.values())]
    table.add_column("decoding", no_wrap=True)
    for name in names:
        table.add_column(HEADERS[name], justify="right")
    table.add_column("log P", justify="right")
    table.add_column("s", justify="right")
    for result in results.values():
        table.add_row(result.strategy.label, *(f"{result.metrics[n]:.3f}" for n in names),
                      f"{result.mean_log_prob:.2f}", f"{result.seconds:.1f}")
    return table
