"""summary_view: the kept sentences marked, words shared with the reference highlighted, text escaped, errors."""

from __future__ import annotations

import re

import pytest

from labkit.data import extract
from labkit.errors import InvalidInputError
from labkit.viz import summary_view

DOC = "The <b>bank</b> raised rates. Markets fell. The bank said rates would stay high. Cats slept."


def test_view_marks_kept_sentences_and_shared_words():
    result = extract(DOC, 2, "frequency", stop_words=None)
    view = summary_view(result, "Bank raises rates", title="a test")
    page = view.to_html()
    assert 'class="labkit-summ"' in page and "<b>bank</b>" not in page and "&lt;b&gt;" in page
    kept = re.findall(r'<tr class="kept">.*?</tr>', page)
    assert len(kept) == 2
    assert [int(re.search(r'<td class="n">(\d+)</td>', row).group(1)) for row in kept] == result.chosen
    table = page[page.index("<tbody>") : page.index("</tbody>")]
    marked = {m.casefold() for m in re.findall(r"<mark>(.*?)</mark>", table)}
    assert marked == {"bank", "rates"}  # "raises" only matches "raised" after stemming, which the view does not do
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"} and "kept" in bundle["text/plain"]
    assert "<svg" in bundle["image/svg+xml"] and "&lt;b&gt;" in bundle["image/svg+xml"]


def test_long_documents_show_the_first_rows_and_every_kept_one():
    doc = " ".join(f"Word{i} item{i}." for i in range(30)) + " Bank rates bank rates."
    result = extract(doc, 1, "frequency", stop_words=None)
    assert result.chosen == [30]
    page = summary_view(result, max_sentences=5).to_html()
    assert page.count("<tr") == 6 and "25 more sentences not shown" in page


def test_bad_input_fails_in_one_line():
    with pytest.raises(InvalidInputError, match="ExtractiveSummary"):
        summary_view("a summary")
    with pytest.raises(InvalidInputError, match="reference"):
        summary_view(extract(DOC), ["a"])
    with pytest.raises(InvalidInputError, match="max_sentences"):
        summary_view(extract(DOC), max_sentences=0)
