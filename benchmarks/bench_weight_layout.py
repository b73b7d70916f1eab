"""Row-major vs column-major weights for one-token decoding on the CPU (why `relayout_for_decoding` exists).

Part 1 times `F.linear(x, W)` for one token (x: [1, 1, in]) with W stored row-major (PyTorch's default) and
column-major (same values and shape, `W.t()` contiguous), for the matrix shapes of the `labkit bench` model.
Each timing cycles through enough copies of W to overflow the CPU caches, as decoding a real model does.
Part 2 times greedy generation on the whole model both ways (`relayout_for_training` puts the default layout
back between the two). Ratios above 1 mean column-major is faster.

Usage: python benchmarks/bench_weight_layout.py [--json PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from labkit.bench import BenchConfig, machine_info
from labkit.generation import generate
from labkit.models import GPT, GPTConfig, relayout_for_decoding, relayout_for_training

CACHE_BYTES = 96 * 2**20  # comfortably more than the last-level cache of the machines we run on


def time_linear(out_features: int, in_features: int, repeat: int = 30) -> dict[str, float]:
    """Microseconds per one-token F.linear for a row-major and a column-major [out, in] weight (medians)."""
    copies = max(2, CACHE_BYTES // (out_features * in_features * 4))
    rows = [torch.randn(out_features, in_features) for _ in range(copies)]
    cols = [w.t().contiguous().t() for w in rows]
    x = torch.randn(1, 1, in_features)
    result = {}
    with torch.inference_mode():
        for name, weights in (("row_major_us", rows), ("column_major_us", cols)):
            for w in weights[:3]:
                F.linear(x, w)
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                for w in weights:
                    F.linear(x, w)
                samples.append((time.perf_counter() - start) / len(weights) * 1e6)
            result[name] = statistics.median(samples)
    result["ratio"] = result["row_major_us"] / result["column_major_us"]
    return result


def time_generate(cfg: BenchConfig, new_tokens: int, repeat: int = 3) -> dict[str, float]:
    """Greedy tokens/s of the benchmark model with the default layout and after relayout_for_decoding, alternated."""
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=cfg.vocab_size,
            block_size=cfg.block_size,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
        )
    ).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(2))
    samples: dict[str, list[float]] = {"row_major": [], "column_major": []}
    for i in range(repeat + 1):  # the first round warms up and is not counted
        for name in samples:
            if name == "row_major":
                relayout_for_training(model)  # generate() would re-lay out an eval model: time it in train mode
                model.train()
            else:
                model.eval()
                relayout_for_decoding(model)
            start = time.perf_counter()
            generate(model, ids, max_new_tokens=new_tokens, temperature=0.0)
            if i:
                samples[name].append(time.perf_counter() - start)
    row, col = (statistics.median(samples[k]) for k in ("row_major", "column_major"))
    return {"row_major_tokens_s": new_tokens / row, "column_major_tokens_s": new_tokens / col, "ratio": row / col}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig()
    d, v = cfg.n_embd, cfg.vocab_size
    shapes = {
        "LM head [vocab, d]": (v, d),
        "fc_in [4d, d]": (4 * d, d),
        "q/k/v/out [d, d]": (d, d),
        "fc_out [d, 4d]": (d, 4 * d),
    }
    rows = {name: time_linear(*shape) for name, shape in shapes.items()}
    print(f"{'one-token F.linear':24} {'row-major':>11} {'column-major':>13} {'ratio':>7}")
    for name, r in rows.items():
        print(f"{name:24} {r['row_major_us']:9.1f}us {r['column_major_us']:11.1f}us {r['ratio']:6.2f}x")
    gen = time_generate(cfg, args.new_tokens)
    print(
        f"greedy generation, B=1, {args.new_tokens} new tokens ({cfg.n_layer}L/{d}d, vocab {v}): "
        f"{gen['row_major_tokens_s']:.0f} -> {gen['column_major_tokens_s']:.0f} tokens/s, {gen['ratio']:.2f}x"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine_info(), "linear": rows, "generate": gen}, fh, indent=2)


if __name__ == "__main__":
    main()
