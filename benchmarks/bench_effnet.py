"""Speed of our EfficientNet-Lite0 vs torchvision's efficientnet_b0 and mobilenet_v2 on 224-pixel images.

Every network has random weights and is frozen in eval mode, as the visualization tasks use it. Two
workloads: ``forward`` (no grad) and ``forward+backward`` (the gradient of one logit w.r.t. the input image,
what saliency, fooling and class visualization compute every step). Contenders:

- ``lite0``: ours as ``load_efficientnet_lite0`` returns it (BatchNorm folded, channels-last weights);
- ``lite0 plain``: ours with BatchNorm layers and contiguous (NCHW) weights, the unoptimised module;
- ``efficientnet_b0`` (the baseline of the ratios) and ``mobilenet_v2`` as torchvision builds them, and
  ``efficientnet_b0 cl``: b0 with channels-last weights, to show what that layout alone gives.

Each round times every contender once in a rotating order, so load from other processes hits all of them
alike; the script prints the median time per batch and its ratio to efficientnet_b0 in the same run.

    python benchmarks/bench_effnet.py                 # batch 1 and 8, 2 threads
    python benchmarks/bench_effnet.py --batch 1 --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from torch import nn

from visgrad.models.efficientnet_lite0 import EfficientNetLite0

BASELINE = "efficientnet_b0"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per workload")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    return p.parse_args(argv)


def _frozen(net: nn.Module) -> nn.Module:
    return net.eval().requires_grad_(False)


def contenders(seed: int = 0) -> dict[str, nn.Module]:
    """The networks (random weights, seeded, eval mode, frozen) by name."""
    torch.manual_seed(seed)
    plain = _frozen(EfficientNetLite0())
    for module in plain.modules():  # non-trivial statistics, so folding has something to fold
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    fast = _frozen(EfficientNetLite0())
    fast.load_state_dict(plain.state_dict())
    fast.fold_batchnorm().to(memory_format=torch.channels_last)
    return {
        "lite0": fast,
        "lite0 plain": plain,
        BASELINE: _frozen(torchvision.models.efficientnet_b0()),
        f"{BASELINE} cl": _frozen(torchvision.models.efficientnet_b0()).to(memory_format=torch.channels_last),
        "mobilenet_v2": _frozen(torchvision.models.mobilenet_v2()),
    }


def forward(net: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        net(x)


def forward_backward(net: nn.Module, x: torch.Tensor) -> None:
    image = x.clone().requires_grad_(True)
    torch.autograd.grad(net(image)[:, 0].sum(), image)


def time_rounds(nets: dict[str, nn.Module], step, x: torch.Tensor, repeats: int, warmup: int) -> dict:
    """Median seconds per call of ``step(net, x)`` for each network, over rotating rounds."""
    names = list(nets)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            step(nets[name], x)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def check_agreement(nets: dict[str, nn.Module], size: int) -> None:
    """The folded channels-last Lite0 computes what the plain one does (else the timing is meaningless)."""
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        a, b = nets["lite0"](x), nets["lite0 plain"](x)
    error = ((a - b).norm() / b.norm()).item()
    if error > 1e-4:
        raise SystemExit(f"folded Lite0 differs from the plain one (relative error {error:.2e})")


def main(argv=None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    nets = contenders()
    check_agreement(nets, args.size)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads, "
          f"{args.size} px, median of {args.repeats} rounds")
    columns = [f"{workload} b{batch}" for workload in ("fwd", "fwd+bwd") for batch in args.batch]
    header = f"{'network':<22}" + "".join(f"{column:>22}" for column in columns)
    rows: dict[str, list[str]] = {name: [] for name in nets}
    for step in (forward, forward_backward):
        for batch in args.batch:
            x = torch.randn(batch, 3, args.size, args.size)
            medians = time_rounds(nets, step, x, args.repeats, args.warmup)
            for name, seconds in medians.items():
                rows[name].append(f"{seconds * 1e3:8.1f} ms {seconds / medians[BASELINE]:5.2f}x")
    print(header)
    for name, cells in rows.items():
        print(f"{name:<22}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
