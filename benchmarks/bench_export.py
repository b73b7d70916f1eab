"""Deployment formats side by side: size on disk, CPU decoding speed and validation perplexity.

    python benchmarks/bench_export.py [--steps 600] [--new-tokens 200] [--repeat 3] [--threads 2] [--smollm2]
                                      [--json PATH]

For each model, the same weights in five forms:
- PyTorch float32: `save_model` (safetensors) on disk, labkit `generate()` (KV cache) for speed.
- PyTorch bfloat16: `save_model(..., dtype="bfloat16")` on disk, the model cast to bfloat16 for speed and
  perplexity (what running the smaller file as-is costs).
- ONNX float32: `to_onnx(..., with_cache=True)`, onnxruntime on the CPU with the exported cache.
- ONNX int8: that file through `quantize_onnx` (dynamic: int8 weights per channel and int8 activations).
- ONNX int8 weights only: `quantize_onnx(..., method="weights")` (int8 weights in blocks of 32, float activations).
Speed is batch-1 greedy decoding of `--new-tokens` tokens after a 16-token prompt (tokens/s, median of
`--repeat`, the forms alternating so machine noise hits all alike). Perplexity is exp(mean next-token loss) on
held-out text: the last 10 % of Shakespeare, cut into rows of the model's context (at most 256 tokens, 16 rows).
Ratios are against PyTorch float32.

Models: lesson 03's (gpt-char: 4 layers, 128 wide, character tokenizer) trained here for `--steps` steps, and,
with `--smollm2`, SmolLM2-135M (from its packaged GGUF file).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.bench import machine_info


def _lesson_model(steps: int) -> tuple[Any, Any, str]:
    from labkit.data import RandomBlockBatches, load_corpus, train_tokenizer, train_val_split
    from labkit.models import GPT, GPTConfig
    from labkit.training import train

    text = load_corpus("shakespeare").text
    tokenizer = train_tokenizer(text, kind="char", special_tokens={"unk": "<unk>"})
    ids = torch.tensor(tokenizer.encode(text))
    train_ids, _ = train_val_split(ids, 0.1)
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-char", vocab_size=tokenizer.vocab_size, block_size=64, dropout=0.0))
    batches = RandomBlockBatches(train_ids, block_size=64, batch_size=12, seed=0)
    train(model, batches, steps=steps, lr=1e-3, schedule="cosine", warmup=50, progress=False)
    return model.eval(), tokenizer, text


def _smollm2() -> tuple[Any, Any, str]:
    from labkit.data import load_corpus
    from labkit.models import load_pretrained

    model, tokenizer = load_pretrained("smollm2-135m", progress=False)
    return model.eval(), tokenizer, load_corpus("shakespeare").text


def _validation_rows(tokenizer: Any, text: str, block: int) -> np.ndarray:
    tail = text[int(0.9 * len(text)) :]
    width = min(block, 256)
    ids = tokenizer.encode(tail[: 40 * 16 * width])  # enough characters for 16 rows of any tokenizer
    rows = min(16, len(ids) // width)
    return np.asarray(ids[: rows * width], dtype=np.int64).reshape(rows, width)


def _torch_perplexity(model: Any, rows: np.ndarray, dtype: torch.dtype) -> float:
    ids = torch.from_numpy(rows)
    total = 0.0
    with torch.no_grad():
        for row in ids.split(4):
            logits = model(row).logits[:, :-1].float()
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), row[:, 1:].reshape(-1), reduction="sum"
            ).item()
    return float(np.exp(total / (ids.shape[0] * (ids.shape[1] - 1))))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def measure(name: str, model: Any, tokenizer: Any, text: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One model in, one row per form out: bytes on disk, tokens/s, validation perplexity and ratios."""
    from labkit.export import OnnxModel, quantize_onnx, save_model, to_onnx
    from labkit.generation import generate

    rows = _validation_rows(tokenizer, text, model.config.block_size)
    prompt = rows[0, :16][None]
    n = min(args.new_tokens, model.config.block_size - 16)
    bf16 = __import__("copy").deepcopy(model).to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        fp32_onnx = to_onnx(model, tmp / "model.onnx", with_cache=True)
        export_s = time.perf_counter() - t0
        int8_onnx = quantize_onnx(fp32_onnx, tmp / "model.int8.onnx")
        weights_onnx = quantize_onnx(fp32_onnx, tmp / "model.w8.onnx", method="weights")
        forms = {
            "PyTorch float32": dict(size=_size(save_model(model, tmp / "fp32")), run=None),
            "PyTorch bfloat16": dict(size=_size(save_model(model, tmp / "bf16", dtype="bfloat16")), run=None),
            "ONNX float32": dict(size=_size(fp32_onnx), run=OnnxModel(fp32_onnx, threads=args.threads)),
            "ONNX int8": dict(size=_size(int8_onnx), run=OnnxModel(int8_onnx, threads=args.threads)),
            "ONNX int8 weights only": dict(size=_size(weights_onnx), run=OnnxModel(weights_onnx, threads=args.threads)),
        }

        def decode(form: str) -> float:
            t = time.perf_counter()
            if form == "PyTorch float32":
                with torch.no_grad():
                    generate(model, torch.from_numpy(prompt), n, temperature=0.0)
            elif form == "PyTorch bfloat16":
                with torch.no_grad():
                    generate(bf16, torch.from_numpy(prompt), n, temperature=0.0)
            else:
                forms[form]["run"].greedy(prompt, n)
            return n / (time.perf_counter() - t)

        for form in forms:  # warm-up (first-call allocations, onnxruntime's kernel choice)
            decode(form)
        speeds: dict[str, list[float]] = {form: [] for form in forms}
        for _ in range(args.repeat):
            for form in forms:
                speeds[form].append(decode(form))
        perplexity = {
            "PyTorch float32": _torch_perplexity(model, rows, torch.float32),
            "PyTorch bfloat16": _torch_perplexity(bf16, rows, torch.bfloat16),
            "ONNX float32": forms["ONNX float32"]["run"].perplexity(rows),
            "ONNX int8": forms["ONNX int8"]["run"].perplexity(rows),
            "ONNX int8 weights only": forms["ONNX int8 weights only"]["run"].perplexity(rows),
        }
    base = forms["PyTorch float32"]["size"], statistics.median(speeds["PyTorch float32"])
    out = []
    for form, info in forms.items():
        speed = statistics.median(speeds[form])
        out.append(
            {
                "model": name,
                "form": form,
                "bytes": info["size"],
                "size_ratio": info["size"] / base[0],
                "tokens_per_s": speed,
                "speed_ratio": speed / base[1],
                "perplexity": perplexity[form],
                "perplexity_change": perplexity[form] / perplexity["PyTorch float32"] - 1,
                "validation_tokens": int(rows.size),
                "new_tokens": n,
                "onnx_export_s": export_s,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps of the lesson model")
    parser.add_argument("--new-tokens", type=int, default=200, help="greedy tokens per speed measurement")
    parser.add_argument("--repeat", type=int, default=3, help="speed measurements per form (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M (minutes, ~3 GB of memory)")
    parser.add_argument("--json", default=None, help="write the rows and the machine here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    model, tokenizer, text = _lesson_model(args.steps)
    rows += measure("lesson 03 (gpt-char, 0.8M)", model, tokenizer, text, args)
    if args.smollm2:
        model, tokenizer, text = _smollm2()
        args.new_tokens = min(args.new_tokens, 100)
        rows += measure("SmolLM2-135M", model, tokenizer, text, args)
    print("| model | form | size on disk | size | tokens/s | speed | validation perplexity | change |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['model']} | {r['form']} | {r['bytes'] / 1e6:.2f} MB | {r['size_ratio']:.2f}x | "
            f"{r['tokens_per_s']:,.0f} | {r['speed_ratio']:.2f}x | {r['perplexity']:.3f} | "
            f"{100 * r['perplexity_change']:+.2f} % |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
