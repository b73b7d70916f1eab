"""GPU training and generation benchmarks: labkit's train() against a hand-written loop and transformers, with MFU.

Training (the issue's GPU set): a GPT-2-small-shaped model (12 layers, 12 heads, 768 wide, context 1024,
vocabulary 50304), bf16 autocast, SDPA attention, torch.compile, fused AdamW (betas 0.9/0.95, weight decay 0.1
on 2-D weights), gradient clipping at 1.0, constant lr. Three runs over the same batches, from the same initial
weights, one after another:

- `labkit train()`: the library's Trainer with its defaults otherwise (log_every=10, seed, callbacks);
- hand-written loop: the same model, optimizer and steps in a dozen lines of plain PyTorch (nanoGPT's loop:
  pinned non-blocking copies, autocast, backward, clip, step, zero_grad);
- transformers: GPT2LMHeadModel with the same weights (`GPT.to_hf()`), run by the same hand-written loop.

Reported: tokens/s over the timed steps (after `--warmup` steps, which include compilation), the first step's
time (compile included, reported apart; a later run of the same model may reuse kernels from torch's on-disk
compile cache, so only the first run's figure is a cold compile), MFU = training FLOPs per token (6N plus the attention term, see
`labkit.training.device.flops_per_token`) x tokens/s / the device's dense bf16 peak (989 TFLOP/s for H100 SXM
and H200), and the ratios labkit / hand loop and labkit / transformers. Generation: greedy tokens/s of labkit
`generate` and transformers `generate` on the same weights at batch 1 and 8 (`labkit.bench.bench_generate`).

Targets (issue 5): MFU >= 45% on an H100-class GPU; labkit train() within 5% of the hand-written loop.

Usage:
    python benchmarks/bench_gpu.py [--batch 16] [--steps 40] [--warmup 10] [--json PATH]
    python benchmarks/bench_gpu.py --device cpu --tiny     # seconds: checks the script itself on a CPU
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from labkit.bench import BenchConfig, bench_generate, format_table, machine_info
from labkit.models import GPT, GPTConfig
from labkit.training import flops_per_token, peak_flops, train
from labkit.training.callbacks import Callback

LR, BETAS, WEIGHT_DECAY, CLIP = 6e-4, (0.9, 0.95), 0.1, 1.0


@dataclass(frozen=True)
class Shape:
    """Model and batch shape of one benchmark run."""

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    vocab_size: int = 50304  # GPT-2's 50257 rounded up to a multiple of 64, as nanoGPT and llm.c do
    seq: int = 1024
    batch: int = 16


TINY = Shape(n_layer=2, n_head=2, n_embd=64, vocab_size=256, seq=32, batch=4)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(shape: Shape, n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """n batches of random token ids on the CPU (labels == input_ids: the models shift them), the same for every run."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, shape.vocab_size, (shape.batch, shape.seq), generator=gen)
        out.append({"input_ids": ids, "labels": ids})
    return out


def make_model(shape: Shape, seed: int = 0) -> GPT:
    """The benchmark GPT (learned positions, GELU, tied embeddings, no dropout), on the CPU."""
    torch.manual_seed(seed)
    return GPT(
        GPTConfig(
            vocab_size=shape.vocab_size,
            block_size=shape.seq,
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            n_embd=shape.n_embd,
            dropout=0.0,
        )
    )


class StepTimer(Callback):
    """Marks the start, the end of step 1 (compilation), the end of warm-up and the end of training (synchronized)."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.marks: dict[str, float] = {}

    def _mark(self, name: str) -> None:
        _sync(self.device)
        self.marks[name] = time.perf_counter()

    def on_train_begin(self, trainer: Any) -> None:
        self._mark("begin")

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any]) -> None:
        if step == 1:
            self._mark("first")
        if step == self.warmup:
            self._mark("warm")

    def on_train_end(self, trainer: Any, history: Any) -> None:
        self._mark("end")


def run_labkit(
    model: torch.nn.Module, batches: list, warmup: int, device: torch.device, precision: str, compile: bool
) -> dict[str, Any]:
    """labkit's train() over the batches; returns marks and the per-step losses."""
    timer = StepTimer(warmup, device)
    history = train(
        model,
        batches,
        steps=len(batches),
        optimizer="adamw",
        lr=LR,
        betas=BETAS,
        weight_decay=WEIGHT_DECAY,
        schedule="constant",
        clip_norm=CLIP,
        precision=precision,
        compile=compile,
        device=device,
        progress=False,
        seed=0,
        callbacks=[timer],
    )
    return {"marks": timer.marks, "losses": list(history.loss)}


def run_hand_loop(
    model: torch.nn.Module, batches: list, warmup: int, device: torch.device, precision: str, compile: bool
) -> dict[str, Any]:
    """The minimal training loop people write by hand, over the same batches and optimizer settings."""
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, fused=device.type == "cuda")
    fwd = torch.compile(model) if compile else model
    dtype = torch.bfloat16 if precision == "bf16" else None
    marks: dict[str, float] = {}
    losses = []
    _sync(device)
    marks["begin"] = time.perf_counter()
    for step, batch in enumerate(batches, start=1):
        x = batch["input_ids"]
        x = (x.pin_memory() if device.type == "cuda" else x).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = fwd(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if step in (1, warmup):
            _sync(device)
            marks["first" if step == 1 else "warm"] = time.perf_counter()
    _sync(device)
    marks["end"] = time.perf_counter()
    return {"marks": marks, "losses": [float(v) for v in torch.stack(losses).float().cpu()]}


def summarize(
    name: str, result: dict[str, Any], shape: Shape, steps: int, warmup: int, flops: float, peak: float | None
) -> dict[str, Any]:
    """Marks and losses in, tokens/s, first-step (compile) seconds and MFU out."""
    m = result["marks"]
    timed = steps - warmup
    seconds = m["end"] - m["warm"]
    tokens_s = timed * shape.batch * shape.seq / seconds
    return {
        "name": name,
        "tokens_per_s": tokens_s,
        "step_ms": seconds / timed * 1e3,
        "first_step_s": m["first"] - m["begin"],
        "mfu": flops * tokens_s / peak if peak else None,
        "final_loss": result["losses"][-1],
        "losses": result["losses"],
    }


def bench_train(
    shape: Shape, steps: int, warmup: int, device: torch.device, precision: str, compile: bool, peers: bool = True
) -> list[dict[str, Any]]:
    """Run labkit train(), the hand-written loop and (if peers) transformers on identical weights and batches."""
    batches = make_batches(shape, steps)
    base = make_model(shape)
    flops = flops_per_token(base, shape.seq)
    peak = peak_flops(device, precision)
    runs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("labkit train()", lambda: run_labkit(copy.deepcopy(base), batches, warmup, device, precision, compile)),
        ("hand-written loop", lambda: run_hand_loop(copy.deepcopy(base), batches, warmup, device, precision, compile)),
    ]
    if peers:
        runs.append(
            (
                "transformers GPT2LMHeadModel",
                lambda: run_hand_loop(base.to_hf(), batches, warmup, device, precision, compile),
            )
        )
    out = []
    for name, run in runs:
        torch._dynamo.reset()  # each run compiles from scratch, so first_step_s is comparable
        out.append(summarize(name, run(), shape, steps, warmup, flops, peak))
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def ratio_rows(results: list[dict[str, Any]], shape: Shape, precision: str) -> list[dict[str, Any]]:
    """Training results in, `labkit.bench`-style rows (labkit vs each peer, tokens/s) out."""
    ours = results[0]
    label = f"train step {precision} (B={shape.batch}, T={shape.seq}, {shape.n_layer}L/{shape.n_embd}d)"
    return [
        {
            "benchmark": label,
            "labkit": ours["tokens_per_s"],
            "peer": r["tokens_per_s"],
            "peer_name": r["name"],
            "unit": "tokens/s",
            "ratio": ours["tokens_per_s"] / r["tokens_per_s"],
        }
        for r in results[1:]
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny, to check the script)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 64-wide model: seconds on a CPU")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (default 16; tiny: 4)")
    parser.add_argument("--steps", type=int, default=40, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation happens in step 1)")
    parser.add_argument("--precision", default=None, help="bf16 (default on GPUs) or fp32 (default on CPUs)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-peers", action="store_true", help="skip the transformers runs")
    parser.add_argument("--no-generate", action="store_true", help="skip the generation benchmarks")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; run on a GPU machine, or check the script with --device cpu --tiny")
    if not 1 <= args.warmup < args.steps:
        parser.error(f"--warmup must be at least 1 and below --steps ({args.steps}), got {args.warmup}")
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch must be a positive number of sequences, got {args.batch}")
    shape = TINY if args.tiny else Shape()
    if args.batch:
        shape = dataclasses.replace(shape, batch=args.batch)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # only fp32 matmuls outside autocast are affected
        torch.backends.cudnn.allow_tf32 = True

    results = bench_train(
        shape, args.steps, args.warmup, device, precision, not args.no_compile, peers=not args.no_peers
    )
    rows = ratio_rows(results, shape, precision)
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(
            f"{r['name']:30} {r['tokens_per_s']:12.0f} tokens/s  {r['step_ms']:8.2f} ms/step  MFU {mfu:>6}  "
            f"first step {r['first_step_s']:.1f} s  final loss {r['final_loss']:.4f}"
        )
    if not args.no_generate:
        gen_cfg = BenchConfig(
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            n_embd=shape.n_embd,
            vocab_size=shape.vocab_size,
            block_size=max(shape.seq, 16 + 256),
        )
        for batch in (1, 8):
            rows += bench_generate(
                gen_cfg,
                batch=batch,
                new_tokens=16 if args.tiny else 256,
                repeat=3,
                device=str(device),
                compare_no_cache=batch == 1,
            )
    report = {
        "machine": machine_info(),
        "shape": dataclasses.asdict(shape),
        "precision": precision,
        "compile": not args.no_compile,
        "steps": args.steps,
        "warmup": args.warmup,
        "train": results,
        "rows": rows,
    }
    print(format_table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
