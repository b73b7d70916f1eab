"""The gallery: lessons executed once per change (cache), pages plus an index with titles and summaries."""

from __future__ import annotations

import os
import re

import pytest

from labkit.errors import UnknownNameError
from labkit.notebooks import build_gallery, read_gallery
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


def test_read_gallery_reports_what_was_built_and_runs_nothing(tmp_path, write_lesson):
    lessons = tmp_path / "notebooks"
    write_lesson(lessons, "01_fine", params="n: int = 2", cells=["print(n)"], title="Fine")
    write_lesson(lessons, "02_broken", params="n: int = 2", cells=["raise ValueError('boom at the defaults')"])
    write_lesson(lessons, "03_never", params="n: int = 2", cells=["print(n)"])
    out = tmp_path / "gallery"
    built = build_gallery(lessons, out, only=["01", "02"], workers=2)
    assert [(e.name, e.ok) for e in built.entries] == [("01_fine", True), ("02_broken", False)]
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / ".cache").glob("*.json")}

    read = read_gallery(lessons, out, fresh={"02_broken"})
    assert [(e.name, e.ok, e.cached, e.duration_s) for e in read.entries] == [
        ("01_fine", True, True, built.entries[0].duration_s),
        ("02_broken", False, False, built.entries[1].duration_s),
    ]  # 03 was never built: no entry; 02 stays failed (nothing re-runs it)
    assert "boom at the defaults" in read.entries[1].error
    assert {p.name: p.stat().st_mtime_ns for p in (out / ".cache").glob("*.json")} == stamps
    assert read.index_path == out / "index.html" and "Fine" in read.index_path.read_text()


def test_unknown_lesson_name_lists_close_matches(tmp_path, write_lesson):
    lessons = tmp_path / "notebooks"
    write_lesson(lessons, "01_first", params="n: int = 2", cells=["print(n)"])
    with pytest.raises(UnknownNameError, match="01_first"):
        build_gallery(lessons, tmp_path / "g", only=["01_frist"])


def test_index_says_what_a_lesson_teaches_and_shows_its_main_view(tmp_path, write_lesson):
    import base64

    import nbformat

    from labkit.notebooks.gallery import lesson_objectives
    from labkit.notebooks.thumbnails import MAIN_VIEW_TAG, screenshots_unavailable

    lessons = tmp_path / "notebooks"
    path = write_lesson(
        lessons,
        "01_views",
        params="n: int = 3",
        cells=[
            "from IPython.display import HTML\nHTML('<p>not the main view</p>')",
            "HTML('<div style=\"width:300px;height:120px;background:rgb(200,30,30)\">main</div>')",
        ],
        title="Scores $S = QK^\\top$",
        intro=(
            "Attention in one page.\n\n## Learning objectives\n\nBy the end you will be able to:\n\n"
            "- compute the scores $S_{ij} = q_i \\cdot k_j$ by hand\n- explain *why* we divide by\n"
            "  $\\sqrt{d_k}$\n\nThe rest of the intro."
        ),
    )
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].metadata["tags"] = [MAIN_VIEW_TAG]
    nbformat.write(nb, path)
    assert lesson_objectives(path) == [
        "compute the scores $S_{ij} = q_i \\cdot k_j$ by hand",
        "explain why we divide by $\\sqrt{d_k}$",
    ]
    result = build_gallery(lessons, tmp_path / "gallery", workers=1)
    assert result.ok
    index = result.index_path.read_text()
    assert "You will:" in index and "explain why we divide by" in index and "runs in" in index
    assert index.count('class="labkit-math"') == 3 and "$" not in re.sub(
        r"<(script|style)\b.*?</\1>", "", index, flags=re.S
    )
    if screenshots_unavailable():
        if os.environ.get("LABKIT_REQUIRE_BROWSER") == "1":  # CI has Chromium: a missing thumbnail is a failure there
            pytest.fail(f"no screenshot thumbnail: {screenshots_unavailable()}", pytrace=False)
        pytest.skip(f"no screenshot thumbnail here: {screenshots_unavailable()}")
    thumb = result.entries[0].thumbnail
    assert thumb.startswith("data:image/jpeg;base64,")
    from io import BytesIO

    width, height = _jpeg_size(BytesIO(base64.b64decode(thumb.split(",", 1)[1])).getvalue())
    # the tagged 300 x 120 box (plus a 6 px margin) at half scale, not the one-line first output
    assert 150 <= width <= 160 and 60 <= height <= 70, (width, height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker."""
    i = 2
    while i < len(data):
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + length
    raise ValueError("no start-of-frame marker")
