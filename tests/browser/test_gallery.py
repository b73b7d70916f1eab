"""Every gallery page, opened from disk in Chromium with every request off the machine blocked, shows its main
view and its typeset formulas, within 10 MB; the index shows every lesson with a thumbnail, what it teaches and
its run time. The pages are the session's one run of each lesson at its defaults (`lesson_gallery`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.frontend import MATH_CLASS
from labkit.notebooks.gallery import PAGE_LIMIT_BYTES, lesson_paths
from labkit.notebooks.thumbnails import main_view, settle

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.notebook]

LESSONS = lesson_paths(Path(__file__).resolve().parents[2] / "notebooks")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_gallery_page_shows_its_view_and_formulas_offline(lesson, lesson_gallery, watched_page, artifacts_dir):
    entry = next(e for e in lesson_gallery.entries if e.name == lesson.stem)
    assert entry.ok and entry.page, f"{lesson.stem} did not build: {entry.error}"
    assert 0 < entry.page_bytes <= PAGE_LIMIT_BYTES, f"{entry.page_bytes / 1e6:.1f} MB"
    watch = watched_page()
    try:
        page = watch.page
        page.goto(entry.page.as_uri(), wait_until="load", timeout=60_000)
        view = main_view(page)
        assert view is not None, "the page shows no view, figure or image"
        view.scroll_into_view_if_needed()
        settle(page, view)
        assert view.is_visible() and view.bounding_box()["height"] > 40, "the main view did not draw"
        view.screenshot(path=str(artifacts_dir / f"gallery-{lesson.stem}-view.png"))
        formulas = page.locator(f".{MATH_CLASS}")
        if formulas.count():
            page.wait_for_function(
                f"document.querySelectorAll('.{MATH_CLASS}:not([data-typeset])').length === 0", timeout=30_000
            )
            assert page.locator(f".{MATH_CLASS} .katex").count() == formulas.count()
            assert page.locator(".katex-error").count() == 0, page.locator(".katex-error").first.inner_text()
            formula = formulas.nth(formulas.count() // 2)
            formula.scroll_into_view_if_needed()
            formula.locator("xpath=ancestor::div[contains(@class, 'jp-Cell')][1]").screenshot(
                path=str(artifacts_dir / f"gallery-{lesson.stem}-formula.png")
            )
        assert watch.blocked == [], f"the page asked for the network: {watch.blocked[:5]}"
        assert watch.errors == [], watch.errors[:5]
    finally:
        watch.context.close()


def test_gallery_index_shows_every_lesson_offline(lesson_gallery, watched_page, artifacts_dir):
    watch = watched_page()
    try:
        page = watch.page
        page.goto(lesson_gallery.index_path.as_uri(), wait_until="load")
        cards = page.locator("article.card")
        assert cards.count() == len(lesson_gallery.entries)
        for i, entry in enumerate(lesson_gallery.entries):
            card = cards.nth(i)
            assert entry.title in card.inner_text() and "runs in" in card.inner_text()
            assert card.locator("img").evaluate("img => img.naturalWidth > 0")  # the thumbnail decoded
            assert card.locator("a").first.get_attribute("href") == entry.page.name
        page.screenshot(path=str(artifacts_dir / "gallery-index.png"), full_page=True)
        assert watch.blocked == [] and watch.errors == [], (watch.blocked[:5], watch.errors[:5])
    finally:
        watch.context.close()
