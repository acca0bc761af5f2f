"""Speed of the Show-Attend-Tell step ``visgrad.ops.attention_lstm_step`` against the same model from
``torch.nn`` parts (``nn.LSTMCell`` + ``nn.Linear`` attention and gate, autograd's backward).

Both run T teacher-forced steps over a grid (the decoder of ``model=lstm_attention``: the grid projections
are computed once, each step attends, gates the context and runs the LSTM on [word, context]), forward and
backward of a loss on every step's h, context and attention weights. Every round times each contender once
in a rotating order, so load from other processes hits both alike; medians and the ratio
visgrad / torch.nn are printed. Each thread count runs in a fresh process.

    python benchmarks/bench_attention_lstm.py                     # N=100 T=16 W=64 H=128 L=64 C=80 A=64
    python benchmarks/bench_attention_lstm.py --threads 1 2 --repeats 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", "-N", type=int, default=100)
    p.add_argument("--steps", "-T", type=int, default=16)
    p.add_argument("--wordvec-dim", "-W", type=int, default=64)
    p.add_argument("--hidden-dim", "-H", type=int, default=128)
    p.add_argument("--cells", "-L", type=int, default=64, help="grid cells (8 x 8)")
    p.add_argument("--channels", "-C", type=int, default=80)
    p.add_argument("--attention-dim", "-A", type=int, default=64)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=30, help="timed rounds per contender")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _contenders(N, T, W, H, L, C, A):
    """{name: zero-argument callable running forward + backward} with the same weights and inputs."""
    import torch
    from torch import nn

    import visgrad.ops as ops

    torch.manual_seed(0)
    x = torch.randn(N, T, W)
    features = torch.randn(N, L, C)
    h0, c0 = torch.randn(N, H).tanh(), torch.randn(N, H).tanh()
    cell = nn.LSTMCell(W + C, H)
    fa, ha = nn.Linear(C, A), nn.Linear(H, A, bias=False)
    score, gate = nn.Linear(A, 1, bias=False), nn.Linear(H, 1)
    # the same weights in visgrad's layout (LSTMCell: gates i, f, g, o, weights (4H, in), two biases)
    i, f, g, o = cell.weight_ih.detach().t().split(H, dim=1)
    Wxz = torch.cat([i, f, o, g], dim=1)
    i, f, g, o = cell.weight_hh.detach().t().split(H, dim=1)
    Wh = torch.cat([i, f, o, g], dim=1)
    i, f, g, o = (cell.bias_ih + cell.bias_hh).detach().split(H)
    params = {"Wx": Wxz[:W], "Wz": Wxz[W:], "Wh": Wh, "b": torch.cat([i, f, o, g]),
              "W_fa": fa.weight.detach().t(), "b_fa": fa.bias.detach(), "W_ha": ha.weight.detach().t(),
              "w_a": score.weight.detach()[0], "W_beta": gate.weight.detach().t(),
              "b_beta": gate.bias.detach()}
    params = {k: v.clone().contiguous().requires_grad_() for k, v in params.items()}
    nn_params = [*cell.parameters(), *fa.parameters(), *ha.parameters(), *score.parameters(),
                 *gate.parameters()]

    def visgrad():
        p = params
        projected = ops.temporal_affine(features, p["W_fa"], p["b_fa"])
        h, c, total = h0, c0, 0
        for t in range(T):
            h, c, context, alpha = ops.attention_lstm_step(
                x[:, t], h, c, features, projected, p["W_ha"], p["w_a"], p["W_beta"], p["b_beta"], p["Wx"],
                p["Wz"], p["Wh"], p["b"])
            total = total + h.sum() + context.sum() + alpha.square().sum()
        total.backward()
        for v in p.values():
            v.grad = None
        return float(total)

    def torch_nn():
        projected = fa(features)
        h, c, total = h0, c0, 0
        for t in range(T):
            alpha = torch.softmax(score(torch.tanh(projected + ha(h)[:, None]))[..., 0], dim=1)
            context = torch.sigmoid(gate(h)) * torch.bmm(alpha[:, None], features)[:, 0]
            h, c = cell(torch.cat([x[:, t], context], dim=1), (h, c))
            total = total + h.sum() + context.sum() + alpha.square().sum()
        total.backward()
        for v in nn_params:
            v.grad = None
        return float(total)

    return {"visgrad": visgrad, "torch.nn": torch_nn}


def _worker(args) -> None:
    import torch

    torch.set_num_threads(args.worker)
    calls = _contenders(args.batch, args.steps, args.wordvec_dim, args.hidden_dim, args.cells, args.channels,
                        args.attention_dim)
    names = list(calls)
    values = {name: call() for name, call in calls.items()}  # the same model: the same loss
    if abs(values["visgrad"] - values["torch.nn"]) > 1e-4 * abs(values["torch.nn"]):
        raise SystemExit(f"the contenders disagree: {values}")
    times = {name: [] for name in names}
    for round_ in range(args.warmup + args.repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
    print(json.dumps({name: statistics.median(t) for name, t in times.items()}))


def main(argv=None) -> None:
    args = _parse(argv)
    if args.worker is not None:
        return _worker(args)
    print(f"N={args.batch} T={args.steps} W={args.wordvec_dim} H={args.hidden_dim} L={args.cells} "
          f"C={args.channels} A={args.attention_dim} float32 CPU, forward+backward of T steps, medians of "
          f"{args.repeats} rounds\n")
    print("| threads | visgrad ms | torch.nn ms | ratio visgrad / torch.nn |")
    print("|--:|--:|--:|--:|")
    for n in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        command = [sys.executable, __file__, "--worker", str(n),
                   *(argv if argv is not None else sys.argv[1:])]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        ms = {k: 1000 * v for k, v in result.items()}
        print(f"| {n} | {ms['visgrad']:.1f} | {ms['torch.nn']:.1f} | {ms['visgrad'] / ms['torch.nn']:.2f} |")


if __name__ == "__main__":
    main()
