"""``python visualize.py task=linear_probe``: what self-supervised pre-training buys, in one table.

Linear probes (:mod:`visgrad.ssl.probe`) on the frozen features of each encoder of ``task.encoders`` (by
default the SimCLR-pre-trained digits CNN and the same CNN trained with every label), and of the first
encoder's network at its random initialisation (``task.random_init``), with ``task.fractions`` of the
training labels (1%, 10%, 100%), scored on the val images of ``task.data``. An encoder is an exported
network file (:mod:`visgrad.classification.export`, whose network has ``embed``); a missing one is trained
first through ``train.py``'s pipeline, as ``python train.py experiment=<its experiment>`` (as
``classifier=shapes`` is). The figure maps each encoder's val features to 2-D (t-SNE or PCA), coloured by
class; TensorBoard's projector gets the features too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visgrad.classification import load_export, not_an_export
from visgrad.errors import ConfigError
from visgrad.options import boolean, each, non_negative_number, one_of, option, optional, positive_int
from visgrad.registry import TARGET, build
from visgrad.ssl.monitor import PROJECTIONS, embed_loader, features_figure, projection_2d, split_loader
from visgrad.ssl.probe import probe_scores
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.tasks.shapes_classifier import _override, train_run

RANDOM = "random_init"
ENCODER_KEYS = {"checkpoint", "experiment"}


def _encoders(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(spec, Mapping) and set(spec) == ENCODER_KEYS and name != RANDOM
        and all(isinstance(v, str) for v in spec.values()) for name, spec in value.items())


def _data(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get(TARGET), str)


def _fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1


@dataclass
class LinearProbeOptions:
    """``task=linear_probe``."""

    encoders: dict = option(
        {"simclr": {"checkpoint": "encoders/simclr_digits.pt", "experiment": "simclr_digits"},
         "supervised": {"checkpoint": "classifiers/cnn_digits.pt", "experiment": "cnn_digits"}},
        _encoders, "a mapping name -> {checkpoint: FILE (relative: under paths.data_dir), experiment: NAME} "
                   f"(names other than {RANDOM})")
    random_init: bool = option(True, boolean, "true or false")
    data: dict = option({TARGET: "visgrad.data.digits_images.DigitsImagesDataModule", "channels": 1}, _data,
                        "a datamodule config with a _target_ (the data the encoders were trained on)")
    fractions: list = option([0.01, 0.1, 1.0], each(_fraction), "a list of label fractions in (0, 1]")
    repeats: int = option(5, positive_int, "a positive integer")
    weight_decay: float = option(1e-3, non_negative_number, "a number >= 0")
    projection: str = option("pca", one_of(*PROJECTIONS), f"one of {', '.join(PROJECTIONS)}")
    log_dir: str | None = option(None, optional(lambda v: isinstance(v, str) and bool(v)),
                                 "null (paths.log_dir) or a folder")


@dataclass
class Prepared:
    """The encoders (label -> frozen network in eval mode), the datamodule and its class names."""

    encoders: dict[str, nn.Module]
    datamodule: Any
    class_names: list[str]


def _ensure_encoder(name: str, spec: Mapping[str, str], data_dir: str, log_dir: str,
                    console) -> tuple[nn.Module, dict]:
    path = Path(data_dir) / Path(spec["checkpoint"]).expanduser()  # an absolute checkpoint stays as it is
    foreign = not_an_export(path)
    if foreign:
        raise ConfigError(f"task.encoders.{name}.checkpoint={path} is {foreign}; point it at an exported "
                          "encoder, or at a new file to train one there")
    if not path.is_file():
        overrides = [f"experiment={spec['experiment']}",
                     _override("callbacks.export_classifier.path", str(path))]
        console.print(f"no {name} encoder at {path} yet: training it once, as python train.py "
                      f"{' '.join(overrides)}", soft_wrap=True)
        train_run(overrides, log_dir)
        if not path.is_file():
            raise ConfigError(f"task.encoders.{name}.experiment={spec['experiment']} wrote no encoder to "
                              f"{path}: the experiment must export it (callbacks.export_classifier.path)")
    net, meta = load_export(path)
    if not callable(getattr(net, "embed", None)):
        raise ConfigError(f"task.encoders.{name}.checkpoint={path}: its {type(net).__name__} has no "
                          "embed(images) method to read features from")
    return net, meta


def prepare(run: TaskRun) -> Prepared:
    """Load (or train once) the encoders, build the random-init one, set up the data and check that every
    encoder takes its images and knows its classes."""
    opts = run.options
    datamodule = build(opts.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    kwargs = datamodule.model_kwargs()
    class_names, size = list(kwargs["class_names"]), int(kwargs["image_size"])
    encoders, first = {}, None
    for name, spec in opts.encoders.items():
        net, meta = _ensure_encoder(name, spec, run.cfg.paths.data_dir, opts.log_dir or run.cfg.paths.log_dir,
                                    run.console)
        if list(meta["class_names"]) != class_names or int(meta["image_size"]) != size:
            raise ConfigError(f"task.encoders.{name}.checkpoint={spec['checkpoint']} was trained on other "
                              f"data ({len(meta['class_names'])} classes, {meta['image_size']}-pixel images) "
                              f"than task.data ({len(class_names)} classes, {size}-pixel images)")
        encoders[name] = net
        first = first or meta["net"]
    if opts.random_init:
        torch.manual_seed(run.seed)
        encoders[RANDOM] = build(first).eval().requires_grad_(False)
    return Prepared({k: v.to(run.device) for k, v in encoders.items()}, datamodule, class_names)


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """Probe every encoder at every fraction; one table (val accuracy, mean +- std over the draws), the
    feature maps figure and the projector. Returns ``probe/<encoder>/acc_<percent>`` and the numbers of
    labelled images ``probe/labels_<percent>``."""
    opts, dm, names = run.options, prepared.datamodule, prepared.class_names
    percent = {f: f"{100 * f:g}" for f in opts.fractions}
    metrics: dict[str, float] = {}
    rows, maps, val_labels = [], {}, None
    for name, net in prepared.encoders.items():
        train_x, train_y, _ = embed_loader(net, split_loader(dm, "train"), dm, device=run.device)
        val_x, val_y, images = embed_loader(net, split_loader(dm, "val"), dm, device=run.device,
                                            keep_images=True)
        scores = probe_scores(train_x, train_y, val_x, val_y, len(names), list(opts.fractions), opts.repeats,
                              opts.weight_decay, run.seed)
        for fraction, score in scores.items():
            metrics[f"probe/{name}/acc_{percent[fraction]}pct"] = score.mean
            metrics[f"probe/labels_{percent[fraction]}pct"] = float(score.num_labels)
        rows.append([name, *(f"{s.mean:.3f} ± {s.std:.3f}" for s in scores.values())])
        maps[name] = projection_2d(val_x, opts.projection, run.seed)
        val_labels = val_y
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        thumbs = (images - low) / (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp(min=1e-8)
        run.writer.add_embedding(val_x, metadata=[names[int(y)] for y in val_y],
                                 label_img=thumbs.expand(-1, 3, -1, -1), tag=f"features/{name}")
    headers = ["encoder", *(f"{percent[f]}% labels ({int(metrics[f'probe/labels_{percent[f]}pct'])})"
                            for f in opts.fractions)]
    run.add_table(f"linear probe: val accuracy ({len(val_labels)} images), mean ± std over {opts.repeats} "
                  "draws", headers, rows, markdown="linear_probe")
    run.add_figure(features_figure(maps, val_labels.numpy(), names,
                                   f"val features ({opts.projection}), coloured by class"), "features")
    run.note("encoders", ", ".join(prepared.encoders))
    return metrics


TASK = Task("linear_probe", "linear probe", prepare, run, LinearProbeOptions, uses_classifier=False)
