"""Formulas in a report typeset offline in Chromium: KaTeX and its fonts come from the page, nothing from the network."""

from __future__ import annotations

import nbformat
import pytest

from labkit.frontend import MATH_CLASS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def maths_report(tmp_path_factory):
    from labkit.notebooks.report import export_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Attention $A$\n\nScores $S = QK^\\top/\\sqrt{d_k}$, then\n\n"
            "$$A_{ij} = \\frac{e^{S_{ij}}}{\\sum_k e^{S_{ik}}}$$\n\nA GPU costs $5 and $10 an hour."
        ),
        nbformat.v4.new_code_cell("from IPython.display import Math"),
    ]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("display_data", {"text/latex": "$\\displaystyle e^{i\\pi} + 1 = 0$", "text/plain": "m"})
    ]
    folder = tmp_path_factory.mktemp("maths")
    nbformat.write(nb, folder / "maths.ipynb")
    return export_html(folder / "maths.ipynb", folder / "maths.html")


def test_formulas_typeset_offline_in_chromium(maths_report, watched_page, artifacts_dir):
    watch = watched_page()
    try:
        page = watch.page
        page.goto(maths_report.as_uri(), wait_until="load")
        page.wait_for_function(
            f"document.querySelectorAll('.{MATH_CLASS}').length === 4 && "
            f"document.querySelectorAll('.{MATH_CLASS}:not([data-typeset])').length === 0",
            timeout=30_000,
        )
        assert page.locator(f".{MATH_CLASS} .katex").count() == 4
        assert page.locator(".katex-display").count() == 2  # $$...$$ and the Math() output
        assert page.locator(".katex-error").count() == 0
        assert "costs $5 and $10 an hour" in page.locator("body").inner_text()
        # KaTeX's own font is in use, loaded from the page (every other request would be blocked and listed)
        page.evaluate("document.fonts.ready")
        assert page.evaluate("document.fonts.check('16px KaTeX_Main')")
        page.screenshot(path=str(artifacts_dir / "maths-report.png"), full_page=True)
        assert watch.blocked == [] and watch.errors == [], (watch.blocked, watch.errors)
    finally:
        watch.context.close()
