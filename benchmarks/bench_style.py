"""Time per style-transfer optimisation step vs a bare forward+backward of the same feature network.

    .venv/bin/python benchmarks/bench_style.py [--sizes 256 512] [--nets efficientnet_lite0 random]

Contenders, alternated round by round on the same image (medians reported):
- ``bare``: forward through the feature network up to the deepest layer used, ``feats[-1].sum()``, backward
  to the image (the floor: what any pixel optimisation must pay);
- ``floor``: ``bare`` plus the two matrix products per style layer that any exact Gram loss needs
  (``G = F F^T`` forward, ``(G - T) F`` backward); ``step / floor`` is the cost of the loss bookkeeping;
- ``step``: one step of :func:`visgrad.style.objective.optimize_image` (content + 4 style Gram
  losses + TV, backward, Adam update, clamp), with precomputed targets;
- ``naive``: the textbook loop: all modules of the network every step, Gram targets recomputed from the
  stored style features, ``.item()`` of every loss term every step.
``efficientnet_lite0`` (the default network: stem + blocks 0, 2, 4, 7 for style, block 4 for content),
``squeezenet`` and ``vgg19`` (torchvision's architectures, CS231n's and the paper's layers) use random
weights: speed does not depend on the weight values, so nothing is loaded or downloaded. One torch thread
by default (``--threads``), which is steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from visgrad.models.efficientnet_lite0 import EfficientNetLite0
from visgrad.models.feature_nets import (
    LITE0_CONTENT_LAYER,
    LITE0_STYLE_LAYERS,
    disable_inplace,
    lite0_sequential,
    random_vgg,
)
from visgrad.style.losses import content_loss, extract_features, gram_matrix, style_loss, tv_loss
from visgrad.style.objective import build_objective, optimize_image

NETS = {  # name -> (builder, content layer, style layers, steps per timing at 192 px)
    "efficientnet_lite0": (
        lambda: lite0_sequential(EfficientNetLite0()), LITE0_CONTENT_LAYER, LITE0_STYLE_LAYERS, 10
    ),
    "random": (random_vgg, 4, (1, 4, 7, 10), 10),
    "squeezenet": (lambda: torchvision.models.squeezenet1_1(weights=None).features, 3, (1, 4, 6, 7), 10),
    "vgg19": (lambda: torchvision.models.vgg19(weights=None).features, 22, (1, 6, 11, 20, 29), 2),
}


def _prepare(name: str, size: int):
    build, content_layer, style_layers, _ = NETS[name]
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


def bench(name: str, size: int, rounds: int, steps: int, clock=time.perf_counter) -> dict[str, float]:
    cnn, obj, content, style, content_layer, style_layers = _prepare(name, size)
    img = content.clone()

    def bare() -> None:
        for _ in range(steps):
            x = img.clone().requires_grad_(True)
            extract_features(x, obj.net)[-1].sum().backward()

    def floor() -> None:
        for _ in range(steps):
            x = img.clone().requires_grad_(True)
            feats = extract_features(x, obj.net)
            with torch.no_grad():
                for layer, target in zip(obj.style_layers, obj.style_targets, strict=True):
                    flat = feats[layer].flatten(2)
                    torch.bmm(torch.baddbmm(target, flat, flat.transpose(1, 2), beta=-1), flat)
            feats[-1].sum().backward()

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

    contenders = {"bare": bare, "floor": floor, "step": step, "naive": naive}
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for key, fn in contenders.items():
            start = clock()
            fn()
            times[key].append((clock() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--nets", nargs="+", default=["efficientnet_lite0"], choices=list(NETS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time, or this process's CPU time (steadier on a loaded machine with --threads 1)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu, {args.clock} clock, "
        f"median of {args.rounds} rounds"
    )
    header = [
        "bare ms",
        "floor ms",
        "step ms",
        "naive ms",
        "step/bare",
        "step/floor",
        "naive/bare",
        "steps/s",
    ]
    print(f"{'net':<19}{'size':>5}" + "".join(f"{h:>11}" for h in header))
    for name in args.nets:
        for size in args.sizes:
            steps = max(1, NETS[name][3] * 192**2 // size**2)
            t = bench(name, size, args.rounds, steps, clock)
            row = [t[k] * 1e3 for k in ("bare", "floor", "step", "naive")]
            row += [t["step"] / t["bare"], t["step"] / t["floor"], t["naive"] / t["bare"], 1 / t["step"]]
            print(
                f"{name:<19}{size:>5}"
                + "".join(f"{v:>11.1f}" for v in row[:4])
                + "".join(f"{v:>11.3f}" for v in row[4:7])
                + f"{row[7]:>11.2f}"
            )


if __name__ == "__main__":
    main()
