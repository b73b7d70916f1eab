"""The gallery: lessons executed once per change (cache), pages plus an index with titles and summaries."""

from __future__ import annotations

import pytest

from labkit.errors import UnknownNameError
from labkit.notebooks import build_gallery
from labkit.notebooks.gallery import PAGE_LIMIT_BYTES


def test_gallery_builds_caches_and_rebuilds_only_what_changed(tmp_path, write_lesson):
    lessons = tmp_path / "notebooks"
    write_lesson(
        lessons,
        "01_first",
        params="n: int = 2",
        cells=["print(n * 21)"],
        title="First steps",
        intro="We print a number. Nothing else.",
    )
    write_lesson(
        lessons,
        "02_second",
        params="n: int = 3",
        cells=["import labkit\nlabkit.record('n', n)"],
        title="Second <steps>",
        intro="A second lesson with a <b>tag</b> in its text.",
    )
    (lessons / "scratch.ipynb").write_text((lessons / "01_first.ipynb").read_text())  # not a lesson: no NN_ prefix
    out = tmp_path / "gallery"

    first = build_gallery(lessons, out, workers=2)
    assert first.ok and [e.name for e in first.entries] == ["01_first", "02_second"]
    assert not any(e.cached for e in first.entries)
    for e in first.entries:
        assert e.page.is_file() and 0 < e.page_bytes <= PAGE_LIMIT_BYTES
    index = first.index_path.read_text()
    assert "First steps" in index and "We print a number." in index
    assert "Second &lt;steps&gt;" in index and "<b>tag</b>" not in index  # titles and summaries are escaped
    assert "scratch" not in index

    second = build_gallery(lessons, out)
    assert all(e.cached for e in second.entries)

    write_lesson(lessons, "02_second", params="n: int = 4", cells=["print(n)"], title="Second steps")
    third = build_gallery(lessons, out)
    assert [e.cached for e in third.entries] == [True, False]
    assert "Second steps" in third.index_path.read_text()


def test_unknown_lesson_name_lists_close_matches(tmp_path, write_lesson):
    lessons = tmp_path / "notebooks"
    write_lesson(lessons, "01_first", params="n: int = 2", cells=["print(n)"])
    with pytest.raises(UnknownNameError, match="01_first"):
        build_gallery(lessons, tmp_path / "g", only=["01_frist"])
