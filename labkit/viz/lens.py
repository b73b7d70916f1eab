"""Logit-lens grid: depth x position, each cell the top token at that depth and its probability.

`logit_lens_view(lens)` draws a `labkit.interpret.LogitLens`: rows are depths (the embeddings at the bottom,
the model's output at the top, as the residual stream flows up), columns are input positions. A cell shows the
top token; its colour is the top token's probability, the target's probability, or the entropy (buttons in the
page switch). Hovering or clicking a cell lists its top-k tokens and the target's rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labkit.checks import check_choice
from labkit.errors import InvalidInputError
from labkit.frontend import plain_token
from labkit.interpret import LogitLens
from labkit.viz.interpret_base import LookView, finite, heatmap_svg, sequential_colors

__all__ = ["LogitLensView", "logit_lens_view", "lens_spec", "COLOR_BY"]

COLOR_BY = ("top", "target", "entropy")


def lens_spec(lens: LogitLens, title: str = "", color_by: str = "top") -> dict:
    """A LogitLens in, the JSON-able spec `widgets/interpret.js` draws as a lens grid out."""
    return {
        "kind": "lens",
        "title": title,
        "color_by": color_by,
        "tokens": lens.tokens,
        "labels": lens.labels,
        "top_tokens": lens.top_tokens,
        "top_probs": np.round(lens.top_probs.numpy().astype(float), 4).tolist(),
        "target_tokens": lens.target_tokens,
        "target_kind": lens.target_kind,
        "target_probs": [[finite(p) for p in row] for row in lens.target_probs.tolist()],
        "target_ranks": lens.target_ranks.tolist(),
        "entropy": np.round(lens.entropy.numpy().astype(float), 4).tolist(),
        "max_entropy": max(float(lens.entropy.max()), 1e-8),
    }


@dataclass
class LogitLensView(LookView):
    """A rendered logit lens; display it in a notebook, `save_html(path)` it, or read `lens`."""

    lens: LogitLens
    title: str = ""
    color_by: str = "top"
    kind = "lens"

    def spec(self) -> dict:
        """The JSON-able description the front end mounts."""
        return lens_spec(self.lens, self.title, self.color_by)

    def _values(self) -> np.ndarray:
        if self.color_by == "target":
            return self.lens.target_probs.numpy()
        if self.color_by == "entropy":
            e = self.lens.entropy.numpy()
            return e / max(float(e.max()), 1e-8)
        return self.lens.top_probs[..., 0].numpy()

    def colors(self) -> np.ndarray:
        """RGB per cell, final depth on top: [rows, positions, 3]."""
        return sequential_colors(self._values()[::-1])

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: the grid with each cell's top token, coloured like the page (escaped text)."""
        lens = self.lens
        top = [[lens.top_tokens[r][p][0] for p in range(len(lens.tokens))] for r in range(lens.n_rows)][::-1]
        probs = lens.top_probs[..., 0].tolist()[::-1]
        tips = [[f"{t!r} {pr:.3f}" for t, pr in zip(row, prow)] for row, prow in zip(top, probs)]
        what = {"top": "top-token probability", "target": "target probability", "entropy": "entropy"}[self.color_by]
        return heatmap_svg(
            self.colors(),
            texts=top,
            tips=tips,
            row_labels=lens.labels[::-1],
            col_labels=lens.tokens,
            title=(self.title + ": " if self.title else "") + f"logit lens, colour = {what}",
            standalone=standalone,
        )

    def summary(self) -> str:
        """A text/plain table: the top token at every depth (rows) and position (columns)."""
        lens = self.lens
        lines = [plain_token(self.title)] if self.title else []
        lines.append(f"LogitLensView: {lens.n_rows} depths x {len(lens.tokens)} positions (top token, probability)")
        for r in reversed(range(lens.n_rows)):
            cells = [
                f"{plain_token(lens.top_tokens[r][p][0])} {lens.top_probs[r, p, 0]:.2f}"
                for p in range(len(lens.tokens))
            ]
            lines.append(f"{lens.labels[r]:>5} | " + " | ".join(cells[:12]) + (" | ..." if len(cells) > 12 else ""))
        lines.append("input | " + " | ".join(plain_token(t) for t in lens.tokens[:12]))
        return "\n".join(lines)


def logit_lens_view(lens: LogitLens, *, title: str = "", color_by: str = "top") -> LogitLensView:
    """A `LogitLens` (from `labkit.interpret.logit_lens`) in, the interactive grid view out.

    color_by: what the cell colour shows at first: "top" (top-token probability), "target" or "entropy".
    """
    if not isinstance(lens, LogitLens):
        raise InvalidInputError(
            f"logit_lens_view draws a LogitLens, got {type(lens).__name__}; compute one with labkit.interpret.logit_lens(model, ids)"
        )
    return LogitLensView(lens, title, check_choice("color_by", color_by, COLOR_BY))
