"""Attribution methods: the registry ``ATTRIBUTIONS`` of the saliency methods that ``task=saliency`` runs
and scores (``task.methods``), one entry each with its label and its options.

An attribution method is a function

    fn(X, y, classifier, *, generator, **options) -> maps

- ``X`` (N, 3, H, W): images in the classifier's input normalisation (``classifier.norm``);
- ``y`` (N,): the class explained for each image (long);
- ``classifier``: a :class:`~visgrad.models.classifier.Classifier` (``model`` in eval mode with frozen
  weights, ``norm``, ``feature_layer`` for CAM-type methods, ...);
- ``generator``: a ``torch.Generator`` on the CPU, seeded per method and run, for methods that draw noise;
- ``options``: the fields of the entry's options dataclass (``task.<method name>.*``);
- returns ``maps`` (N, H, W): the evidence for class ``y[i]`` at each pixel, larger = more (any scale;
  the mass-in-mask score counts the positive part).

An entry is an :class:`Attribution`. Two optional fields serve the sanity checks and the tasks' checks:
``signed``, a function of the same protocol giving the signed map when ``fn`` shows magnitudes only
(vanilla's max |gradient| over channels; signed: the gradient summed over channels), and
``check(classifier, options, prefix) -> [problem, ...]``, what the method cannot do with that classifier
(a patch larger than its inputs, no feature layer for Grad-CAM), as config advice under ``prefix``, before
any work. A method of your own needs no registration: ``task.methods`` takes the
dotted path of an ``Attribution`` or of a plain function with the signature above (its name is its label,
and it has no options). ``attribution_maps`` runs one in batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from visgrad.models.classifier import Classifier
from visgrad.options import non_negative_number, one_of, option, positive_int
from visgrad.registry import Registry
from visgrad.vision import attention_rollout as _rollout
from visgrad.vision import cam, guided, perturbation
from visgrad.vision.saliency import (
    IG_BASELINES,
    channel_sum,
    compute_saliency_maps,
    input_x_gradient_saliency,
    integrated_gradients_saliency,
    score_gradient,
    smoothgrad_saliency,
)


@dataclass(frozen=True)
class Attribution:
    """An attribution method: ``name`` (metric keys, ``task.<name>`` options node), ``label`` (figures,
    tables), ``fn`` (the protocol of the module docstring), ``options`` (a dataclass type, or None), and
    optionally ``signed`` (its signed maps, when ``fn``'s are magnitudes) and ``check`` (module docstring)."""

    name: str
    label: str
    fn: Callable[..., torch.Tensor]
    options: type | None = None
    signed: Callable[..., torch.Tensor] | None = None
    check: Callable[[Classifier, Any, str], list[str]] | None = None


def _plain_function(obj: Any, path: str) -> Attribution | None:
    """A function at a dotted path: an attribution method named and labelled by its name, no options."""
    if not callable(obj) or isinstance(obj, type):
        return None
    name = path.rsplit(".", 1)[-1]
    return Attribution(name, name, obj)


ATTRIBUTIONS: Registry[Attribution] = Registry("attribution method", Attribution, coerce=_plain_function)


def vanilla(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """CS231n's saliency map (:func:`~visgrad.vision.saliency.compute_saliency_maps`)."""
    return compute_saliency_maps(X, y, classifier.model)


def vanilla_signed(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The gradient of the class score summed over channels (vanilla's signed map)."""
    return channel_sum(score_gradient(X, y, classifier.model))


def input_x_gradient(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Input x Gradient (:func:`~visgrad.vision.saliency.input_x_gradient_saliency`), signed."""
    return input_x_gradient_saliency(X, y, classifier.model)


@dataclass
class SmoothGradOptions:
    """``task.smoothgrad``: noisy copies per image and the noise std as a fraction of its value range."""

    num_samples: int = option(12, positive_int, "a positive integer")
    noise_level: float = option(0.15, non_negative_number, "a number >= 0")


def smoothgrad(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, generator: torch.Generator,
               num_samples: int, noise_level: float) -> torch.Tensor:
    """SmoothGrad (:func:`~visgrad.vision.saliency.smoothgrad_saliency`), noise drawn from ``generator``."""
    return smoothgrad_saliency(X, y, classifier.model, num_samples, noise_level, generator)


def smoothgrad_signed(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *, generator: torch.Generator,
                      num_samples: int, noise_level: float) -> torch.Tensor:
    """SmoothGrad's signed map: the noisy gradients summed over channels, averaged."""
    return smoothgrad_saliency(X, y, classifier.model, num_samples, noise_level, generator, channel_sum)


@dataclass
class IntegratedGradientsOptions:
    """``task.integrated_gradients``: points of the path integral and the reference image."""

    steps: int = option(12, positive_int, "a positive integer")
    baseline: str = option("blur", one_of(*IG_BASELINES), f"one of {', '.join(IG_BASELINES)}")


def integrated_gradients(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                         generator: torch.Generator | None = None, steps: int, baseline: str) -> torch.Tensor:
    """Integrated Gradients (:func:`~visgrad.vision.saliency.integrated_gradients_saliency`) with a
    baseline image of ``baseline`` kind in the classifier's normalisation."""
    return integrated_gradients_saliency(X, y, classifier.model, steps, baseline, classifier.norm)


def integrated_gradients_signed(X: torch.Tensor, y: torch.Tensor, classifier: Classifier, *,
                                generator: torch.Generator | None = None, steps: int,
                                baseline: str) -> torch.Tensor:
    """Integrated Gradients' signed map: the attribution summed over channels."""
    return integrated_gradients_saliency(X, y, classifier.model, steps, baseline, classifier.norm,
                                         channel_sum)


ATTRIBUTIONS.add(Attribution("vanilla", "vanilla", vanilla, signed=vanilla_signed))
ATTRIBUTIONS.add(Attribution("smoothgrad", "SmoothGrad", smoothgrad, SmoothGradOptions, smoothgrad_signed))
ATTRIBUTIONS.add(Attribution("integrated_gradients", "Integrated Gradients", integrated_gradients,
                             IntegratedGradientsOptions, integrated_gradients_signed))
ATTRIBUTIONS.add(Attribution("attention_rollout", "attention rollout", _rollout.attention_rollout,
                             _rollout.AttentionRolloutOptions))
ATTRIBUTIONS.add(Attribution("input_x_gradient", "Input x Gradient", input_x_gradient))
ATTRIBUTIONS.add(Attribution("guided_backprop", "Guided Backprop", guided.guided_backprop,
                             signed=guided.guided_backprop_signed))
ATTRIBUTIONS.add(Attribution("gradcam", "Grad-CAM", cam.gradcam, cam.GradCAMOptions,
                             check=cam.check_feature_layer))
ATTRIBUTIONS.add(Attribution("guided_gradcam", "Guided Grad-CAM", cam.guided_gradcam,
                             cam.GuidedGradCAMOptions, cam.guided_gradcam_signed, cam.check_feature_layer))
ATTRIBUTIONS.add(Attribution("occlusion", "occlusion", perturbation.occlusion, perturbation.OcclusionOptions,
                             check=perturbation.check_patch))
ATTRIBUTIONS.add(Attribution("rise", "RISE", perturbation.rise, perturbation.RISEOptions,
                             check=perturbation.check_patch))


def method_problems(entry: Attribution, classifier: Classifier, options: Any, prefix: str) -> list[str]:
    """What ``entry`` with ``options`` cannot do on ``classifier`` (its ``check``), as config advice under
    ``prefix`` (``task.<name>``); [] when nothing is wrong or it declares no check."""
    return [] if entry.check is None else list(entry.check(classifier, options, prefix))


def attribution_maps(method: Attribution | str, X: torch.Tensor, y: torch.Tensor, classifier: Classifier,
                     options: Any = None, generator: torch.Generator | None = None,
                     batch_size: int = 64, signed: bool = False) -> torch.Tensor:
    """Maps (N, H, W) of images X (N, 3, H, W) for classes y (N,) by ``method`` (an entry, a registered name
    or a dotted path), ``batch_size`` images at a time; ``options`` is an instance of the entry's options
    dataclass (None: its defaults) and ``generator`` is shared by the batches in turn (None: a fresh one).
    ``signed``: the entry's signed maps (its ``signed`` function; ``fn`` when it has none)."""
    entry = ATTRIBUTIONS.get(method)
    fn = entry.signed if signed and entry.signed is not None else entry.fn
    if options is None and entry.options is not None:
        options = entry.options()
    kwargs = dataclasses.asdict(options) if options is not None else {}
    generator = torch.Generator() if generator is None else generator
    chunks = [fn(X[i : i + batch_size], y[i : i + batch_size], classifier, generator=generator,
              **kwargs) for i in range(0, X.shape[0], batch_size)]
    return torch.cat(chunks)
