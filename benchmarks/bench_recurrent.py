"""Forward+backward speed of ``visgrad.ops.lstm`` / ``rnn`` against ``torch.nn.LSTM`` / ``nn.RNN`` and NumPy.

Every round times each contender once, in a rotating order, so load from other processes hits all of them
alike; the script prints medians, the ratios against ``torch.nn``, and the achieved GEMM throughput as a
fraction of a large square matmul timed in the same rounds. Each thread count runs in a fresh process whose
BLAS/OpenMP pools (torch and NumPy) are limited through the environment.

    python benchmarks/bench_recurrent.py                       # N=128, T=16, D=256, H=512, 1 and all threads
    python benchmarks/bench_recurrent.py --threads 1 2 --repeats 30 --cells lstm
    python benchmarks/bench_recurrent.py --omp-wait-policy passive    # on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# OpenBLAS's worker threads keep spinning for a while after NumPy's last product, taking a core from the
# next contender; an untimed pause after each NumPy round lets them sleep.
OPENBLAS_IDLE_S = 0.3


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", "-N", type=int, default=128)
    p.add_argument("--steps", "-T", type=int, default=16)
    p.add_argument("--input-dim", "-D", type=int, default=256)
    p.add_argument("--hidden-dim", "-H", type=int, default=512)
    p.add_argument("--cells", nargs="+", choices=["lstm", "rnn"], default=["lstm", "rnn"])
    p.add_argument("--threads", nargs="+", default=["1", "all"], help="thread counts; 'all' = every core")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds per contender")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--numpy-repeats", type=int, default=5, help="timed rounds of the (slow) NumPy reference")
    p.add_argument("--matmul-size", type=int, default=2048, help="side of the square matmul giving the peak")
    p.add_argument("--omp-wait-policy", choices=["active", "passive"], default=None,
                   help="OMP_WAIT_POLICY of the workers; passive (idle threads sleep, not spin) keeps "
                        "multi-thread timings meaningful on an oversubscribed machine; default: inherited")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _gemm_flops(cell, N, T, D, H):
    """GEMM FLOPs of one forward+backward: forward x Wx and h Wh, backward dx, dWx, dh, dWh (3x forward)."""
    G = 4 * H if cell == "lstm" else H
    return 3 * 2 * N * T * G * (D + H)


def _contenders(cell, N, T, D, H):
    """Return {name: zero-argument callable running forward+backward} on shared, identical inputs."""
    import numpy as np
    import torch

    import visgrad.ops as ops
    import visgrad.reference as ref

    torch.manual_seed(0)
    G = 4 * H if cell == "lstm" else H
    x = torch.randn(N, T, D, requires_grad=True)
    h0 = torch.randn(N, H, requires_grad=True)
    Wx = (torch.randn(D, G) / D**0.5).requires_grad_()
    Wh = (torch.randn(H, G) / H**0.5).requires_grad_()
    b = (0.1 * torch.randn(G)).requires_grad_()
    dh = torch.randn(N, T, H)

    if cell == "lstm":
        net = torch.nn.LSTM(D, H, batch_first=True)
        perm = torch.cat([torch.arange(k * H, (k + 1) * H) for k in (0, 1, 3, 2)])  # i,f,o,g -> i,f,g,o
        hidden = (h0[None], torch.zeros(1, N, H))
    else:
        net = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True)
        perm = torch.arange(H)
        hidden = h0[None]
    with torch.no_grad():
        net.weight_ih_l0.copy_(Wx[:, perm].t())
        net.weight_hh_l0.copy_(Wh[:, perm].t())
        net.bias_ih_l0.copy_(b[perm])
        net.bias_hh_l0.zero_()
        gap = (net(x, hidden)[0] - getattr(ops, cell)(x, h0, Wx, Wh, b)).abs().max().item()
    assert gap < 1e-4, f"visgrad.ops.{cell} and torch.nn disagree by {gap}"

    params = [x, h0, Wx, Wh, b, *net.parameters()]
    np_args = [t.detach().numpy().astype(np.float32) for t in (x, h0, Wx, Wh, b)]
    np_dh = dh.numpy()
    np_forward, np_backward = getattr(ref, f"{cell}_forward"), getattr(ref, f"{cell}_backward")

    def visgrad():
        getattr(ops, cell)(x, h0, Wx, Wh, b).backward(dh)

    def torch_nn():
        net(x, hidden)[0].backward(dh)

    def numpy_ref():
        np_backward(np_dh, np_forward(*np_args)[1])

    def clear():
        for p in params:
            p.grad = None

    return {"visgrad": visgrad, "torch.nn": torch_nn, "numpy": numpy_ref}, clear


def _worker(args):
    """Time every contender at ``args.worker`` threads; print one JSON result line per cell for main."""
    import torch

    from visgrad.ops import _gemm

    torch.set_num_threads(args.worker)
    N, T, D, H = args.batch, args.steps, args.input_dim, args.hidden_dim
    S = args.matmul_size
    A, B = torch.randn(S, S), torch.randn(S, S)
    for cell in args.cells:
        runs, clear = _contenders(cell, N, T, D, H)
        runs["matmul"] = lambda: _gemm.mm(A, B)  # the fastest square GEMM available to the ops
        wall = {name: [] for name in runs}
        cpu = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.warmup + args.repeats):
            for k in range(len(names)):
                name = names[(r + k) % len(names)]
                if name == "numpy" and not args.warmup <= r < args.warmup + args.numpy_repeats:
                    continue
                clear()
                start, start_cpu = time.perf_counter(), time.process_time()
                runs[name]()
                if r >= args.warmup:
                    wall[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
                if name == "numpy":
                    time.sleep(OPENBLAS_IDLE_S)
        result = {"cell": cell, "wall": {n: statistics.median(v) for n, v in wall.items()},
                  "cpu": {n: statistics.median(v) for n, v in cpu.items()}}
        print("RESULT", json.dumps(result), flush=True)


def main(argv=None):
    args = _parse(argv)
    if args.worker is not None:
        return _worker(args)
    from visgrad.ops import _gemm

    cores = os.cpu_count() or 1
    threads = [cores if t == "all" else int(t) for t in args.threads]
    N, T, D, H = args.batch, args.steps, args.input_dim, args.hidden_dim
    print(f"N={N} T={T} D={D} H={H} float32 CPU, forward+backward, medians of {args.repeats} rounds "
          f"({args.numpy_repeats} for NumPy) after {args.warmup} warm-up, contenders alternating; "
          f"{cores} cores; GEMMs of visgrad.ops and of the matmul peak: "
          f"{'oneDNN' if _gemm._ONEDNN else 'torch.mm'}")
    print("vg/nn: visgrad time / torch.nn time (wall clock; 'cpu': process CPU time, robust to other load);")
    print("GF/s: GEMM FLOPs of forward+backward per second; peak: a square matmul in the same rounds.")
    print(f"OMP_WAIT_POLICY={args.omp_wait_policy or os.environ.get('OMP_WAIT_POLICY', '(default)')}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'cell':5} {'thr':>3} {'visgrad ms':>10} {'torch.nn ms':>11} {'numpy ms':>9} {'vg/nn':>6} "
          f"{'vg/nn cpu':>9} {'np/vg':>6} {'vg GF/s':>8} {'peak GF/s':>9} {'vg/peak':>7} {'nn/peak':>7}")
    for n in threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n))
        if args.omp_wait_policy:
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--worker", str(n)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if not line.startswith("RESULT "):
                continue
            res = json.loads(line[len("RESULT "):])
            wall, cpu = res["wall"], res["cpu"]
            flops = _gemm_flops(res["cell"], N, T, D, H)
            peak = 2 * args.matmul_size**3 / wall["matmul"]
            vg, nn = flops / wall["visgrad"], flops / wall["torch.nn"]
            print(f"{res['cell']:5} {n:>3} {1e3 * wall['visgrad']:>10.1f} {1e3 * wall['torch.nn']:>11.1f} "
                  f"{1e3 * wall['numpy']:>9.1f} {wall['visgrad'] / wall['torch.nn']:>6.3f} "
                  f"{cpu['visgrad'] / cpu['torch.nn']:>9.3f} {wall['numpy'] / wall['visgrad']:>6.1f} "
                  f"{vg / 1e9:>8.1f} {peak / 1e9:>9.1f} {vg / peak:>7.2f} {nn / peak:>7.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
