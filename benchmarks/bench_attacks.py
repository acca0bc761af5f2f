"""Speed of visgrad's PGD (L-inf) vs torchattacks 3.5.1's ``PGD`` on EfficientNet-Lite0 (224-pixel images).

Both attack the same frozen Lite0 (packaged ImageNet weights, as ``classifier=efficientnet_lite0`` loads it)
through its [-1, 1] normalisation, untargeted, from a random start; torchattacks takes the normalisation
through ``set_normalization_used``. Contenders:

- ``torchattacks``: ``torchattacks.PGD`` (the baseline of the ratios);
- ``visgrad pixels``: :func:`visgrad.vision.fgsm_pgd.pgd_pixels`, the attack loop alone;
- ``visgrad entry``: ``ATTACKS.get("pgd").fn``, what the tasks call, which also computes the
  :class:`~visgrad.vision.fooling.FoolingResult` (two more forward passes).

Each round times every contender once in a rotating order, so load from other processes hits all of them
alike; the script prints the median seconds per attack, PGD steps per second and the time ratio to
torchattacks in the same run (goal: <= 1.0x).

    python benchmarks/bench_attacks.py                 # batch 1 and 16, 10 steps, 2 threads
    python benchmarks/bench_attacks.py --batch 16 --steps 5 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchattacks

from visgrad.models.classifier import efficientnet_lite0_classifier
from visgrad.vision.attacks import ATTACKS
from visgrad.vision.fgsm_pgd import pgd_pixels

BASELINE = "torchattacks"
EPS, ALPHA = 8.0, 2.0  # pixel levels (/255)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--steps", type=int, default=10, help="PGD steps per attack")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per batch size")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    return p.parse_args(argv)


def contenders(steps: int) -> dict:
    """name -> attack(X normalised (N, 3, 224, 224), y (N,)) on the same frozen Lite0."""
    classifier = efficientnet_lite0_classifier()
    norm, model = classifier.norm, classifier.model
    theirs = torchattacks.PGD(model, eps=EPS / 255, alpha=ALPHA / 255, steps=steps, random_start=True)
    theirs.set_normalization_used(norm.mean, norm.std)
    entry = ATTACKS.get("pgd")

    def pixels(X, y):
        adv = pgd_pixels(lambda p: model(norm.normalize(p)), norm.unnormalize(X), y, EPS / 255, ALPHA / 255,
                         steps)
        return norm.normalize(adv)

    return {
        BASELINE: theirs,
        "visgrad pixels": pixels,
        "visgrad entry": lambda X, y: entry.fn(X, y, classifier, targeted=False, eps=EPS, alpha=ALPHA,
                                               steps=steps, random_start=True)[0],
    }, classifier


def time_rounds(attacks: dict, X: torch.Tensor, y: torch.Tensor, repeats: int, warmup: int) -> dict:
    """Median seconds per attack of each contender, over rotating rounds."""
    names = list(attacks)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            attacks[name](X, y)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def check_agreement(attacks: dict, classifier) -> None:
    """Same images from the same random start (else the timing compares different work)."""
    X = classifier.norm.normalize(torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    y = torch.tensor([0])
    results = []
    for name in (BASELINE, "visgrad pixels"):
        torch.manual_seed(1)
        results.append(attacks[name](X, y))
    error = (results[0] - results[1]).abs().max().item()
    if error > 1e-4:
        raise SystemExit(f"visgrad's PGD differs from torchattacks' (max abs difference {error:.2e})")


def main(argv=None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    attacks, classifier = contenders(args.steps)
    check_agreement(attacks, classifier)
    print(f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, {args.threads} threads, "
          f"Lite0 224 px, PGD L-inf {args.steps} steps, median of {args.repeats} rounds")
    print(f"{'contender':<16}" + "".join(f"{f'batch {b}':>36}" for b in args.batch))
    rows: dict[str, list[str]] = {name: [] for name in attacks}
    for batch in args.batch:
        generator = torch.Generator().manual_seed(batch)
        X = classifier.norm.normalize(torch.rand(batch, 3, 224, 224, generator=generator))
        y = torch.randint(0, 1000, (batch,), generator=generator)
        medians = time_rounds(attacks, X, y, args.repeats, args.warmup)
        for name, seconds in medians.items():
            rows[name].append(f"{seconds:7.2f} s {args.steps / seconds:6.2f} steps/s "
                              f"{seconds / medians[BASELINE]:5.2f}x")
    for name, cells in rows.items():
        print(f"{name:<16}" + "".join(f"{cell:>36}" for cell in cells))


if __name__ == "__main__":
    main()
