"""How fast this machine's cores train: the median step of lesson 03's model, at 1 and 2 torch threads.

Lesson and suite times differ between machines of the same size (two 2-core machines here differ 2.6x on
this step). Quote this figure beside a lesson or suite time so that readers can compare like with like.
The step: gpt-char (4 layers, 128 wide, context 64), batch 12 x 64, forward, cross-entropy, backward, AdamW.

Usage: python benchmarks/bench_machine.py [--steps 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from labkit.bench import machine_info
from labkit.models import GPT, GPTConfig


def step_ms(threads: int, steps: int, warmup: int = 10) -> float:
    """Median milliseconds of one training step at `threads` torch threads (after `warmup` steps)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _median_step_ms(steps, warmup)
    finally:
        torch.set_num_threads(saved)


def _median_step_ms(steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-char")).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, 65, (2, 12, 64))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = model(x, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per thread count (default: 60)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    rows = {threads: step_ms(threads, args.steps) for threads in (2, 1)}
    for threads, ms in rows.items():
        print(f"gpt-char training step, {threads} thread{'s' if threads > 1 else ''}: {ms:6.1f} ms (median)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine_info(), "step_ms": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
