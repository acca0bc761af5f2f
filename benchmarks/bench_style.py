"""Time per style-transfer optimisation step vs a bare forward+backward of the same feature network.

    .venv/bin/python benchmarks/bench_style.py [--sizes 192 512] [--rounds 5] [--nets random squeezenet]

Contenders, alternated round by round on the same image (medians reported):
- ``bare``: forward through the feature network up to the deepest layer used, ``feats[-1].sum()``, backward
  to the image (the floor: what any pixel optimisation must pay);
- ``step``: one step of :func:`visgrad.vision.style_objective.optimize_image` (content + 4 style Gram
  losses + TV, backward, Adam update, clamp), with precomputed targets;
- ``naive``: the textbook loop: all modules of the network every step, Gram targets recomputed from the
  stored style features, ``.item()`` of every loss term every step.
``squeezenet`` uses SqueezeNet 1.1's architecture (CS231n's layers) with random weights: speed does not
depend on the weight values, so no download is needed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from visgrad.vision.style import content_loss, extract_features, gram_matrix, style_loss, tv_loss
from visgrad.vision.style_networks import disable_inplace, random_vgg
from visgrad.vision.style_objective import build_objective, optimize_image

NETS = {  # name -> (builder, content layer, style layers)
    "random": (random_vgg, 4, (1, 4, 7, 10)),
    "squeezenet": (lambda: torchvision.models.squeezenet1_1(weights=None).features, 3, (1, 4, 6, 7)),
}


def _prepare(name: str, size: int):
    build, content_layer, style_layers = NETS[name]
    torch.manual_seed(0)
    cnn = disable_inplace(build()).eval().requires_grad_(False)
    content, style = torch.randn(2, 1, 3, size, size).unbind(0)
    obj = build_objective(
        cnn,
        content,
        [style],
        content_layer,
        0.3,
        style_layers,
        [1.0] * len(style_layers),
        1e-2,
        normalize_weights=True,
    )
    return cnn, obj, content, style, content_layer, style_layers


def bench(name: str, size: int, rounds: int, steps: int) -> dict[str, float]:
    cnn, obj, content, style, content_layer, style_layers = _prepare(name, size)
    img = content.clone()

    def bare() -> None:
        for _ in range(steps):
            x = img.clone().requires_grad_(True)
            extract_features(x, obj.net)[-1].sum().backward()

    def step() -> None:
        optimize_image(img, obj, "adam", steps=steps, lr=0.01)

    def naive() -> None:
        content_target = extract_features(content, cnn)[content_layer]
        style_feats = extract_features(style, cnn)
        x = img.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.01)
        for _ in range(steps):
            opt.zero_grad()
            feats = extract_features(x, cnn)
            targets = [gram_matrix(style_feats[i]) for i in style_layers]
            terms = [
                content_loss(1e-3, feats[content_layer], content_target),
                style_loss(feats, style_layers, targets, [1.0] * len(style_layers)),
                tv_loss(x, 1e-3),
            ]
            total = sum(terms)
            total.backward()
            _ = [t.item() for t in terms]
            opt.step()
            x.data.clamp_(-2.2, 2.7)

    contenders = {"bare": bare, "step": step, "naive": naive}
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for key, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 512])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu, median of {args.rounds} rounds"
    )
    print(
        f"{'net':<11}{'size':>6}{'bare ms':>10}{'step ms':>10}{'naive ms':>10}{'step/bare':>11}"
        f"{'naive/bare':>12}{'steps/s':>9}"
    )
    for name in args.nets:
        for size in args.sizes:
            steps = 10 if size <= 256 else 3
            t = bench(name, size, args.rounds, steps)
            ms = [t[k] * 1e3 for k in ("bare", "step", "naive")]
            ratios = f"{t['step'] / t['bare']:>11.3f}{t['naive'] / t['bare']:>12.3f}{1 / t['step']:>9.2f}"
            print(f"{name:<11}{size:>6}" + "".join(f"{m:>10.1f}" for m in ms) + ratios)


if __name__ == "__main__":
    main()
