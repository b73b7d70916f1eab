"""Next-sentence prediction data: exact halves, true pairs are consecutive sentences of one document, random B
comes from another document, seeded; the encoded items put [CLS] A [SEP] B [SEP] with segment ids 0 then 1, and
flow through MLMCollator into an Encoder with head="pretraining"."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data import MLMCollator, NextSentenceDataset, next_sentence_pairs, split_at_sentence_ends, train_tokenizer
from labkit.data.nsp import IS_NEXT, RANDOM
from labkit.errors import InvalidInputError

# Documents of unique sentences ("d3s1" = document 3, sentence 1), so a sentence tells where it came from.
documents = (
    st.lists(st.integers(1, 6), min_size=2, max_size=8)
    .map(lambda sizes: [[f"d{d}s{i}" for i in range(n)] for d, n in enumerate(sizes)])
    .filter(lambda docs: any(len(d) > 1 for d in docs))
)


@settings(max_examples=80, deadline=None)
@given(docs=documents, fraction=st.sampled_from([0.0, 0.25, 0.5, 1.0]), seed=st.integers(0, 2**31))
def test_pairs_have_the_exact_share_and_true_pairs_are_consecutive(docs, fraction, seed):
    pairs = next_sentence_pairs(docs, random_fraction=fraction, seed=seed)
    assert len(pairs) == sum(len(d) - 1 for d in docs)  # one pair per consecutive sentence pair
    assert sum(p.label == RANDOM for p in pairs) == round(fraction * len(pairs))
    for p in pairs:
        i = docs[p.doc_a].index(p.a)
        if p.label == IS_NEXT:
            assert p.doc_b == p.doc_a and p.b == docs[p.doc_a][i + 1]
        else:
            assert p.doc_b != p.doc_a and p.b in docs[p.doc_b]
        assert i + 1 < len(docs[p.doc_a])  # A always has a real successor, so both kinds share the A positions


@settings(max_examples=40, deadline=None)
@given(docs=documents, seed=st.integers(0, 2**31), keep=st.integers(1, 10))
def test_pairs_are_a_function_of_the_seed(docs, seed, keep):
    first = next_sentence_pairs(docs, seed=seed, max_pairs=keep)
    assert first == next_sentence_pairs(docs, seed=seed, max_pairs=keep)
    assert len(first) == min(keep, sum(len(d) - 1 for d in docs))
    assert len(set(first)) == len(first)  # pairs kept without repetition


def test_random_sentences_spread_over_the_other_documents():
    docs = [[f"d{d}s{i}" for i in range(3)] for d in range(4)]
    seen = {(p.doc_a, p.doc_b) for seed in range(40) for p in next_sentence_pairs(docs, seed=seed, random_fraction=1.0)}
    assert seen == {(a, b) for a in range(4) for b in range(4) if a != b}  # every other document is reachable


@given(st.lists(st.sampled_from(["One.", "Two!", "Three?", "four", "\n", " "]), max_size=12))
def test_split_sentences_keeps_every_word_in_order(pieces):
    text = " ".join(pieces)
    assert " ".join(split_at_sentence_ends(text)).split() == text.split()


def test_split_sentences_on_a_paragraph():
    text = 'Ad sales rise\n\nProfits jumped 76%. "It was good," he said! Why? Because.'
    assert split_at_sentence_ends(text) == [
        "Ad sales rise",
        "Profits jumped 76%.",
        '"It was good," he said!',
        "Why?",
        "Because.",
    ]


def test_texts_and_corpora_are_split_into_sentences():
    pairs = next_sentence_pairs(["A b. C d. E f.", "G h. I j."], random_fraction=0.0)
    assert [(p.a, p.b) for p in pairs] == [("A b.", "C d."), ("C d.", "E f."), ("G h.", "I j.")]


def test_dataset_layout_truncation_and_training_batch():
    docs = ["the cat sat on the mat. it was warm there. the dog came in.", "stocks fell today. bonds rose a bit."]
    tok = train_tokenizer([" ".join(docs)] * 3, kind="wordpiece", vocab_size=120)
    pairs = next_sentence_pairs(docs, seed=1)
    data = NextSentenceDataset(pairs, tok, max_length=9)
    for k, pair in enumerate(pairs):
        item = data[k]
        ids, seg = item["input_ids"].tolist(), item["token_type_ids"].tolist()
        assert len(ids) <= 9 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id and ids.count(tok.sep_id) == 2
        cut = ids.index(tok.sep_id)
        assert seg == [0] * (cut + 1) + [1] * (len(ids) - cut - 1)
        a, b = tok.encode(pair.a), tok.encode(pair.b)
        assert ids[1:cut] == a[: cut - 1] and ids[cut + 1 : -1] == b[: len(ids) - cut - 2]  # prefixes survive
        assert int(item["next_sentence_label"]) == pair.label
    from labkit.models import Encoder, EncoderConfig

    batch = MLMCollator(tok, seed=0)([data[k] for k in range(len(data))])
    assert set(batch) == {"input_ids", "token_type_ids", "next_sentence_label", "attention_mask", "labels"}
    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=tok.vocab_size, head="pretraining"))
    out = model(**batch)
    assert out.seq_relationship_logits.shape == (len(data), 2) and out.loss.isfinite()


def test_bad_input_fails_in_one_line():
    with pytest.raises(InvalidInputError, match="two sentences"):
        next_sentence_pairs([["only one"], ["and one"]])
    with pytest.raises(InvalidInputError, match="another document"):
        next_sentence_pairs([["a", "b", "c"]])
    assert len(next_sentence_pairs([["a", "b", "c"]], random_fraction=0.0)) == 2
    with pytest.raises(InvalidInputError, match="random_fraction"):
        next_sentence_pairs([["a", "b"], ["c"]], random_fraction=1.5)
    with pytest.raises(InvalidInputError, match="list of documents"):
        next_sentence_pairs("a. b. c.")
    tok = train_tokenizer(["a b c"], kind="char", special_tokens={"pad": "<pad>", "unk": "<unk>"})
    with pytest.raises(InvalidInputError, match="CLS"):
        NextSentenceDataset([("a", "b", 0)], tok)
