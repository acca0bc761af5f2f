"""Check the composed training config before any work starts (data generation, model, Trainer).

``validate_config(cfg)`` raises one ``ConfigError`` that lists every bad value, one line each, naming the
key, the value, what is allowed and an override that fixes it, e.g.::

    model.optimizer.lr=-0.001: must be a positive number; e.g. model.optimizer.lr=0.005

Keys a config does not have are skipped (a captioner has no ``model.noise_dim``, a GAN no
``model.cell_type``). Every value outside ``hydra`` must resolve (an ``${oc.env:X}`` whose variable is
unset is named, not a traceback later). What only the data files can tell (feature size, vocabulary,
caption ids, ``max_train`` larger than the split, corrupt h5) is checked by ``visgrad.data`` when it loads
them; what only Lightning can tell (an accelerator this machine lacks, an unknown precision) when
``visgrad.training`` builds the Trainer, before any data work.

The module is longer than most (~380 lines): it holds the one table of value rules and the cross-key
checks of every kind of model (captioner, GAN, classifier), so that one call reports every problem.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from visgrad.captioning.cells import CELLS
from visgrad.classification import not_an_export
from visgrad.data import digits
from visgrad.data.grid_features import FEATURE_KINDS
from visgrad.diffusion.objectives import OBJECTIVES
from visgrad.diffusion.schedules import NOISE_SCHEDULES
from visgrad.errors import ConfigError
from visgrad.gan.augment import AUGMENTS
from visgrad.gan.callbacks import MIN_JUDGE_IMAGES
from visgrad.gan.losses import GAN_LOSSES
from visgrad.gan.module import metric_names as gan_metric_names
from visgrad.optimizers import INTERVALS
from visgrad.options import (
    fmt,
    is_int,
    is_number,
    non_negative_int,
    non_negative_number,
    one_of,
    optional,
    pair_of,
    positive_int,
    positive_number,
    probability,
    registered,
)
from visgrad.registry import TARGET, RegistryError, locate
from visgrad.utils.target_checks import argument_problems, arguments, is_target

_ABSENT = object()
__all__ = ["ConfigError", "Rule", "config_problems", "rule_problems", "validate_config"]


@dataclass(frozen=True)
class Rule:
    """``check(value)`` is True for a good value; ``allowed`` says what is; ``example`` is a good value.
    With ``target`` set, the rule applies only when a node on the key's path instantiates that class
    (``model`` for ``model.max_length``; ``model`` or ``model.net`` for ``model.net.hidden_dim``)."""

    key: str
    check: Callable[[object], bool]
    allowed: str
    example: object
    target: str | None = None


def limit_batches(v) -> bool:
    """Lightning's ``limit_*_batches``: None, an int >= 0 (batches) or a float in [0, 1] (fraction)."""
    return v is None or non_negative_int(v) or (isinstance(v, float) and 0.0 <= v <= 1.0)


def limit_train_batches(v) -> bool:
    """``limit_batches`` without 0: a run that trains on no batch writes no checkpoint and no metric."""
    return limit_batches(v) and v != 0


CAPTION_DATA = "visgrad.data.CaptionDataModule"
CAPTIONER = "visgrad.captioning.CaptioningModule"
RNN_NET = "visgrad.captioning.CaptioningRNN"
TRANSFORMER_NET = "visgrad.captioning.CaptioningTransformer"
DATA_ARGUMENTS = ("word_to_idx", "input_dim")  # what CaptioningModule passes its net, from the datamodule
CLASSIFIER = "visgrad.classification.ClassifierModule"
EXPORT = "visgrad.classification.ExportClassifier"
GAN = "visgrad.gan.GANModule"
DIFFUSION = "visgrad.diffusion.DiffusionModule"
GAN_DATA = ("visgrad.data.digits.DigitsDataModule", "visgrad.data.mnist.MNISTDataModule")
SHAPES_IMAGES = "visgrad.data.shapes_images.ShapesImagesDataModule"
SAMPLE_QUALITY = "visgrad.gan.callbacks.SampleQualityMetrics"
# modules given factories: (what the module passes itself, {factory key: what the module builds it with})
INJECTED = {
    GAN: (("image_shape",), {"generator": ("noise_dim", "image_shape", "num_classes"),
                             "discriminator": ("image_shape", "num_classes"), "optimizer": ("params",)}),
    DIFFUSION: (("image_shape",), {"net": ("image_shape", "num_classes"), "optimizer": ("params",),
                                   "scheduler": ("optimizer",)}),
    CLASSIFIER: (("class_names", "image_size"), {"net": ("num_classes",), "optimizer": ("params",),
                                                  "scheduler": ("optimizer",)}),
}
MOVED_KEYS = {"lr": "model.optimizer.lr", "betas": "model.optimizer.betas", "architecture": "model.generator "
              "and model.discriminator (model=gan_dc)", "fc_hidden": "model.generator.hidden",
              "width": "model.net.width"}
BETAS = pair_of(lambda b: isinstance(b, float) and 0 <= b < 1)  # Adam refuses an int (0 for 0.0)
NULL_OR_POSITIVE = "null (all) or a positive integer"
LIMIT_BATCHES = "null, an integer >= 0 (batches) or a fraction in [0, 1]"

RULES: tuple[Rule, ...] = (
    Rule("seed", lambda v: is_int(v) and 0 <= v < 2**32, "an integer in [0, 4294967295]", 231),
    Rule("data.batch_size", positive_int, "a positive integer", 100),
    Rule("data.num_workers", non_negative_int, "an integer >= 0", 0),
    Rule("data.max_train", optional(positive_int), NULL_OR_POSITIVE, "null", CAPTION_DATA),
    Rule("data.max_eval_images", optional(positive_int), NULL_OR_POSITIVE, "null", CAPTION_DATA),
    Rule("data.dataset", one_of("shapes", "coco"), "one of shapes, coco", "shapes (or data=coco)",
         CAPTION_DATA),
    Rule("data.seed", is_int, "an integer", 0, CAPTION_DATA),
    Rule("data.grid", optional(one_of("lite0", "pixels", "lite0_pooled")),
         "null, lite0, pixels or lite0_pooled", "lite0", CAPTION_DATA),
    Rule("data.pca_features", one_of(True, False), "true or false", "true", CAPTION_DATA),
    Rule("data.shapes.num_train", positive_int, "a positive integer", 4000, CAPTION_DATA),
    Rule("data.shapes.num_val", positive_int, "a positive integer", 500, CAPTION_DATA),
    Rule("data.shapes.image_size", lambda v: is_int(v) and v >= 32, "an integer >= 32", 64, CAPTION_DATA),
    Rule("model.net.cell_type", registered(CELLS), CELLS.allowed, "lstm (or model=rnn)", RNN_NET),
    Rule("model.net.wordvec_dim", positive_int, "a positive integer", 128, RNN_NET),
    Rule("model.net.hidden_dim", positive_int, "a positive integer", 128, RNN_NET),
    Rule("model.net.wordvec_dim", positive_int, "a positive integer", 64, TRANSFORMER_NET),
    Rule("model.net.num_heads", positive_int, "a positive integer", 4, TRANSFORMER_NET),
    Rule("model.net.num_layers", positive_int, "a positive integer", 1, TRANSFORMER_NET),
    Rule("model.net.dim_feedforward", positive_int, "a positive integer", 256, TRANSFORMER_NET),
    Rule("model.net.dropout", probability, "a probability in [0, 1)", 0.0, TRANSFORMER_NET),
    Rule("model.net.max_length", positive_int, "a positive integer", 50, TRANSFORMER_NET),
    Rule("model.optimizer.lr", positive_number, "a positive number", 0.005, CAPTIONER),
    Rule("model.optimizer.lr", positive_number, "a positive number", 0.001, GAN),
    Rule("model.optimizer.lr", positive_number, "a positive number", 0.003, CLASSIFIER),
    Rule("model.scheduler.gamma", lambda v: positive_number(v) and v <= 1, "a number in (0, 1]", 0.9,
         CAPTIONER),
    Rule("model.max_length", positive_int, "a positive integer", 30, CAPTIONER),
    Rule("model.beam_size", positive_int, "a positive integer", 3, CAPTIONER),
    Rule("model.length_alpha", non_negative_number, "a number >= 0", 0.0, CAPTIONER),
    Rule("model.num_samples", non_negative_int, "an integer >= 0", 8, CAPTIONER),
    Rule("model.meteor", one_of(True, False, "auto"), "true, false or auto", "auto", CAPTIONER),
    Rule("model.loss", registered(GAN_LOSSES), GAN_LOSSES.allowed, "vanilla", GAN),
    Rule("model.noise_dim", positive_int, "a positive integer", 96, GAN),
    Rule("model.optimizer.betas", BETAS, "two floats in [0, 1) (0.0, not 0)", "[0.5,0.999]", GAN),
    Rule("model.n_critic", positive_int, "a positive integer", 5, GAN),
    Rule("model.gp_weight", non_negative_number, "a number >= 0", 10.0, GAN),
    Rule("model.generator.hidden", positive_int, "a positive integer", 1024, GAN),
    Rule("model.discriminator.hidden", positive_int, "a positive integer", 256, GAN),
    Rule("model.num_fixed", lambda v: is_int(v) and v >= 2, "an integer >= 2", 64, GAN),
    Rule("model.ema_decay", optional(lambda v: is_number(v) and 0 < v < 1), "null or a number in (0, 1)",
         0.999, GAN),
    Rule("model.augment", lambda v: isinstance(v, Sequence) and not isinstance(v, str)
         and all(a in AUGMENTS for a in v),
         f"a list of {', '.join(AUGMENTS)} (or [])", "[translation,cutout]", GAN),
    Rule("model.r1_weight", non_negative_number, "a number >= 0 (0: no R1 penalty)", 1.0, GAN),
    Rule("model.num_classes", non_negative_int, "an integer >= 0 (0: unconditional)", 10, GAN),
    Rule("model.objective", registered(OBJECTIVES), OBJECTIVES.allowed, "pred_v", DIFFUSION),
    Rule("model.beta_schedule", registered(NOISE_SCHEDULES), NOISE_SCHEDULES.allowed, "sigmoid", DIFFUSION),
    Rule("model.ema_decay", lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)", 0.999, DIFFUSION),
    Rule("model.cond_drop_prob", lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)", 0.1, DIFFUSION),
    Rule("model.sampling_timesteps", optional(positive_int), "null (all steps) or a positive integer", 50,
         DIFFUSION),
    Rule("model.net.width", positive_int, "a positive integer", 16, CLASSIFIER),
    Rule("model.scheduler_interval", one_of(*INTERVALS), "epoch or step", "step", CLASSIFIER),
    Rule("model.scheduler_interval", one_of(*INTERVALS), "epoch or step", "step", DIFFUSION),
    Rule("data.repeat", positive_int, "a positive integer", 1),
    Rule("data.num_val", lambda v: positive_int(v) and v < digits.NUM_IMAGES,
         f"an integer in [1, {digits.NUM_IMAGES - 1}]", 300, GAN_DATA[0]),
    Rule("data.image_size", lambda v: is_int(v) and v >= 16 and v % 4 == 0,
         "an integer >= 16 divisible by 4", 28, GAN_DATA[0]),
    Rule("data.num_val", lambda v: positive_int(v) and v <= 10000, "an integer in [1, 10000]", 1000,
         GAN_DATA[1]),
    Rule("data.max_train", optional(lambda v: positive_int(v) and v <= 60000), "null (all) or an integer in "
         "[1, 60000]", "null", GAN_DATA[1]),
    Rule("callbacks.sample_quality.judge_epochs", positive_int, "a positive integer (an untrained judge's "
         "distances mean nothing)", 5, SAMPLE_QUALITY),
    Rule("callbacks.sample_quality.num_samples", optional(positive_int), "null (as many as val images) or a "
         "positive integer", "null", SAMPLE_QUALITY),
    Rule("callbacks.sample_quality.max_train", positive_int, "a positive integer", 10000, SAMPLE_QUALITY),
    Rule("callbacks.sample_quality.seed", is_int, "an integer", 0, SAMPLE_QUALITY),
    Rule("data.dataset.num_train", positive_int, "a positive integer", 4000, SHAPES_IMAGES),
    Rule("data.dataset.num_val", positive_int, "a positive integer", 500, SHAPES_IMAGES),
    Rule("data.dataset.image_size", lambda v: is_int(v) and v >= 32, "an integer >= 32", 64, SHAPES_IMAGES),
    Rule("trainer.max_epochs", lambda v: v is None or v == -1 or positive_int(v),
         "a positive integer (or -1: no limit)", 10),
    Rule("trainer.min_epochs", optional(non_negative_int), "null or an integer >= 0", 1),
    Rule("trainer.gradient_clip_val", optional(non_negative_number), "null (off) or a number >= 0", 5.0),
    Rule("trainer.limit_train_batches", limit_train_batches, "null (all), a positive integer (batches) or a "
         "fraction in (0, 1] (0 would train nothing)", "null"),
    Rule("trainer.limit_val_batches", limit_batches, LIMIT_BATCHES, "null"),
    Rule("trainer.log_every_n_steps", positive_int, "a positive integer", 10),
    Rule("trainer.check_val_every_n_epoch", optional(positive_int), "null or a positive integer", 1),
    Rule("monitor.mode", one_of("min", "max"), "min or max", "max"),
    Rule("faults.nonfinite", one_of("raise", "skip"), "raise or skip", "raise"),
    Rule("faults.max_skipped", optional(non_negative_int), "null (no limit) or an integer >= 0", 20),
)


def _select(cfg: DictConfig, key: str):
    """``cfg``'s resolved value at ``key``, or ``_ABSENT``; ``???`` or an unresolvable value: ConfigError."""
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except MissingMandatoryValue:
        raise ConfigError(f"{key}=???: a value is required; set {key}=VALUE") from None
    except OmegaConfBaseException as error:
        raise ConfigError(f"{key}: cannot resolve its value ({str(error).splitlines()[0]})") from None


def _local_sweep() -> bool:
    """Whether this job belongs to a ``-m`` sweep run by Hydra's basic (in-process, local) launcher."""
    if not HydraConfig.initialized():
        return False
    hydra = HydraConfig.get()
    return hydra.mode == RunMode.MULTIRUN and hydra.launcher.get("_target_", "").endswith(".BasicLauncher")


def _applies(cfg: DictConfig, rule: Rule) -> bool:
    if rule.target is None:
        return True
    parts = rule.key.split(".")
    return any(is_target(OmegaConf.select(cfg, ".".join(parts[:end] + [TARGET])), rule.target)
               for end in range(1, len(parts)))


def rule_problems(cfg: DictConfig, rules: tuple[Rule, ...]) -> list[str]:
    """One line per value of ``cfg`` that breaks one of ``rules`` (keys ``cfg`` lacks are skipped)."""
    problems = []
    for rule in rules:
        if not _applies(cfg, rule):
            continue
        try:
            value = _select(cfg, rule.key)
        except ConfigError as error:
            problems.append(str(error))
            continue
        if value is not _ABSENT and not rule.check(value):
            problems.append(f"{rule.key}={fmt(value)}: must be {rule.allowed}; "
                            f"e.g. {rule.key}={rule.example}")
    return problems


def config_problems(cfg: DictConfig) -> list[str]:
    """One line per bad value of ``cfg`` (empty when all is well)."""
    problems = rule_problems(cfg, RULES)
    problems += [line for line in unresolvable_values(cfg) if line not in problems]
    if _local_sweep() and _select(cfg, "trainer.strategy") == "ddp" and _select(cfg, "trainer.devices") != 1:
        problems.append("trainer.strategy=ddp in a local -m sweep: Lightning starts every further DDP "
                        "process by running the command again, which would rerun the whole sweep; use "
                        "trainer.strategy=ddp_spawn for local sweeps (or hydra/launcher=slurm on a cluster)")
    problems += _gan_problems(cfg)
    problems += _captioner_problems(cfg)
    problems += _injected_problems(cfg)
    problems += _export_problems(cfg)
    try:
        ckpt_path, resume = cfg.get("ckpt_path"), cfg.get("resume")
    except OmegaConfBaseException:  # reported by unresolvable_values
        ckpt_path = resume = None
    if ckpt_path is not None and not resume:  # a resume continues from the run's last.ckpt
        path = Path(str(ckpt_path)).expanduser()
        if path.is_dir():
            problems.append(f"ckpt_path={fmt(ckpt_path)} is a folder, not a checkpoint file; pass a .ckpt "
                            f"file (e.g. {path / 'checkpoints' / 'last.ckpt'})")
        elif not path.is_file():
            problems.append(f"ckpt_path={fmt(ckpt_path)}: no such checkpoint file; pass an existing .ckpt "
                            "file (to continue a killed run, use resume=<its run folder> instead)")
    return problems


def unresolvable_values(cfg: DictConfig, prefix: str = "") -> list[str]:
    """One line per value of ``cfg`` (but ``hydra``) that is ``???`` or whose interpolation cannot be
    resolved (``${oc.env:X}`` with X unset, ``${a.key}`` that does not exist), as ``_select`` words it."""
    problems = []
    keys = cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg))
    for key in keys:
        path = f"{prefix}{key}"
        if path == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            problems.append(f"{path}=???: a value is required; set {path}=VALUE")
        elif OmegaConf.is_interpolation(cfg, key):
            try:
                cfg[key]
            except OmegaConfBaseException as error:
                problems.append(f"{path}: cannot resolve its value ({str(error).splitlines()[0]})")
        elif isinstance(cfg[key], DictConfig | ListConfig):
            problems += unresolvable_values(cfg[key], f"{path}.")
    return problems


def _gan_problems(cfg: DictConfig) -> list[str]:
    """What a GAN model needs from the rest of the config (the experiment=gan_* presets set it all)."""
    problems, fix = [], "(experiment=gan_vanilla|gan_ls|gan_dc|gan_wgan_gp sets it)"
    model, data = OmegaConf.select(cfg, "model._target_"), OmegaConf.select(cfg, "data._target_")
    if model != GAN:
        if data in GAN_DATA and model not in (None, DIFFUSION):
            problems.append(f"data._target_={fmt(data)}: images for the GANs, which model {fmt(model)} "
                            "does not train on; pick a GAN with "
                            "experiment=gan_vanilla|gan_ls|gan_dc|gan_wgan_gp, or experiment=ddpm")
        return problems
    if data not in GAN_DATA:
        problems.append(f"data._target_={fmt(data)}: a GAN trains on labelled images; use data=digits or "
                        f"data=mnist {fix}")
    clip = _select(cfg, "trainer.gradient_clip_val")
    if clip not in (None, _ABSENT):
        problems.append(f"trainer.gradient_clip_val={fmt(clip)}: GANs optimise manually (two optimisers), "
                        "which Lightning's gradient clipping does not support; use "
                        f"trainer.gradient_clip_val=null {fix}")
    problems += _judge_problems(cfg, data) + _conditional_gan_problems(cfg)
    monitor, loss = _select(cfg, "monitor.metric"), OmegaConf.select(cfg, "model.loss")
    if monitor is not _ABSENT and GAN_LOSSES.accepts(loss):  # (a bad loss is reported by RULES)
        r1 = OmegaConf.select(cfg, "model.r1_weight")
        logged = gan_metric_names(GAN_LOSSES.get(loss), r1 if is_number(r1) else 0)
        logged += callback_metric_names(cfg)
        if monitor not in logged:
            problems.append(f"monitor.metric={fmt(monitor)}: a GAN logs {', '.join(logged)}; e.g. "
                            f"monitor.metric=val/fd monitor.mode=min {fix}")
    return problems


def _conditional_gan_problems(cfg: DictConfig) -> list[str]:
    """A class-conditional GAN (``model.num_classes`` > 0) builds both networks with ``num_classes``: each
    must take it."""
    classes = OmegaConf.select(cfg, "model.num_classes")
    if not (is_int(classes) and classes > 0):
        return []  # 0 (unconditional), or a bad value that RULES reports
    problems = []
    for name in ("generator", "discriminator"):
        target = OmegaConf.select(cfg, f"model.{name}._target_")
        try:
            accepted = arguments(target) if isinstance(target, str) else None
        except (RegistryError, ImportError):
            continue  # reported by the check of the model's factories
        if accepted is not None and "num_classes" not in accepted:
            problems.append(f"model.{name}._target_={fmt(target)}: takes no num_classes, which "
                            f"model.num_classes={classes} gives it; use a class-conditional {name} (the "
                            f"built-in FC and DC pairs are) or model.num_classes=0")
    return problems


def _judge_problems(cfg: DictConfig, data: str | None) -> list[str]:
    """The sample-quality judge (``callbacks.sample_quality``) must train on enough real images: on a few
    (``data.num_val=1790`` leaves 7 digits) its Fréchet distances come out small, looking excellent, and
    mean nothing."""
    judge = OmegaConf.select(cfg, "callbacks.sample_quality")
    if not isinstance(judge, DictConfig) or not is_target(judge.get(TARGET), SAMPLE_QUALITY):
        return []
    if data == GAN_DATA[0]:
        num_val, key = _select(cfg, "data.num_val"), "data.num_val"
        train = digits.NUM_IMAGES - num_val if is_int(num_val) else None
    else:
        train, key = _select(cfg, "data.max_train"), "data.max_train"
    cap = _select(cfg, "callbacks.sample_quality.max_train")
    needed = MIN_JUDGE_IMAGES
    if not positive_int(train) or not positive_int(cap) or min(train, cap) >= needed:
        return []  # (bad values on their own are reported by RULES)
    if cap < train:
        return [f"callbacks.sample_quality.max_train={cap}: the sample-quality judge would train on {cap} "
                f"images, too few for its distances to mean anything (at least {needed}); e.g. "
                "callbacks.sample_quality.max_train=10000"]
    leaves = f"leaves {train} training images" if key == "data.num_val" else f"keeps {train} training images"
    fix = "data.num_val=300" if key == "data.num_val" else "data.max_train=null"
    return [f"{key}={_select(cfg, key)}: {leaves}, too few for the sample-quality judge (at least {needed}; "
            f"on fewer its Fréchet distances look excellent and mean nothing); e.g. {fix}"]


def callback_metric_names(cfg: DictConfig) -> list[str]:
    """The metrics that ``cfg.callbacks`` log themselves: the ``metric_names`` their classes declare."""
    names = []
    for conf in (OmegaConf.select(cfg, "callbacks") or {}).values():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            try:
                declared = getattr(locate(conf._target_), "metric_names", ())
            except (RegistryError, ImportError):  # reported when the callbacks are instantiated
                continue
            names += list(declared) if isinstance(declared, (list, tuple)) else []
    return names


def _injected_problems(cfg: DictConfig) -> list[str]:
    """A GAN's or a classifier's model node and the factories it is given: no keys their targets do not
    take (old keys point at their new place), and ``_partial_: true`` factories."""
    model = OmegaConf.select(cfg, "model")
    module = next((m for m in INJECTED if isinstance(model, DictConfig) and is_target(model.get(TARGET), m)),
                  None)
    if module is None:
        return []
    supplied, factories = INJECTED[module]
    problems = argument_problems(model, "model", supplied, MOVED_KEYS)
    for name, built_with in factories.items():
        node = model.get(name)
        if not isinstance(node, DictConfig) or TARGET not in node:
            continue  # a missing factory: the module's own error names it
        problems += argument_problems(node, f"model.{name}", built_with)
        if node.get("_partial_") is not True:
            problems.append(f"model.{name}._partial_={fmt(node.get('_partial_'))}: must be true (the module "
                            f"builds it with {', '.join(built_with)}); e.g. model.{name}._partial_=true")
    return problems


def _export_problems(cfg: DictConfig) -> list[str]:
    """An export callback must not be pointed at a file that is not an export (it is never overwritten)."""
    problems = []
    for name, conf in (OmegaConf.select(cfg, "callbacks") or {}).items():
        if isinstance(conf, DictConfig) and conf.get("_target_") == EXPORT and conf.get("path") is not None:
            foreign = not_an_export(Path(str(conf.path)).expanduser())
            if foreign:
                problems.append(f"callbacks.{name}.path={fmt(conf.path)}: {foreign}, which is never "
                                f"overwritten; export to a new file (e.g. callbacks.{name}.path="
                                "data/classifiers/shapes_cnn.pt)")
    return problems


def _captioner_problems(cfg: DictConfig) -> list[str]:
    """A ``CaptioningModule`` and its net: no unknown keys, a ``_partial_`` net, and for the Transformer a
    width that splits into heads and positions that cover decoding."""
    model = OmegaConf.select(cfg, "model")
    if not isinstance(model, DictConfig) or not is_target(model.get(TARGET), CAPTIONER):
        return []
    net = model.get("net")
    if not isinstance(net, DictConfig) or TARGET not in net:
        return [f"model.net={fmt(net)}: a CaptioningModule is given its network as a _target_ node with "
                "_partial_: true (e.g. model=lstm, model=transformer)"]
    problems = argument_problems(net, "model.net", DATA_ARGUMENTS)
    try:
        of_net = {name: f"model.net.{name}" for name in arguments(net[TARGET]) or ()}
    except (RegistryError, ImportError):
        of_net = {}
    problems = argument_problems(model, "model", DATA_ARGUMENTS, of_net) + problems
    if net.get("_partial_") is not True:
        problems.append(f"model.net._partial_={fmt(net.get('_partial_'))}: must be true (the module "
                        "builds its network with the data's word_to_idx and input_dim); e.g. "
                        "model.net._partial_=true")
    if is_target(net.get(TARGET), TRANSFORMER_NET):
        problems += _transformer_problems(cfg)
    return problems + _feature_kind_problems(cfg, net)


# what to set for a network that reads each kind of features (visgrad.data.grid_features.FEATURE_KINDS)
FEATURES_FOR = {"vectors": "data.grid=null (or data.grid=lite0_pooled)",
                "grid": "data.grid=lite0 (data=shapes_grid or data=shapes_hard_grid)",
                "images": "data.grid=pixels"}
SHAPES_OF = {"vectors": "vectors (N, D)", "grid": "a grid (N, h, w, C)", "images": "images (N, S, S, 3)"}


def _feature_kind_problems(cfg: DictConfig, net: DictConfig) -> list[str]:
    """The features ``data.grid`` gives must be the kind the net reads (its ``feature_kind`` classmethod of
    its config's arguments, ``visgrad.captioning.protocol``); a net without it is not checked."""
    grid = OmegaConf.select(cfg, "data.grid")
    try:
        kind_of = getattr(locate(net[TARGET]), "feature_kind", None)
    except (RegistryError, ImportError):
        return []  # reported with the target
    if kind_of is None or grid not in FEATURE_KINDS:  # a bad data.grid is reported by RULES
        return []
    arguments = {key: value for key, value in net.items() if key not in (TARGET, "_partial_")}
    needed, given = kind_of(**arguments), FEATURE_KINDS[grid]
    if needed == given:
        return []
    name = net[TARGET].rsplit(".", 1)[-1]
    return [f"data.grid={fmt(grid)} gives {SHAPES_OF[given]}, but model.net ({name}, as configured) reads "
            f"{SHAPES_OF[needed]}; e.g. {FEATURES_FOR[needed]}"]


def _transformer_problems(cfg: DictConfig) -> list[str]:
    """The Transformer's width (wordvec_dim) must be even (sine/cosine positions) and split into num_heads;
    its positions (max_length) must cover the decoded captions (model.max_length)."""
    problems, select = [], functools.partial(OmegaConf.select, cfg)
    width, heads = select("model.net.wordvec_dim"), select("model.net.num_heads")
    if positive_int(width) and positive_int(heads) and (width % 2 or width % heads):
        problems.append(f"model.net.wordvec_dim={width}: the Transformer's width must be even and a multiple "
                        f"of model.net.num_heads={heads}; e.g. "
                        f"model.net.wordvec_dim={2 * heads * max(1, width // (2 * heads))}")
    positions, decoded = select("model.net.max_length"), select("model.max_length")
    if positive_int(positions) and positive_int(decoded) and positions < decoded:
        problems.append(f"model.net.max_length={positions}: the Transformer's positions must cover the "
                        f"model.max_length={decoded} decoded words; e.g. "
                        f"model.net.max_length={max(50, decoded)}")
    return problems  # bad values on their own are reported by RULES


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` listing every problem of ``cfg`` (see ``config_problems``)."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
