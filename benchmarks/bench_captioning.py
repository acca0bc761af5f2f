"""Training throughput of the captioner: ours (``visgrad.ops`` cells) vs ``torch.nn.LSTM``/``RNN`` vs NumPy.

One training step = CS231n loss forward, backward and an Adam update, on the same captions and the same
weights (the ``torch.nn`` model holds a copy, gates reordered from CS231n's i, f, o, g to torch's
i, f, g, o; the NumPy model uses the ``visgrad.reference`` layers and a NumPy Adam). Every round times
each contender once in a rotating order, so load from other processes hits all of them alike; the
script prints the median captions/s and the ratios against ``torch.nn``. The initial losses are checked
to agree first.

    python benchmarks/bench_captioning.py                    # the default `shapes` training sizes
    python benchmarks/bench_captioning.py --cell rnn -W 256 -H 512 --vocab 1004 --batch 25   # CS231n sizes
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import visgrad.reference as ref
from visgrad.captioning import CaptioningRNN

# OpenBLAS's worker threads keep spinning for a while after NumPy's last product, taking a core from the
# next contender (up to 2x its time at 2 threads); an untimed pause after each NumPy round lets them sleep.
OPENBLAS_IDLE_S = 0.3


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=["lstm", "rnn"], default="lstm")
    p.add_argument("--batch", "-N", type=int, default=100)
    p.add_argument("--steps", "-T", type=int, default=17, help="input words per caption")
    p.add_argument("--input-dim", "-D", type=int, default=512)
    p.add_argument("--wordvec-dim", "-W", type=int, default=128)
    p.add_argument("--hidden-dim", "-H", type=int, default=128)
    p.add_argument("--vocab", "-V", type=int, default=27)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--numpy-every", type=int, default=4, help="time the slow NumPy loop every k-th round")
    return p.parse_args(argv)


class TorchCaptioner(nn.Module):
    """The same captioner on ``nn.Embedding`` / ``nn.LSTM`` (or ``nn.RNN``) / ``nn.Linear``."""

    def __init__(self, ours: CaptioningRNN) -> None:
        super().__init__()
        V, W = ours.W_embed.shape
        D, H = ours.W_proj.shape
        self.null_idx = ours.null_idx
        self.embed = nn.Embedding(V, W)
        self.proj = nn.Linear(D, H)
        rnn_class = nn.LSTM if ours.cell_type == "lstm" else nn.RNN
        self.rnn = rnn_class(W, H, batch_first=True)
        self.vocab = nn.Linear(H, V)
        order = _gate_order(ours.cell_type, H)
        with torch.no_grad():
            self.embed.weight.copy_(ours.W_embed)
            self.proj.weight.copy_(ours.W_proj.T)
            self.proj.bias.copy_(ours.b_proj)
            self.rnn.weight_ih_l0.copy_(ours.Wx.T[order])
            self.rnn.weight_hh_l0.copy_(ours.Wh.T[order])
            self.rnn.bias_ih_l0.copy_(ours.b[order])
            self.rnn.bias_hh_l0.zero_()
            self.vocab.weight.copy_(ours.W_vocab.T)
            self.vocab.bias.copy_(ours.b_vocab)
        self.cell_type = ours.cell_type

    def loss(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        words, targets = captions[:, :-1], captions[:, 1:]
        h0 = self.proj(features)[None]
        state = (h0, torch.zeros_like(h0)) if self.cell_type == "lstm" else h0
        h, _ = self.rnn(self.embed(words), state)
        scores = self.vocab(h)
        nll = F.cross_entropy(scores.flatten(0, 1), targets.flatten(), ignore_index=self.null_idx,
                              reduction="sum")
        return nll / len(captions)


def _gate_order(cell_type: str, H: int) -> torch.Tensor:
    """Rows of torch's (4H, .) LSTM weights (i, f, g, o) taken from CS231n's (i, f, o, g) columns."""
    if cell_type == "rnn":
        return torch.arange(H)
    i, f, o, g = (torch.arange(k * H, (k + 1) * H) for k in range(4))
    return torch.cat([i, f, g, o])


class NumpyCaptioner:
    """CS231n's training loop in NumPy: ``visgrad.reference`` layers and Adam (float32, as the torch ones)."""

    def __init__(self, ours: CaptioningRNN, lr: float) -> None:
        self.params = {n: p.detach().numpy().copy() for n, p in ours.named_parameters()}
        self.cell_type, self.null_idx, self.lr = ours.cell_type, ours.null_idx, lr
        self.m = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.v = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.t = 0

    def loss_and_grads(self, features: np.ndarray, captions: np.ndarray):
        p = self.params
        words, targets = captions[:, :-1], captions[:, 1:]
        h0 = features @ p["W_proj"] + p["b_proj"]
        x, embed_cache = ref.word_embedding_forward(words, p["W_embed"])
        forward = ref.lstm_forward if self.cell_type == "lstm" else ref.rnn_forward
        backward = ref.lstm_backward if self.cell_type == "lstm" else ref.rnn_backward
        h, rnn_cache = forward(x, h0, p["Wx"], p["Wh"], p["b"])
        scores, affine_cache = ref.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = ref.temporal_softmax_loss(scores, targets, targets != self.null_idx)
        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = ref.temporal_affine_backward(dscores, affine_cache)
        dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, rnn_cache)
        grads["W_embed"] = ref.word_embedding_backward(dx, embed_cache)
        grads["W_proj"], grads["b_proj"] = features.T @ dh0, dh0.sum(0)
        return loss, grads

    def step(self, features: np.ndarray, captions: np.ndarray) -> float:
        loss, grads = self.loss_and_grads(features, captions)
        self.t += 1
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for name, grad in grads.items():
            self.m[name] = beta1 * self.m[name] + (1 - beta1) * grad
            self.v[name] = beta2 * self.v[name] + (1 - beta2) * grad**2
            m_hat = self.m[name] / (1 - beta1**self.t)
            v_hat = self.v[name] / (1 - beta2**self.t)
            self.params[name] -= self.lr * m_hat / (np.sqrt(v_hat) + eps)
        return float(loss)


def torch_step(model, optimizer, features, captions) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(features, captions)
    loss.backward()
    optimizer.step()
    return loss.item()


def main(argv=None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(args.vocab - 4)]
    vocab = {w: i for i, w in enumerate(words)}
    N, T = args.batch, args.steps
    ours = CaptioningRNN(vocab, args.input_dim, args.wordvec_dim, args.hidden_dim, args.cell)
    baseline = TorchCaptioner(ours)
    numpy_model = NumpyCaptioner(ours, lr=5e-3)
    features = torch.randn(N, args.input_dim)
    lengths = torch.randint(T // 2, T, (N,))
    captions = torch.randint(4, args.vocab, (N, T + 1))
    captions[:, 0] = vocab["<START>"]
    captions[torch.arange(N), lengths] = vocab["<END>"]
    captions[torch.arange(T + 1)[None] > lengths[:, None]] = vocab["<NULL>"]
    features_np, captions_np = features.numpy(), captions.numpy()

    with torch.no_grad():
        losses = [ours.loss(features, captions).item(), baseline.loss(features, captions).item(),
                  numpy_model.loss_and_grads(features_np, captions_np)[0]]
    assert np.allclose(losses, losses[0], rtol=1e-4), f"initial losses disagree: {losses}"

    opt_ours = torch.optim.Adam(ours.parameters(), lr=5e-3)
    opt_base = torch.optim.Adam(baseline.parameters(), lr=5e-3)
    contenders = {
        "visgrad.ops": lambda: torch_step(ours, opt_ours, features, captions),
        f"torch.nn.{'LSTM' if args.cell == 'lstm' else 'RNN'}": lambda: torch_step(
            baseline, opt_base, features, captions),
        "NumPy reference": lambda: numpy_model.step(features_np, captions_np),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(args.warmup + args.repeats):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for name in order:
            if name == "NumPy reference" and round_ % args.numpy_every and round_ >= args.warmup:
                continue
            start = time.perf_counter()
            contenders[name]()
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
            if name == "NumPy reference":
                time.sleep(OPENBLAS_IDLE_S)

    print(f"captioner training step ({args.cell}): N={N} captions, T={T}, D={args.input_dim}, "
          f"W={args.wordvec_dim}, H={args.hidden_dim}, V={args.vocab}, "
          f"torch threads={torch.get_num_threads()}; initial loss {losses[0]:.4f} (all agree)")
    base_name = names[1]
    base = statistics.median(times[base_name])
    print(f"{'contender':<18}{'median ms/step':>16}{'captions/s':>14}{'vs ' + base_name:>22}{'runs':>6}")
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:<18}{1000 * median:>16.2f}{N / median:>14.0f}{base / median:>21.2f}x"
              f"{len(times[name]):>6}")


if __name__ == "__main__":
    main()
