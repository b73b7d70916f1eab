"""Benchmarks against peers, measured in one run and reported as ratios.

Each `bench_*` function builds labkit's implementation and the implementation
people would otherwise use (Hugging Face transformers) with identical weights,
alternates their measurements so machine noise hits both alike, and returns a
row dict: what was measured, both throughputs, and their ratio (> 1 means
labkit is faster). `run_benchmarks` collects the rows; `labkit bench` and the
scripts in `benchmarks/` print them as a table and write them as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["machine_info", "bench_train_step", "bench_generate", "run_benchmarks", "format_table", "BenchConfig"]


@dataclass(frozen=True)
class BenchConfig:
    """Shape of the model used by the CPU benchmarks (small enough for 2 cores, big enough to be realistic)."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    vocab_size: int = 8192
    block_size: int = 1024  # generation goes to 16 + 500 tokens


QUICK = BenchConfig(n_layer=2, n_head=4, n_embd=128, vocab_size=4096, block_size=1024)


def machine_info() -> dict[str, Any]:
    """Describe the machine and library versions a measurement was taken on."""
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is an extra
        info["transformers"] = None
    return info


def _pair_models(cfg: BenchConfig, device: str, seed: int = 0):
    """A labkit GPT and its Hugging Face twin (GPT2LMHeadModel) with identical weights."""
    from labkit.models import GPT, GPTConfig

    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=cfg.vocab_size,
        block_size=cfg.block_size,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=0.0,
    )
    ours = GPT(config).to(device)
    theirs = ours.to_hf().to(device)
    return ours, theirs


def _alternate(fns: dict[str, Callable[[], None]], repeat: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternation after `warmup` calls each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def _row(benchmark: str, tokens: int, seconds: float, peer_seconds: float, peer_name: str) -> dict[str, Any]:
    """One table row: labkit's and the peer's throughput in tokens/s, and their ratio (> 1: labkit is faster)."""
    return {
        "benchmark": benchmark,
        "labkit": tokens / seconds,
        "peer": tokens / peer_seconds,
        "peer_name": peer_name,
        "unit": "tokens/s",
        "ratio": peer_seconds / seconds,
    }


def bench_train_step(
    cfg: BenchConfig = BenchConfig(),
    batch: int = 8,
    seq: int = 128,
    repeat: int = 10,
    warmup: int = 2,
    device: str = "cpu",
) -> dict[str, Any]:
    """Training-step throughput (tokens/s) of labkit's GPT vs transformers' GPT2LMHeadModel, same config and batch."""
    ours, theirs = _pair_models(cfg, device)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen).to(device)

    def step_fn(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)

        def step():
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    times = _alternate({"labkit": step_fn(ours), "transformers": step_fn(theirs)}, repeat, warmup)
    tokens = batch * seq
    benchmark = f"train step fp32 (B={batch}, T={seq}, {cfg.n_layer}L/{cfg.n_embd}d)"
    return _row(benchmark, tokens, times["labkit"], times["transformers"], "transformers GPT2LMHeadModel")


def bench_generate(
    cfg: BenchConfig = BenchConfig(),
    batch: int = 1,
    new_tokens: int = 256,
    prompt_len: int = 16,
    repeat: int = 3,
    warmup: int = 1,
    device: str = "cpu",
    compare_no_cache: bool = False,
) -> list[dict[str, Any]]:
    """Greedy generation tokens/s: labkit `generate` vs transformers `generate` (and labkit without KV cache)."""
    from labkit.generation import generate

    ours, theirs = _pair_models(cfg, device)
    ours.eval()
    theirs.eval()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, cfg.vocab_size, (batch, prompt_len), generator=gen).to(device)
    mask = torch.ones_like(ids)

    def run_ours(use_cache: bool = True):
        return lambda: generate(ours, ids, max_new_tokens=new_tokens, temperature=0.0, use_cache=use_cache)

    def run_theirs():
        with torch.inference_mode():
            theirs.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=None,
            )

    fns = {"labkit": run_ours(), "transformers": run_theirs}
    if compare_no_cache:
        fns["labkit-no-cache"] = run_ours(use_cache=False)
    times = _alternate(fns, repeat, warmup)
    tokens = batch * new_tokens
    shape = f"B={batch}, {new_tokens} new tokens"
    rows = [_row(f"generate greedy ({shape})", tokens, times["labkit"], times["transformers"], "transformers generate")]
    if compare_no_cache:
        peer = "labkit generate without KV cache"
        rows.append(_row(f"KV cache vs none ({shape})", tokens, times["labkit"], times["labkit-no-cache"], peer))
    return rows


def run_benchmarks(quick: bool = False) -> dict[str, Any]:
    """Run the CPU benchmark set and return {"machine": ..., "rows": [...]}."""
    cfg = QUICK if quick else BenchConfig()
    rows = [bench_train_step(cfg, batch=4 if quick else 8, seq=64 if quick else 128, repeat=5 if quick else 10)]
    for batch in (1, 8):
        for new_tokens in (64,) if quick else (256, 500):
            rows += bench_generate(
                cfg,
                batch=batch,
                new_tokens=new_tokens,
                repeat=2 if quick else 3,
                compare_no_cache=(batch == 1 and new_tokens == (64 if quick else 500)),
            )
    return {"machine": machine_info(), "quick": quick, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    """Render benchmark rows as a fixed-width text table."""
    lines = [f"{'benchmark':52} {'labkit':>12} {'peer':>12} {'ratio':>7}  peer"]
    for row in result["rows"]:
        lines.append(
            f"{row['benchmark']:52} {row['labkit']:12.1f} {row['peer']:12.1f} {row['ratio']:6.2f}x  {row['peer_name']}"
        )
    machine = result["machine"]
    lines.append(
        f"({machine['device']}, {machine['cpu_count']} cores, torch {machine['torch']}, "
        f"transformers {machine['transformers']}, {machine['date']}; unit: {result['rows'][0]['unit']})"
    )
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str) -> None:
    """Write a benchmark result as indented JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
