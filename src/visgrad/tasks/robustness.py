"""``python visualize.py task=robustness``: robustness curves, accuracy against the attack budget eps for each
attack of ``task.attacks`` (:data:`~visgrad.vision.attacks.ATTACKS`, run untargeted) on each classifier of
``task.classifiers`` (by default the digits CNN on scikit-learn's real digits, the shapes CNN and
EfficientNet-Lite0 on the real sample photos), as one figure, a table and metrics.

- A budgeted attack (``fgsm``, ``pgd``, ``pgd_l2``: an ``eps`` option) runs once per budget of the grid of its
  norm (``task.eps.linf`` / ``task.eps.l2``, pixel levels /255); an image counts as correct at eps if the
  classifier still gives its label on the adversarial image.
- An attack without a budget (``carlini_wagner``, ``normalized_gradient``: the smallest perturbation it finds)
  runs once; an image counts as correct at eps unless it was fooled with a perturbation of at most eps in the
  attack's norm.
- The label is the true class where known (digits, shapes) and else the clean prediction (photos): the
  accuracy is then the fraction whose prediction no attack of that size changes.
- ``acc_png`` counts the adversarial images as they come back from an 8-bit PNG
  (:func:`~visgrad.vision.fooling.png_round_trip`).

Metrics: ``robustness/<classifier>/clean_acc``, ``robustness/<classifier>/<attack>/acc_eps<eps>`` and
``.../acc_png_eps<eps>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig
from rich.progress import Progress

from visgrad.data.digits_images import digits_inputs
from visgrad.data.image_sets import InputBatch, load_inputs
from visgrad.errors import ConfigError
from visgrad.models.classifier import Classifier
from visgrad.options import as_list, each, fmt, nested, non_negative_number, option, positive_int, registered
from visgrad.tasks.config import load_classifier
from visgrad.tasks.inputs import predict
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.vision.attacks import ATTACKS, NORMS, Attack
from visgrad.vision.fooling import png_round_trip

NORM_LABELS = {"linf": "L-inf", "l2": "L2"}
NUM_IMAGES = {"digits": 200, "shapes": 200, "efficientnet_lite0": 7}


def _classifier_nodes(value) -> bool:
    """A mapping name -> classifier config (a ``_target_`` and its arguments) or null (left out), not all
    null."""
    return isinstance(value, dict) and any(node is not None for node in value.values()) and all(
        node is None or (isinstance(node, dict) and "_target_" in node) for node in value.values())


def _counts(value) -> bool:
    return isinstance(value, dict) and all(v is None or positive_int(v) for v in value.values())


@dataclass
class EpsGrid:
    """``task.eps``: the budgets of the curves in pixel levels (/255), per norm (L2: of the whole image)."""

    linf: list[float] = option([0, 2, 8, 32], each(non_negative_number), "a list of numbers >= 0 (/255)")
    l2: list[float] = option([0, 64, 255, 1020], each(non_negative_number), "a list of numbers >= 0 (/255)")


@dataclass
class RobustnessOptions:
    """``task=robustness``; each attack's own options are under ``task.<attack name>`` (their ``eps`` is set
    from ``task.eps``)."""

    attacks: list[str] | str = option(["fgsm", "pgd", "pgd_l2", "carlini_wagner"], each(registered(ATTACKS)),
                                      f"one attack or a list of them: {ATTACKS.allowed}")
    classifiers: dict = option({}, _classifier_nodes, "a mapping name -> classifier config (a _target_ and "
                               "its arguments) or null (left out), with at least one classifier")
    num_images: dict = option(NUM_IMAGES, _counts,
                              "a mapping classifier name -> null (all) or a positive integer")
    batch_size: int = option(64, positive_int, "a positive integer")
    eps: EpsGrid = nested(EpsGrid)


@dataclass
class Prepared:
    """The attacks, and per classifier key its classifier, its inputs and their labels (N,) on the CPU."""

    attacks: list[Attack]
    classifiers: dict[str, Classifier]
    inputs: dict[str, InputBatch]
    labels: dict[str, torch.Tensor]


def classifier_inputs(classifier: Classifier, node: dict, cfg: DictConfig, limit: int | None) -> InputBatch:
    """The inputs of a classifier: the held-out digits for a digits classifier (name ``digits*``), the shapes
    validation images for ``shapes``, the sample photos for any other (ImageNet) classifier."""
    size, norm = classifier.image_size, classifier.norm
    if classifier.name.startswith("digits"):
        return digits_inputs(size, limit, node.get("dataset"), norm)
    if classifier.name == "shapes":
        root = node.get("data_root") or Path(cfg.paths.data_dir) / "shapes"
        return load_inputs("shapes", size, limit, root, node.get("dataset"), norm=norm)
    return load_inputs("samples", size, limit, norm=norm)


def prepare(run: TaskRun) -> Prepared:
    """Resolve the attacks (no name twice), then load each classifier (training a missing digits or shapes
    classifier once) and its inputs; ``task.num_images`` of a classifier left out is ignored."""
    opts = run.options
    attacks = [ATTACKS.get(name) for name in as_list(opts.attacks)]
    names = [attack.name for attack in attacks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"task.attacks={fmt(opts.attacks)}: {', '.join(twice)} more than once")
    classifiers, inputs, labels = {}, {}, {}
    for key, node in opts.classifiers.items():
        if node is None:
            continue
        classifier = load_classifier(DictConfig(node), run.device, key=f"task.classifiers.{key}")
        batch = classifier_inputs(classifier, node, run.cfg, opts.num_images.get(key))
        batch.images = batch.images.to(run.device)
        classifiers[key], inputs[key] = classifier, batch
        labels[key] = batch.labels if batch.labels is not None else predict(classifier, batch.images)
    return Prepared(attacks, classifiers, inputs, labels)


def grid(run: TaskRun, attack: Attack) -> list[float]:
    """The budgets of the attack's curve (its norm's grid, sorted)."""
    return sorted(float(eps) for eps in as_list(getattr(run.options.eps, attack.norm)))


@torch.no_grad()
def _correct(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return predict(classifier, images) == labels


def attack_images(run: TaskRun, attack: Attack, classifier: Classifier, images: torch.Tensor,
                  labels: torch.Tensor, eps: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``attack`` untargeted (budget ``eps``, None for an attack without one) in batches of
    ``task.batch_size``: (adversarial images (N, 3, S, S), whether each was fooled (N,), its perturbation
    size in the attack's norm, pixel levels (N,)), the last two on the CPU."""
    options = run.option_kwargs(attack)
    if eps is not None:
        options["eps"] = eps
    adversarial, fooled, size = [], [], []
    for chunk, chunk_labels in zip(images.split(run.options.batch_size),
                                   labels.to(images.device).split(run.options.batch_size), strict=True):
        X_adv, result = attack.fn(chunk, chunk_labels, classifier, targeted=False, **options)
        adversarial.append(X_adv)
        fooled.append(result.success.cpu())
        size.append(getattr(result, attack.norm).cpu())
    return torch.cat(adversarial), torch.cat(fooled), torch.cat(size)


def curve(run: TaskRun, attack: Attack, classifier: Classifier, images: torch.Tensor,
          labels: torch.Tensor) -> tuple[list[float], list[float], list[float]]:
    """Accuracy in memory and after the PNG round trip at each budget of the attack's grid."""
    budgets, clean = grid(run, attack), _correct(classifier, images, labels)
    acc, acc_png = [], []
    if attack.budgeted:
        for eps in budgets:
            if eps == 0:
                acc.append(clean.float().mean().item())
                acc_png.append(acc[-1])
                continue
            X_adv, _, _ = attack_images(run, attack, classifier, images, labels, eps)
            acc.append(_correct(classifier, X_adv, labels).float().mean().item())
            acc_png.append(_correct(classifier, png_round_trip(X_adv, classifier.norm), labels).float().mean()
                           .item())
        return budgets, acc, acc_png
    X_adv, fooled, size = attack_images(run, attack, classifier, images, labels, None)
    fooled_png = fooled & ~_correct(classifier, png_round_trip(X_adv, classifier.norm), labels)
    for eps in budgets:
        within = size <= eps + 1e-6
        acc.append((clean & ~(fooled & within)).float().mean().item())
        acc_png.append((clean & ~(fooled_png & within)).float().mean().item())
    return budgets, acc, acc_png


def robustness_figure(curves: dict[str, dict[str, tuple[list[float], list[float]]]],
                      labels: dict[str, tuple[str, str]], titles: dict[str, str], norms: list[str]) -> Figure:
    """One row per classifier, one column per norm: accuracy against eps for each attack of that norm.
    ``curves[classifier][attack] = (budgets, accuracies)``; ``labels[attack] = (label, norm label)``."""
    fig, axes = plt.subplots(len(curves), len(norms), figsize=(4.2 * len(norms), 2.8 * len(curves)),
                             squeeze=False, constrained_layout=True)
    for row, (key, by_attack) in zip(axes, curves.items(), strict=True):
        for ax, norm in zip(row, norms, strict=True):
            for name, (budgets, acc) in by_attack.items():
                if labels[name][1] == NORM_LABELS[norm]:
                    ax.plot(budgets, acc, marker="o", label=labels[name][0])
            ax.set(title=f"{titles[key]}, {NORM_LABELS[norm]}", xlabel=f"{NORM_LABELS[norm]} eps (/255)",
                   ylabel="accuracy", ylim=(-0.03, 1.03))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return fig


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """The curves of every attack on every classifier; returns the metrics of the module docstring."""
    metrics: dict[str, float] = {}
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    rows = []
    with Progress(console=run.console, transient=True) as progress:
        bar = progress.add_task("robustness curves", total=len(prepared.classifiers) * len(prepared.attacks))
        for key, classifier in prepared.classifiers.items():
            images, labels = prepared.inputs[key].images, prepared.labels[key]
            began = time.perf_counter()
            clean = _correct(classifier, images, labels).float().mean().item()
            metrics[f"robustness/{key}/num_images"] = float(len(labels))
            metrics[f"robustness/{key}/clean_acc"] = clean
            curves[key] = {}
            for attack in prepared.attacks:
                budgets, acc, acc_png = curve(run, attack, classifier, images, labels)
                curves[key][attack.name] = (budgets, acc)
                for eps, a, p in zip(budgets, acc, acc_png, strict=True):
                    metrics[f"robustness/{key}/{attack.name}/acc_eps{eps:g}"] = a
                    metrics[f"robustness/{key}/{attack.name}/acc_png_eps{eps:g}"] = p
                rows.append([key, attack.label, " / ".join(f"{eps:g}" for eps in budgets),
                             " / ".join(f"{100 * a:.0f}" for a in acc),
                             " / ".join(f"{100 * p:.0f}" for p in acc_png)])
                progress.advance(bar)
            metrics[f"robustness/{key}/seconds"] = time.perf_counter() - began
    run.add_table("accuracy (%) against the budget eps (pixel levels /255, L2 of the whole image)",
                  ["classifier", "attack", "eps", "accuracy", "after PNG"], rows, markdown="robustness_table")
    labels = {attack.name: (attack.label, NORM_LABELS[attack.norm]) for attack in prepared.attacks}
    titles = {key: f"{key} ({len(prepared.labels[key])} images)" for key in prepared.classifiers}
    run.add_figure(robustness_figure(curves, labels, titles, [n for n in NORMS if any(
        a.norm == n for a in prepared.attacks)]), "robustness")
    run.note("labels", "true classes (digits, shapes); clean predictions (photos)")
    return metrics


TASK = Task("robustness", "robustness curves", prepare, run, RobustnessOptions, uses_classifier=False,
            choices={"attacks": ATTACKS})
