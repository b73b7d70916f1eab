"""Every widget and view of the table renders in the offline report of `labkit run`, opened from file://
with the network blocked: the page carries the widget manager, anywidget and the saved widget state."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GALLERY_PAGE_LIMIT = 10 * 1024 * 1024  # issue 7: each gallery page at most 10 MB


def test_renders_in_static_report(case, static_notebook):
    static_notebook.assert_renders(case)


def test_hostile_token_shows_as_text_in_static_report(static_notebook, hostile_token):
    static_notebook.assert_tokens_are_text(hostile_token)


def test_static_report_needed_no_network_and_logged_no_errors(static_notebook, static_report):
    assert static_report.stat().st_size < GALLERY_PAGE_LIMIT
    static_notebook.assert_clean()


def test_formula_typesets_beside_the_widgets(static_notebook):
    page = static_notebook.watch.page
    page.locator(".labkit-math[data-typeset] .katex-display").wait_for(timeout=30_000)
    assert page.locator(".labkit-math").count() == 1 and page.locator(".katex-error").count() == 0
