"""Summarisation data and extractive baselines: centroid scores against scikit-learn's tf-idf and cosine, the
baselines' ROUGE against rouge-score called directly, ROUGE-1/2/L written from their formulas against
labkit.evaluation.rouge, hypothesis properties of the sentence splitter and the selectors, and one-line errors."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data import Corpus, load_corpus
from labkit.data.summarize import (
    ExtractiveSummary,
    extract,
    idf_table,
    lead,
    split_sentences,
    summary_pairs,
    summary_words,
)
from labkit.errors import InvalidInputError, UnknownNameError
from labkit.evaluation import rouge

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

DOC = (
    "Mr. Brown said the bank raised its rates. The rates rose by half a point on Friday!\n"
    "Markets fell sharply after the bank's move. Analysts at J. P. Morgan expected it.\n\n"
    "Did the bank surprise anyone? Few economists thought so."
)
WORD = st.sampled_from(["rates", "bank", "the", "cat", "rose", "fell", "market", "Brown", "said", "up"])
SENTENCE = st.lists(WORD, min_size=1, max_size=8).map(lambda ws: " ".join(ws).capitalize() + ".")
DOCUMENT = st.lists(SENTENCE, min_size=1, max_size=8).map(" ".join)


@pytest.fixture(scope="module")
def bbc() -> Corpus:
    try:
        return load_corpus("bbc-news")
    except Exception as exc:  # the corpus package is not installed here
        pytest.skip(f"bbc-news not available: {exc}")


# ---------------------------------------------------------------- sentences


def test_split_sentences_keeps_titles_initials_and_line_breaks():
    assert split_sentences(DOC) == [
        "Mr. Brown said the bank raised its rates.",
        "The rates rose by half a point on Friday!",
        "Markets fell sharply after the bank's move.",
        "Analysts at J. P. Morgan expected it.",
        "Did the bank surprise anyone?",
        "Few economists thought so.",
    ]
    assert split_sentences('He said "Stop." Then he left.') == ['He said "Stop."', "Then he left."]
    assert split_sentences("  \n\n ") == []


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab .!?\nMr"), max_size=80))
def test_split_sentences_loses_no_character(text):
    assert "".join(split_sentences(text)).replace(" ", "") == re.sub(r"\s", "", text)
    assert all(s and s == s.strip() for s in split_sentences(text))


# ---------------------------------------------------------------- selectors


@settings(max_examples=60, deadline=None)
@given(DOCUMENT, st.integers(1, 5), st.sampled_from(["frequency", "centroid", "lead"]))
def test_extract_keeps_the_k_best_sentences_in_document_order(doc, k, method):
    result = extract(doc, k, method, stop_words=None)
    n = len(split_sentences(doc))
    assert result.sentences == split_sentences(doc) and len(result.scores) == n
    assert len(result.chosen) == min(k, n) and result.chosen == sorted(set(result.chosen))
    worst_kept = min(result.scores[i] for i in result.chosen)
    assert all(result.scores[i] <= worst_kept for i in range(n) if i not in result.chosen)
    assert result.text == " ".join(result.sentences[i] for i in result.chosen)
    if method == "lead":
        assert result.text == lead(doc, k)


@settings(max_examples=40, deadline=None)
@given(DOCUMENT)
def test_frequency_scores_are_mean_document_probabilities(doc):
    words = [summary_words(s) for s in split_sentences(doc)]
    counts = Counter(w for ws in words for w in ws)
    total = sum(counts.values())
    expected = [sum(counts[w] / total for w in ws) / len(ws) for ws in words]
    assert extract(doc, 1, "frequency", stop_words=None).scores == pytest.approx(expected)
    # p(w) is a share of the document: repeating the whole document changes no score
    assert extract(doc + "\n" + doc, 1, "frequency", stop_words=None).scores[: len(words)] == pytest.approx(expected)


def test_centroid_scores_match_scikit_learn_tfidf_and_cosine(bbc):
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    pairwise = pytest.importorskip("sklearn.metrics.pairwise")
    article, background = bbc.texts[3], bbc.texts[:200]
    vectorizer = sklearn_text.TfidfVectorizer(analyzer=summary_words, smooth_idf=True, norm=None, sublinear_tf=False)
    vectorizer.fit(background)
    sentences = split_sentences(article)
    vectors = vectorizer.transform(sentences)
    centroid = vectors.sum(axis=0).A
    expected = pairwise.cosine_similarity(vectors, centroid)[:, 0]
    for given_background in (background, idf_table(background, stop_words=None)):
        got = extract(article, 3, "centroid", stop_words=None, background=given_background)
        assert got.scores == pytest.approx(list(expected), abs=1e-9)


def test_stop_words_come_from_the_stop_words_package():
    pytest.importorskip("stop_words")
    with_stops = extract(DOC, 1, "frequency", stop_words="en")
    assert "the" not in Counter(w for s in with_stops.sentences for w in summary_words(s, frozenset({"the"})))
    mine = extract(DOC, 1, "frequency", stop_words=["the", "bank", "rates"])
    assert mine.scores != extract(DOC, 1, "frequency", stop_words=None).scores


def test_to_pandas_ranks_and_marks_the_kept_sentences():
    frame = extract(DOC, 2, "centroid", stop_words=None).to_pandas()
    assert list(frame.columns) == ["score", "rank", "chosen", "sentence"]
    assert frame["chosen"].sum() == 2 and set(frame.loc[frame.chosen, "rank"]) == {1, 2}


# ---------------------------------------------------------------- pairs


def test_summary_pairs_title_and_first_sentence(bbc):
    titles = summary_pairs(bbc, "title")
    assert titles.targets[0] == "Ad sales boost Time Warner profit" and not titles.texts[0].startswith("Ad sales")
    assert len(titles) == len(bbc) and titles.labels == bbc.labels and titles.ids == bbc.ids
    assert titles.info.task == "summarisation (body -> title)"
    firsts = summary_pairs(bbc, "first-sentence")
    for i in range(0, len(firsts), 97):
        body = bbc.texts[bbc.ids.index(firsts.ids[i])].partition("\n")[2]
        assert " ".join((firsts.targets[i] + " " + firsts.texts[i]).split()) == " ".join(body.split())
        assert firsts.targets[i] == split_sentences(body)[0]


def test_baselines_rouge_is_rouge_score_called_directly(bbc):
    pairs = summary_pairs(bbc, "title").select(list(range(0, 2200, 110)))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    background = idf_table(pairs.texts)
    for method in ("lead", "frequency", "centroid"):
        hyps = [extract(t, 1, method, background=background).text for t in pairs.texts]
        ours = rouge(hyps, pairs.targets, types=("rouge1", "rouge2", "rougeL"))
        for t in ("rouge1", "rouge2", "rougeL"):
            direct = [scorer.score(ref, hyp)[t].fmeasure for hyp, ref in zip(hyps, pairs.targets)]
            assert ours[t]["fmeasure"] == pytest.approx(sum(direct) / len(direct))


# ---------------------------------------------------------------- ROUGE from its formulas


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def _f(overlap: int, n_hyp: int, n_ref: int) -> float:
    p, r = (overlap / n_hyp if n_hyp else 0.0), (overlap / n_ref if n_ref else 0.0)
    return 2 * p * r / (p + r) if p + r else 0.0


@settings(max_examples=60, deadline=None)
@given(DOCUMENT, DOCUMENT)
def test_rouge_1_2_l_are_their_formulas(hyp, ref):
    h, r = hyp.lower().replace(".", " ").split(), ref.lower().replace(".", " ").split()
    expected = {
        "rouge1": _f(sum((_ngrams(h, 1) & _ngrams(r, 1)).values()), len(h), len(r)),
        "rouge2": _f(sum((_ngrams(h, 2) & _ngrams(r, 2)).values()), max(len(h) - 1, 0), max(len(r) - 1, 0)),
        "rougeL": _f(_lcs(h, r), len(h), len(r)),
    }
    got = rouge([hyp], [ref], types=tuple(expected), use_stemmer=False)
    for t, value in expected.items():
        assert got[t]["fmeasure"] == pytest.approx(value), t


# ---------------------------------------------------------------- errors


def test_bad_input_fails_in_one_line(bbc):
    with pytest.raises(InvalidInputError, match="empty"):
        extract("   ", 1)
    with pytest.raises(InvalidInputError, match="k"):
        extract(DOC, 0)
    with pytest.raises(UnknownNameError, match="frequency"):
        extract(DOC, 1, "frequncy")
    with pytest.raises(InvalidInputError, match="not one string"):
        extract(DOC, 1, "centroid", background="one document")
    with pytest.raises(UnknownNameError, match="title"):
        summary_pairs(bbc, "headline")
    with pytest.raises(InvalidInputError, match="Corpus"):
        summary_pairs(["Title\n\nBody"], "title")
    with pytest.raises(InvalidInputError, match="no article with a title line"):
        summary_pairs(Corpus("one-liners", ["just a line", "another one"]), "title")
    with pytest.raises(InvalidInputError, match="string"):
        split_sentences(None)
    assert isinstance(extract(DOC, 1, stop_words=None), ExtractiveSummary)
