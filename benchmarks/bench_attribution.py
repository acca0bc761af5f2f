"""Speed of visgrad's attribution methods vs Captum's for the same maps on EfficientNet-Lite0 (224 px).

Pairs (ours / the baseline of the ratio), each computing the same maps (``tests/test_attribution_methods.py``
checks they are equal):

- ``gradcam``: ``visgrad.vision.cam.grad_cam`` / Captum ``LayerGradCam`` + ``LayerAttribution.interpolate``;
- ``guided_backprop``: ``visgrad.vision.guided.guided_gradient`` on Lite0 / Captum ``GuidedBackprop`` on
  ``tests/captum_lite0.CaptumLite0`` (Lite0 with ReLU6 as hooked ``nn.ReLU``s: Captum sees no ReLU in Lite0);
- ``guided_gradcam``: ours / Captum ``GuidedGradCam`` on the same twin;
- ``input_x_gradient``: ours / Captum ``InputXGradient``;
- ``occlusion``: ours (all windows of all images in batches of ``BATCH``) / Captum ``Occlusion`` with
  ``perturbations_per_eval=BATCH``; patch 56, stride 56 (16 windows, ``OCCLUSION``);
- ``rise``: ours with batches of ``BATCH`` masks / ours with one masked image per forward (Captum has no RISE:
  the ratio is what batching gives); 32 masks (``RISE_MASKS``).

The occlusion and RISE settings are smaller than the task's defaults (169 windows, 500 masks) to keep the
run short: their cost is linear in the windows / masks, so the ratios hold. The default run (6 methods,
batch 1 and 8, 1 warm-up + 3 rounds) takes about a minute alone on 2 cores (10 minutes on a loaded machine).

Each round times every contender of a pair once in a rotating order; medians and the ratio ours / baseline
in the same run. The BatchNorm-folded Lite0 with its packaged weights, eval mode, frozen.

    python benchmarks/bench_attribution.py                 # batch 1 and 8, 2 threads, about 3 minutes
    python benchmarks/bench_attribution.py --batch 1 --repeats 5 --methods gradcam occlusion
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from captum.attr import (
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
)

from visgrad.models.classifier import efficientnet_lite0_classifier
from visgrad.vision import cam, guided, perturbation
from visgrad.vision.saliency import input_x_gradient_saliency

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from captum_lite0 import CaptumLite0  # noqa: E402

METHODS = ("gradcam", "guided_backprop", "guided_gradcam", "input_x_gradient", "occlusion", "rise")
OCCLUSION = (56, 56)  # patch, stride: 4 x 4 windows on 224 px
RISE_MASKS = 32
BATCH = 16  # perturbed images per forward: the task's default (occlusion, RISE), and Captum's for occlusion


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[3],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per method and batch")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    return p.parse_args(argv)


def pairs(classifier, twin) -> dict[str, tuple]:
    """``{method: (ours(X, y), baseline(X, y))}``."""
    model, layer = classifier.model, classifier.feature_layer
    size = classifier.image_size
    patch, stride = OCCLUSION

    def captum_gradcam(X, y):
        coarse = LayerGradCam(model, layer).attribute(X, target=y, relu_attributions=True)
        return LayerAttribution.interpolate(coarse, (size, size), "bilinear")[:, 0]

    def captum_occlusion(X, y):
        return Occlusion(lambda x: model(x).softmax(dim=1)).attribute(
            X, target=y, sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride), baselines=0.0,
            perturbations_per_eval=BATCH)

    def rise(batch_size):
        return lambda X, y: perturbation.rise_saliency(X, y, model, RISE_MASKS, batch_size=batch_size,
                                                       generator=torch.Generator().manual_seed(0),
                                                       norm=classifier.norm)

    return {
        "gradcam": (lambda X, y: cam.grad_cam(X, y, model, layer), captum_gradcam),
        "guided_backprop": (lambda X, y: guided.guided_gradient(X, y, model),
                            lambda X, y: GuidedBackprop(twin).attribute(X.clone(), target=y)),
        "guided_gradcam": (lambda X, y: cam.guided_grad_cam_attribution(X, y, model, layer),
                           lambda X, y: GuidedGradCam(twin, twin.head).attribute(
                               X.clone(), target=y, interpolate_mode="bilinear")),
        "input_x_gradient": (lambda X, y: input_x_gradient_saliency(X, y, model),
                             lambda X, y: InputXGradient(model).attribute(X.clone(), target=y)),
        "occlusion": (lambda X, y: perturbation.occlusion_saliency(X, y, model, patch, stride, "mean",
                                                                   norm=classifier.norm),
                      captum_occlusion),
        "rise": (rise(BATCH), rise(1)),
    }


def time_pair(ours, baseline, X, y, repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds of ours and of the baseline, in rotating order."""
    times: list[list[float]] = [[], []]
    contenders = [ours, baseline]
    for round_ in range(warmup + repeats):
        order = [0, 1] if round_ % 2 == 0 else [1, 0]
        for index in order:
            start = time.perf_counter()
            contenders[index](X, y)
            if round_ >= warmup:
                times[index].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv=None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", module="captum")
    classifier = efficientnet_lite0_classifier()
    twin = CaptumLite0(classifier.model).eval()
    table = pairs(classifier, twin)
    print(f"torch {torch.__version__}, {args.threads} threads, EfficientNet-Lite0 224 px, median of "
          f"{args.repeats} rounds")
    heads = "".join(f"{f'ours b{b}':>12}{f'base b{b}':>12}{'ratio':>8}" for b in args.batch)
    print(f"{'method':<18}{heads}")
    for method in args.methods:
        cells = []
        for batch in args.batch:
            generator = torch.Generator().manual_seed(batch)
            X = torch.rand(batch, 3, 224, 224, generator=generator) * 2 - 1
            y = torch.randint(0, 1000, (batch,), generator=generator)
            ours, base = time_pair(*table[method], X, y, args.repeats, args.warmup)
            cells.append(f"{ours * 1e3:9.0f} ms{base * 1e3:9.0f} ms{ours / base:7.2f}x")
        print(f"{method:<18}" + "".join(cells))


if __name__ == "__main__":
    main()
