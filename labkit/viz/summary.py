"""Extractive summary view: an `ExtractiveSummary` (and optionally the reference summary) in; the document with
each sentence's score as a bar, the kept sentences marked, and the words they share with the reference
highlighted (the unigram overlap that ROUGE-1 counts) out.

`summary_view(result, reference)` gives a `SummaryView`: `text/html` (no script, identical in JupyterLab and in
a report), an `image/svg+xml` fallback and a `text/plain` summary. All text is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from labkit.checks import check_int
from labkit.data.summarize import ExtractiveSummary, summary_words
from labkit.errors import InvalidInputError
from labkit.frontend import HtmlView, plain_token, svg_open

__all__ = ["SummaryView", "summary_view"]

_CSS = """
.labkit-summ { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 60em; }
.labkit-summ .lk-sm-title { font-weight: 600; margin-bottom: 4px; }
.labkit-summ .lk-sm-ref { margin: 4px 0 8px; padding: 4px 8px; background: #f3f6fb; border-left: 3px solid #4a78c2; }
.labkit-summ table { border-collapse: collapse; width: 100%; }
.labkit-summ td { padding: 2px 6px; vertical-align: top; text-align: left !important; border-bottom: 1px solid #eee; }
.labkit-summ td.n { color: #666; width: 2.5em; }
.labkit-summ td.bar { width: 7em; }
.labkit-summ td.bar span { display: inline-block; height: 10px; background: #7a9fd6; }
.labkit-summ td.sc { color: #666; width: 4em; font-variant-numeric: tabular-nums; }
.labkit-summ tr.kept td.s { background: #fff6cc; font-weight: 500; }
.labkit-summ tr.kept td.n::after { content: " \\2605"; color: #b8860b; }
.labkit-summ mark { background: #c8f0c8; padding: 0; }
.labkit-summ .lk-sm-note { color: #666; margin-top: 4px; }
"""
_TOKEN = re.compile(r"\w+(?:['’]\w+)?|\W+")


@dataclass
class SummaryView(HtmlView):
    """The rendered sentence table of an extractive summary; display it, `save_html(path)` it, or read `result`."""

    result: ExtractiveSummary
    reference: str = ""  # the reference summary whose words are highlighted ("" for none)
    title: str = ""
    max_sentences: int = 40  # rows shown; the kept sentences are always shown

    def _rows(self) -> list[int]:
        n = len(self.result.sentences)
        shown = set(range(min(n, self.max_sentences))) | set(self.result.chosen)
        return sorted(shown)

    def _overlap(self) -> set[str]:
        return set(summary_words(self.reference)) if self.reference else set()

    def summary(self) -> str:
        """A text/plain account: method, the kept sentences with their scores, the reference."""
        r = self.result
        lines = [plain_token(self.title)] if self.title else []
        lines.append(f"SummaryView: {len(r.sentences)} sentences scored by {r.method!r}, kept {r.chosen}")
        for i in r.chosen:
            lines.append(f"  [{i}] {r.scores[i]:.3f} {plain_token(r.sentences[i][:150])}")
        if self.reference:
            lines.append(f"  reference: {plain_token(self.reference[:150])}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _marked(self, sentence: str, overlap: set[str]) -> str:
        parts = []
        for piece in _TOKEN.findall(sentence):
            esc = html.escape(piece)
            parts.append(f"<mark>{esc}</mark>" if piece.casefold() in overlap else esc)
        return "".join(parts)

    def to_html(self) -> str:
        """A self-contained HTML fragment: reference, then one row per sentence (position, score bar, text)."""
        r, overlap = self.result, self._overlap()
        top = max(r.scores, default=0.0) or 1.0
        rows = []
        for i in self._rows():
            width = max(0.0, r.scores[i]) / top * 100
            kept = ' class="kept"' if i in r.chosen else ""
            rows.append(
                f'<tr{kept}><td class="n">{i}</td><td class="bar"><span style="width:{width:.0f}%"></span></td>'
                f'<td class="sc">{r.scores[i]:.3f}</td><td class="s">{self._marked(r.sentences[i], overlap)}</td></tr>'
            )
        title = f'<div class="lk-sm-title">{html.escape(self.title)}</div>' if self.title else ""
        ref = (
            f'<div class="lk-sm-ref"><b>reference:</b> {self._marked(self.reference, overlap)}</div>'
            if self.reference
            else ""
        )
        hidden = len(r.sentences) - len(self._rows())
        note = f"{hidden} more sentences not shown (max_sentences={self.max_sentences}); " if hidden else ""
        note += f"method {html.escape(r.method)}; \u2605 kept sentences" + (
            "; <mark>green</mark>: words shared with the reference (what ROUGE-1 counts, before stemming)"
            if self.reference
            else ""
        )
        return (
            f'<div class="labkit-summ"><style>{_CSS}</style>{title}{ref}<table><tbody>{"".join(rows)}</tbody>'
            f'</table><div class="lk-sm-note">{note}</div></div>'
        )

    def to_svg(self, standalone: bool = True, width: int = 760) -> str:
        """The static fallback: the kept sentences and the reference as lines of text (escaped)."""
        r, y, out = self.result, 16.0, []
        if self.reference:
            out.append(
                f'<text x="4" y="{y:.0f}" font-weight="bold">reference: {html.escape(self.reference[:110])}</text>'
            )
            y += 18
        for i in self._rows():
            fill = "#000" if i in r.chosen else "#999"
            mark = "\u2605 " if i in r.chosen else ""
            text = html.escape(f"{mark}[{i}] {r.scores[i]:.3f} {r.sentences[i][:100]}")
            out.append(f'<text x="4" y="{y:.0f}" fill="{fill}">{text}</text>')
            y += 15
        return svg_open(width, y, standalone=standalone) + "".join(out) + "</svg>"

    def _page_title(self) -> str:
        return self.title or "labkit extractive summary"


def summary_view(
    result: ExtractiveSummary, reference: str = "", *, title: str = "", max_sentences: int = 40
) -> SummaryView:
    """An `ExtractiveSummary` (from `labkit.data.extract`) and optionally its reference summary in, the view out.

    max_sentences: the first rows shown (the kept sentences always are).
    """
    if not isinstance(result, ExtractiveSummary):
        raise InvalidInputError(
            f"summary_view takes the ExtractiveSummary of labkit.data.extract(text, k), got {type(result).__name__}"
        )
    if not isinstance(reference, str):
        raise InvalidInputError(f"reference must be a string (the reference summary), got {type(reference).__name__}")
    check_int("max_sentences", max_sentences, low=1)
    return SummaryView(result, reference, title, max_sentences)
