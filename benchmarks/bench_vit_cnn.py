"""Seconds per training epoch of the digits ViT against the same-size CNN (the ViT-vs-CNN table of
docs/vit_ssl.md).

Both networks are built from their configs (``conf/model/vit.yaml``, ``conf/model/small_cnn.yaml``, as
``experiment=vit_digits`` / ``cnn_digits`` build them) and trained for one epoch over the offline digits'
training split (1,497 images, batch 64, AdamW, forward + backward + step; no validation, logging or
Lightning), the two alternating in every round so that load from other processes hits both alike. The script
prints the parameter counts, the median seconds per epoch and their ratio.

    python benchmarks/bench_vit_cnn.py                      # 5 rounds after 1 warm-up
    python benchmarks/bench_vit_cnn.py --threads 1 --repeats 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from visgrad.data.digits_images import DigitsImagesDataModule
from visgrad.registry import build

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
NETS = {"ViT": "vit.yaml", "CNN": "small_cnn.yaml"}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per network")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def network(config_file: str) -> torch.nn.Module:
    """The net of a conf/model file, built with 10 classes (its optimiser settings are not used)."""
    net = OmegaConf.to_container(OmegaConf.load(CONF / config_file)["net"])
    net.pop("_partial_", None)
    return build(net, num_classes=10)


def epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
          batch_size: int) -> None:
    """One pass of AdamW steps over (images, labels) in a fixed shuffled order."""
    net.train()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    for start in range(0, len(labels), batch_size):
        rows = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(images[rows]), labels[rows]).backward()
        optimizer.step()


def main(argv=None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = DigitsImagesDataModule(channels=1)
    data.setup("fit")
    images, labels = data.splits["train"].images, data.splits["train"].labels
    nets = {name: network(file) for name, file in NETS.items()}
    optimizers = {name: torch.optim.AdamW(net.parameters(), lr=1e-3) for name, net in nets.items()}
    names, times = list(nets), {name: [] for name in nets}
    load_before = os.getloadavg()[0]
    for round_ in range(args.warmup + args.repeats):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            start = time.perf_counter()
            epoch(nets[name], optimizers[name], images, labels, args.batch_size)
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"digits train split: {len(labels)} images, batch {args.batch_size}, {torch.get_num_threads()} "
          f"threads; medians of {args.repeats} epochs after {args.warmup} warm-up, networks alternating; "
          f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"{'net':4} {'params':>8} {'s/epoch':>8}")
    for name, net in nets.items():
        print(f"{name:4} {sum(p.numel() for p in net.parameters()):8d} {medians[name]:8.3f}")
    print(f"ViT / CNN time: {medians['ViT'] / medians['CNN']:.2f}")


if __name__ == "__main__":
    main()
