"""Synthetic tasks: answers checked by Python arithmetic, layouts checked against each other and a real model loss."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data import copy_task, modular_arithmetic, reverse_task
from labkit.errors import InvalidInputError, UnknownNameError

PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 97]
shapes = dict(n=st.integers(1, 20), length=st.integers(1, 12), vocab=st.integers(2, 30), seed=st.integers(0, 2**31 - 1))


def _split(task):
    """input_ids -> (prompt symbols, answer symbols) by position, independently of src/tgt."""
    k = task.prompt_length
    return task.input_ids[:, 1 : k - 1], task.input_ids[:, k:-1]


@settings(max_examples=60, deadline=None)
@given(**shapes)
def test_copy_answer_repeats_prompt_in_both_layouts(n, length, vocab, seed):
    task = copy_task(n, length=length, vocab=vocab, seed=seed)
    prompt, answer = _split(task)
    assert task.input_ids.shape == (n, 2 * length + 3) and task.input_ids.dtype == torch.long
    assert torch.equal(prompt, answer)
    assert torch.equal(task.src, prompt) and torch.equal(task.tgt[:, :-1], answer)
    assert task.vocab_size == vocab + 4 and int(task.input_ids.max()) < task.vocab_size
    for row in task.decode(task.input_ids, skip_special=True):
        left, right = row.split(" = ")
        assert left == right and all(0 <= int(s) < vocab for s in left.split())


@settings(max_examples=60, deadline=None)
@given(**shapes)
def test_reverse_answer_is_prompt_backwards_and_reversing_twice_is_identity(n, length, vocab, seed):
    task = reverse_task(n, length=length, vocab=vocab, seed=seed)
    prompt, answer = _split(task)
    assert [list(reversed(r)) for r in prompt.tolist()] == answer.tolist()  # python's reverse as the oracle
    assert torch.equal(answer.flip(1), prompt)
    # the copy and reverse tasks draw the same prompts for the same seed: reverse(reverse(x)) == copy(x)
    assert torch.equal(copy_task(n, length=length, vocab=vocab, seed=seed).src, task.tgt[:, :-1].flip(1))


@settings(max_examples=30, deadline=None)
@given(**shapes)
def test_labels_mask_exactly_the_prompt(n, length, vocab, seed):
    task = reverse_task(n, length=length, vocab=vocab, seed=seed)
    k = task.prompt_length
    assert (task.labels[:, :k] == -100).all()
    assert torch.equal(task.labels[:, k:], task.input_ids[:, k:])
    assert torch.equal(task.labels[:, k:], task.tgt)  # the decoder-only answer is the Seq2Seq target
    assert (task.input_ids[:, 0] == task.bos_id).all() and (task.input_ids[:, -1] == task.eos_id).all()
    assert (task.input_ids[:, k - 1] == task.sep_id).all()


@given(seed=st.integers(0, 1000))
@settings(max_examples=20, deadline=None)
def test_tasks_are_deterministic_by_seed(seed):
    a, b = reverse_task(16, seed=seed), reverse_task(16, seed=seed)
    assert torch.equal(a.input_ids, b.input_ids)
    assert not torch.equal(
        a.input_ids, reverse_task(16, seed=seed + 1).input_ids
    )  # 10^128 prompts: a clash is impossible
    m1, m2 = modular_arithmetic(11, "*", seed=seed), modular_arithmetic(11, "*", seed=seed)
    assert torch.equal(m1.input_ids, m2.input_ids)


def _python_op(a: int, b: int, op: str, p: int) -> int:
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return (a * b) % p
    inverse = next(x for x in range(1, p) if (b * x) % p == 1)  # brute-force inverse: independent of Fermat
    return (a * inverse) % p


@settings(max_examples=40, deadline=None)
@given(
    p=st.sampled_from(PRIMES[:-1]) | st.integers(2, 30),
    op=st.sampled_from(["+", "-", "*", "/"]),
    seed=st.integers(0, 10**6),
)
def test_modular_arithmetic_answers_match_python_and_cover_every_pair(p, op, seed):
    if op == "/" and p not in PRIMES:
        with pytest.raises(InvalidInputError, match="not prime"):
            modular_arithmetic(p, op, seed=seed)
        return
    task = modular_arithmetic(p, op, seed=seed)
    seen = []
    for row in task.decode(task.input_ids, skip_special=True):
        a, sym, b, eq, c = row.split()
        assert sym == op and eq == "="
        assert int(c) == _python_op(int(a), int(b), op, p), row
        seen.append((int(a), int(b)))
    expected = set(itertools.product(range(p), range(1, p) if op == "/" else range(p)))
    assert len(seen) == len(expected) and set(seen) == expected
    assert task.vocab_size == p + 5 and task.input_ids.shape == (len(expected), 7)


@settings(max_examples=20, deadline=None)
@given(fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_modular_split_is_disjoint_and_complete(fraction, seed):
    train, val = modular_arithmetic(23, "+", train_fraction=fraction, seed=seed)
    rows = lambda t: {tuple(r) for r in t.src.tolist()}  # noqa: E731
    assert rows(train).isdisjoint(rows(val))
    assert len(train) + len(val) == 23 * 23 and len(rows(train) | rows(val)) == 23 * 23
    assert len(train) == round(fraction * 23 * 23)
    again, _ = modular_arithmetic(23, "+", train_fraction=fraction, seed=seed)
    assert torch.equal(again.input_ids, train.input_ids)


def test_encode_decode_round_trip_and_labels_decode_to_the_answer():
    task = modular_arithmetic(97, "-", seed=3)
    row = task.input_ids[0]
    assert task.encode(task.decode(row)) == row.tolist()
    a, _, b = (task.itos[i] for i in task.src[0])
    a, b = int(a), int(b)
    assert task.decode(task.labels[0], skip_special=True) == str((a - b) % 97)
    with pytest.raises(InvalidInputError, match="not in this task's vocabulary"):
        task.encode("1 + 2 =")


def test_labels_make_the_model_loss_cover_only_the_answer():
    # oracle: the GPT's own loss equals cross-entropy computed by hand over answer positions only
    from labkit.models import GPT, GPTConfig

    torch.manual_seed(0)
    task = reverse_task(4, length=5, vocab=6, seed=0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=task.vocab_size, block_size=32, dropout=0.0)).eval()
    out = model(input_ids=task.input_ids, labels=task.labels)
    logits = out.logits[:, task.prompt_length - 1 : -1]  # position t predicts token t + 1
    manual = F.cross_entropy(logits.reshape(-1, task.vocab_size), task.input_ids[:, task.prompt_length :].reshape(-1))
    assert torch.allclose(out.loss, manual, atol=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: copy_task(0), InvalidInputError, r"^n must be an integer in \[1, 10000000\], got 0$"),
        (lambda: reverse_task(3, length=0), InvalidInputError, r"^length must be an integer in \[1, 10000\], got 0$"),
        (lambda: copy_task(3, vocab=1), InvalidInputError, r"^vocab must be an integer in \[2, 100000\], got 1$"),
        (lambda: copy_task(2.5), InvalidInputError, r"^n must be an integer .*got 2.5$"),
        (lambda: modular_arithmetic(12, "/"), InvalidInputError, "p=12 is not prime"),
        (lambda: modular_arithmetic(97, "%"), UnknownNameError, "unknown operation '%'"),
        (
            lambda: modular_arithmetic(1),
            InvalidInputError,
            r"^p must be an integer in \[2, 1000\], got 1; p\*p equations",
        ),
        (lambda: modular_arithmetic(5000), InvalidInputError, r"^p must be an integer in \[2, 1000\], got 5000"),
        (
            lambda: modular_arithmetic(97, train_fraction=1.0),
            InvalidInputError,
            r"^train_fraction must be a finite number in \(0, 1\) \(or None\), got 1.0$",
        ),
        (lambda: modular_arithmetic(2, train_fraction=0.01), InvalidInputError, "empty split"),
    ],
)
def test_bad_arguments_raise_one_line_errors(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert "\n" not in str(info.value)
