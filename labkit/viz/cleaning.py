"""Cleaning view: a `Cleaner` and some texts in; a before/after table of what each step changed out.

`cleaning_view(cleaner, texts)` gives a `CleaningView` whose `_repr_mimebundle_` carries `text/html` (a
table: one row per text, one column per step, each cell the text after that step with what the step
removed struck through in red and what it added in green; unchanged cells greyed), `image/svg+xml` (the
same table drawn as text, for hosts without HTML) and `text/plain` (one line per step that changed a
text). No script: it is a static view, identical in JupyterLab and in a report. All text is escaped.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from typing import Any

from labkit.checks import check_int
from labkit.data.clean import Cleaner, CleaningTrace
from labkit.errors import InvalidInputError
from labkit.frontend import HtmlView, plain_token, svg_open

__all__ = ["CleaningView", "cleaning_view", "diff_spans"]

_CSS = """
.labkit-clean { font: 12px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; overflow-x: auto; }
.labkit-clean table { border-collapse: collapse; }
.labkit-clean table th, .labkit-clean table td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; max-width: 22em;
  text-align: left !important; white-space: pre-wrap; word-break: break-word; }
.labkit-clean th { background: #f5f5f5; font-weight: 600; }
.labkit-clean th .n { font-weight: normal; color: #666; }
.labkit-clean td.same { color: #999; }
.labkit-clean del { background: #fdd; color: #900; }
.labkit-clean ins { background: #dfd; color: #060; text-decoration: none; }
.labkit-clean .lk-cl-title { font-weight: 600; font-size: 13px; margin-bottom: 4px; }
"""


def diff_spans(before: str, after: str) -> list[tuple[str, str]]:
    """Two strings in, [(kind, text)] out with kind "same", "del" or "ins": a word-level diff (whitespace kept)."""
    a, b = re.findall(r"\s+|\S+", before), re.findall(r"\s+|\S+", after)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(b[j1:j2])))
    return out


def _cell(before: str, after: str, max_chars: int) -> str:
    if before == after:
        return f'<td class="same">{html.escape(_cut(after, max_chars))}</td>'
    parts = []
    for kind, text in diff_spans(_cut(before, max_chars), _cut(after, max_chars)):
        esc = html.escape(text)
        parts.append(esc if kind == "same" else f"<{kind}>{esc}</{kind}>")
    return f"<td>{''.join(parts)}</td>"


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


@dataclass
class CleaningView(HtmlView):
    """The rendered before/after table of a cleaning trace; display it, `save_html(path)` it, or read `trace`."""

    trace: CleaningTrace
    title: str = ""
    max_chars: int = 300  # per cell; longer texts are cut with an ellipsis (the trace keeps them whole)

    def summary(self) -> str:
        """A text/plain account: per text, each step that changed it with the text after it."""
        counts = self.trace.changed_counts()
        lines = [plain_token(self.title)] if self.title else []
        lines.append(
            f"CleaningView: {len(self.trace.rows)} text(s), steps "
            + " -> ".join(f"{s} ({counts[s]} changed)" for s in self.trace.steps)
        )
        for i, row in enumerate(self.trace.rows):
            lines.append(f"  text {i}: {plain_token(_cut(row[0].before, 120))}")
            for c in row:
                if c.changed:
                    lines.append(f"    {c.step:>12} -> {plain_token(_cut(c.after, 120))}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_html(self) -> str:
        """A self-contained HTML fragment: the table with its CSS; no script, no URL."""
        counts = self.trace.changed_counts()
        head = "".join(
            f'<th>{html.escape(s)}<br><span class="n">changed {counts[s]} of {len(self.trace.rows)}</span></th>'
            for s in self.trace.steps
        )
        body = []
        for row in self.trace.rows:
            cells = "".join(_cell(c.before, c.after, self.max_chars) for c in row)
            body.append(f"<tr><td>{html.escape(_cut(row[0].before, self.max_chars))}</td>{cells}</tr>")
        title = f'<div class="lk-cl-title">{html.escape(self.title)}</div>' if self.title else ""
        longest = max((len(c.before) for row in self.trace.rows for c in row), default=0)
        longest = max([longest] + [len(c.after) for row in self.trace.rows for c in row])
        cut = (
            f'<div class="n">texts longer than {self.max_chars} characters are cut (\u2026); '
            f"cleaning_view(..., max_chars={longest}) shows them whole</div>"
            if longest > self.max_chars
            else ""
        )
        return (
            f'<div class="labkit-clean"><style>{_CSS}</style>{title}<table><thead><tr><th>original</th>{head}</tr>'
            f"</thead><tbody>{''.join(body)}</tbody></table>{cut}</div>"
        )

    def to_svg(self, standalone: bool = True, width: int = 760) -> str:
        """The static fallback: each text's original and each changing step's output as lines of text (escaped)."""
        y, out = 16.0, []
        for i, row in enumerate(self.trace.rows):
            out.append(
                f'<text x="4" y="{y:.0f}" font-weight="bold">text {i}: {html.escape(_cut(row[0].before, 100))}</text>'
            )
            y += 16
            for c in row:
                fill = "#060" if c.changed else "#999"
                out.append(
                    f'<text x="16" y="{y:.0f}" fill="{fill}">{html.escape(c.step)}: '
                    f"{html.escape(_cut(c.after, 100))}</text>"
                )
                y += 15
            y += 6
        return svg_open(width, y, standalone=standalone) + "".join(out) + "</svg>"

    def _page_title(self) -> str:
        return self.title or "labkit cleaning steps"


def cleaning_view(
    cleaner: Cleaner | CleaningTrace, texts: Any = None, *, title: str = "", max_chars: int = 300
) -> CleaningView:
    """A `Cleaner` and a text or texts (or a ready `CleaningTrace`) in, the before/after table view out.

    max_chars: characters shown per cell (at least 10).
    """
    check_int("max_chars", max_chars, low=10)
    if isinstance(cleaner, CleaningTrace):
        trace = cleaner
    elif isinstance(cleaner, Cleaner):
        if texts is not None and not isinstance(texts, str):
            texts = list(texts)
        if not texts:
            raise InvalidInputError("cleaning_view needs some texts to trace: cleaning_view(cleaner, ['a text', ...])")
        trace = cleaner.trace(texts)
    else:
        raise InvalidInputError(
            f"cleaning_view takes a labkit.data.Cleaner (with texts) or a CleaningTrace, got {type(cleaner).__name__}"
        )
    return CleaningView(trace, title, max_chars)
