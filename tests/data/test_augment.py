"""EDA augmentations: deterministic by seed, and each keeps its defining property (deletion keeps a subsequence
and never empties, swap keeps the multiset of words, insertion keeps the original words in order, replacement
changes at most n positions and only to synonyms)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data.augment import Compose, RandomDeletion, RandomInsertion, RandomReplacement, RandomSwap
from labkit.errors import InvalidInputError

word = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
word_lists = st.lists(word, min_size=1, max_size=15)
SYNONYMS = {"good": ["fine", "great"], "movie": ["film"], "bad": ["poor", "awful"]}


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(w == b for b in it) for w in small)


@settings(max_examples=80, deadline=None)
@given(words=word_lists, p=st.floats(0.0, 1.0), seed=st.integers(0, 2**32))
def test_deletion_keeps_an_ordered_nonempty_subsequence(words, p, seed):
    text = " ".join(words)
    out = RandomDeletion(p, seed=seed)(text)
    assert out and _is_subsequence(out.split(), words)
    assert out == RandomDeletion(p, seed=seed)(text)  # deterministic by seed
    assert RandomDeletion(1.0, seed=seed)(text) in words  # everything deleted -> one word survives
    assert RandomDeletion(0.0, seed=seed)(text) == text


def test_deletion_rate_is_p():
    words = [f"w{i}" for i in range(20_000)]
    kept = len(RandomDeletion(0.3, seed=0)(" ".join(words)).split())
    assert abs(1 - kept / len(words) - 0.3) < 0.02


@settings(max_examples=80, deadline=None)
@given(words=word_lists, n=st.integers(0, 5), seed=st.integers(0, 2**32))
def test_swap_preserves_the_multiset_of_words(words, n, seed):
    out = RandomSwap(n, seed=seed)(" ".join(words)).split()
    assert Counter(out) == Counter(words)
    assert out == RandomSwap(n, seed=seed)(" ".join(words)).split()


def test_one_swap_exchanges_exactly_two_positions():
    words = [f"w{i}" for i in range(10)]
    swap = RandomSwap(1, seed=4)
    for _ in range(20):
        out = swap(" ".join(words)).split()
        diff = [i for i, (a, b) in enumerate(zip(words, out)) if a != b]
        assert len(diff) == 2 and out[diff[0]] == words[diff[1]] and out[diff[1]] == words[diff[0]]


@settings(max_examples=60, deadline=None)
@given(words=word_lists, n=st.integers(0, 4), seed=st.integers(0, 2**32))
def test_insertion_adds_n_words_from_the_sentence_without_synonyms(words, n, seed):
    out = RandomInsertion(n, seed=seed)(" ".join(words)).split()
    assert len(out) == len(words) + n and _is_subsequence(words, out)
    assert set(out) <= set(words)
    vocab = ["zz", "yy"]
    out = RandomInsertion(n, vocabulary=vocab, seed=seed)(" ".join(words)).split()
    assert len(out) == len(words) + n and set(out) <= set(words) | set(vocab)


def test_insertion_with_synonyms_inserts_synonyms_only():
    text = "a good movie with a bad ending"
    insert = RandomInsertion(3, synonyms=SYNONYMS, seed=1)
    for _ in range(10):
        out = insert(text).split()
        added = Counter(out) - Counter(text.split())
        assert sum(added.values()) == 3 and set(added) <= {s for alts in SYNONYMS.values() for s in alts}
    assert RandomInsertion(2, synonyms=SYNONYMS)("nothing matches here") == "nothing matches here"
    called = RandomInsertion(1, synonyms=lambda w: [w.upper()], seed=0)("tiny text").split()
    assert len(called) == 3 and sum(w.isupper() for w in called) == 1


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(["a", "good", "movie", "bad", "plot", "Good"]), min_size=1, max_size=12),
    n=st.integers(0, 4),
    seed=st.integers(0, 2**32),
)
def test_replacement_changes_at_most_n_words_to_synonyms(words, n, seed):
    out = RandomReplacement(n, synonyms=SYNONYMS, seed=seed)(" ".join(words)).split()
    assert len(out) == len(words)
    changed = [(a, b) for a, b in zip(words, out) if a != b]
    replaceable = sum(w.lower() in SYNONYMS for w in words)
    assert len(changed) == min(n, replaceable)  # every changed word had synonyms, and a synonym always differs
    assert all(b in SYNONYMS[a.lower()] for a, b in changed)


def test_replacement_without_synonyms_uses_vocabulary_or_the_sentence():
    out = RandomReplacement(2, vocabulary=["x1", "x2"], seed=0)("a b c d").split()
    assert sum(w in ("x1", "x2") for w in out) == 2 and len(out) == 4
    out = RandomReplacement(1, seed=0)("a b c d").split()
    assert len(out) == 4 and set(out) <= set("abcd") and sum(a != b for a, b in zip("abcd", out)) == 1


def test_compose_applies_in_order_and_shared_random_is_reproducible():
    text = "the quick brown fox jumps over the lazy dog"
    composed = Compose([RandomSwap(2, seed=1), RandomDeletion(0.3, seed=2), RandomInsertion(1, seed=3)])
    manual = RandomInsertion(1, seed=3)(RandomDeletion(0.3, seed=2)(RandomSwap(2, seed=1)(text)))
    assert composed(text) == manual
    shared = lambda: Compose([RandomSwap(1, seed=rng), RandomDeletion(0.2, seed=rng)])  # noqa: E731
    rng = random.Random(5)
    first = [shared()(text) for _ in range(3)]
    rng = random.Random(5)
    assert [shared()(text) for _ in range(3)] == first
    outputs = {composed(text) for _ in range(10)}
    assert len(outputs) > 1  # the stream advances: each call is a new augmentation


def test_repr_shows_parameters():
    assert repr(RandomDeletion(0.2, seed=3)) == "RandomDeletion(p=0.2, seed=3)"
    assert repr(RandomSwap(2)) == "RandomSwap(n=2, seed=0)"
    assert "synonyms=<dict of 3 words>" in repr(RandomReplacement(1, synonyms=SYNONYMS))
    assert repr(Compose([RandomSwap(1)])) == "Compose([RandomSwap(n=1, seed=0)])"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RandomDeletion(1.5), "p must be"),
        (lambda: RandomSwap(-1), "n must be"),
        (lambda: RandomInsertion(1, synonyms=5), "synonyms"),
        (lambda: RandomReplacement(1, vocabulary=[]), "vocabulary"),
        (lambda: RandomSwap(1, seed="x"), "seed"),
        (lambda: Compose([RandomSwap(1), "oops"]), "callables"),
    ],
)
def test_bad_parameters_are_one_line_errors(make, match):
    with pytest.raises(InvalidInputError, match=match):
        make()


def test_non_string_input_and_empty_text():
    with pytest.raises(InvalidInputError, match="string"):
        RandomSwap()(["a", "b"])
    assert RandomDeletion(1.0)("   ") == "   "
