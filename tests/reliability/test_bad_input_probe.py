"""The bad-input probe of the hardening issue: a table of wrong values across the public API, each with the outcome
it must have.

A case expects either `error` (a labkit error whose message is one line and matches a pattern that names the
problem, raised before any expensive work) or `accept` (an edge value that must work, its result checked against
a reference or a property). `classify` turns a run into one of five outcomes; the test demands the expected one,
and `scripts/bad_input_tally.py` prints the count of each outcome by area, the numbers the docs quote.
"""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import labkit.data as D
import labkit.evaluation as E
import labkit.generation as G
import labkit.models as M
from labkit.errors import LabkitError

# ---------------------------------------------------------------- the harness

CLEAR_ERROR, ACCEPTED = "clear error", "correctly accepted"
UNCLEAR_ERROR, CRASH, SILENT = "unclear error", "crash", "silent wrong result"
OUTCOMES = (CLEAR_ERROR, ACCEPTED, UNCLEAR_ERROR, CRASH, SILENT)


@dataclass(frozen=True)
class Case:
    """One bad (or edge) input: `run` calls the API; `expect` is "error" (message must match `match`) or "accept"
    (`check`, when given, asserts on the result)."""

    area: str
    name: str
    run: Callable[[], Any]
    expect: str = "error"
    match: str = ""
    check: Callable[[Any], Any] | None = None


def classify(case: Case) -> tuple[str, str]:
    """Run one case; return its outcome (one of OUTCOMES) and a line saying what happened."""
    import re

    try:
        result = case.run()
    except LabkitError as exc:
        text = str(exc)
        if case.expect == "accept":
            return UNCLEAR_ERROR, f"refused an input that must work: {text}"
        if "\n" in text:
            return UNCLEAR_ERROR, f"message spans lines: {text!r}"
        if not re.search(case.match, text):
            return UNCLEAR_ERROR, f"message does not match {case.match!r}: {text}"
        return CLEAR_ERROR, text
    except Exception as exc:  # anything that is not a labkit error is a crash the user sees as a traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return (
            CRASH,
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} ({where.filename}:{where.lineno})",
        )
    if case.expect == "error":
        return SILENT, f"accepted, returned {type(result).__name__}"
    if case.check is not None:
        try:
            good = case.check(result)
        except Exception as exc:  # the result is not what the reference says it should be
            return SILENT, f"result check raised {type(exc).__name__}: {exc}"
        if not good:
            return SILENT, "result differs from the reference"
    return ACCEPTED, "ok"


# ---------------------------------------------------------------- tiny shared objects (built once, on first use)

TEXTS = [
    "to be or not to be that is the question",
    "whether tis nobler in the mind to suffer",
    "the slings and arrows of outrageous fortune",
    "or to take arms against a sea of troubles",
] * 3


@functools.cache
def tok():
    from labkit.data import train_tokenizer

    return train_tokenizer(TEXTS, kind="bpe", vocab_size=300, min_frequency=1)


@functools.cache
def gpt():
    from labkit.models import GPT, GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig.preset("gpt-nano", vocab_size=32, block_size=16, n_layer=2)).eval()


@functools.cache
def encoder():
    from labkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    cfg = EncoderConfig(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16, n_inner=32, dropout=0.0)
    return Encoder(cfg).eval()


@functools.cache
def seq2seq():
    from labkit.models import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    cfg = Seq2SeqConfig(
        src_vocab_size=24,
        tgt_vocab_size=20,
        block_size=16,
        n_layer=1,
        n_decoder_layer=1,
        n_head=2,
        n_embd=16,
        n_inner=32,
        dropout=0.0,
    )
    return Seq2Seq(cfg).eval()


@functools.cache
def lstm():
    from labkit.models import LSTMLM, LSTMConfig

    torch.manual_seed(0)
    return LSTMLM(LSTMConfig(vocab_size=32, n_embd=16, hidden_size=16, n_layer=1, dropout=0.0, block_size=16)).eval()


def ids(n=6, vocab=32, batch=1):
    return torch.randint(0, vocab, (batch, n), generator=torch.Generator().manual_seed(n))


def attn(layers=2, heads=2, t=5):
    a = torch.rand(layers, 1, heads, t, t, generator=torch.Generator().manual_seed(0))
    return tuple((x / x.sum(-1, keepdim=True)) for x in a)


def gen(**kw):
    from labkit.generation import generate

    return generate(gpt(), ids(4), **{"max_new_tokens": 2, **kw})


def tmp(name: str = ""):
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="labkit-probe-")) / name


# ---------------------------------------------------------------- the table

CASES: list[Case] = []


def case(area, name, run, match="", **kw):
    CASES.append(Case(area, name, run, match=match, **kw))


def accept(area, name, run, check=None):
    CASES.append(Case(area, name, run, expect="accept", check=check))


# ---- tokenizers
T = "tokenizers"
case(T, "train on an empty corpus", lambda: D.train_tokenizer([]), r"empty|no text")
case(T, "train on empty strings only", lambda: D.train_tokenizer(["", ""]), r"the corpus is empty")
accept(
    T,
    "a char tokenizer of whitespace alone round-trips it",
    lambda: (lambda t: t.decode(t.encode(" \n ")))(D.train_tokenizer([" \n "], kind="char")),
    lambda r: r == " \n ",
)
case(T, "train on a number", lambda: D.train_tokenizer(123), r"texts")
case(T, "train on non-string items", lambda: D.train_tokenizer([1, 2, 3]), r"str")
case(T, "unknown kind", lambda: D.train_tokenizer(TEXTS, kind="wordpeice"), r"did you mean 'wordpiece'")
case(T, "vocab_size 0", lambda: D.train_tokenizer(TEXTS, vocab_size=0), r"vocab_size")
case(T, "vocab_size negative", lambda: D.train_tokenizer(TEXTS, vocab_size=-5), r"vocab_size")
case(T, "vocab_size float", lambda: D.train_tokenizer(TEXTS, vocab_size=99.5), r"vocab_size must be an integer")
case(T, "vocab_size str", lambda: D.train_tokenizer(TEXTS, vocab_size="100"), r"vocab_size must be an integer")
case(T, "vocab_size bool", lambda: D.train_tokenizer(TEXTS, vocab_size=True), r"vocab_size must be an integer")
case(T, "min_frequency negative", lambda: D.train_tokenizer(TEXTS, min_frequency=-1), r"min_frequency")
case(T, "lowercase a string", lambda: D.train_tokenizer(TEXTS, lowercase="yes"), r"lowercase must be True or False")
case(
    T,
    "show_progress a number",
    lambda: D.train_tokenizer(TEXTS, show_progress=1),
    r"show_progress must be True or False",
)
case(
    T,
    "wordpiece without unk",
    lambda: D.train_tokenizer(TEXTS, kind="wordpiece", special_tokens={"pad": "[PAD]"}),
    r"unk",
)
case(T, "bpe vocab_size below the byte alphabet", lambda: D.train_tokenizer(TEXTS, vocab_size=80), r"use at least \d+")
accept(
    T,
    "char tokenizer round-trips its own text",
    lambda: (lambda t: t.decode(t.encode(TEXTS[0])))(D.train_tokenizer(TEXTS, kind="char")),
    lambda r: r == TEXTS[0],
)
accept(
    T,
    "a generator corpus equals the list corpus",
    lambda: (D.train_tokenizer((t for t in TEXTS), vocab_size=300, min_frequency=1).get_vocab(), tok().get_vocab()),
    lambda r: r[0] == r[1],
)
case(T, "special_tokens not a mapping", lambda: D.train_tokenizer(TEXTS, special_tokens=["<pad>"]), r"special_tokens")
case(T, "encode None", lambda: tok().encode(None), r"encode expects a str, got NoneType")
case(T, "encode an int", lambda: tok().encode(123), r"encode expects a str, got int")
case(T, "encode a list", lambda: tok().encode(["to be", "or not"]), r"encode_batch")
case(T, "encode_batch of one string", lambda: tok().encode_batch("to be"), r"list of str|encode\(")
case(T, "decode an id past the vocabulary", lambda: tok().decode([10**6]), r"id|vocab")
case(T, "decode a negative id", lambda: tok().decode([-1]), r"id")
case(T, "decode a string", lambda: tok().decode("to be"), r"ids")
case(T, "decode floats", lambda: tok().decode([1.5, 2.0]), r"integer")
case(T, "decode a 2-d batch", lambda: tok().decode(torch.zeros(2, 3, dtype=torch.long)), r"decode_batch")
case(T, "load a missing file", lambda: D.load_tokenizer(tmp("none.json")), r"no tokenizer|not found|does not exist")
case(T, "load a damaged file", lambda: D.load_tokenizer(_damaged("tok.json", b"{not json")), r"tokenizer")
accept(T, "encode the empty string", lambda: tok().encode(""), lambda r: r == [])
accept(T, "decode no ids", lambda: tok().decode([]), lambda r: r == "")
accept(
    T,
    "decode numpy integers equals decode of Python ints",
    lambda: (lambda t: (t.decode([np.int64(i) for i in t.encode("to be")]), t.decode(t.encode("to be"))))(tok()),
    lambda r: r[0] == r[1] == "to be",
)
accept(
    T,
    "decode a 1-d tensor equals decode of the list",
    lambda: (tok().decode(torch.tensor(tok().encode("to be or"))), tok().decode(tok().encode("to be or"))),
    lambda r: r[0] == r[1],
)
accept(
    T,
    "decode a numpy array equals decode of the list",
    lambda: (tok().decode(__import__("numpy").array(tok().encode("the mind"))), tok().decode(tok().encode("the mind"))),
    lambda r: r[0] == r[1],
)


def _damaged(name: str, data: bytes):
    path = tmp(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- data: corpora, cleaning, augmentation, datasets, splits
A = "data"
case(A, "corpus name misspelt", lambda: D.load_corpus("shakespear"), r"did you mean 'shakespeare'")
case(A, "corpus name empty", lambda: D.load_corpus(""), r"corpus|name")
case(A, "corpus name a number", lambda: D.load_corpus(3), r"corpus|name|path")
case(A, "corpus file missing", lambda: D.load_corpus(tmp("missing.txt")), r"missing\.txt")
case(A, "corpus unknown option", lambda: D.load_corpus("shakespeare", colour="red"), r"colour")
case(A, "fetch unknown corpus", lambda: D.fetch_corpus("nope-corpus", quiet=True), r"nope-corpus")
case(A, "Cleaner unknown step", lambda: D.Cleaner(steps=["nfkx"]), r"did you mean 'nfkc'")
case(A, "Cleaner steps as one string", lambda: D.Cleaner(steps="nfkc"), r"steps")
case(A, "Cleaner unknown language", lambda: D.Cleaner(language="klingon"), r"language")
case(A, "Cleaner on a number", lambda: D.Cleaner(steps=["casefold"])(123), r"str")
case(A, "stop words of an unknown language", lambda: D.stop_words("klingon"), r"klingon")
case(A, "RandomDeletion p > 1", lambda: D.RandomDeletion(p=1.5), r"p must be")
case(A, "RandomDeletion p < 0", lambda: D.RandomDeletion(p=-0.1), r"p must be")
case(A, "RandomDeletion p nan", lambda: D.RandomDeletion(p=float("nan")), r"p must be")
case(A, "RandomDeletion p str", lambda: D.RandomDeletion(p="0.1"), r"p must be")
case(A, "RandomSwap n negative", lambda: D.RandomSwap(n=-1), r"n must be")
case(A, "RandomInsertion n float", lambda: D.RandomInsertion(n=2.5, vocabulary=["a"]), r"n must be an integer")
case(A, "RandomReplacement n str", lambda: D.RandomReplacement(n="2", vocabulary=["a"]), r"n must be an integer")
case(A, "Compose of a non-callable", lambda: D.Compose([D.casefold, 3]), r"callable|function")
accept(
    A,
    "RandomDeletion p=0 keeps the text",
    lambda: D.RandomDeletion(p=0.0)("to be or not"),
    lambda r: r == "to be or not",
)
accept(A, "RandomSwap n=0 keeps the text", lambda: D.RandomSwap(n=0)("to be or not"), lambda r: r == "to be or not")
case(A, "LMBlocks block_size 0", lambda: D.LMBlocks(torch.arange(50), block_size=0), r"block_size")
case(
    A,
    "LMBlocks longer than the data",
    lambda: D.LMBlocks(torch.arange(10), block_size=20),
    r"block_size|too short|tokens",
)
case(A, "LMBlocks stride 0", lambda: D.LMBlocks(torch.arange(50), block_size=8, stride=0), r"stride")
case(A, "LMBlocks of floats", lambda: D.LMBlocks(torch.rand(50), block_size=8), r"integer|ids")
case(
    A,
    "RandomBlockBatches block too long",
    lambda: D.RandomBlockBatches(torch.arange(10), 10, 2),
    r"block_size|too short|tokens",
)
case(A, "RandomBlockBatches batch_size 0", lambda: D.RandomBlockBatches(torch.arange(50), 8, 0), r"batch_size")
case(A, "Batches batch_size 0", lambda: D.Batches(list(range(10)), batch_size=0), r"batch_size")
case(A, "Batches batch_size bool", lambda: D.Batches(list(range(10)), batch_size=True), r"batch_size")
case(A, "Batches shuffle str", lambda: D.Batches(list(range(10)), 2, shuffle="no"), r"shuffle")
case(A, "split val_fraction 0", lambda: D.train_val_split(list(range(10)), val_fraction=0), r"val_fraction")
case(A, "split val_fraction 1", lambda: D.train_val_split(list(range(10)), val_fraction=1.0), r"val_fraction")
case(A, "split val_fraction negative", lambda: D.train_val_split(list(range(10)), val_fraction=-0.2), r"val_fraction")
case(A, "split one item", lambda: D.train_val_split([1], val_fraction=0.5), r"item|split|at least")
accept(
    A,
    "split keeps every item once",
    lambda: D.train_val_split(list(range(10)), val_fraction=0.3),
    lambda r: sorted(r[0] + r[1]) == list(range(10)) and len(r[1]) == 3,
)
case(A, "copy_task n 0", lambda: D.copy_task(0), r"n must be")
case(A, "copy_task length 0", lambda: D.copy_task(4, length=0), r"length")
case(A, "copy_task vocab 0", lambda: D.copy_task(4, vocab=0), r"vocab")
case(A, "modular_arithmetic p 1", lambda: D.modular_arithmetic(p=1), r"p must be")
case(A, "modular_arithmetic unknown op", lambda: D.modular_arithmetic(p=7, op="^"), r"op")
case(
    A, "modular_arithmetic train_fraction 1.5", lambda: D.modular_arithmetic(p=7, train_fraction=1.5), r"train_fraction"
)
case(A, "PadCollator padding_side", lambda: D.PadCollator(0, padding_side="middle"), r"padding_side")
case(A, "PadCollator pad_to_multiple_of 0", lambda: D.PadCollator(0, pad_to_multiple_of=0), r"pad_to_multiple_of")
case(
    A,
    "MLMCollator probability 1.5",
    lambda: D.MLMCollator(0, mask_id=1, vocab_size=10, probability=1.5),
    r"probability",
)
case(
    A,
    "mask_tokens probability negative",
    lambda: D.mask_tokens(ids(), mask_id=1, vocab_size=32, probability=-0.1),
    r"probability",
)
case(A, "mask_tokens mask_id out of range", lambda: D.mask_tokens(ids(), mask_id=99, vocab_size=32), r"mask_id")
case(
    A,
    "ClassificationDataset lengths differ",
    lambda: D.ClassificationDataset(["a", "b"], [0], tok()),
    r"2.*1|same length|labels",
)
case(
    A,
    "ClassificationDataset max_length 0",
    lambda: D.ClassificationDataset(["a"], [0], tok(), max_length=0),
    r"max_length",
)
case(
    A,
    "ClassificationDataset label >= num_labels",
    lambda: D.ClassificationDataset(["a", "b"], [0, 5], tok(), num_labels=2),
    r"label",
)
case(
    A, "Seq2SeqDataset lengths differ", lambda: D.Seq2SeqDataset(["a", "b"], ["c"], tok()), r"2.*1|same length|targets"
)

# ---- models
MO = "models"
case(
    MO, "GPT n_head does not divide n_embd", lambda: M.GPTConfig(n_head=5, n_embd=48), r"n_head.*n_embd|n_embd.*n_head"
)
case(MO, "GPT n_layer negative", lambda: M.GPTConfig(n_layer=-1), r"n_layer")
case(MO, "GPT n_embd 0", lambda: M.GPTConfig(n_embd=0), r"n_embd")
case(MO, "GPT vocab_size 0", lambda: M.GPTConfig(vocab_size=0), r"vocab_size")
case(MO, "GPT block_size 0", lambda: M.GPTConfig(block_size=0), r"block_size")
case(MO, "GPT dropout 1.5", lambda: M.GPTConfig(dropout=1.5), r"dropout")
case(MO, "GPT dropout negative", lambda: M.GPTConfig(dropout=-0.1), r"dropout")
case(MO, "GPT positions misspelt", lambda: M.GPTConfig(positions="rotery"), r"positions")
case(MO, "GPT norm unknown", lambda: M.GPTConfig(norm="batchnorm"), r"norm")
case(MO, "GPT n_kv_head does not divide n_head", lambda: M.GPTConfig(n_head=4, n_embd=48, n_kv_head=3), r"n_kv_head")
case(MO, "GPT vocab_size float", lambda: M.GPTConfig(vocab_size=32.0), r"vocab_size must be an integer")
case(MO, "preset misspelt", lambda: M.GPTConfig.preset("gpt-nanoo"), r"did you mean 'gpt-nano'")
case(MO, "preset unknown override", lambda: M.GPTConfig.preset("gpt-nano", n_layers=2), r"n_layers")
case(MO, "GPT token id past the vocabulary", lambda: gpt()(torch.tensor([[1, 2, 40]])), r"vocab|token id")
case(MO, "GPT negative token id", lambda: gpt()(torch.tensor([[1, -2, 3]])), r"token id|negative|vocab")
case(MO, "GPT sequence longer than block_size", lambda: gpt()(ids(20)), r"block_size")
case(MO, "GPT float input ids", lambda: gpt()(torch.rand(1, 5)), r"integer|dtype|long")
case(MO, "GPT labels shape differs", lambda: gpt()(ids(6), labels=ids(5)), r"labels")
case(MO, "GPT 3-d input ids", lambda: gpt()(torch.zeros(1, 2, 3, dtype=torch.long)), r"shape|dim")
case(MO, "Encoder n_head does not divide n_embd", lambda: M.EncoderConfig(n_head=3, n_embd=16), r"n_head")
case(MO, "Encoder head unknown", lambda: M.EncoderConfig(head="mlmm"), r"head")
case(MO, "Encoder token id past the vocabulary", lambda: encoder()(torch.tensor([[1, 50]])), r"vocab|token id")
case(
    MO,
    "Encoder token_type_ids out of range",
    lambda: encoder()(ids(4), token_type_ids=torch.full((1, 4), 5)),
    r"token_type",
)
case(MO, "Encoder sequence longer than block_size", lambda: encoder()(ids(20)), r"block_size")
case(MO, "Seq2Seq n_head does not divide n_embd", lambda: M.Seq2SeqConfig(n_head=3, n_embd=16), r"n_head")
case(MO, "Seq2Seq norm unknown", lambda: M.Seq2SeqConfig(norm="middle"), r"norm")
case(
    MO,
    "Seq2Seq source id past the vocabulary",
    lambda: seq2seq()(torch.tensor([[1, 30]]), decoder_input_ids=torch.tensor([[1]])),
    r"vocab|token id",
)
case(
    MO,
    "Seq2Seq target id past the vocabulary",
    lambda: seq2seq()(torch.tensor([[1, 3]]), decoder_input_ids=torch.tensor([[1, 25]])),
    r"vocab|token id",
)
case(MO, "LSTM hidden_size 0", lambda: M.LSTMConfig(hidden_size=0), r"hidden_size")
case(MO, "LSTM dropout 2", lambda: M.LSTMConfig(dropout=2.0), r"dropout")
case(MO, "LSTM token id past the vocabulary", lambda: lstm()(torch.tensor([[1, 99]])), r"vocab|token id")
case(MO, "KVCache n_layer 0", lambda: M.KVCache(0), r"n_layer")
case(MO, "KVCache max_len 0", lambda: M.KVCache(2, max_len=0), r"max_len")
case(MO, "summary batch_size 0", lambda: M.summary(gpt(), batch_size=0), r"batch_size")
case(MO, "summary seq_len past block_size", lambda: M.summary(gpt(), seq_len=64), r"seq_len|block_size")
case(MO, "load_pretrained unknown name", lambda: M.load_pretrained("smollm3-9b"), r"smollm3-9b")
accept(MO, "GPT 1-token sequence", lambda: gpt()(torch.tensor([[3]])).logits, lambda r: r.shape == (1, 1, 32))
accept(MO, "GPT exactly block_size tokens", lambda: gpt()(ids(16)).logits, lambda r: r.shape == (1, 16, 32))
accept(
    MO,
    "GPT int32 ids equal int64 ids",
    lambda: (gpt()(ids(5).int()).logits, gpt()(ids(5)).logits),
    lambda r: torch.equal(r[0], r[1]),
)

# ---- generation
GE = "generation"
case(GE, "max_new_tokens negative", lambda: gen(max_new_tokens=-1), r"max_new_tokens")
case(GE, "max_new_tokens float", lambda: gen(max_new_tokens=2.5), r"max_new_tokens")
case(GE, "temperature negative", lambda: gen(do_sample=True, temperature=-1.0), r"temperature")
case(GE, "temperature nan", lambda: gen(do_sample=True, temperature=float("nan")), r"temperature")
case(GE, "top_k 0", lambda: gen(do_sample=True, top_k=0), r"top_k")
case(GE, "top_k negative", lambda: gen(do_sample=True, top_k=-3), r"top_k")
case(GE, "top_k float", lambda: gen(do_sample=True, top_k=2.5), r"top_k")
case(GE, "top_p 0", lambda: gen(do_sample=True, top_p=0.0), r"top_p")
case(GE, "top_p 1.5", lambda: gen(do_sample=True, top_p=1.5), r"top_p")
case(GE, "num_beams 0", lambda: gen(num_beams=0), r"num_beams")
case(
    GE,
    "num_return_sequences above num_beams",
    lambda: G.beam_search(gpt(), ids(4), num_beams=2, max_new_tokens=2, num_return_sequences=3),
    r"num_return_sequences",
)
case(GE, "repetition_penalty 0", lambda: gen(repetition_penalty=0.0), r"repetition_penalty")
case(GE, "repetition_penalty negative", lambda: gen(repetition_penalty=-1.0), r"repetition_penalty")
case(
    GE,
    "length_penalty nan",
    lambda: G.beam_search(gpt(), ids(4), num_beams=2, max_new_tokens=2, length_penalty=float("nan")),
    r"length_penalty",
)
case(
    GE,
    "prompt id past the vocabulary",
    lambda: G.generate(gpt(), torch.tensor([[1, 99]]), max_new_tokens=2),
    r"vocab|token id",
)
case(
    GE,
    "empty prompt",
    lambda: G.generate(gpt(), torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2),
    r"prompt|empty",
)
case(GE, "prompt a float tensor", lambda: G.generate(gpt(), torch.rand(1, 4), max_new_tokens=2), r"integer|ids")
case(GE, "eos_token_id past the vocabulary", lambda: gen(eos_token_id=99), r"eos_token_id")
case(GE, "SamplingOptions temperature negative", lambda: G.SamplingOptions(temperature=-1.0), r"temperature")
case(GE, "SamplingOptions top_k str", lambda: G.SamplingOptions(top_k="5"), r"top_k")
case(GE, "SamplingOptions top_p 2", lambda: G.SamplingOptions(top_p=2.0), r"top_p")
case(GE, "SamplingOptions do_sample str", lambda: G.SamplingOptions(do_sample="yes"), r"do_sample")
accept(
    GE,
    "sample temperature 0 is greedy",
    lambda: (G.sample(torch.tensor([[0.1, 2.0, -1.0]]), temperature=0.0), G.greedy(torch.tensor([[0.1, 2.0, -1.0]]))),
    lambda r: torch.equal(r[0].reshape(-1), r[1].reshape(-1)),
)
accept(
    GE,
    "a 1-d prompt equals its 2-d form",
    lambda: (G.generate(gpt(), ids(4)[0], max_new_tokens=3), gen(max_new_tokens=3)),
    lambda r: torch.equal(r[0].reshape(-1), r[1].reshape(-1)),
)
case(GE, "top_k_filter k 0", lambda: G.top_k_filter(torch.randn(1, 10), 0), r"k must be|top_k")
case(GE, "top_p_filter p 1.5", lambda: G.top_p_filter(torch.randn(1, 10), 1.5), r"p must be|top_p")
case(GE, "apply_temperature 0", lambda: G.apply_temperature(torch.randn(1, 10), 0.0), r"temperature")
case(
    GE,
    "apply_repetition_penalty 0",
    lambda: G.apply_repetition_penalty(torch.randn(1, 10), torch.tensor([[1, 2]]), 0.0),
    r"penalty",
)
case(GE, "max_new_tokens 0", lambda: gen(max_new_tokens=0), r"max_new_tokens must be an integer >= 1")
accept(
    GE,
    "top_p 1 equals plain sampling",
    lambda: (gen(do_sample=True, top_p=1.0, seed=3, max_new_tokens=4), gen(do_sample=True, seed=3, max_new_tokens=4)),
    lambda r: torch.equal(r[0], r[1]),
)
accept(
    GE,
    "top_k above the vocabulary equals no top_k",
    lambda: (gen(do_sample=True, top_k=1000, seed=3, max_new_tokens=4), gen(do_sample=True, seed=3, max_new_tokens=4)),
    lambda r: torch.equal(r[0], r[1]),
)
accept(
    GE,
    "top_k 1 equals greedy",
    lambda: (gen(do_sample=True, top_k=1, seed=3, max_new_tokens=4), gen(max_new_tokens=4)),
    lambda r: torch.equal(r[0], r[1]),
)
accept(
    GE,
    "one beam equals greedy",
    lambda: (G.beam_search(gpt(), ids(4), num_beams=1, max_new_tokens=4), gen(max_new_tokens=4)),
    lambda r: torch.equal(r[0][:, : r[1].shape[1]], r[1]),
)
accept(
    GE,
    "greedy of 1-d logits is the argmax",
    lambda: G.greedy(torch.tensor([0.1, 3.0, 0.2])),
    lambda r: int(r.reshape(-1)[0]) == 1,
)

# ---- evaluation
EV = "evaluation"
case(EV, "bleu lengths differ", lambda: E.bleu(["a b"], ["a b", "c d"]), r"1.*2|same number|length")
case(EV, "bleu no sentences", lambda: E.bleu([], []), r"empty|no ")
case(EV, "bleu a string, not a list", lambda: E.bleu("the cat", "the cat"), r"list")
case(EV, "bleu a None hypothesis", lambda: E.bleu([None], ["a"]), r"str|None")
case(EV, "bleu unknown option", lambda: E.bleu(["a"], ["a"], smooth="nope"), r"smooth")
case(EV, "chrf lengths differ", lambda: E.chrf(["a b"], ["a b", "c d"]), r"1.*2|same number|length")
case(EV, "rouge lengths differ", lambda: E.rouge(["a b"], ["a b", "c d"]), r"1.*2|same number|length")
case(EV, "rouge unknown type", lambda: E.rouge(["a"], ["a"], types=["rougeX"]), r"rougeX")
accept(
    EV,
    "rouge9 equals rouge-score",
    lambda: E.rouge([" ".join("abcdefghij")], [" ".join("abcdefghik")], types=["rouge9"], use_stemmer=False),
    lambda r: math.isclose(
        r["rouge9"]["fmeasure"],
        __import__("rouge_score.rouge_scorer")
        .rouge_scorer.RougeScorer(["rouge9"])
        .score(" ".join("abcdefghik"), " ".join("abcdefghij"))["rouge9"]
        .fmeasure,
    ),
)
accept(
    EV,
    "bleu with two references equals sacrebleu",
    lambda: E.bleu(["the cat is on the mat"], [["the cat sat on the mat", "there is a cat on the mat"]]).score,
    lambda r: math.isclose(
        r,
        __import__("sacrebleu")
        .corpus_bleu(["the cat is on the mat"], [["the cat sat on the mat"], ["there is a cat on the mat"]])
        .score,
    ),
)
accept(
    EV,
    "confusion_matrix with a class never predicted equals scikit-learn",
    lambda: E.confusion_matrix([0, 1, 2, 2], [0, 1, 1, 1]),
    lambda r: (r == __import__("sklearn.metrics").metrics.confusion_matrix([0, 1, 2, 2], [0, 1, 1, 1])).all(),
)
accept(
    EV,
    "f1 with every prediction wrong equals scikit-learn (zero_division=0)",
    lambda: E.precision_recall_f1([0, 0, 1, 1], [1, 1, 0, 0]).f1,
    lambda r: math.isclose(
        float(r),
        __import__("sklearn.metrics").metrics.f1_score([0, 0, 1, 1], [1, 1, 0, 0], average="macro", zero_division=0),
    ),
)
accept(
    EV,
    "perplexity of one batch is exp of the model's loss",
    lambda: (
        E.perplexity(gpt(), [{"input_ids": ids(8), "labels": ids(8)}]).perplexity,
        float(gpt()(ids(8), labels=ids(8)).loss.detach().exp()),
    ),
    lambda r: math.isclose(r[0], r[1], rel_tol=1e-4),
)
case(EV, "rouge no sentences", lambda: E.rouge([], []), r"empty|no ")
case(EV, "rouge a string, not a list", lambda: E.rouge("the cat", "the cat"), r"list")
case(EV, "accuracy lengths differ", lambda: E.accuracy([1, 0], [1]), r"2.*1|same length|length")
case(EV, "accuracy no labels", lambda: E.accuracy([], []), r"empty|no ")
case(EV, "f1 unknown average", lambda: E.precision_recall_f1([1, 0], [1, 0], average="macr"), r"did you mean 'macro'")
case(EV, "f1 lengths differ", lambda: E.precision_recall_f1([1, 0, 1], [1, 0]), r"3.*2|same length|length")
case(
    EV, "confusion_matrix normalize unknown", lambda: E.confusion_matrix([1, 0], [1, 0], normalize="rows"), r"normalize"
)
case(
    EV,
    "report label_names count differs",
    lambda: E.classification_report([0, 1, 2], [0, 1, 2], label_names=["a", "b"]),
    r"label_names",
)
case(EV, "perplexity of no batches", lambda: E.perplexity(gpt(), []), r"batch|empty")
case(
    EV, "perplexity max_batches 0", lambda: E.perplexity(gpt(), [{"input_ids": ids(5)}], max_batches=0), r"max_batches"
)
accept(
    EV,
    "bleu of identical text is 100",
    lambda: E.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]).score,
    lambda r: math.isclose(r, 100.0),
)
accept(
    EV,
    "accuracy equals scikit-learn",
    lambda: E.accuracy([0, 1, 1, 2], [0, 2, 1, 2]),
    lambda r: math.isclose(r, __import__("sklearn.metrics").metrics.accuracy_score([0, 1, 1, 2], [0, 2, 1, 2])),
)
accept(
    EV,
    "rouge of identical text is 1",
    lambda: E.rouge(["the cat sat"], ["the cat sat"]),
    lambda r: all(math.isclose(v["fmeasure"], 1.0) for v in r.values()),
)

# ---- viz views
V = "viz"


def _viz():
    import labkit.viz as viz

    return viz


TOK5 = ["a", "b", "c", "d", "e"]
EMB = torch.randn(12, 5, generator=torch.Generator().manual_seed(4))
accept(
    V,
    "head_view of one [q, k] matrix is one layer and head",
    lambda: _viz().attention_tensor(attn()[0][0, 0]),
    lambda r: torch.equal(r, attn()[0][0, 0][None, None]),
)
case(
    V,
    "head_view of a 6-d tensor",
    lambda: _viz().head_view(torch.rand(1, 1, 1, 1, 5, 5), TOK5),
    r"attention tensor must be",
)
case(V, "head_view layer out of range", lambda: _viz().head_view(attn(), TOK5, layer=5), r"layer")
case(V, "head_view head out of range", lambda: _viz().head_view(attn(), TOK5, head=7), r"head")
case(V, "head_view negative layer", lambda: _viz().head_view(attn(), TOK5, layer=-1), r"layer")
case(V, "head_view tokens count differs", lambda: _viz().head_view(attn(), ["a", "b"]), r"tokens")
case(V, "head_view top_k 0", lambda: _viz().head_view(attn(), TOK5, top_k=0), r"top_k")
case(V, "head_view top_k unknown word", lambda: _viz().head_view(attn(), TOK5, top_k="most"), r"top_k")
case(V, "head_view batch_index out of range", lambda: _viz().head_view(attn(), TOK5, batch_index=3), r"batch_index")
case(
    V,
    "head_view non-square attention",
    lambda: _viz().head_view(tuple(torch.rand(1, 2, 5, 4) for _ in range(2)), TOK5),
    r"square|cross|key",
)
case(V, "head_view a list of strings", lambda: _viz().head_view(["x"], TOK5), r"attention")
case(V, "model_view unknown stack", lambda: _viz().model_view(attn(), TOK5, stack="sideways"), r"stack")
case(V, "bertviz_head_view layer out of range", lambda: _viz().bertviz_head_view(attn(), TOK5, layer=9), r"layer")
case(
    V,
    "cross_attention_view target tokens count differs",
    lambda: _viz().cross_attention_view(tuple(torch.rand(1, 2, 3, 5) for _ in range(2)), TOK5, ["x"]),
    r"tokens",
)
case(
    V, "project unknown method", lambda: _viz().project(torch.rand(20, 8), method="tnse"), r"did you mean 'tsne'|method"
)
case(V, "project dims 0", lambda: _viz().project(torch.rand(20, 8), dims=0), r"dims")
accept(
    V,
    "project 2 features to 3 dims pads a zero axis",
    lambda: (_viz().project(EMB[:, :2], dims=3).coords, _viz().project(EMB[:, :2], dims=2).coords),
    lambda r: torch.allclose(r[0][:, :2], r[1]) and not r[0][:, 2].any(),
)
accept(
    V,
    "project by PCA equals scikit-learn up to sign",
    lambda: _viz().project(EMB, dims=2).coords,
    lambda r: torch.allclose(
        r.abs().double(),
        torch.from_numpy(
            __import__("sklearn.decomposition").decomposition.PCA(2).fit_transform(EMB.double().numpy())
        ).abs(),
        atol=1e-4,
    ),
)
case(V, "project one point", lambda: _viz().project(torch.rand(1, 8)), r"n >= 2")
case(V, "project 1-d embeddings", lambda: _viz().project(torch.rand(8)), r"2-d|shape|matrix")
case(V, "project with nan", lambda: _viz().project(torch.full((5, 4), float("nan"))), r"NaN or inf")
case(V, "nearest_neighbours k 0", lambda: _viz().nearest_neighbours(torch.rand(10, 4), 0, k=0), r"k must be")
case(V, "nearest_neighbours query out of range", lambda: _viz().nearest_neighbours(torch.rand(10, 4), 10), r"query")
case(
    V,
    "nearest_neighbours unknown token",
    lambda: _viz().nearest_neighbours(torch.rand(3, 4), "zz", tokens=["a", "b", "c"]),
    r"zz",
)
case(
    V,
    "token_frequencies id past vocab_size",
    lambda: _viz().token_frequencies([1, 2, 50], vocab_size=10),
    r"vocab_size|id",
)
case(V, "token_frequencies vocab_size 0", lambda: _viz().token_frequencies([1, 2], vocab_size=0), r"vocab_size must be")
case(
    V, "token_frequencies of float ids", lambda: _viz().token_frequencies([1.7, 2.2], vocab_size=5), r"must be integers"
)
accept(
    V,
    "token_frequencies equals bincount",
    lambda: _viz().token_frequencies(torch.tensor([[1, 1, 4]]), vocab_size=6),
    lambda r: r.tolist() == [0, 2, 0, 0, 1, 0],
)
case(V, "curves_svg height 0", lambda: _viz().curves_svg({"step": [1, 2], "loss": [2.0, 1.0]}, height=0), r"height")
case(V, "curves_svg width 0", lambda: _viz().curves_svg({"step": [1, 2], "loss": [2.0, 1.0]}, width=0), r"width")
case(
    V,
    "training_curves smoothing 1.5",
    lambda: _viz().training_curves({"step": [1, 2], "loss": [2.0, 1.0]}, smoothing=1.5),
    r"smoothing",
)
case(V, "curve_data of a number", lambda: _viz().curve_data(3), r"History|source|curve")
case(V, "moment_view of no snapshots", lambda: _viz().moment_view([]), r"no snapshots")
case(
    V,
    "attention_by_hand shapes differ",
    lambda: _viz().attention_by_hand(torch.rand(3, 4), torch.rand(5, 2), torch.rand(4, 2), torch.rand(4, 2)),
    r"W_Q has 5 rows",
)
case(V, "parse_matrix ragged rows", lambda: _viz().parse_matrix("1 2\n3"), r"row|ragged|same number")
case(V, "parse_matrix not numbers", lambda: _viz().parse_matrix("a b\nc d"), r"number")
case(V, "attention_walkthrough head out of range", lambda: _viz().attention_walkthrough(gpt(), ids(4), head=9), r"head")
case(
    V,
    "attention_walkthrough layer out of range",
    lambda: _viz().attention_walkthrough(gpt(), ids(4), layer=9),
    r"layer",
)
case(V, "checkpoint_trajectory of nothing", lambda: _viz().checkpoint_trajectory([]), r"checkpoint")
case(V, "token_view max_tokens 0", lambda: _viz().token_view(tok(), "to be", max_tokens=0), r"max_tokens")
case(V, "token_view text not str", lambda: _viz().token_view(tok(), 42), r"text")
accept(
    V, "head_view of one token", lambda: _viz().head_view(attn(t=1), ["a"]), lambda r: r.payload.shape[-2:] == (1, 1)
)
accept(
    V,
    "project exactly dims features",
    lambda: _viz().project(torch.rand(6, 2), dims=2).coords,
    lambda r: r.shape == (6, 2),
)

# ---- widgets
W = "widgets"


def _w():
    import labkit.widgets as w

    return w


def _set(obj, **traits):
    for k, v in traits.items():
        setattr(obj, k, v)
    return obj


case(W, "AttentionWidget unknown view", lambda: _w().AttentionWidget(attn(), TOK5, view="headd"), r"view")
case(W, "AttentionWidget layer set out of range", lambda: _set(_w().AttentionWidget(attn(), TOK5), layer=9), r"layer")
case(W, "AttentionWidget head set out of range", lambda: _set(_w().AttentionWidget(attn(), TOK5), head=2), r"head")
case(
    W,
    "AttentionWidget focus set out of range",
    lambda: _set(_w().AttentionWidget(attn(), TOK5), focus_token=5),
    r"focus_token",
)
case(
    W,
    "Playground temperature negative",
    lambda: _set(_w().GenerationPlayground(gpt(), tok()), temperature=-1.0),
    r"temperature",
)
case(W, "Playground top_p 0", lambda: _set(_w().GenerationPlayground(gpt(), tok()), top_p=0.0), r"top_p")
case(W, "Playground top_k negative", lambda: _set(_w().GenerationPlayground(gpt(), tok()), top_k=-1), r"top_k")
case(W, "Playground num_beams 0", lambda: _set(_w().GenerationPlayground(gpt(), tok()), num_beams=0), r"num_beams")
case(W, "Playground unknown control", lambda: _w().GenerationPlayground(gpt(), tok(), temprature=0.5), r"temprature")
case(W, "ProjectorWidget unknown method", lambda: _w().ProjectorWidget(torch.rand(10, 4), method="umapp"), r"method")
case(W, "ProjectorWidget dims 4", lambda: _w().ProjectorWidget(torch.rand(10, 4), dims=4), r"dims")
case(W, "TokenizerExplorer max_tokens 0", lambda: _w().TokenizerExplorer(tok(), "to be", max_tokens=0), r"max_tokens")
case(W, "LoraExplorer rank 0", lambda: _w().LoraExplorer(gpt(), rank=0), r"rank")
case(W, "Dashboard smoothing 1", lambda: _set(_w().TrainingDashboard(), smoothing=1.0), r"smoothing")
case(
    W,
    "DashboardCallback min_interval_s negative",
    lambda: _w().DashboardCallback(min_interval_s=-1.0),
    r"min_interval_s",
)

# ---- interpret
I_ = "interpret"


def _i():
    import labkit.interpret as i

    return i


case(
    I_,
    "patching unknown hook",
    lambda: _i().activation_patching(
        gpt(), ids(4), ids(4) + 1 - 1, hook="resid_pree", metric=lambda out: out.logits[0, -1, 0]
    ),
    r"did you mean 'resid_pre'",
)
case(
    I_,
    "patching unknown cut",
    lambda: _i().activation_patching(gpt(), ids(4), ids(4), by="diagonal", metric=lambda out: out.logits[0, -1, 0]),
    r"by",
)
case(
    I_,
    "patching lengths differ",
    lambda: _i().activation_patching(gpt(), ids(4), ids(5), metric=lambda out: out.logits[0, -1, 0]),
    r"length|same",
)
case(
    I_,
    "patching layer out of range",
    lambda: _i().activation_patching(gpt(), ids(4), ids(4), layers=[7], metric=lambda out: out.logits[0, -1, 0]),
    r"layer",
)
case(
    I_,
    "patching batch_size 0",
    lambda: _i().activation_patching(gpt(), ids(4), ids(4), batch_size=0, metric=lambda out: out.logits[0, -1, 0]),
    r"batch_size",
)
case(I_, "patching with no metric", lambda: _i().activation_patching(gpt(), ids(4), ids(4)), r"metric|answer")
case(I_, "attribute steps 0", lambda: _i().attribute(gpt(), ids(4), steps=0), r"steps")
case(
    I_,
    "attribute unknown method",
    lambda: _i().attribute(gpt(), ids(4), method="integrated_gradient"),
    r"did you mean 'integrated_gradients'",
)
case(I_, "attribute unknown objective", lambda: _i().attribute(gpt(), ids(4), objective="logitt"), r"objective")
case(I_, "attribute position out of range", lambda: _i().attribute(gpt(), ids(4), position=10, steps=2), r"position")
case(I_, "attribute target past the vocabulary", lambda: _i().attribute(gpt(), ids(4), target=99, steps=2), r"target")
case(I_, "attribute unknown baseline", lambda: _i().attribute(gpt(), ids(4), baseline="noise", steps=2), r"baseline")
case(I_, "rollout residual 1.5", lambda: _i().attention_rollout(gpt(), ids(4), residual=1.5), r"residual")
case(I_, "logit_lens top_k 0", lambda: _i().logit_lens(gpt(), ids(4), top_k=0), r"top_k")
case(I_, "logit_lens target past the vocabulary", lambda: _i().logit_lens(gpt(), ids(4), target=99), r"target")
case(
    I_, "neuron_activations layer out of range", lambda: _i().neuron_activations(gpt(), [ids(4)[0]], layer=9), r"layer"
)
case(I_, "neuron_logit_effect neuron out of range", lambda: _i().neuron_logit_effect(gpt(), 0, 10**6), r"neuron")
case(I_, "neuron_logit_effect k 0", lambda: _i().neuron_logit_effect(gpt(), 0, 0, k=0), r"k must be")
case(I_, "token_id unknown token", lambda: _i().token_id(tok(), "zzzzqq", 300), r"zzzzqq")
case(I_, "lens of an LSTM", lambda: _i().logit_lens(lstm(), ids(4)), r"LSTM|block|support")
accept(
    I_,
    "logit_lens top_k above the vocabulary is clamped or refused clearly",
    lambda: _i().logit_lens(gpt(), ids(4), top_k=5).top_ids,
    lambda r: r.shape[-1] == 5,
)

# ---- export
X = "export"


def _x():
    import labkit.export as x

    return x


case(X, "save_model unknown dtype", lambda: _x().save_model(gpt(), tmp("m"), dtype="float8"), r"dtype")
case(X, "save_model into a file", lambda: _x().save_model(gpt(), _damaged("file.bin", b"x")), r"file")
case(X, "to_hf unknown dtype", lambda: _x().to_hf(gpt(), tmp("h"), dtype="int3"), r"dtype")
case(X, "to_hf of an LSTM", lambda: _x().to_hf(lstm(), tmp("h")), r"LSTM|support")
case(X, "to_hf of a plain module", lambda: _x().to_hf(torch.nn.Linear(2, 2), tmp("h")), r"Linear|support|model")
case(
    X, "to_onnx of a plain module", lambda: _x().to_onnx(torch.nn.Linear(2, 2), tmp("m.onnx")), r"Linear|support|model"
)
case(X, "to_onnx into a folder", lambda: _x().to_onnx(gpt(), tmp("")), r"must end in \.onnx")
case(X, "load_model missing folder", lambda: _x().load_model(tmp("nothing-here")), r"nothing-here")
case(
    X,
    "load_model damaged weights",
    lambda: _x().load_model(_saved_then_damaged()),
    r"damaged|corrupt|model.safetensors|weights",
)
case(X, "OnnxModel missing file", lambda: _x().OnnxModel(tmp("none.onnx")), r"none\.onnx")
case(X, "OnnxModel threads 0", lambda: _x().OnnxModel(tmp("none.onnx"), threads=0), r"threads must be")
case(X, "OnnxModel damaged file", lambda: _x().OnnxModel(_damaged("bad.onnx", b"\x00garbage")), r"ONNX|onnx")
case(X, "quantize_onnx missing source", lambda: _x().quantize_onnx(tmp("none.onnx"), tmp("q.onnx")), r"none\.onnx")
case(
    X, "build_page unknown quantize", lambda: _x().build_page(gpt(), tok(), tmp("p.html"), quantize="int3"), r"quantize"
)
case(
    X,
    "load_model of a checkpoint with flipped bytes",
    lambda: _x().load_model(_ckpt_then(_flip)),
    r"checksum|damaged|verif",
)
case(
    X,
    "load_model config does not fit the weights",
    lambda: _x().load_model(_saved_with_config(n_embd=96, n_inner=384)),
    r"does not fit|config",
)
case(X, "load_model unknown architecture", lambda: _x().load_model(_saved_with_config(arch="rnn")), r"rnn")
case(X, "OnnxModel of a non-labkit ONNX file", lambda: _x().OnnxModel(_foreign_onnx()), r"not written by labkit")
accept(
    X,
    "OnnxModel logits equal the model's",
    lambda: (_x().OnnxModel(_onnx_file()).logits(ids(6).numpy()), gpt()(ids(6)).logits),
    lambda r: torch.allclose(torch.from_numpy(r[0]), r[1], atol=1e-4),
)
accept(
    X,
    "save_model then load_model gives the same logits",
    lambda: (_x().load_model(_x().save_model(gpt(), tmp("s"))).model,),
    lambda r: torch.equal(r[0](ids(6)).logits, gpt()(ids(6)).logits),
)
case(X, "read_onnx_spec missing file", lambda: _x().read_onnx_spec(tmp("none.onnx")), r"none\.onnx")


def _saved_with_config(**changes):
    import json

    folder = _x().save_model(gpt(), tmp("saved"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@functools.cache
def _onnx_file():
    return _x().to_onnx(gpt(), tmp("m.onnx"))


def _foreign_onnx():
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp("foreign.onnx")
    onnx.save(helper.make_model(graph), path)
    return path


def _saved_then_damaged():
    folder = _x().save_model(gpt(), tmp("saved"))
    weights = next(folder.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data[: len(data) // 2]))
    return folder


# ---- checkpoints
C = "checkpoints"


def _tr():
    import labkit.training as tr

    return tr


def _ckpt_then(damage):
    folder = tmp("ck")
    path = _tr().save_checkpoint(folder, gpt(), step=1, rng=False)
    damage(path)
    return folder


def _truncate(path):
    target = next(p for p in sorted(path.rglob("*.safetensors")))
    target.write_bytes(target.read_bytes()[:40])


def _flip(path):
    target = next(p for p in sorted(path.rglob("*.safetensors")))
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF
    target.write_bytes(bytes(data))


case(C, "load from a missing folder", lambda: _tr().load_checkpoint(tmp("no-run")), r"no-run|no checkpoint")
case(C, "load from an empty folder", lambda: _tr().load_checkpoint(tmp("")), r"no checkpoint")
case(
    C,
    "load a truncated checkpoint",
    lambda: _tr().load_checkpoint(_ckpt_then(_truncate), gpt()),
    r"checkpoint|damaged|verif",
)
case(
    C,
    "load a checkpoint with flipped bytes",
    lambda: _tr().load_checkpoint(_ckpt_then(_flip), gpt()),
    r"checksum|damaged|verif",
)
case(
    C,
    "load into a model of another shape",
    lambda: _tr().load_checkpoint(
        _ckpt_then(lambda p: None), M.GPT(M.GPTConfig.preset("gpt-nano", vocab_size=40, block_size=16, n_layer=2))
    ),
    r"shape|config|vocab",
)
case(C, "save with keep_last 0", lambda: _tr().save_checkpoint(tmp("k"), gpt(), keep_last=0), r"keep_last")
case(C, "save with a negative step", lambda: _tr().save_checkpoint(tmp("k"), gpt(), step=-1), r"step")
case(C, "save into a file", lambda: _tr().save_checkpoint(_damaged("f.txt", b"x"), gpt()), r"file")
accept(
    C,
    "save then load gives the same weights",
    lambda: (_tr().load_checkpoint(_ckpt_then(lambda p: None), copy := _fresh_gpt()), copy),
    lambda r: all(torch.equal(a, b) for a, b in zip(r[1].state_dict().values(), gpt().state_dict().values())),
)


def _fresh_gpt():
    torch.manual_seed(1)
    return M.GPT(M.GPTConfig.preset("gpt-nano", vocab_size=32, block_size=16, n_layer=2))


# ---------------------------------------------------------------- second wave: the less obvious mistakes

case(T, "encode_batch with a None inside", lambda: tok().encode_batch(["to be", None]), r"None|str")
case(T, "decode a bool tensor", lambda: tok().decode(torch.tensor([True, False])), r"integer|bool")
case(
    T,
    "train on a lone surrogate",
    lambda: D.train_tokenizer(["to be \ud800 or not"], kind="char"),
    r"surrogate|UTF-8|utf-8",
)
accept(
    T,
    "encode_batch equals encode per text",
    lambda: (tok().encode_batch(TEXTS[:3]), [tok().encode(t) for t in TEXTS[:3]]),
    lambda r: r[0] == r[1],
)
case(A, "Cleaner extra_stop_words one string", lambda: D.Cleaner(extra_stop_words="thee"), r"extra_stop_words")
case(A, "remove_stop_words extra one string", lambda: D.remove_stop_words("to be or not", extra="be"), r"extra")
accept(
    A,
    "remove_stop_words extra list removes the word",
    lambda: D.remove_stop_words("thee and thou", extra=["thee"]),
    lambda r: "thee" not in r.split(),
)
case(
    A,
    "RandomInsertion with no words to insert",
    lambda: D.RandomInsertion(n=1, vocabulary=[])("to be"),
    r"vocabulary|synonyms",
)
case(A, "RandomDeletion of a number", lambda: D.RandomDeletion(p=0.5)(42), r"str")
case(
    A,
    "mask_tokens special_ids an int",
    lambda: D.mask_tokens(ids(), mask_id=1, vocab_size=32, special_ids=3),
    r"special_ids",
)
case(A, "PadCollator of no examples", lambda: D.PadCollator(0)([]), r"empty|no example")
case(
    A,
    "PadCollator examples with different keys",
    lambda: D.PadCollator(0)([{"input_ids": [1, 2]}, {"labels": [1]}]),
    r"input_ids|keys",
)
case(A, "ClassificationDataset negative label", lambda: D.ClassificationDataset(["a", "b"], [0, -1], tok()), r"label")
case(A, "ClassificationDataset texts one string", lambda: D.ClassificationDataset("ab", [0, 1], tok()), r"texts")
case(
    A,
    "Seq2SeqDataset max_source_length 0",
    lambda: D.Seq2SeqDataset(["a"], ["b"], tok(), max_source_length=0),
    r"max_source_length",
)
case(A, "modular_arithmetic division with p not prime", lambda: D.modular_arithmetic(p=8, op="/"), r"prime")
case(A, "LMBlocks of 2-d ids", lambda: D.LMBlocks(torch.arange(40).reshape(4, 10), block_size=4), r"1-d")
case(A, "LMBlocks of negative ids", lambda: D.LMBlocks(torch.arange(-5, 40), block_size=4), r"negative|>= 0")
accept(
    A,
    "RandomBlockBatches steps 0 gives no batch",
    lambda: list(D.RandomBlockBatches(torch.arange(50), 8, 2, steps=0)),
    lambda r: r == [],
)
case(A, "Batches of an empty list", lambda: D.Batches([], batch_size=2), r"empty")
case(A, "split val_fraction True", lambda: D.train_val_split(list(range(10)), val_fraction=True), r"val_fraction")
accept(
    A,
    "LMBlocks of exactly block_size + 1 tokens is one block",
    lambda: D.LMBlocks(torch.arange(9), block_size=8),
    lambda r: len(r) == 1,
)
accept(
    A,
    "Batches larger than the data give one batch",
    lambda: list(D.Batches([{"input_ids": torch.tensor([i])} for i in range(3)], batch_size=10, shuffle=False)),
    lambda r: len(r) == 1 and r[0]["input_ids"].reshape(-1).tolist() == [0, 1, 2],
)
accept(A, "copy_task is a copy", lambda: D.copy_task(3, length=4, vocab=5), lambda r: r.src.shape[0] == 3)

case(MO, "GPT n_inner 0", lambda: M.GPTConfig(n_inner=0), r"n_inner")
case(MO, "GPT rope_theta 0", lambda: M.GPTConfig(positions="rotary", rope_theta=0.0), r"rope_theta")
case(
    MO,
    "GPT rotary with odd head size",
    lambda: M.GPT(M.GPTConfig(positions="rotary", n_head=2, n_embd=6, vocab_size=8, block_size=8, n_layer=1)),
    r"head|even",
)
case(MO, "GPT n_kv_head above n_head", lambda: M.GPTConfig(n_head=3, n_embd=48, n_kv_head=6), r"n_kv_head")
case(MO, "GPT n_kv_head 0", lambda: M.GPTConfig(n_kv_head=0), r"n_kv_head")
case(MO, "GPT layer_norm_eps negative", lambda: M.GPTConfig(layer_norm_eps=-1e-5), r"layer_norm_eps")
case(MO, "GPT mlp unknown", lambda: M.GPTConfig(mlp="relu9"), r"mlp")
case(MO, "GPT bias a string", lambda: M.GPTConfig(bias="no"), r"bias")
case(
    MO,
    "GPT attention_mask shape differs",
    lambda: gpt()(ids(6), attention_mask=torch.ones(1, 4, dtype=torch.long)),
    r"attention_mask",
)
case(MO, "GPT labels past the vocabulary", lambda: gpt()(ids(6), labels=torch.full((1, 6), 40)), r"labels")
case(MO, "GPT labels of floats", lambda: gpt()(ids(6), labels=torch.rand(1, 6)), r"labels must be an integer")
case(MO, "Encoder labels past the vocabulary", lambda: encoder()(ids(6), labels=torch.full((1, 6), 40)), r"labels")
case(
    MO,
    "Seq2Seq labels past the vocabulary",
    lambda: seq2seq()(torch.tensor([[1, 3]]), labels=torch.tensor([[1, 25]])),
    r"labels|vocab",
)
case(MO, "LSTM labels past the vocabulary", lambda: lstm()(ids(6), labels=torch.full((1, 6), 40)), r"labels")
case(MO, "LSTM labels of floats", lambda: lstm()(ids(6), labels=torch.rand(1, 6)), r"labels")
accept(
    MO,
    "GPT loss with -100 labels equals cross-entropy over the rest",
    lambda: (
        gpt()(ids(6), labels=torch.where(torch.arange(6) < 3, ids(6), -100)).loss,
        torch.nn.functional.cross_entropy(gpt()(ids(6)).logits[0, :2], ids(6)[0, 1:3]),
    ),
    lambda r: torch.allclose(r[0], r[1], atol=1e-5),
)
case(
    MO,
    "Encoder attention_mask shape differs",
    lambda: encoder()(ids(6), attention_mask=torch.ones(1, 3, dtype=torch.long)),
    r"attention_mask",
)
case(
    MO,
    "Seq2Seq target longer than block_size",
    lambda: seq2seq()(torch.tensor([[1, 3]]), decoder_input_ids=torch.ones(1, 20, dtype=torch.long)),
    r"block_size",
)
case(MO, "summary of a non-model", lambda: M.summary("gpt"), r"model|config")
accept(
    MO,
    "GPT labels all -100 give no loss, not a wrong number",
    lambda: gpt()(ids(6), labels=torch.full((1, 6), -100)).loss,
    lambda r: r is None or bool(torch.isnan(r)) or float(r) == 0.0,
)
accept(
    MO,
    "GPT rows of a batch equal the rows alone",
    lambda: (gpt()(ids(6, batch=2)).logits, gpt()(ids(6, batch=2)[1:]).logits),
    lambda r: torch.allclose(r[0][1:], r[1], atol=1e-5),
)
accept(
    MO,
    "LSTM runs past its block_size (a recurrent model has no position table)",
    lambda: lstm()(ids(24)).logits,
    lambda r: r.shape == (1, 24, 32),
)

accept(
    GE,
    "stop as one string is one stop sequence, not one per character",
    lambda: (_gen300(stop=_first_char() + "\x00"), _gen300()),
    lambda r: torch.equal(r[0], r[1]),  # "x\x00" never appears; its first character alone would stop at once
)


@functools.cache
def _gpt300():
    torch.manual_seed(0)
    return M.GPT(M.GPTConfig.preset("gpt-nano", vocab_size=300, block_size=16, n_layer=1)).eval()


def _gen300(**kw):
    prompt = torch.tensor([tok().encode("to be or")])
    return G.generate(_gpt300(), prompt, max_new_tokens=6, tokenizer=tok(), **kw)


def _first_char():
    prompt_len = len(tok().encode("to be or"))
    text = tok().decode(_gen300()[0, prompt_len:].tolist(), skip_special_tokens=True)
    return next(ch for ch in text if ch.strip() and ch != "\ufffd")


case(GE, "stop a bare token id", lambda: gen(stop=[5]), r"each stop entry")
case(GE, "stop strings without a tokenizer", lambda: gen(stop=["\n"]), r"tokenizer")
case(GE, "stop an empty string", lambda: gen(stop=[""], tokenizer=tok()), r"stop")
case(GE, "num_return_sequences 2 with greedy", lambda: gen(num_return_sequences=2), r"num_return_sequences")
case(GE, "seed negative", lambda: gen(do_sample=True, seed=-1), r"seed")
case(
    GE,
    "attention_mask shape differs",
    lambda: gen(attention_mask=torch.ones(1, 3, dtype=torch.long)),
    r"attention_mask",
)
case(
    GE, "beyond block_size without sliding_window", lambda: G.generate(gpt(), ids(12), max_new_tokens=10), r"block_size"
)
case(GE, "top_candidates 0", lambda: gen(return_details=True, top_candidates=0), r"top_candidates")
case(
    GE,
    "early_stopping a word",
    lambda: G.beam_search(gpt(), ids(4), num_beams=2, max_new_tokens=2, early_stopping="sometimes"),
    r"early_stopping",
)
case(GE, "generate from an Encoder", lambda: G.generate(encoder(), ids(4), max_new_tokens=2), r"Encoder|generat")
case(
    GE,
    "stream max_new_tokens negative (at the call)",
    lambda: G.stream(gpt(), ids(4), max_new_tokens=-1),
    r"max_new_tokens",
)
case(GE, "text prompt without a tokenizer", lambda: G.generate(gpt(), "to be", max_new_tokens=2), r"tokenizer")
case(
    GE,
    "sampling and do_sample both given",
    lambda: gen(sampling=G.SamplingOptions(temperature=0.5), temperature=0.9),
    r"sampling|both|either",
)
accept(
    GE,
    "beyond block_size with sliding_window",
    lambda: G.generate(gpt(), ids(12), max_new_tokens=10, sliding_window=True),
    lambda r: r.shape == (1, 22),
)
accept(
    GE,
    "seed makes sampling repeatable",
    lambda: (gen(do_sample=True, seed=5, max_new_tokens=5), gen(do_sample=True, seed=5, max_new_tokens=5)),
    lambda r: torch.equal(r[0], r[1]),
)

accept(
    EV,
    "bleu with uneven reference counts equals sacrebleu",
    lambda: E.bleu(["a b c d", "c d e f"], [["a b c d", "x y"], ["c d e g"]]).score,
    lambda r: math.isclose(
        r, __import__("sacrebleu").corpus_bleu(["a b c d", "c d e f"], [["a b c d", "c d e g"], ["x y", None]]).score
    ),
)
case(EV, "chrf char_order 0", lambda: E.chrf(["a"], ["a"], char_order=0), r"char_order")
case(EV, "accuracy of a 2-d y_true", lambda: E.accuracy([[0, 1], [1, 1]], [[0, 1], [1, 0]]), r"y_true has shape")
accept(
    EV,
    "accuracy of logits equals scikit-learn on their argmax",
    lambda: E.accuracy([1, 0], torch.tensor([[0.1, 0.9], [0.3, 0.2]])),
    lambda r: r == 1.0,
)
case(EV, "f1 binary on three classes", lambda: E.precision_recall_f1([0, 1, 2], [0, 1, 2], average="binary"), r"binary")
case(EV, "report zero_division 5", lambda: E.classification_report([0, 1], [0, 1], zero_division=5), r"zero_division")
case(EV, "perplexity of batches without input_ids", lambda: E.perplexity(gpt(), [{"ids": ids(5)}]), r"input_ids")
case(
    EV,
    "perplexity with every label ignored",
    lambda: E.perplexity(gpt(), [{"input_ids": ids(5), "labels": torch.full((1, 5), -100)}]),
    r"no token|label|-100",
)
accept(
    EV,
    "accuracy of strings equals scikit-learn",
    lambda: E.accuracy(["a", "b", "b"], ["a", "b", "a"]),
    lambda r: math.isclose(r, 2 / 3),
)

case(V, "attention_heatmap max_bytes 0", lambda: _viz().attention_heatmap(attn(), TOK5, max_bytes=0), r"max_bytes")
case(
    V,
    "projector_figure labels count differs",
    lambda: _viz().projector_figure(EMB, [str(i) for i in range(12)], labels=[0, 1]),
    r"labels",
)
case(
    V,
    "projector_figure unknown search token",
    lambda: _viz().projector_figure(EMB, [str(i) for i in range(12)], search="zz"),
    r"zz",
)
case(V, "lora_parameter_table rank 0", lambda: _viz().lora_parameter_table(gpt(), ranks=[0, 2]), r"rank")
case(V, "lora_parameter_table unknown target", lambda: _viz().lora_parameter_table(gpt(), targets="attnn"), r"attnn")
case(
    V,
    "checkpoint_trajectory unknown method",
    lambda: _viz().checkpoint_trajectory([EMB, EMB], method="tsnee"),
    r"method|tsne",
)
case(V, "checkpoint_trajectory shapes differ", lambda: _viz().checkpoint_trajectory([EMB, EMB[:5]]), r"shape")
case(V, "cleaning_view of a Cleaner with no texts", lambda: _viz().cleaning_view(D.Cleaner()), r"texts")
case(V, "nearest_neighbours of a 1-d vector", lambda: _viz().nearest_neighbours(torch.rand(4), 0), r"matrix|2-d|shape")
accept(
    V,
    "training_curves of an empty history is an empty figure",
    lambda: _viz().training_curves({"step": [], "loss": []}),
    lambda r: all(len(tr.x or ()) == 0 for tr in r.data),
)
accept(
    V,
    "nearest_neighbours equals brute-force cosine",
    lambda: [n.index for n in _viz().nearest_neighbours(EMB, 0, k=3)],
    lambda r: r == torch.nn.functional.cosine_similarity(EMB[0:1], EMB).argsort(descending=True)[1:4].tolist(),
)

case(
    W,
    "Playground max_new_tokens 0",
    lambda: _set(_w().GenerationPlayground(gpt(), tok()), max_new_tokens=0),
    r"max_new_tokens",
)
case(W, "Playground seed negative", lambda: _set(_w().GenerationPlayground(gpt(), tok()), seed=-3), r"seed")
case(W, "ProjectorWidget k 0", lambda: _w().ProjectorWidget(EMB, k=0), r"k must be")
case(W, "TokenizerExplorer of no tokenizers", lambda: _w().TokenizerExplorer([], "to be"), r"tokenizer")
case(W, "AttentionMathWidget layer out of range", lambda: _w().AttentionMathWidget(gpt(), ids(4), layer=5), r"layer")
case(W, "LoraExplorer unknown target", lambda: _w().LoraExplorer(gpt(), targets="attnn"), r"attnn")
case(W, "TrainingDashboard unknown option", lambda: _w().TrainingDashboard(smoothingg=0.5), r"smoothingg")
case(W, "AttentionWidget qk from a tuple", lambda: _w().AttentionWidget(attn(), TOK5, view="qk"), r"qk")
case(W, "Playground a non-model", lambda: _w().GenerationPlayground("gpt", tok()), r"model")

case(
    I_,
    "attribute internal_batch_size 0",
    lambda: _i().attribute(gpt(), ids(4), steps=2, internal_batch_size=0),
    r"internal_batch_size",
)
case(
    I_, "logit_lens ids past the vocabulary", lambda: _i().logit_lens(gpt(), torch.tensor([[1, 99]])), r"vocab|token id"
)
case(
    I_,
    "neuron_activations max_length 0",
    lambda: _i().neuron_activations(gpt(), ["to be"], layer=0, tokenizer=tok(), max_length=0),
    r"max_length",
)
case(
    I_,
    "neuron_activations of no texts",
    lambda: _i().neuron_activations(gpt(), [], layer=0, tokenizer=tok()),
    r"texts|empty",
)
case(I_, "rollout position out of range", lambda: _i().attention_rollout(gpt(), ids(4), position=9), r"position")
case(
    I_,
    "patching answer not one token",
    lambda: _i().activation_patching(gpt(), ids(4), ids(4), answer="zzzzqq", wrong="a", tokenizer=tok()),
    r"zzzzqq",
)
case(I_, "logit_diff_metric answer equals wrong", lambda: _i().logit_diff_metric(3, 3), r"answer|wrong|same")
case(I_, "residual_stack of float ids", lambda: _i().residual_stack(gpt(), torch.rand(1, 4)), r"integer|ids")
accept(
    I_,
    "logit lens last layer equals the model's logits",
    lambda: (_i().lens_logits(gpt(), ids(5)), gpt()(ids(5)).logits),
    lambda r: torch.allclose(r[0][-1], r[1][0], atol=1e-4) or torch.allclose(r[0][-1], r[1], atol=1e-4),
)
accept(
    I_,
    "integrated gradients add up to f(x) - f(baseline)",
    lambda: _i().attribute(gpt(), ids(4), steps=64),
    lambda r: r.delta is None or abs(r.delta) < 0.05 * (abs(r.f_input - r.f_baseline) + 1e-3),
)

case(
    X, "to_onnx into a folder that is a file", lambda: _x().to_onnx(gpt(), _damaged("afile", b"x") / "m.onnx"), r"file"
)
case(X, "save_model dtype a torch dtype", lambda: _x().save_model(gpt(), tmp("m"), dtype=torch.float16), r"dtype")
case(X, "hf_tokenizer of None", lambda: _x().hf_tokenizer(None), r"tokenizer")
case(X, "build_page path a folder", lambda: _x().build_page(gpt(), tok(), tmp("")), r"folder|file|html")
case(
    X, "check_quantization bound negative", lambda: _x().check_quantization(gpt(), gpt(), ids(4), bound=-1.0), r"bound"
)
case(
    X,
    "OnnxModel logits of ids past the vocabulary",
    lambda: _x().OnnxModel(_onnx_file()).logits(torch.tensor([[1, 99]])),
    r"vocab|token id",
)
case(X, "OnnxModel logits of float ids", lambda: _x().OnnxModel(_onnx_file()).logits(torch.rand(1, 4)), r"integer|ids")
case(X, "OnnxModel run missing an input", lambda: _x().OnnxModel(_onnx_file()).run(), r"missing input")

case(C, "save with a float step", lambda: _tr().save_checkpoint(tmp("k"), gpt(), step=1.5), r"step")
case(
    C,
    "load onto an unknown device",
    lambda: _tr().load_checkpoint(_ckpt_then(lambda p: None), gpt(), map_location="gpu9"),
    r"device|map_location|gpu9",
)
case(C, "load_adapter from a missing folder", lambda: _tr().load_adapter(gpt(), tmp("no-adapter")), r"no-adapter")
case(C, "lora r 0", lambda: _tr().lora(_fresh_gpt(), r=0, verbose=False), r"r must be")
case(C, "lora dropout 1.5", lambda: _tr().lora(_fresh_gpt(), dropout=1.5, verbose=False), r"dropout")
case(C, "lora unknown target", lambda: _tr().lora(_fresh_gpt(), targets="attnn", verbose=False), r"attnn")
case(C, "lora alpha 0", lambda: _tr().lora(_fresh_gpt(), alpha=0, verbose=False), r"alpha")
accept(
    C,
    "load_checkpoint without a model returns the state",
    lambda: _tr().load_checkpoint(_ckpt_then(lambda p: None)),
    lambda r: isinstance(r, dict) and r.get("step") == 1,
)
case(
    MO,
    "Encoder mlm labels of another shape",
    lambda: encoder()(ids(6), labels=ids(5)),
    r"mlm labels must have the shape",
)
case(
    MO,
    "Encoder classification label past num_labels",
    lambda: _classifier()(ids(6), labels=torch.tensor([3])),
    r"classification labels contains 3",
)


@functools.cache
def _classifier():
    torch.manual_seed(0)
    cfg = M.EncoderConfig(
        vocab_size=32,
        block_size=16,
        n_layer=1,
        n_head=2,
        n_embd=16,
        n_inner=32,
        dropout=0.0,
        head="classification",
        num_labels=2,
    )
    return M.Encoder(cfg).eval()


case(I_, "logit_diff_metric answer a word", lambda: _i().logit_diff_metric("Paris", 3), r"answer must be a token id")
accept(
    I_,
    "logit_diff_metric equals the logit difference",
    lambda: _i().logit_diff_metric(3, 5)(gpt()(ids(4)).logits),
    lambda r: torch.allclose(r, gpt()(ids(4)).logits[0, -1, 3] - gpt()(ids(4)).logits[0, -1, 5]),
)


# ---------------------------------------------------------------- the test

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.name}" for c in CASES])
def test_bad_input_has_the_expected_outcome(case):
    outcome, detail = classify(case)
    assert outcome == (CLEAR_ERROR if case.expect == "error" else ACCEPTED), detail


def test_the_table_is_broad():
    assert len(CASES) >= 120
    assert len({c.name for c in CASES}) == len(CASES)  # every case has its own name
