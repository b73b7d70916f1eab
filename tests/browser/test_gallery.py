"""Gallery pages render offline: `build_gallery` on a real lesson, then its page and the index in Chromium
with every non-local request blocked (issue 7: "gallery pages, widgets included, render in headless Chromium")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labkit.notebooks import build_gallery
from labkit.notebooks.gallery import PAGE_LIMIT_BYTES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LESSONS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lessons")
    # lesson 02 runs in seconds and draws plotly figures; lesson 01 (the flagship) is covered by make demo's test
    shutil.copy(LESSONS / "02_attention_from_scratch.ipynb", folder)
    result = build_gallery(folder, tmp_path_factory.mktemp("gallery"), workers=1)
    assert result.ok, [e.error for e in result.entries]
    return result


def test_gallery_page_and_index_render_offline(watched_page, artifacts_dir, gallery):
    entry = gallery.entries[0]
    assert 0 < entry.page_bytes <= PAGE_LIMIT_BYTES
    watch = watched_page()
    try:
        watch.page.goto(entry.page.as_uri())
        plots = watch.page.locator(".js-plotly-plot .main-svg")
        plots.first.wait_for(state="visible", timeout=30_000)
        assert plots.count() >= 5  # every figure of the lesson drew, with plotly inlined in the page
        watch.page.screenshot(path=str(artifacts_dir / "gallery-02_attention_from_scratch.png"), full_page=True)
        watch.page.goto(gallery.index_path.as_uri())
        card = watch.page.locator("a.card")
        assert card.count() == 1 and "Attention from scratch" in card.inner_text()
        assert watch.page.locator("a.card img").evaluate("img => img.naturalWidth > 0")  # the thumbnail decoded
        watch.page.screenshot(path=str(artifacts_dir / "gallery-index.png"), full_page=True)
        assert watch.blocked == [], f"the pages asked for the network: {watch.blocked[:5]}"
        assert watch.errors == [], watch.errors[:5]
    finally:
        watch.context.close()
