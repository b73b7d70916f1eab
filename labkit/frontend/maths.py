"""Formulas in pages: `$...$`, `$$...$$` and `\\begin{env}` found in markdown, typeset offline by KaTeX.

The finder follows pandoc's `tex_math_dollars` rules, so prose keeps its dollars: an opening `$` must be
followed by a non-space, the closing `$` preceded by a non-space and not followed by a digit, and inline
maths holds no unescaped `$` and no blank line ("it costs $5 and $10" stays text). Code spans, fenced code
blocks, `<code>`/`<pre>` elements and escaped dollars (`\\$`) are left alone.

`MathsPlaceholders` lets any markdown renderer (nbconvert's, for the reports) run on text without the
formulas: `protect` swaps each for an inert placeholder word, `restore` puts back an element holding the
TeX source, plus, once per page, KaTeX (pinned, from labkit's vendor cache) and its fonts as data: URLs,
which typeset every formula when the page loads, with no network. Without scripts the TeX source shows.

Why KaTeX in the page rather than MathML written at export time: it typesets with TeX's own fonts and the
same layout in every browser (native MathML depends on the reader's fonts and on the converter's coverage of
LaTeX), and it costs about 0.45 MB a page (JavaScript gzip-packed, 20 woff2 fonts), only on pages that have
formulas. KaTeX also writes MathML beside its HTML, for screen readers.
"""

from __future__ import annotations

import base64
import gzip
import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from labkit.errors import MissingSourceError

__all__ = ["Formula", "find_formulas", "formula_html", "katex_page_assets", "MathsPlaceholders", "MATH_CLASS"]

MATH_CLASS = "labkit-math"  # the element holding one formula's TeX until KaTeX typesets it
# Environments that stand alone in markdown (as in Jupyter) and that KaTeX typesets in display mode.
DISPLAY_ENVIRONMENTS = ("equation", "equation*", "align", "align*", "gather", "gather*", "alignat", "alignat*")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)
_HTML_CODE = re.compile(r"<(code|pre|kbd|samp)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_BEGIN = re.compile(r"\\begin\{(" + "|".join(re.escape(e) for e in DISPLAY_ENVIRONMENTS) + r")\}")


@dataclass(frozen=True)
class Formula:
    """One formula found in markdown: its TeX, display or inline, and where it sat (delimiters included)."""

    tex: str
    display: bool
    start: int
    end: int


def _fenced_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of every fenced code block (``` or ~~~); an unclosed fence runs to the end, as in CommonMark."""
    blocks, pos = [], 0
    while (m := _FENCE.search(text, pos)) is not None:
        fence = m.group(1)
        closing = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$", re.M)
        line_end = text.find("\n", m.end())
        close = closing.search(text, line_end + 1) if line_end >= 0 else None
        end = len(text) if close is None else close.end()
        blocks.append((m.start(), end))
        pos = max(end, m.end())
    return blocks


def _code_spans(text: str, skip: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of every code span outside `skip`; as in CommonMark they bind tighter than maths."""
    spans, i, k = [], 0, 0
    while i < len(text):
        while k < len(skip) and skip[k][1] <= i:
            k += 1
        if k < len(skip) and i >= skip[k][0]:
            i = skip[k][1]
            continue
        if text[i] == "\\":
            i += 2
        elif text[i] == "`":
            run = len(text) - i - len(text[i:].lstrip("`"))
            close = re.compile(r"(?<!`)" + "`" * run + r"(?!`)").search(text, i + run)
            if close:
                spans.append((i, close.end()))
            i = close.end() if close else i + run
        else:
            i += 1
    return spans


def _inline_close(text: str, start: int, limit: int) -> int | None:
    """Index of the `$` that closes inline maths opened at `start` (before `limit`), or None; pandoc's rules."""
    i = start + 1
    if i >= limit or text[i].isspace() or text[i] == "$":
        return None
    while i < limit:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n" and _BLANK_LINE.match(text, i):
            return None  # a blank line ends the paragraph, and inline maths with it
        if c == "$":
            if text[i - 1].isspace() or text[i + 1 : i + 2].isdigit():
                return None
            return i
        i += 1
    return None


def _display_close(text: str, start: int, limit: int) -> int | None:
    """Index of the `$$` that closes display maths opened at `start` (before `limit`), or None."""
    i = start + 2
    while i < limit - 1:
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith("$$", i):
            return i if text[start + 2 : i].strip() else None
        i += 1
    return None


def find_formulas(markdown: str) -> list[Formula]:
    """Markdown text in, the formulas in it (in order, not overlapping) out; see the module for the rules."""
    skip = sorted(_fenced_blocks(markdown) + [m.span() for m in _HTML_CODE.finditer(markdown)])
    skip = sorted(skip + _code_spans(markdown, skip))
    found: list[Formula] = []
    i, k, n = 0, 0, len(markdown)
    while i < n:
        while k < len(skip) and skip[k][1] <= i:
            k += 1
        if k < len(skip) and i >= skip[k][0]:
            i = skip[k][1]
            continue
        limit = skip[k][0] if k < len(skip) else n  # a formula never runs into code
        c = markdown[i]
        if c == "\\":
            m = _BEGIN.match(markdown, i)
            if m:
                end_tag = f"\\end{{{m.group(1)}}}"
                close = markdown.find(end_tag, m.end(), limit)
                if close >= 0:
                    end = close + len(end_tag)
                    found.append(Formula(markdown[i:end], True, i, end))
                    i = end
                    continue
            i += 2  # an escaped character (\$, \`, \\) is text
        elif markdown.startswith("$$", i):
            close = _display_close(markdown, i, limit)
            if close is None:
                i += 2
            else:
                found.append(Formula(markdown[i + 2 : close].strip(), True, i, close + 2))
                i = close + 2
        elif c == "$":
            close = _inline_close(markdown, i, limit)
            if close is None:
                i += 1
            else:
                found.append(Formula(markdown[i + 1 : close], False, i, close + 1))
                i = close + 1
        else:
            i += 1
    return found


def formula_html(tex: str, display: bool) -> str:
    """TeX and display/inline in, the element the page's KaTeX typesets out (its text is the escaped TeX)."""
    return f'<span class="{MATH_CLASS}" data-display="{"block" if display else "inline"}">{html.escape(tex)}</span>'


# Unpacks KaTeX (gzip + base64, the browser's DecompressionStream), runs it where no AMD loader can claim it
# (a page with require.js would otherwise get an anonymous define() and no window.katex), then typesets.
_RENDER = """(function () {
  var box = document.querySelector('script[data-labkit-katex]');
  var bytes = Uint8Array.from(atob(box.textContent.trim()), function (c) { return c.charCodeAt(0); });
  new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text().then(function (code) {
    (new Function('define', 'module', 'exports', code)).call(window);
    document.querySelectorAll('.MATH_CLASS').forEach(function (el) {
      window.katex.render(el.textContent, el, {
        displayMode: el.getAttribute('data-display') === 'block', throwOnError: false, strict: 'ignore'
      });
      el.setAttribute('data-typeset', '');
    });
  }).catch(function (err) { console.error('labkit: could not typeset the formulas', err); });
}());""".replace("MATH_CLASS", MATH_CLASS)
# Before (or without) KaTeX: display formulas on their own line, the TeX in a monospace font.
_FALLBACK_CSS = (
    f".{MATH_CLASS}:not([data-typeset]) {{ font-family: monospace; }}\n"
    f'.{MATH_CLASS}[data-display="block"] {{ display: block; margin: 0.6em 0; text-align: center; }}\n'
)


@lru_cache(maxsize=1)
def katex_page_assets() -> str:
    """The HTML that typesets a page's formulas offline: KaTeX's CSS with its fonts as data: URLs, KaTeX packed.

    Raises MissingSourceError when KaTeX is not in labkit's vendor cache (fix: labkit vendor fetch).
    """
    from labkit.frontend.assets import inline_js
    from labkit.frontend.vendor import vendor_file, vendor_text

    def font_data(match: re.Match) -> str:
        data = base64.b64encode(vendor_file(match.group(1)).read_bytes()).decode("ascii")
        return f'src:url(data:font/woff2;base64,{data}) format("woff2")'

    # each @font-face lists woff2, woff and ttf files beside the CSS: keep the woff2 one, inlined
    css = re.sub(r"src:url\(fonts/([\w-]+\.woff2)\)[^;}]*", font_data, vendor_text("katex.css"))
    if "url(fonts/" in css:
        raise MissingSourceError("katex.css names a font that is not vendored; list it in VENDOR beside katex.css")
    code = base64.b64encode(gzip.compress(vendor_text("katex.js").encode("utf-8"), 9, mtime=0)).decode("ascii")
    return (
        f'<style data-labkit-inline="katex.css">\n{css}\n{_FALLBACK_CSS}</style>\n'
        f'<script type="application/gzip+base64" data-labkit-katex>\n{code}\n</script>\n'
        f'<script data-labkit-inline="katex-render">\n{inline_js(_RENDER)}\n</script>\n'
    )


class MathsPlaceholders:
    """Swap formulas for placeholder words before a markdown renderer runs, and typeset them into its HTML after.

    `protect(markdown)` returns the text with each formula replaced by a word no markdown syntax touches;
    `restore(page)` puts a `formula_html` element in its place (in attribute values, such as the ids nbconvert
    derives from headings, a plain slug of the TeX) and adds `katex_page_assets()` before `</body>` when the
    page has any formula.
    """

    def __init__(self) -> None:
        self._nonce = secrets.token_hex(4)  # lower-case letters and digits survive slugging and lower-casing
        self.formulas: list[Formula] = []
        self._word = re.compile(rf"labkitmath{self._nonce}n(\d+)e")

    def protect(self, markdown: str) -> str:
        """Markdown in, the same text with every formula replaced by a placeholder word out."""
        parts, last = [], 0
        for formula in find_formulas(markdown):
            parts += [markdown[last : formula.start], f"labkitmath{self._nonce}n{len(self.formulas)}e"]
            self.formulas.append(formula)
            last = formula.end
        return "".join(parts) + markdown[last:]

    def protect_notebook(self, nb: Mapping[str, Any]) -> None:
        """Protect, in place, a notebook's markdown cells and its markdown and LaTeX outputs (IPython's Math())."""
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "markdown":
                cell["source"] = self.protect(_text(cell.get("source", "")))
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                if "text/markdown" in data:
                    data["text/markdown"] = self.protect(_text(data["text/markdown"]))
                if "text/latex" in data:  # one formula in its own output: display it ("$...$", "$$...$$" or bare)
                    latex = _text(data["text/latex"]).strip()
                    whole = find_formulas(latex)
                    if not whole or (len(whole) == 1 and (whole[0].start, whole[0].end) == (0, len(latex))):
                        latex = f"$${whole[0].tex if whole else latex}$$"
                    data["text/latex"] = self.protect(latex)

    def restore(self, page: str) -> str:
        """Rendered HTML in, the HTML with every placeholder typeset (and KaTeX added once when any was) out."""
        if not self.formulas:
            return page

        def typeset(match: re.Match) -> str:
            formula = self.formulas[int(match.group(1))]
            inside_a_tag = page.rfind("<", 0, match.start()) > page.rfind(">", 0, match.start())
            return _slug(formula.tex) if inside_a_tag else formula_html(formula.tex, formula.display)

        page = self._word.sub(typeset, page)
        assets = katex_page_assets()
        at = page.rfind("</body>")
        return page[:at] + assets + page[at:] if at >= 0 else page + assets


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _slug(tex: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "-", tex).strip("-")
