"""Text cleaning: normalisation steps that are plain functions on strings, and a pipeline that shows its work.

Steps (each `str -> str`, safe to call on any string):
- `nfkc`: Unicode NFKC normalisation (full-width letters, ligatures, superscripts and compatibility
  characters become their plain forms, so "ｆｉｌｅ" and "ﬁle" become "file").
- `casefold`: Unicode case folding, stronger than lower() ("Straße" -> "strasse").
- `strip_punctuation`: every character of a Unicode punctuation category (P*) becomes a space, in any
  script ("，" and "。" too).
- `collapse_whitespace`: runs of whitespace become one space; leading and trailing space goes.
- `remove_stop_words(text, language)`: drops whitespace-separated words found in the stop-word list of
  `language`, read from the `stop-words` package (BSD-3-Clause; one UTF-8 text file per language in the
  wheel). `stop_words(language)` gives the set.
- `segment_words(text)`: Chinese word segmentation with jieba (optional `labkit[text]` extra), joining the
  words with spaces so whitespace-based steps and tokenizers see word boundaries.

`Cleaner(["nfkc", "casefold", "punctuation", "stopwords", "whitespace"], language="en")` chains them (a
step is a name from `STEPS` or any callable `str -> str`); `cleaner(text)` cleans one text,
`cleaner.clean_corpus(corpus)` a whole `Corpus`, and `cleaner.trace(texts)` records what each step changed,
which `labkit.viz.cleaning_view` draws as a before/after table.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

__all__ = [
    "nfkc",
    "casefold",
    "strip_punctuation",
    "collapse_whitespace",
    "remove_stop_words",
    "stop_words",
    "stop_word_languages",
    "segment_words",
    "Cleaner",
    "CleaningTrace",
    "StepChange",
    "STEPS",
]


def nfkc(text: str) -> str:
    """A string in, its Unicode NFKC normal form out (compatibility characters folded to their plain forms)."""
    return unicodedata.normalize("NFKC", _str(text))


def casefold(text: str) -> str:
    """A string in, its Unicode case fold out (caseless matching: "Straße" and "STRASSE" both give "strasse")."""
    return _str(text).casefold()


def strip_punctuation(text: str) -> str:
    """A string in, the same with every Unicode punctuation character (categories Pc Pd Pe Pf Pi Po Ps) as a space out.

    A space rather than nothing, so "end.Start" does not glue into one word; `collapse_whitespace` tidies up.
    """
    return "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in _str(text))


def collapse_whitespace(text: str) -> str:
    """A string in, the same with each run of whitespace as one space and no leading or trailing space out."""
    return " ".join(_str(text).split())


@functools.lru_cache(maxsize=1)
def _stop_words_module() -> Any:
    try:
        import stop_words as module  # imported here: optional (labkit[text]); it reads its language table on import
    except ImportError:
        raise MissingSourceError(
            "stop-word lists come from the stop-words package, which is not installed; run: pip install 'labkit[text]'"
        ) from None
    return module


def stop_word_languages() -> dict[str, str]:
    """Nothing in, {code: language name} of every list the stop-words package carries out ("en": "english", ...)."""
    return dict(_stop_words_module().LANGUAGE_MAPPING)


@functools.lru_cache(maxsize=64)
def stop_words(language: str = "en") -> frozenset[str]:
    """A language code or name ("en", "english", "zh") in, that language's stop words (case-folded) out.

    The lists are the stop-words package's, unchanged except for case folding; an unknown language raises
    UnknownNameError naming the close matches.
    """
    module = _stop_words_module()
    codes = module.LANGUAGE_MAPPING
    if not isinstance(language, str) or (language not in codes and language not in codes.values()):
        names = sorted(set(codes) | set(codes.values()))
        hint = close_matches(str(language), names)
        raise UnknownNameError(
            f"no stop-word list for language {language!r}; {hint + ' ' if hint else ''}"
            f"use a code or name such as 'en', 'french' (all: labkit.data.clean.stop_word_languages())"
        )
    return frozenset(w.casefold() for w in module.get_stop_words(language))


def remove_stop_words(text: str, language: str = "en", extra: Iterable[str] = ()) -> str:
    """A string and a language in, the string without its stop words (words re-joined by single spaces) out.

    A word is a whitespace-separated piece; it is dropped when its case fold, with punctuation trimmed from both
    ends, is in the list ("The," goes with "the"). extra: more words to drop. Chinese and Japanese have no
    spaces between words: run `segment_words` first.
    """
    words = stop_words(language) | {w.casefold() for w in _words("extra", extra)}
    kept = [w for w in _str(text).split() if _trim(w).casefold() not in words]
    return " ".join(kept)


def _words(name: str, words: Any) -> tuple[str, ...]:
    """A list of words in, a tuple out; one string is refused (iterating it would give its letters, not the word)."""
    if isinstance(words, str):
        raise InvalidInputError(f"{name} must be a list of words, got the string {words!r}; wrap it as [{words!r}]")
    try:
        out = tuple(words)
    except TypeError:
        raise InvalidInputError(f"{name} must be a list of words, got {type(words).__name__}") from None
    bad = next((w for w in out if not isinstance(w, str)), None)
    if bad is not None:
        raise InvalidInputError(f"{name} must hold strings, got {type(bad).__name__} {bad!r}")
    return out


def _trim(word: str) -> str:
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(word[end - 1]).startswith("P"):
        end -= 1
    return word[start:end]


def segment_words(text: str) -> str:
    """A Chinese string in, the same words separated by single spaces out (jieba's default dictionary, precise mode).

    Latin words and numbers pass through; existing whitespace is kept as one space. Needs jieba
    (`pip install 'labkit[text]'`); its dictionary ships in the package, nothing is downloaded.
    """
    text = _str(text)
    jieba = _jieba()
    return " ".join(piece for piece in jieba.lcut(text) if not piece.isspace() and piece)


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:
    try:
        import jieba  # imported here: optional and it builds its dictionary (about 1 s) on first use
    except ImportError:
        raise MissingSourceError(
            "Chinese word segmentation needs jieba, which is not installed; run: pip install 'labkit[text]'"
        ) from None
    jieba.setLogLevel(60)  # its "Building prefix dict" chatter would land in every notebook
    return jieba


def _str(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"cleaning steps take a str, got {type(text).__name__}; clean each text of a list")
    return text


STEPS: dict[str, Callable[[str], str]] = {
    "nfkc": nfkc,
    "casefold": casefold,
    "punctuation": strip_punctuation,
    "whitespace": collapse_whitespace,
    "segment": segment_words,
}
DEFAULT_STEPS = ("nfkc", "casefold", "punctuation", "stopwords", "whitespace")


@dataclass
class StepChange:
    """What one step did to one text: the text before and after it."""

    step: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        """True when the step changed the text."""
        return self.before != self.after


@dataclass
class CleaningTrace:
    """Every step's effect on every traced text: `rows[i]` is the list of StepChange for text i, in step order."""

    steps: list[str]
    rows: list[list[StepChange]]

    def changed_counts(self) -> dict[str, int]:
        """{step name: how many of the traced texts it changed}."""
        return {s: sum(row[k].changed for row in self.rows) for k, s in enumerate(self.steps)}

    def to_pandas(self) -> Any:
        """A DataFrame with one row per (text, step): text, step, before, after, changed."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"text": i, "step": c.step, "before": c.before, "after": c.after, "changed": c.changed}
                for i, row in enumerate(self.rows)
                for c in row
            ]
        )


class Cleaner:
    """A chain of cleaning steps: `Cleaner(["nfkc", "casefold", "punctuation", "stopwords", "whitespace"])`.

    steps: names from `STEPS` plus "stopwords", or callables `str -> str` (named by `__name__`), or
    (name, callable) pairs. language: the stop-word list "stopwords" uses. extra_stop_words: more words to drop.
    """

    def __init__(
        self,
        steps: Sequence[str | Callable[[str], str] | tuple[str, Callable[[str], str]]] = DEFAULT_STEPS,
        language: str = "en",
        extra_stop_words: Iterable[str] = (),
    ) -> None:
        if isinstance(steps, str) or not isinstance(steps, Sequence) or not steps:
            raise InvalidInputError(
                f"steps must be a non-empty list of step names or functions, got {steps!r}; "
                f"names: {', '.join(list(STEPS) + ['stopwords'])}"
            )
        self.language = language
        self.extra_stop_words = _words("extra_stop_words", extra_stop_words)
        self.steps: list[tuple[str, Callable[[str], str]]] = [self._resolve(s) for s in steps]
        if any(name == "stopwords" for name, _ in self.steps):
            stop_words(language)  # an unknown language fails here, before any text is cleaned

    def _resolve(self, step: Any) -> tuple[str, Callable[[str], str]]:
        if isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], str) and callable(step[1]):
            return step
        if callable(step):
            return getattr(step, "__name__", type(step).__name__), step
        if step == "stopwords":
            return "stopwords", functools.partial(
                remove_stop_words, language=self.language, extra=self.extra_stop_words
            )
        if isinstance(step, str) and step in STEPS:
            return step, STEPS[step]
        names = list(STEPS) + ["stopwords"]
        hint = close_matches(str(step), names)
        raise UnknownNameError(
            f"unknown cleaning step {step!r}; {hint + ' ' if hint else ''}"
            f"use one of {', '.join(names)} or a function str -> str"
        )

    @property
    def names(self) -> list[str]:
        """The step names, in order."""
        return [name for name, _ in self.steps]

    def __repr__(self) -> str:
        return f"Cleaner({' -> '.join(self.names)}, language={self.language!r})"

    def __call__(self, text: str) -> str:
        """A text in, the text after every step out."""
        for _, fn in self.steps:
            text = fn(text)
        return text

    def clean(self, texts: Iterable[str]) -> list[str]:
        """Texts in, cleaned texts out (same order and count; a text may become empty)."""
        return [self(t) for t in texts]

    def clean_corpus(self, corpus: Any, drop_empty: bool = True) -> Any:
        """A `Corpus` in, a new Corpus of cleaned texts out; labels, targets and ids follow the texts kept.

        drop_empty: drop texts that cleaning emptied (a Corpus holds no empty texts). A corpus that cleaning
        empties entirely raises InvalidInputError naming the step that removed the last words.
        """
        from labkit.data.corpora import Corpus

        if not isinstance(corpus, Corpus):
            raise InvalidInputError(
                f"clean_corpus takes a labkit Corpus, got {type(corpus).__name__}; use clean(texts)"
            )
        cleaned = self.clean(corpus.texts)
        keep = [i for i, t in enumerate(cleaned) if t.strip()] if drop_empty else list(range(len(cleaned)))
        if not any(t.strip() for t in cleaned):
            raise InvalidInputError(
                f"cleaning emptied corpus {corpus.name!r}: no text has anything left after {self._emptying_step(corpus.texts)}; "
                "drop that step or check the language"
            )
        out = corpus.select(keep)
        out.texts = [cleaned[i] for i in keep]
        return out

    def _emptying_step(self, texts: Sequence[str]) -> str:
        current = list(texts)
        for name, fn in self.steps:
            current = [fn(t) for t in current]
            if not any(t.strip() for t in current):
                return f"step {name!r}"
        return "the last step"

    def trace(self, texts: str | Iterable[str]) -> CleaningTrace:
        """A text or texts in, a `CleaningTrace` of each step's before and after for each text out."""
        items = [texts] if isinstance(texts, str) else list(texts)
        rows = []
        for text in items:
            row, current = [], _str(text)
            for name, fn in self.steps:
                after = fn(current)
                row.append(StepChange(name, current, after))
                current = after
            rows.append(row)
        return CleaningTrace(self.names, rows)
