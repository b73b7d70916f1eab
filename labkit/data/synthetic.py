"""Synthetic tasks generated in code: copy, reverse and modular arithmetic.

They need no download, train in seconds, and have answers a test can check, so
they suit first lessons (does attention learn to copy?), grokking experiments
and fast tests. Every task comes in two layouts over one small vocabulary:

- decoder-only: `input_ids` = <bos> prompt = answer <eos>, and `labels` equal to
  `input_ids` with -100 on the prompt, so the loss covers only the answer
  (the model shifts labels itself, as in Hugging Face);
- encoder-decoder: `src` (the prompt) and `tgt` (answer <eos>, the Seq2Seq labels).

Ids 0-3 are <pad>, <bos>, <eos> and "=", matching `Seq2SeqConfig`'s defaults
(pad_token_id=0, decoder_start_token_id=1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError, UnknownNameError

__all__ = ["SyntheticTask", "copy_task", "reverse_task", "modular_arithmetic"]

SPECIALS = ["<pad>", "<bos>", "<eos>", "="]
PAD_ID, BOS_ID, EOS_ID, SEP_ID = 0, 1, 2, 3
OPS = ("+", "-", "*", "/")


@dataclass(repr=False)
class SyntheticTask:
    """Tensors of one generated task in decoder-only and encoder-decoder layouts, with its vocabulary."""

    name: str
    input_ids: torch.Tensor  # [n, T] long: <bos> prompt = answer <eos>
    labels: torch.Tensor  # [n, T] long: input_ids with -100 on <bos>, the prompt and "="
    src: torch.Tensor  # [n, S] long: the prompt alone (Seq2Seq encoder input)
    tgt: torch.Tensor  # [n, U] long: answer <eos> (Seq2Seq labels; the model shifts them right after <bos>)
    itos: list[str]  # id -> token string
    description: str
    prompt_length: int  # input_ids[:, :prompt_length] is <bos> prompt "="; the answer starts right after

    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    sep_id: int = SEP_ID

    @property
    def vocab_size(self) -> int:
        """Number of distinct token ids (specials included): the model's vocab_size."""
        return len(self.itos)

    @property
    def stoi(self) -> dict[str, int]:
        """Token string -> id."""
        return {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return self.input_ids.size(0)

    def __repr__(self) -> str:
        return (
            f"SyntheticTask({self.name!r}: {len(self)} examples, input_ids {tuple(self.input_ids.shape)}, "
            f"vocab_size={self.vocab_size})"
        )

    def decode(
        self, ids: torch.Tensor | Sequence[int] | Sequence[Sequence[int]], skip_special: bool = False
    ) -> str | list[str]:
        """Ids [T] (or [n, T]) in, space-separated tokens out (a list for 2-D input); -100 and <pad> are dropped.

        skip_special: also drop <bos> and <eos>, leaving e.g. "3 1 4 = 4 1 3".
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        ids = list(ids)
        if ids and isinstance(ids[0], (list, tuple)):
            return [self.decode(row, skip_special) for row in ids]  # type: ignore[misc]
        drop = {-100, PAD_ID} | ({BOS_ID, EOS_ID} if skip_special else set())
        out = []
        for i in ids:
            i = int(i)
            if i in drop:
                continue
            if not 0 <= i < self.vocab_size:
                raise InvalidInputError(f"id {i} is outside this task's vocabulary [0, {self.vocab_size})")
            out.append(self.itos[i])
        return " ".join(out)

    def encode(self, text: str) -> list[int]:
        """Space-separated tokens in (e.g. "3 1 4 ="), ids out; prepend <bos> yourself when prompting a decoder."""
        table = self.stoi
        unknown = [tok for tok in text.split() if tok not in table]
        if unknown:
            raise InvalidInputError(
                f"token {unknown[0]!r} is not in this task's vocabulary; tokens are {' '.join(self.itos)}"
            )
        return [table[tok] for tok in text.split()]

    def select(self, index: torch.Tensor | Sequence[int] | slice) -> SyntheticTask:
        """Row indices (or a slice) in, a task holding only those examples out."""
        idx = index if isinstance(index, slice) else torch.as_tensor(index, dtype=torch.long)
        return SyntheticTask(
            self.name,
            self.input_ids[idx],
            self.labels[idx],
            self.src[idx],
            self.tgt[idx],
            self.itos,
            self.description,
            self.prompt_length,
        )


def copy_task(n: int, length: int = 8, vocab: int = 10, seed: int = 0) -> SyntheticTask:
    """Example count in, a task whose answer repeats the prompt ("3 1 4 = 3 1 4") out.

    n: number of examples.  length: symbols per prompt.  vocab: distinct symbols ("0", "1", ...).
    seed: the generator seed; the same arguments always give the same tensors.
    """
    return _symbol_task("copy", n, length, vocab, seed)


def reverse_task(n: int, length: int = 8, vocab: int = 10, seed: int = 0) -> SyntheticTask:
    """Example count in, a task whose answer is the prompt reversed ("3 1 4 = 4 1 3") out.

    Parameters as in `copy_task`.
    """
    return _symbol_task("reverse", n, length, vocab, seed)


def _symbol_task(kind: str, n: int, length: int, vocab: int, seed: int) -> SyntheticTask:
    prompts = _random_symbols(n, length, vocab, seed)
    if kind == "reverse":
        answers, rule = prompts.flip(1), "the answer is the prompt backwards"
    else:
        answers, rule = prompts, "the answer repeats the prompt"
    description = f"{kind} {n} sequences of {length} symbols from {vocab}: {rule}"
    return _assemble(kind, prompts, answers, _symbol_vocab(vocab), description)


def modular_arithmetic(
    p: int = 97, op: str = "+", train_fraction: float | None = None, seed: int = 0
) -> SyntheticTask | tuple[SyntheticTask, SyntheticTask]:
    """Modulus and operation in, every equation "a op b = c" with c = (a op b) mod p out, shuffled by seed.

    p: the modulus (2..1000); prime for "/", where a / b means a * b^(p-2), b's inverse (b != 0).
    op: one of "+", "-", "*", "/".
    train_fraction: None for one task with all pairs; a number in (0, 1) for a (train, validation)
        pair of disjoint tasks, as in grokking experiments.
    seed: fixes the shuffle (and so the split).
    """
    if op not in OPS:
        raise UnknownNameError(f"unknown operation {op!r}; use one of {', '.join(OPS)}")
    check_int("p", p, low=2, high=1000, fix="p*p equations are made; 97 is the classic choice")
    if op == "/" and not _is_prime(p):
        raise InvalidInputError(
            f"p={p} is not prime, so not every b has an inverse mod p; pick a prime such as 97 for '/'"
        )
    check_float("train_fraction", train_fraction, low=0, high=1, low_open=True, high_open=True, allow_none=True)
    values = torch.arange(p)
    a = values.repeat_interleave(p - 1 if op == "/" else p)
    b = (values[1:] if op == "/" else values).repeat(p)
    if op == "+":
        c = (a + b) % p
    elif op == "-":
        c = (a - b) % p
    elif op == "*":
        c = (a * b) % p
    else:
        inverse = torch.tensor([0] + [pow(int(x), p - 2, p) for x in range(1, p)])  # Fermat: b^(p-2) = 1/b mod p
        c = (a * inverse[b]) % p
    order = torch.randperm(a.numel(), generator=torch.Generator().manual_seed(seed))
    a, b, c = a[order], b[order], c[order]
    itos = SPECIALS + [str(i) for i in range(p)] + [op]
    first, op_id = len(SPECIALS), len(SPECIALS) + p
    prompts = torch.stack([a + first, torch.full_like(a, op_id), b + first], dim=1)
    task = _assemble(
        f"modular{op}",
        prompts,
        (c + first).unsqueeze(1),
        itos,
        f"all {a.numel()} equations a {op} b = (a {op} b) mod {p}",
    )
    if train_fraction is None:
        return task
    n_train = int(round(train_fraction * len(task)))
    if not 0 < n_train < len(task):
        raise InvalidInputError(
            f"train_fraction={train_fraction} leaves an empty split of {len(task)} equations; pick a value nearer 0.5"
        )
    train, val = task.select(slice(0, n_train)), task.select(slice(n_train, None))
    train.description = f"{task.description}: the {n_train} training equations (seed {seed})"
    val.description = f"{task.description}: the {len(task) - n_train} held-out equations (seed {seed})"
    return train, val


def _random_symbols(n: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    for name, value, low, high in (
        ("n", n, 1, 10_000_000),
        ("length", length, 1, 10_000),
        ("vocab", vocab, 2, 100_000),
    ):
        check_int(name, value, low=low, high=high)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, length), generator=generator) + len(SPECIALS)  # [n, length] symbol ids


def _symbol_vocab(vocab: int) -> list[str]:
    return SPECIALS + [str(i) for i in range(vocab)]


def _assemble(
    name: str, prompts: torch.Tensor, answers: torch.Tensor, itos: list[str], description: str
) -> SyntheticTask:
    """Prompt ids [n, S] and answer ids [n, A] in, both layouts out."""
    n = prompts.size(0)
    bos = torch.full((n, 1), BOS_ID, dtype=torch.long)
    sep = torch.full((n, 1), SEP_ID, dtype=torch.long)
    eos = torch.full((n, 1), EOS_ID, dtype=torch.long)
    input_ids = torch.cat([bos, prompts, sep, answers, eos], dim=1)  # [n, S + A + 3]
    prompt_length = prompts.size(1) + 2
    labels = input_ids.clone()
    labels[:, :prompt_length] = -100  # the prompt is given, not predicted: only the answer counts in the loss
    tgt = torch.cat([answers, eos], dim=1)  # [n, A + 1]
    return SyntheticTask(name, input_ids, labels, prompts.clone(), tgt, itos, description, prompt_length)


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, int(p**0.5) + 1))
