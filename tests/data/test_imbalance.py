"""Imbalanced splits and resampling: the requested ratio holds (up to rounding), indices are real and unique,
resampling equalises the classes, everything is a function of the seed, and bad ratios fail in one line."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data import Batches, ClassificationDataset, Subset, imbalanced_split, resample, train_tokenizer
from labkit.errors import InvalidInputError, UnknownNameError

# Label lists with at least two classes, each present.
label_lists = st.lists(st.integers(0, 3), min_size=2, max_size=300).filter(lambda y: len(set(y)) >= 2)


@settings(max_examples=120, deadline=None)
@given(labels=label_lists, ratio=st.floats(0.01, 1.0), seed=st.integers(0, 2**31), data=st.data())
def test_split_reaches_the_ratio_and_keeps_real_unique_indices(labels, ratio, seed, data):
    minority = data.draw(st.sampled_from(sorted(set(labels))))
    keep = imbalanced_split(labels, ratio, minority=minority, seed=seed)
    assert keep == sorted(set(keep)) and all(0 <= i < len(labels) for i in keep)
    counts = Counter(labels[i] for i in keep)
    original = Counter(labels)
    assert set(counts) == set(original)  # no class disappears
    others = {c: n for c, n in counts.items() if c != minority}
    largest = max(others.values())
    # the minority count is the rounded target (at least 1) of the largest other class that was kept
    assert counts[minority] == min(original[minority], max(1, round(ratio * largest)))
    assert abs(counts[minority] - ratio * largest) <= 1
    if max(1, round(ratio * max(original[c] for c in others))) <= original[minority]:
        assert others == {c: original[c] for c in others}  # enough minority examples: the others keep everything
    else:
        assert counts[minority] == original[minority]  # all of the minority, and the others cut to fit
    assert keep == imbalanced_split(labels, ratio, minority=minority, seed=seed)


def test_split_of_a_balanced_binary_set():
    labels = [0, 1] * 500
    keep = imbalanced_split(labels, 0.1, seed=3)
    assert Counter(labels[i] for i in keep) == {0: 500, 1: 50}
    assert imbalanced_split(labels, 1.0) == list(range(1000))
    few = imbalanced_split([0] * 100 + [1] * 5, 0.5)  # too few minority examples: the majority is cut to 10
    assert Counter(([0] * 100 + [1] * 5)[i] for i in few) == {0: 10, 1: 5}


@settings(max_examples=80, deadline=None)
@given(labels=label_lists, strategy=st.sampled_from(["oversample", "undersample"]), seed=st.integers(0, 2**31))
def test_resample_equalises_the_classes(labels, strategy, seed):
    idx = resample(labels, strategy, seed=seed)
    counts = Counter(labels[i] for i in idx)
    original = Counter(labels)
    target = max(original.values()) if strategy == "oversample" else min(original.values())
    assert counts == {c: target for c in original}
    if strategy == "undersample":
        assert len(set(idx)) == len(idx)  # no repeats
    else:
        assert set(idx) == set(range(len(labels)))  # every example at least once
    assert idx == resample(labels, strategy, seed=seed)


def test_subset_batches_pad_and_keep_labels():
    texts = ["good film", "bad film", "great", "awful plot", "fine", "dull"]
    tok = train_tokenizer(texts * 3, kind="wordpiece", vocab_size=60)
    data = ClassificationDataset(texts, [1, 0, 1, 0, 1, 0], tok, max_length=8)
    sub = Subset(data, resample(data, "oversample") + [0])
    assert len(sub) == 7 and sub.class_counts() == {0: 3, 1: 4} and sub.pad_id == tok.pad_id
    batch = next(iter(Batches(sub, batch_size=7, shuffle=False)))
    assert batch["input_ids"].shape[0] == 7 and torch.equal(batch["labels"], sub.labels)


@pytest.mark.parametrize("ratio", [0, -0.5, 1.5, float("nan")])
def test_ratio_outside_the_unit_interval_fails_in_one_line(ratio):
    with pytest.raises(InvalidInputError, match="ratio") as err:
        imbalanced_split([0, 1, 0, 1], ratio)
    assert "\n" not in str(err.value)


def test_other_bad_input():
    with pytest.raises(InvalidInputError, match="does not occur"):
        imbalanced_split([0, 0, 2], 0.5, minority=1)
    with pytest.raises(InvalidInputError, match="second class"):
        imbalanced_split([1, 1], 0.5)
    with pytest.raises(UnknownNameError, match="oversample"):
        resample([0, 1], "oversampl")
    with pytest.raises(InvalidInputError, match="class ids"):
        resample(["a", "b"])
    with pytest.raises(InvalidInputError, match="outside"):
        Subset([1, 2, 3], [5])
