"""Forward+backward speed of the hand-written attention against PyTorch's, and KV-cache decoding.

Attention (causal self-attention, float32, dropout off), at each size:
- ``core``: ``visgrad.ops.attention`` vs ``scaled_dot_product_attention`` on the math backend, on the same
  split heads q, k, v (N, h, T, d) and the same additive causal mask;
- ``module``: ``visgrad.captioning.MultiHeadAttention`` (nn.Linear projections + ``ops.attention``) vs the
  same module with ``scaled_dot_product_attention`` (math) inside vs ``torch.nn.MultiheadAttention``, on the
  same input x (N, T, E) and the same weights.
Decoding: a ``CaptioningTransformer`` decodes greedily and with beam search, once with its key/value cache
(``step``) and once re-running the whole prefix at every word (``forward`` on the prefix).

Every round times each contender once in a rotating order, so load from other processes hits all of them
alike; the script prints medians and ratios from the same run.

    python benchmarks/bench_attention.py                 # captioner sizes (N=100, T=17, E=64, 4 heads)
                                                         # and N=128, T=16, E=256, 4 heads
    python benchmarks/bench_attention.py --threads 1 --repeats 50 --no-decode
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import visgrad.ops as ops
from visgrad.captioning import CaptioningTransformer, MultiHeadAttention, beam_search, greedy_decode
from visgrad.captioning.decoding import PrefixRerun

SIZES = {"captioner": (100, 17, 64, 4), "N128": (128, 16, 256, 4)}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES),
                   help="captioner: N=100, T=17, E=64, 4 heads; N128: N=128, T=16, E=256, 4 heads")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=30, help="timed rounds per contender")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds first")
    p.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decoding comparison")
    p.add_argument("--decode-images", type=int, default=100, help="images decoded per round")
    p.add_argument("--max-length", type=int, default=30, help="words decoded per image")
    return p.parse_args(argv)


def rounds(contenders: dict, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of each zero-argument callable over ``repeats`` rotating rounds."""
    names, times = list(contenders), {name: [] for name in contenders}
    for round_ in range(warmup + repeats):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def forward_backward(fn, inputs, dout):
    def run():
        for t in inputs:
            t.grad = None
        fn().backward(dout)
    return run


class SDPAMultiHeadAttention(MultiHeadAttention):
    """The course module with PyTorch's ``scaled_dot_product_attention`` (math backend) inside."""

    def attend(self, q, k, v, mask=None):
        with sdpa_kernel(SDPBackend.MATH):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        N, _, S, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(N, S, self.emd_dim))


def attention_contenders(N, T, E, heads):
    """Return ({core name: callable}, {module name: callable}) on shared inputs, after checking they agree."""
    d = E // heads
    q, k, v = (torch.randn(N, heads, T, d, requires_grad=True) for _ in range(3))
    mask = torch.zeros(T, T).masked_fill_(~torch.ones(T, T, dtype=torch.bool).tril_(), float("-inf"))
    dcore = torch.randn(N, heads, T, d)

    def sdpa():
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    torch.testing.assert_close(ops.attention(q, k, v, mask), sdpa(), rtol=1e-4, atol=1e-5)
    ours_core = forward_backward(lambda: ops.attention(q, k, v, mask), (q, k, v), dcore)
    core = {"visgrad ops.attention": ours_core,
            "SDPA (math)": forward_backward(sdpa, (q, k, v), dcore)}

    ours = MultiHeadAttention(E, heads, dropout=0.0)
    with_sdpa = SDPAMultiHeadAttention(E, heads, dropout=0.0)
    with_sdpa.load_state_dict(ours.state_dict())
    torch_mha = torch.nn.MultiheadAttention(E, heads, batch_first=True)
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(torch.cat([ours.query.weight, ours.key.weight, ours.value.weight]))
        torch_mha.in_proj_bias.copy_(torch.cat([ours.query.bias, ours.key.bias, ours.value.bias]))
        torch_mha.out_proj.weight.copy_(ours.proj.weight)
        torch_mha.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(N, T, E, requires_grad=True)
    course_mask = torch.ones(T, T).tril_()  # 0 blocks
    blocked = course_mask == 0  # nn.MultiheadAttention: True blocks
    dx = torch.randn(N, T, E)
    torch.testing.assert_close(ours(x, x, x, course_mask), torch_mha(x, x, x, attn_mask=blocked)[0],
                               rtol=1e-4, atol=1e-5)
    module = {
        "visgrad MultiHeadAttention": forward_backward(lambda: ours(x, x, x, course_mask), [x], dx),
        "same module, SDPA (math)": forward_backward(lambda: with_sdpa(x, x, x, course_mask), [x], dx),
        "nn.MultiheadAttention": forward_backward(
            lambda: torch_mha(x, x, x, attn_mask=blocked, need_weights=False)[0], [x], dx),
    }
    return core, module


def report(title: str, medians: dict[str, float], ours: str, baselines: list[str]) -> None:
    fastest = min(baselines, key=medians.get)
    print(f"{title}\n{'contender':<30}{'median ms':>11}{'visgrad time / its time':>26}")
    for name, median in medians.items():
        print(f"{name:<30}{1000 * median:>11.3f}{medians[ours] / median:>25.2f}x")
    ratio = medians[ours] / medians[fastest]
    print(f"-> {ours} / fastest baseline ({fastest}): {ratio:.2f}x (goal <= 1.1x)\n")


def decoding(args) -> None:
    torch.manual_seed(0)
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(40)]
    vocab = {w: i for i, w in enumerate(words)}
    model = CaptioningTransformer(vocab, 512, 64, 4, 1, max_length=50, dim_feedforward=256).eval()
    features = torch.randn(args.decode_images, 512)
    rerun = PrefixRerun(model)
    for cached, plain in [(greedy_decode(model, features, args.max_length),
                           greedy_decode(rerun, features, args.max_length)),
                          (beam_search(model, features, 3, args.max_length)[0],
                           beam_search(rerun, features, 3, args.max_length)[0])]:
        assert torch.equal(cached, plain), "cached and prefix decoding disagree"
    contenders = {
        "greedy, KV cache": lambda: greedy_decode(model, features, args.max_length),
        "greedy, re-run prefix": lambda: greedy_decode(rerun, features, args.max_length),
        "beam 3, KV cache": lambda: beam_search(model, features, 3, args.max_length),
        "beam 3, re-run prefix": lambda: beam_search(rerun, features, 3, args.max_length),
    }
    medians = rounds(contenders, max(3, args.repeats // 5), 1)
    # An untrained model never emits <END>: every image decodes all max_length words (the worst case).
    print(f"decoding {args.decode_images} images x {args.max_length} words (model=transformer sizes: E=64, "
          f"4 heads, 1 layer; same captions both ways)")
    print(f"{'contender':<26}{'ms per image':>14}{'cache speed-up':>16}")
    for name, median in medians.items():
        cached = medians[name.replace("re-run prefix", "KV cache")]
        print(f"{name:<26}{1000 * median / args.decode_images:>14.3f}{median / cached:>15.2f}x")


def main(argv=None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, causal self-attention, "
          f"forward+backward, {args.repeats} rounds\n")
    for size in args.sizes:
        N, T, E, heads = SIZES[size]
        core, module = attention_contenders(N, T, E, heads)
        label = f"N={N}, T={T}, E={E}, {heads} heads"
        report(f"[{size}] core attention, {label}", rounds(core, args.repeats, args.warmup),
               "visgrad ops.attention", ["SDPA (math)"])
        report(f"[{size}] module, {label}", rounds(module, args.repeats, args.warmup),
               "visgrad MultiHeadAttention", ["same module, SDPA (math)", "nn.MultiheadAttention"])
    if args.decode:
        decoding(args)


if __name__ == "__main__":
    main()
