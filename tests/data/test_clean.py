"""Text cleaning: each step against its reference (unicodedata, str methods, the stop-words package's own files,
jieba), hypothesis properties (idempotence, what each step leaves behind), the pipeline's trace, and one-line errors."""

from __future__ import annotations

import importlib.util
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data import Corpus, load_corpus
from labkit.data.clean import (
    Cleaner,
    casefold,
    collapse_whitespace,
    nfkc,
    remove_stop_words,
    segment_words,
    stop_word_languages,
    stop_words,
    strip_punctuation,
)
from labkit.errors import InvalidInputError, UnknownNameError
from labkit.viz import cleaning_view

TEXT = st.text(max_size=60)
PACKAGE_LISTS = Path(importlib.util.find_spec("stop_words").submodule_search_locations[0]) / "stop-words"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"error message is not one line: {message!r}"
    return message


@given(TEXT)
def test_nfkc_is_unicodedata_and_idempotent(s):
    assert nfkc(s) == unicodedata.normalize("NFKC", s)
    assert nfkc(nfkc(s)) == nfkc(s)


@given(TEXT)
def test_casefold_is_str_casefold_and_idempotent(s):
    assert casefold(s) == s.casefold()
    assert casefold(casefold(s)) == casefold(s)


@given(TEXT)
def test_nfkc_then_casefold_is_idempotent(s):
    # the order the default pipeline uses; the other order is not idempotent (see the next test)
    once = casefold(nfkc(s))
    assert casefold(nfkc(once)) == once


def test_casefold_then_nfkc_is_not_idempotent_which_is_why_nfkc_goes_first():
    s = "\u1d2c"  # MODIFIER LETTER CAPITAL A: NFKC makes it "A", which casefold has not seen yet
    once = nfkc(casefold(s))
    assert once == "A" and nfkc(casefold(once)) == "a"
    assert casefold(nfkc(s)) == "a"


@given(TEXT)
def test_strip_punctuation_leaves_no_punctuation_and_keeps_length(s):
    out = strip_punctuation(s)
    assert len(out) == len(s)
    assert not any(unicodedata.category(ch).startswith("P") for ch in out)
    assert all(a == b or b == " " for a, b in zip(s, out))
    assert strip_punctuation(out) == out


def test_strip_punctuation_covers_other_scripts():
    assert collapse_whitespace(strip_punctuation("起初，神创造天地。「光」")) == "起初 神创造天地 光"
    assert strip_punctuation("¿Qué? «non»") == " Qué   non "


@given(TEXT)
def test_collapse_whitespace_is_split_join_and_idempotent(s):
    out = collapse_whitespace(s)
    assert out == " ".join(s.split()) and collapse_whitespace(out) == out
    assert "  " not in out and out == out.strip()


@pytest.mark.parametrize("language", ["en", "fr", "zh", "korean"])
def test_stop_words_are_the_package_files_case_folded(language):
    name = stop_word_languages().get(language, language)
    lines = (PACKAGE_LISTS / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    assert stop_words(language) == {line.strip().casefold() for line in lines if line.strip()}
    assert len(stop_words(language)) > 10


ENGLISH_WORDS = st.lists(
    st.sampled_from(["the", "The,", "cat", "of", "AND", "river", "is", "blue!", "it's"]), max_size=12
)


@given(ENGLISH_WORDS)
def test_remove_stop_words_drops_exactly_the_listed_words_and_is_idempotent(words):
    text = " ".join(words)
    out = remove_stop_words(text, "en")
    listed = stop_words("en")
    expected = [w for w in words if w.strip(",!").casefold() not in listed]
    assert out.split() == expected
    assert remove_stop_words(out, "en") == out


def test_extra_stop_words_and_unknown_language():
    assert remove_stop_words("the river Thames", "en", extra=["thames"]) == "river"
    with pytest.raises(UnknownNameError, match="did you mean 'english'") as exc:
        stop_words("englsh")
    _one_line(exc)
    with pytest.raises(UnknownNameError, match="no stop-word list for language 'klingon'"):
        Cleaner(language="klingon")  # refused when the pipeline is built, before any text is cleaned


CJK = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=1, max_size=30)


@settings(max_examples=30, deadline=None)
@given(CJK)
def test_segment_words_only_inserts_spaces_and_is_jiebas_cut(s):
    import jieba

    out = segment_words(s)
    assert out.replace(" ", "") == s
    assert out.split(" ") == [w for w in jieba.lcut(s) if w.strip()]


def test_segmenting_chinese_finds_multi_character_words():
    words = segment_words("我们今天学习自然语言处理").split()
    assert "".join(words) == "我们今天学习自然语言处理"
    assert any(len(w) >= 2 for w in words) and len(words) < 12


@given(st.lists(TEXT, min_size=1, max_size=4))
def test_cleaner_is_the_composition_of_its_steps_and_its_trace_chains(texts):
    cleaner = Cleaner(["nfkc", "casefold", "punctuation", "stopwords", "whitespace"], language="en")
    for text in texts:
        expected = collapse_whitespace(remove_stop_words(strip_punctuation(casefold(nfkc(text))), "en"))
        assert cleaner(text) == expected
        assert cleaner(cleaner(text)) == cleaner(text)
    trace = cleaner.trace(texts)
    assert trace.steps == cleaner.names and len(trace.rows) == len(texts)
    for text, row in zip(texts, trace.rows):
        assert row[0].before == text and row[-1].after == cleaner(text)
        assert all(a.after == b.before for a, b in zip(row, row[1:]))


def test_cleaner_takes_functions_and_named_functions():
    cleaner = Cleaner([str.upper, ("reverse", lambda s: s[::-1]), "whitespace"])
    assert cleaner.names == ["upper", "reverse", "whitespace"]
    assert cleaner(" ab  c ") == "C BA"
    with pytest.raises(UnknownNameError, match="did you mean 'punctuation'") as exc:
        Cleaner(["punctation"])
    _one_line(exc)
    with pytest.raises(InvalidInputError, match="non-empty list"):
        Cleaner("nfkc")
    with pytest.raises(InvalidInputError, match="take a str"):
        Cleaner()(b"bytes")


def test_clean_corpus_keeps_rows_aligned_and_refuses_to_empty_a_corpus():
    corpus = Corpus("toy", ["The cat!", "of the and", "A river."], labels=[0, 1, 0], label_names=["a", "b"])
    corpus.ids = ["x", "y", "z"]
    cleaned = Cleaner().clean_corpus(corpus)
    assert cleaned.texts == ["cat", "river"] and cleaned.labels == [0, 0] and cleaned.ids == ["x", "z"]
    assert corpus.texts[0] == "The cat!"  # the input is untouched
    with pytest.raises(InvalidInputError, match="emptied corpus 'stops'.*step 'stopwords'") as exc:
        Cleaner().clean_corpus(Corpus("stops", ["The and of", "it is"]))
    _one_line(exc)


def test_cleaning_a_real_corpus_sample():
    verses = load_corpus("bible", version="kjv").select(list(range(5)))
    cleaned = Cleaner().clean_corpus(verses)
    assert len(cleaned) == 5 and cleaned.ids == verses.ids
    listed = stop_words("en")
    for before, after in zip(verses.texts, cleaned.texts):
        words = strip_punctuation(before.casefold()).split()
        assert after.split() == [w for w in words if w not in listed]


def test_cleaning_view_escapes_text_and_marks_changes():
    hostile = "</td><script>alert(1)</script> The ＡＢＣ"
    view = cleaning_view(Cleaner(), [hostile, "plain words"], title="<b>t</b>")
    page = view.to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>t</b>" not in page
    assert "<del>" in page and "<ins>" in page and 'class="same"' in page
    assert page.count("<tr>") == 3  # header and two texts
    assert "changed 1 of 2" in page  # nfkc changed only the full-width letters
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"}
    assert "<script>" not in bundle["image/svg+xml"] and "nfkc" in bundle["text/plain"]
    assert "abc" in bundle["text/plain"]
    with pytest.raises(InvalidInputError, match="needs some texts"):
        cleaning_view(Cleaner(), [])
    with pytest.raises(InvalidInputError, match="max_chars"):
        cleaning_view(Cleaner(), ["x"], max_chars=0)
