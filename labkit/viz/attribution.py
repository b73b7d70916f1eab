"""Attribution heatmap over input tokens: one row per `Attribution` (a method, or an example), tokens coloured by score.

Red tokens push the explained output up, blue ones push it down (for rollout, which has no sign, deeper red is
more attention flow). Each row is scaled by its own largest |score| unless `shared_scale=True` (a button in the
page switches). Hover a token for its score; the row's caption says what is explained and, for integrated
gradients, how well completeness holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit.errors import InvalidInputError
from labkit.frontend import plain_token
from labkit.interpret import Attribution
from labkit.viz.interpret_base import LookView, diverging_colors, token_rows_svg

__all__ = ["AttributionView", "attribution_view", "attribution_spec", "METHOD_NAMES"]

METHOD_NAMES = {
    "integrated_gradients": "integrated gradients",
    "gradient_x_input": "gradient \u00d7 input",
    "attention_rollout": "attention rollout",
}


def _caption(a: Attribution, label: str) -> str:
    head = label or METHOD_NAMES.get(a.method, a.method)
    note = a.completeness() if a.delta is not None else ""
    return f"{head} \u00b7 {a.explains}" + (f" \u00b7 {note}" if note else "")


def attribution_spec(
    rows: Sequence[Attribution], labels: Sequence[str], title: str = "", shared_scale: bool = False
) -> dict:
    """Attributions and a label per row in, the JSON-able spec `widgets/interpret.js` draws as token rows out."""
    return {
        "kind": "attr",
        "title": title,
        "shared_scale": shared_scale,
        "rows": [
            {
                "label": label or METHOD_NAMES.get(a.method, a.method),
                "caption": _caption(a, label),
                "method": a.method,
                "tokens": a.tokens,
                "scores": [round(float(s), 6) for s in a.scores.tolist()],
                "relative_error": a.relative_error,
            }
            for a, label in zip(rows, labels)
        ],
    }


@dataclass
class AttributionView(LookView):
    """Rendered attributions; display it in a notebook, `save_html(path)` it, or read `rows`."""

    rows: list[Attribution]
    labels: list[str]
    title: str = ""
    shared_scale: bool = False
    kind = "attr"

    def spec(self) -> dict:
        """The JSON-able description the front end mounts."""
        return attribution_spec(self.rows, self.labels, self.title, self.shared_scale)

    def _scales(self) -> list[float]:
        peaks = [float(a.scores.abs().max()) if len(a.tokens) else 1.0 for a in self.rows]
        return [max(peaks)] * len(peaks) if self.shared_scale else peaks

    def colors(self) -> np.ndarray:
        """RGB [rows, longest row, 3] (short rows padded with white)."""
        width = max(len(a.tokens) for a in self.rows)
        out = np.full((len(self.rows), width, 3), 255, np.uint8)
        for i, (a, s) in enumerate(zip(self.rows, self._scales())):
            out[i, : len(a.tokens)] = diverging_colors(a.scores.numpy(), s)
        return out

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: each row's tokens on their colours, with the row's caption (escaped text)."""
        rows = [
            (_caption(a, label), a.tokens, diverging_colors(a.scores.numpy(), s))
            for a, label, s in zip(self.rows, self.labels, self._scales())
        ]
        return token_rows_svg(
            rows, title=self.title or "attribution (red: pushes the output up, blue: down)", standalone=standalone
        )

    def summary(self) -> str:
        """A text/plain listing: per row its caption and every token with its score."""
        lines = [plain_token(self.title)] if self.title else []
        lines.append(f"AttributionView: {len(self.rows)} row(s)")
        for a, label in zip(self.rows, self.labels):
            lines.append(plain_token(_caption(a, label)))
            lines.append(
                "  " + " ".join(f"{plain_token(t)}:{s:+.3f}" for t, s in zip(a.tokens[:40], a.scores.tolist()))
            )
        return "\n".join(lines)


def attribution_view(
    attributions: Attribution | Sequence[Attribution],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    shared_scale: bool = False,
) -> AttributionView:
    """One or more `Attribution`s (methods side by side, or several examples) in, the token heatmap view out.

    labels: one name per row (default: the method). shared_scale: one colour scale for all rows instead of one per row.
    """
    rows = [attributions] if isinstance(attributions, Attribution) else list(attributions)
    if not rows or not all(isinstance(a, Attribution) for a in rows):
        raise InvalidInputError(
            "attribution_view draws Attribution records; compute them with labkit.interpret.attribute(model, ids) "
            "or attention_rollout(model, ids)"
        )
    labels = list(labels) if labels is not None else [""] * len(rows)
    if len(labels) != len(rows):
        raise InvalidInputError(f"got {len(labels)} labels for {len(rows)} rows; give one label per attribution")
    return AttributionView(rows, [str(x) for x in labels], title, bool(shared_scale))
