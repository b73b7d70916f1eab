"""bleu/chrf/rouge against sacrebleu and rouge-score called directly (the per-segment -> stream layout is what is tested)."""

from __future__ import annotations

import sys

import pytest

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError
from labkit.evaluation.text import BleuResult, ChrfResult, bleu, chrf, rouge

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

HYPS = [
    "The cat sat on the mat.",
    "",  # an empty hypothesis is legal and must not shift the alignment
    "It is raining cats and dogs in Paris today.",
    "He read the books quickly",
    "Ünïcode wörds, and punctuation!",
]
REFS_A = [
    "The cat is sitting on the mat.",
    "There was nothing to translate.",
    "Today it is raining heavily in Paris.",
    "He quickly read the book.",
    "Unicode words and punctuation!",
]
REFS_B = [
    "A cat sat on the mat.",
    "Nothing.",
    "In Paris it rains cats and dogs today.",
    "He was reading books fast",
    "Ünïcode wörds, with punctuation.",
]


def test_bleu_single_reference_equals_sacrebleu():
    ref = sacrebleu.corpus_bleu(HYPS, [REFS_A])
    ours = bleu(HYPS, REFS_A)
    assert isinstance(ours, BleuResult)
    assert ours.score == pytest.approx(ref.score, abs=1e-9) and float(ours) == ours.score
    assert ours.precisions == pytest.approx(ref.precisions, abs=1e-9)
    assert ours.brevity_penalty == pytest.approx(ref.bp) and (ours.sys_len, ours.ref_len) == (ref.sys_len, ref.ref_len)
    assert "nrefs:1" in ours.signature and "tok:13a" in ours.signature


def test_bleu_multi_reference_is_transposed_into_streams():
    per_segment = [[a, b] for a, b in zip(REFS_A, REFS_B)]
    ref = sacrebleu.corpus_bleu(HYPS, [REFS_A, REFS_B])
    assert bleu(HYPS, per_segment).score == pytest.approx(ref.score, abs=1e-9)
    # the naive (untransposed) layout would be a different number: the conversion is what matters here
    assert bleu(HYPS, per_segment).score != pytest.approx(bleu(HYPS, REFS_A).score, abs=1e-6)
    # a varying number of references per segment: missing ones become None in sacrebleu's streams
    mixed = [[REFS_A[0], REFS_B[0]], REFS_A[1], [REFS_B[2]], [REFS_A[3], REFS_B[3]], REFS_A[4]]
    stream_b = [REFS_B[0], None, None, REFS_B[3], None]
    stream_a = [REFS_A[0], REFS_A[1], REFS_B[2], REFS_A[3], REFS_A[4]]
    assert bleu(HYPS, mixed).score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [stream_a, stream_b]).score, abs=1e-9)


@pytest.mark.parametrize(
    "options",
    [
        dict(tokenize="char"),
        dict(tokenize="intl", lowercase=True),
        dict(tokenize="none", smooth_method="add-k", smooth_value=1),
        dict(effective_order=True, max_ngram_order=3),
    ],
)
def test_bleu_options_are_passed_through(options):
    metric = sacrebleu.metrics.BLEU(**options)
    ref = metric.corpus_score(HYPS, [REFS_A, REFS_B])
    ours = bleu(HYPS, [list(p) for p in zip(REFS_A, REFS_B)], **options)
    assert ours.score == pytest.approx(ref.score, abs=1e-9)
    assert ours.signature == str(metric.get_signature())


@pytest.mark.parametrize("options", [{}, dict(word_order=2), dict(char_order=4, beta=1, lowercase=True)])
def test_chrf_and_chrf_plus_plus_equal_sacrebleu(options):
    metric = sacrebleu.metrics.CHRF(**options)
    ref = metric.corpus_score(HYPS, [REFS_A, REFS_B])
    ours = chrf(HYPS, [[a, b] for a, b in zip(REFS_A, REFS_B)], **options)
    assert isinstance(ours, ChrfResult)
    assert ours.score == pytest.approx(ref.score, abs=1e-9)
    assert ours.name == ref.name and ours.word_order == options.get("word_order", 0)
    assert chrf(HYPS, REFS_A, **options).score == pytest.approx(metric.corpus_score(HYPS, [REFS_A]).score, abs=1e-9)


@pytest.mark.parametrize("use_stemmer", [True, False])
def test_rouge_is_the_mean_of_rouge_score(use_stemmer):
    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    preds = [h.replace(". ", ".\n") for h in HYPS]
    refs = [r.replace(", ", ",\n") for r in REFS_A]  # newlines mark sentences for rougeLsum
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer)
    per = [scorer.score(r, p) for p, r in zip(preds, refs)]
    ours = rouge(preds, refs, types=types, use_stemmer=use_stemmer)
    assert list(ours) == types
    for t in types:
        for key in ("precision", "recall", "fmeasure"):
            assert ours[t][key] == pytest.approx(sum(getattr(s[t], key) for s in per) / len(per), abs=1e-12)


def test_rouge_multi_reference_uses_score_multi():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    per = [scorer.score_multi([a, b], h) for h, a, b in zip(HYPS, REFS_A, REFS_B)]
    ours = rouge(HYPS, [[a, b] for a, b in zip(REFS_A, REFS_B)], types=("rouge1", "rougeL"))
    for t in ("rouge1", "rougeL"):
        assert ours[t]["fmeasure"] == pytest.approx(sum(s[t].fmeasure for s in per) / len(per), abs=1e-12)


def test_bad_inputs_raise_one_clear_error(monkeypatch):
    with pytest.raises(InvalidInputError, match="5 hypotheses but 4 references"):
        bleu(HYPS, REFS_A[:4])
    with pytest.raises(InvalidInputError, match="single string"):
        chrf("The cat sat.", ["The cat sat."])
    with pytest.raises(InvalidInputError, match="single string"):
        rouge(["The cat sat."], "The cat sat.")
    with pytest.raises(InvalidInputError, match=r"references\[1\]"):
        bleu(HYPS[:2], ["ok", []])
    with pytest.raises(InvalidInputError, match="empty"):
        bleu([], [])
    with pytest.raises(UnknownNameError, match="tokenize"):
        bleu(HYPS, REFS_A, tokenise="char")
    with pytest.raises(UnknownNameError, match="13a"):
        bleu(HYPS, REFS_A, tokenize="13b")
    with pytest.raises(UnknownNameError, match="rougeL"):
        rouge(HYPS, REFS_A, types=("rougel",))
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # makes `import sacrebleu` fail as if not installed
    with pytest.raises(MissingSourceError, match=r"labkit\[eval\]"):
        bleu(HYPS, REFS_A)
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(MissingSourceError, match=r"labkit\[eval\]"):
        rouge(HYPS, REFS_A)
