"""Formulas: found by pandoc's dollar rules (prices, shell variables and code stay text), typeset into reports."""

from __future__ import annotations

import re

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.frontend import MATH_CLASS, MathsPlaceholders, find_formulas, formula_html, katex_page_assets

CASES = [
    # (markdown, [(tex, display), ...])
    ("Attention: $A = \\mathrm{softmax}(S)$.", [("A = \\mathrm{softmax}(S)", False)]),
    ("$$S = \\frac{QK^\\top}{\\sqrt{d_k}}$$", [("S = \\frac{QK^\\top}{\\sqrt{d_k}}", True)]),
    ("$$\n  x + y\n$$\n\nthen $z$", [("x + y", True), ("z", False)]),
    ("It costs $5 and $10 a month.", []),  # a price, then another: never a formula
    ("price $5, or $x$", [("x", False)]),
    ("Set `$HOME` and `echo $PATH$` first", []),  # code spans stay code
    ("`` a ` $b$ `` and $c$", [("c", False)]),  # a double-backtick span holding a single backtick
    ("```bash\necho $A$B\n```\n$y$", [("y", False)]),  # fenced code
    ("~~~\n$$x$$\n~~~", []),
    ("<code>$x$</code> <pre>$$y$$</pre> $z$", [("z", False)]),
    ("an escaped \\$5 and \\$6", []),
    ("$ x$ and $x $", []),  # a space after the opening or before the closing dollar: text
    ("$x$2", []),  # the closing dollar followed by a digit: text
    ("$a\n\nb$", []),  # inline maths never crosses a blank line
    ("$a\nb$", [("a\nb", False)]),
    ("\\begin{align}a &= b \\\\ c &= d\\end{align}", [("\\begin{align}a &= b \\\\ c &= d\\end{align}", True)]),
    ("$$ $$", []),  # empty display maths is text
    ("costs $10 an hour; run `export A=$HOME` and $x$", [("x", False)]),  # maths never runs into code
    ("unclosed $x and $$y", []),
]


@pytest.mark.parametrize(("markdown", "expected"), CASES, ids=[c[0][:30] for c in CASES])
def test_formulas_follow_pandocs_dollar_rules(markdown, expected):
    assert [(f.tex, f.display) for f in find_formulas(markdown)] == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab $\\`\n{}5~<>")), max_size=60))
def test_protect_is_reversible_and_spans_are_ordered(markdown):
    """Every formula's span holds its delimiters; putting the spans back in place of the words gives the text back."""
    formulas = find_formulas(markdown)
    assert all(a.end <= b.start for a, b in zip(formulas, formulas[1:]))
    for f in formulas:
        assert f.tex.strip() and f.tex.strip() in markdown[f.start : f.end]
        assert markdown[f.start] in "$\\" and markdown[f.end - 1] in "$}"
    maths = MathsPlaceholders()
    protected = maths.protect(markdown)
    assert "$" not in re.sub(r"`+[^`]*`+", "", protected) or len(maths.formulas) == len(formulas)
    back = maths._word.sub(
        lambda m: markdown[maths.formulas[int(m.group(1))].start : maths.formulas[int(m.group(1))].end], protected
    )
    assert back == markdown


def test_formula_element_escapes_the_tex():
    assert (
        formula_html("a < b & c", False) == f'<span class="{MATH_CLASS}" data-display="inline">a &lt; b &amp; c</span>'
    )
    assert 'data-display="block"' in formula_html("x", True)


def test_katex_assets_carry_their_fonts_inline():
    assets = katex_page_assets()
    assert assets.count("data:font/woff2;base64,") == 20 and "url(fonts/" not in assets
    assert "data-labkit-katex" in assets and "katex.render" in assets
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", assets)
    assert len(assets) < 600_000  # about 0.47 MB: JavaScript gzip-packed, fonts as woff2


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)
    return re.sub(r"<[^>]+>", "", page)


@pytest.fixture(scope="module")
def maths_report(tmp_path_factory):
    """A notebook with formulas in markdown, a heading, a Markdown output and a Math output, exported offline."""
    from labkit.notebooks.report import export_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Scores $S$ and weights\n\nThe scores are $S = QK^\\top/\\sqrt{d_k}$ and\n\n"
            "$$A_{ij} = \\frac{e^{S_{ij}}}{\\sum_k e^{S_{ik}}}$$\n\n"
            "A GPU costs $5 and $10 an hour; run `export CUDA=$HOME/cuda` first, and **keep** $x < y$."
        ),
        nbformat.v4.new_code_cell("from IPython.display import Markdown, Math"),
    ]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("display_data", {"text/markdown": "Loss $\\mathcal{L}$", "text/plain": "md"}),
        nbformat.v4.new_output("display_data", {"text/latex": "$\\displaystyle e^{i\\pi} + 1 = 0$", "text/plain": "m"}),
    ]
    folder = tmp_path_factory.mktemp("maths")
    nbformat.write(nb, folder / "maths.ipynb")
    return export_html(folder / "maths.ipynb", folder / "maths.html")


def test_report_holds_every_formula_as_an_element_and_no_dollar_maths(maths_report):
    page = maths_report.read_text(encoding="utf-8")
    tex = [html_unescape(t) for t in re.findall(rf'<span class="{MATH_CLASS}"[^>]*>(.*?)</span>', page)]
    assert tex == [
        "S",
        "S = QK^\\top/\\sqrt{d_k}",
        "A_{ij} = \\frac{e^{S_{ij}}}{\\sum_k e^{S_{ik}}}",
        "x < y",
        "\\mathcal{L}",
        "\\displaystyle e^{i\\pi} + 1 = 0",
    ]
    text = _visible_text(page)
    assert "$$" not in text and "$S" not in text and "$x" not in text
    assert "costs $5 and $10 an hour" in text  # prices stay as written
    assert "export CUDA=$HOME/cuda" in text  # and so does the code span
    assert page.count('<script type="application/gzip+base64" data-labkit-katex>') == 1  # KaTeX once a page
    heading = re.search(r"<h1[^>]*>", page).group(0)
    assert MATH_CLASS not in heading and "labkitmath" not in page  # the heading's id got a slug, not markup


def test_report_without_formulas_carries_no_katex(tmp_path):
    from labkit.notebooks.report import export_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Plain\n\nIt costs $5 and $10.")]
    nbformat.write(nb, tmp_path / "plain.ipynb")
    page = export_html(tmp_path / "plain.ipynb", tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "data-labkit-katex" not in page and "It costs $5 and $10." in _visible_text(page)


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_missing_katex_names_the_fix(tmp_path, monkeypatch):
    from labkit.errors import MissingSourceError

    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "empty-cache"))
    katex_page_assets.cache_clear()
    try:
        with pytest.raises(MissingSourceError, match="labkit vendor fetch") as err:
            katex_page_assets()
        assert "\n" not in str(err.value)
    finally:
        katex_page_assets.cache_clear()


def test_fetch_downloads_katex_once_for_all_its_files(tmp_path, monkeypatch):
    import io
    import tarfile

    from labkit.frontend import VENDOR, fetch_vendor, vendor_file

    names = [n for n, spec in VENDOR.items() if spec.package == "katex"]
    assert {"katex.js", "katex.css"} < set(names) and len(names) == 22
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:  # the npm tarball's layout, from the set-up's copies
        for name in names:
            data = vendor_file(name).read_bytes()
            info = tarfile.TarInfo(f"package/{VENDOR[name].path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    calls = []
    monkeypatch.setattr("labkit.frontend.vendor._download", lambda spec: calls.append(spec) or tarball.getvalue())
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    paths = fetch_vendor(names, quiet=True)
    assert len(calls) == 1 and len(paths) == 22 and all(p.is_file() for p in paths)
    assert fetch_vendor(names, quiet=True) == paths and len(calls) == 1  # present: nothing downloaded again
