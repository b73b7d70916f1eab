"""Confusion-matrix view: true and predicted labels in; a shaded matrix with per-class precision and recall out.

`confusion_view(y_true, y_pred, label_names=...)` gives a `ConfusionView` whose `_repr_mimebundle_` carries
`text/html` (a table: one row per true class, one column per predicted class, each cell the count and its share
of the row, shaded by that share; a recall column on the right, a precision row underneath, accuracy and
macro-F1 in the caption), `image/svg+xml` (the same grid drawn, for hosts without HTML) and `text/plain` (the
matrix as aligned text with the per-class numbers). No script and no URL: it is identical in JupyterLab and in
an offline report. Class names are escaped. The numbers come from `labkit.evaluation`, which matches
scikit-learn.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.errors import InvalidInputError
from labkit.evaluation import accuracy, confusion_matrix, precision_recall_f1
from labkit.frontend import HtmlView, plain_token, svg_open

__all__ = ["ConfusionView", "confusion_view"]

_CSS = """
.labkit-confusion { font: 12px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; overflow-x: auto; }
.labkit-confusion table { border-collapse: collapse; }
.labkit-confusion th, .labkit-confusion td { border: 1px solid #ddd; padding: 4px 8px; text-align: center !important; }
.labkit-confusion th { background: #f5f5f5; font-weight: 600; }
.labkit-confusion td.cell { min-width: 4.5em; }
.labkit-confusion td.cell .n { font-size: 13px; font-weight: 600; }
.labkit-confusion td.cell .p { font-size: 11px; }
.labkit-confusion td.metric { background: #fafafa; color: #333; }
.labkit-confusion .axis { color: #666; font-weight: normal; }
.labkit-confusion caption { caption-side: top; text-align: left; padding-bottom: 4px; }
.labkit-confusion caption b { font-size: 13px; }
"""


def _shade(share: float) -> tuple[str, str]:
    """A share in [0, 1] in, (background, text colour) out: white to dark blue, white text on the dark end."""
    s = min(max(share, 0.0), 1.0)
    r, g, b = (int(round(255 + (t - 255) * s)) for t in (8, 69, 148))
    return f"rgb({r},{g},{b})", "#fff" if s > 0.55 else "#111"


@dataclass
class ConfusionView(HtmlView):
    """A rendered confusion matrix: `counts` [true, predicted], `names`, per-class `precision`, `recall`, `f1`,
    `support`, and `accuracy`, `macro_f1`; display it or `save_html(path)` it."""

    counts: np.ndarray  # [classes, classes] int64: row = true class, column = predicted class
    names: list[str]
    precision: np.ndarray  # [classes]: of the examples predicted as the class, the share that are it
    recall: np.ndarray  # [classes]: of the examples of the class, the share predicted as it
    f1: np.ndarray  # [classes]
    support: np.ndarray  # [classes]: true examples per class
    accuracy: float
    macro_f1: float
    title: str = ""

    def shares(self) -> np.ndarray:
        """Each row divided by its total (rows of an absent class stay 0): the shading of the cells."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape), where=totals > 0)

    def summary(self) -> str:
        """A text/plain account: the matrix as aligned text, then precision, recall, F1 and support per class."""
        names = [plain_token(n) for n in self.names]
        width = max(8, *(len(n) for n in names), len(str(int(self.counts.max(initial=0)))) + 1)
        lines = [plain_token(self.title)] if self.title else []
        lines.append(
            f"ConfusionView: {int(self.counts.sum())} examples, accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}"
        )
        corner = "true \\ pred"
        lines.append(f"{corner:>{width}} " + " ".join(f"{n:>{width}}" for n in names))
        for name, row in zip(names, self.counts):
            lines.append(f"{name:>{width}} " + " ".join(f"{int(v):>{width}}" for v in row))
        lines.append(f"{'class':>{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}")
        for i, name in enumerate(names):
            lines.append(
                f"{name:>{width}} {self.precision[i]:9.3f} {self.recall[i]:9.3f} {self.f1[i]:9.3f} {int(self.support[i]):9d}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_html(self) -> str:
        """A self-contained HTML fragment: the shaded table with its CSS; no script, no URL."""
        shares = self.shares()
        esc = [html.escape(n) for n in self.names]
        head = "".join(f"<th>{n}</th>" for n in esc)
        rows = []
        for i, name in enumerate(esc):
            cells = []
            for j in range(len(esc)):
                bg, fg = _shade(float(shares[i, j]))
                cells.append(
                    f'<td class="cell" style="background:{bg};color:{fg}" title="true {name}, predicted {esc[j]}">'
                    f'<div class="n">{int(self.counts[i, j])}</div><div class="p">{shares[i, j]:.0%}</div></td>'
                )
            rows.append(
                f"<tr><th>{name}</th>{''.join(cells)}"
                f'<td class="metric">{self.recall[i]:.2f}</td><td class="metric">{int(self.support[i])}</td></tr>'
            )
        precision = "".join(f'<td class="metric">{p:.2f}</td>' for p in self.precision)
        rows.append(f'<tr><th class="axis">precision</th>{precision}<td></td><td></td></tr>')
        title = f"<b>{html.escape(self.title)}</b><br>" if self.title else ""
        caption = (
            f"<caption>{title}accuracy {self.accuracy:.3f} &middot; macro-F1 {self.macro_f1:.3f} &middot; "
            f'<span class="axis">rows: true class, columns: predicted class; shade: share of the row</span></caption>'
        )
        return (
            f'<div class="labkit-confusion"><style>{_CSS}</style><table>{caption}<thead>'
            f'<tr><th class="axis">true \\ predicted</th>{head}<th class="axis">recall</th>'
            f'<th class="axis">support</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        )

    def to_svg(self, standalone: bool = True, cell: int = 56) -> str:
        """The static fallback: the grid drawn as shaded squares with counts, class names on both axes (escaped)."""
        k = len(self.names)
        left, top = 110, 40
        width, height = left + k * cell + 80, top + k * cell + 40
        shares = self.shares()
        out = [
            f'<text x="4" y="14" font-weight="bold">{html.escape(self.title or "confusion matrix")}</text>',
            f'<text x="4" y="30" fill="#555">accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}; '
            "rows true, columns predicted</text>",
        ]
        for j, name in enumerate(self.names):
            x = left + j * cell + cell / 2
            out.append(
                f'<text x="{x:.0f}" y="{top + k * cell + 14}" text-anchor="middle">{html.escape(name[:12])}</text>'
            )
        for i, name in enumerate(self.names):
            y = top + i * cell
            out.append(
                f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" text-anchor="end">{html.escape(name[:16])}</text>'
            )
            for j in range(k):
                bg, fg = _shade(float(shares[i, j]))
                x = left + j * cell
                out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{bg}" stroke="#ccc"/>')
                out.append(
                    f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" text-anchor="middle" fill="{fg}">'
                    f"{int(self.counts[i, j])}</text>"
                )
            out.append(
                f'<text x="{left + k * cell + 6}" y="{y + cell / 2 + 4:.0f}" fill="#555">R {self.recall[i]:.2f}</text>'
            )
        return svg_open(width, height, standalone=standalone) + "".join(out) + "</svg>"

    def _page_title(self) -> str:
        return self.title or "labkit confusion matrix"


def confusion_view(
    y_true: Any,
    y_pred: Any,
    *,
    labels: Any = None,
    label_names: Any = None,
    title: str = "",
    zero_division: float = 0.0,
) -> ConfusionView:
    """True and predicted labels (or logits [n, classes]) in, the confusion-matrix view out.

    labels: which classes, in which order (default: every value in y_true or y_pred, sorted).
    label_names: display names, one per class (default: the labels themselves). title: shown above.
    zero_division: value of a precision or recall whose denominator is 0 (0.0, 1.0 or nan), as in
        `labkit.evaluation.precision_recall_f1`.
    """
    if not isinstance(title, str):
        raise InvalidInputError(f"title must be a string, got {type(title).__name__}")
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    if labels is None:  # the label order confusion_matrix used: every value present, sorted
        present = np.unique(np.concatenate([_ids(y_true), _ids(y_pred)]))
    else:
        present = np.asarray(list(labels))
    per_class = precision_recall_f1(y_true, y_pred, average=None, labels=present, zero_division=zero_division)
    macro = precision_recall_f1(y_true, y_pred, average="macro", labels=present, zero_division=zero_division)
    if label_names is None:
        names = [str(x) for x in present.tolist()]
    else:
        if isinstance(label_names, str) or len(label_names) != len(present):
            count = 1 if isinstance(label_names, str) else len(label_names)
            raise InvalidInputError(
                f"label_names has {count} entries but there are {len(present)} classes; give one name per class"
            )
        names = [str(n) for n in label_names]
    return ConfusionView(
        counts,
        names,
        per_class.precision,
        per_class.recall,
        per_class.f1,
        per_class.support,
        accuracy(y_true, y_pred),
        macro.f1,
        title,
    )


def _ids(y: Any) -> np.ndarray:
    """Labels or scores in, 1-D labels out (the evaluation package's reading: 2-D scores are argmax-ed)."""
    import torch

    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim == 2:
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.argmax(axis=1)
    return arr.astype(np.int64) if arr.dtype.kind == "f" else arr
