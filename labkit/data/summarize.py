"""Summarisation data and extractive baselines: articles in, sentences worth keeping (or target summaries) out.

`split_sentences(text)` cuts a text into sentences; `summary_pairs(corpus, target)` turns articles whose first
line is a title (BBC News) into (body, summary) pairs for a sequence-to-sequence model; `lead(text, k)` is the
lead-k baseline; `extract(text, k, method)` scores every sentence and keeps the best k, showing its work in an
`ExtractiveSummary` (sentences, scores, the chosen indices). ROUGE lives in `labkit.evaluation.rouge`.

Scores, for a sentence s of a document d (words lower-cased, stop words dropped):
- "frequency" (Luhn 1958; SumBasic): the mean document probability p(w) = count(w in d) / |d| of s's words;
- "centroid" (Radev et al. 2004): the cosine between s's tf-idf vector and the whole document's, idf from
  `background` documents when given, else from the document's own sentences;
- "lead": earlier is better, 1 / (position + 1).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.checks import check_choice, check_int
from labkit.data.corpora import Corpus
from labkit.errors import InvalidInputError

__all__ = [
    "ExtractiveSummary",
    "IdfTable",
    "idf_table",
    "split_sentences",
    "summary_pairs",
    "lead",
    "extract",
    "summary_words",
]

METHODS = ("frequency", "centroid", "lead")
TARGETS = ("title", "first-sentence")
# A full stop after one of these (or after a single capital letter, an initial) does not end a sentence.
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "no", "gen", "gov", "sen", "rep"})
_END = re.compile(r"""([.!?]["')\]]*)\s+(?=["'(\[]?[A-Z0-9£$€])""")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")


@dataclass(frozen=True)
class ExtractiveSummary:
    """One document's sentences, their scores and the chosen ones; `text` is the summary, in document order."""

    sentences: list[str]  # the document cut by split_sentences
    scores: list[float]  # one score per sentence (higher: more central to the document)
    chosen: list[int]  # indices of the kept sentences, ascending
    method: str  # "frequency", "centroid" or "lead"

    @property
    def text(self) -> str:
        """The kept sentences joined by spaces, in the order they appear in the document."""
        return " ".join(self.sentences[i] for i in self.chosen)

    def to_pandas(self) -> Any:
        """A DataFrame with one row per sentence: position, score, rank (1 = best), chosen, sentence."""
        import pandas as pd

        order = sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))
        rank = {i: r + 1 for r, i in enumerate(order)}
        return pd.DataFrame(
            {
                "score": self.scores,
                "rank": [rank[i] for i in range(len(self.sentences))],
                "chosen": [i in self.chosen for i in range(len(self.sentences))],
                "sentence": self.sentences,
            }
        ).rename_axis("position")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class IdfTable:
    """Document frequencies of words over a collection; `table(w)` is w's smoothed idf."""

    document_frequency: dict[str, int]  # word -> how many documents contain it
    documents: int  # D, the collection's size

    def __call__(self, word: str) -> float:
        """log((1 + D) / (1 + df(w))) + 1: scikit-learn's smoothed idf (a word in every document still counts 1)."""
        return math.log((1 + self.documents) / (1 + self.document_frequency.get(word, 0))) + 1.0


def idf_table(documents: Sequence[str], stop_words: str | Iterable[str] | None = "en") -> IdfTable:
    """Documents in, their `IdfTable` out: compute it once and pass it to every `extract(..., background=)`."""
    if isinstance(documents, str) or not isinstance(documents, Sequence) or not documents:
        raise InvalidInputError("idf_table needs a non-empty list of documents (strings), not one string")
    return _idf([summary_words(d, _stop_set(stop_words)) for d in documents])


def split_sentences(text: str) -> list[str]:
    """A text in, its sentences (stripped, none empty) out: a line break or blank line always ends one.

    Within a line a sentence ends at ".", "!" or "?" (closing quotes and brackets kept with it) followed by
    space and a capital letter, digit or currency sign, except after a title such as "Mr." or an initial.
    English-centred: it is a baseline, not a parser.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"split_sentences needs a string, got {type(text).__name__}")
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _END.finditer(line):
            before = line[start : match.start()].rsplit(None, 1)
            last = before[-1].rstrip(".").lower() if before else ""
            if match.group(1) == "." and (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())):
                continue
            sentences.append(line[start : match.end(1)])
            start = match.end()
        sentences.append(line[start:])
    return [s.strip() for s in sentences if s.strip()]


def summary_words(text: str, stop_words: frozenset[str] = frozenset()) -> list[str]:
    """A text in, its lower-cased words (letters and digits, inner apostrophes kept) without `stop_words` out."""
    return [w for w in (m.group(0).casefold() for m in _WORD.finditer(text)) if w not in stop_words]


def lead(text: str, k: int = 1) -> str:
    """A text and k in, its first k sentences joined by spaces out: the lead-k baseline of news summarisation."""
    k = check_int("k", k, low=1)
    return " ".join(_sentences_of(text)[:k])


def extract(
    text: str,
    k: int = 1,
    method: str = "frequency",
    *,
    stop_words: str | Iterable[str] | None = "en",
    background: Sequence[str] | IdfTable | None = None,
) -> ExtractiveSummary:
    """A document in, an `ExtractiveSummary` keeping its k best-scoring sentences (ties: the earlier) out.

    k: sentences to keep (fewer when the document has fewer). method: "frequency", "centroid" or "lead"
    (formulas in the module docstring). stop_words: a language for `labkit.data.stop_words` (needs
    `pip install "labkit[text]"`), your own words, or None to keep every word. background: documents from
    which "centroid" takes its idf (for example the other articles of the corpus), or their `idf_table`
    (compute it once when you summarise many documents).
    """
    k = check_int("k", k, low=1)
    method = check_choice("method", method, METHODS)
    sentences = _sentences_of(text)
    stops = _stop_set(stop_words)
    words = [summary_words(s, stops) for s in sentences]
    if method == "lead":
        scores = [1.0 / (i + 1) for i in range(len(sentences))]
    elif method == "frequency":
        counts = Counter(w for ws in words for w in ws)
        total = sum(counts.values()) or 1
        scores = [sum(counts[w] for w in ws) / total / len(ws) if ws else 0.0 for ws in words]
    else:
        if background is None:
            idf = _idf(words)
        elif isinstance(background, IdfTable):
            idf = background
        else:
            idf = idf_table(background, stops)
        vectors = [{w: c * idf(w) for w, c in Counter(ws).items()} for ws in words]
        centroid: Counter[str] = Counter()
        for v in vectors:
            centroid.update(v)
        scores = [_cosine(v, centroid) for v in vectors]
    best = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:k]
    return ExtractiveSummary(sentences, [float(s) for s in scores], sorted(best), method)


def summary_pairs(corpus: Corpus, target: str = "title", *, min_words: int = 3) -> Corpus:
    """Articles whose first line is a title in, a Corpus of (text, summary) pairs out: `texts` and `targets`.

    target: "title" (text: the body after the title line) or "first-sentence" (target: the body's first
    sentence; text: the rest of the body, so the lead-1 baseline cannot simply copy it). Articles without a
    body, or whose target or text has fewer than `min_words` words, are dropped. Labels and ids follow.
    """
    if not isinstance(corpus, Corpus):
        raise InvalidInputError(f"summary_pairs needs a labkit.data.Corpus, got {type(corpus).__name__}")
    target = check_choice("target", target, TARGETS)
    min_words = check_int("min_words", min_words, low=1)
    keep, texts, targets = [], [], []
    for i, article in enumerate(corpus.texts):
        title, _, body = article.strip().partition("\n")
        body = body.strip()
        if target == "title":
            text, summary = body, title.strip()
        else:
            sentences = split_sentences(body)
            if not sentences:
                continue
            summary = sentences[0]
            text = body[body.index(summary) + len(summary) :].strip()
        if len(summary_words(text)) >= min_words and len(summary_words(summary)) >= min_words:
            keep.append(i)
            texts.append(text)
            targets.append(summary)
    if not keep:
        raise InvalidInputError(
            f"summary_pairs found no article with a title line and a body of at least {min_words} words in "
            f"{corpus.name!r}; it expects texts laid out as 'Title\\n\\nBody' (load_corpus('bbc-news'))"
        )
    picked = corpus.select(keep)
    info = dataclasses.replace(picked.info, task=f"summarisation (body -> {target})") if picked.info else None
    return Corpus(corpus.name, texts, picked.labels, corpus.label_names, picked.scores, targets, info, picked.ids)


# ---- helpers ---------------------------------------------------------------------------------------------


def _sentences_of(text: str) -> list[str]:
    sentences = split_sentences(text)
    if not sentences:
        raise InvalidInputError("the text is empty; pass a document with at least one sentence")
    return sentences


def _stop_set(stop_words: str | Iterable[str] | None) -> frozenset[str]:
    if stop_words is None:
        return frozenset()
    if isinstance(stop_words, str):
        from labkit.data.clean import stop_words as lists

        return lists(stop_words)
    return frozenset(str(w).casefold() for w in stop_words)


def _idf(documents: list[list[str]]) -> IdfTable:
    """Tokenized documents in, their IdfTable out."""
    return IdfTable(dict(Counter(w for doc in documents for w in set(doc))), len(documents))


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    dot = sum(v * b.get(w, 0.0) for w, v in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0
