"""Patching heatmap: how much of the clean answer each patched activation recovers, layers x positions or layers x heads.

`patching_view(result)` draws a `labkit.interpret.PatchingResult` as `recovered` = (patched - corrupted) /
(clean - corrupted): red cells restore the clean answer (1 = fully), blue cells push it further away, white
cells do nothing. A layer x position x head result gets a position selector. Hover a cell for its value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labkit.errors import InvalidInputError
from labkit.frontend import plain_token
from labkit.interpret import PatchingResult
from labkit.viz.interpret_base import LookView, diverging_colors, heatmap_svg

__all__ = ["PatchingView", "patching_view", "patching_spec"]


def _axes(result: PatchingResult) -> tuple[list[str], list[str]]:
    """Column labels for the 2-D picture: positions (token text) or heads."""
    if result.dims[-1] == "head" or result.dims == ("layer", "head"):
        return [f"L{x}" for x in result.layers], [f"H{h}" for h in range(result.scores.shape[-1])]
    if result.dims == ("layer",):
        return [f"L{x}" for x in result.layers], ["all positions"]
    return [f"L{x}" for x in result.layers], [f"{i}:{t}" for i, t in enumerate(result.tokens)]


def patching_spec(result: PatchingResult, title: str = "") -> dict:
    """A PatchingResult in, the JSON-able spec `widgets/interpret.js` draws as a heatmap out."""
    rec = result.recovered.numpy().astype(float)
    rows, cols = _axes(result)
    return {
        "kind": "patch",
        "title": title,
        "hook": result.hook,
        "dims": list(result.dims),
        "recovered": np.round(rec, 5).tolist(),
        "rows": rows,
        "cols": cols,
        "tokens": result.tokens,
        "corrupted_tokens": result.corrupted_tokens,
        "clean_metric": result.clean_metric,
        "corrupted_metric": result.corrupted_metric,
    }


@dataclass
class PatchingView(LookView):
    """A rendered patching sweep; display it in a notebook, `save_html(path)` it, or read `result`."""

    result: PatchingResult
    title: str = ""
    kind = "patch"

    def spec(self) -> dict:
        """The JSON-able description the front end mounts."""
        return patching_spec(self.result, self.title)

    def matrix(self) -> np.ndarray:
        """The 2-D picture of `recovered`: [layer, pos], [layer, head], [layer, 1], or for [layer, pos, head] the last position."""
        rec = self.result.recovered.numpy()
        if rec.ndim == 1:
            return rec[:, None]
        if rec.ndim == 3:  # [layer, pos, head]: the static picture shows the last position
            return rec[:, -1, :]
        return rec

    def colors(self) -> np.ndarray:
        """RGB [layers, columns, 3], the top row the last layer."""
        return diverging_colors(self.matrix()[::-1], 1.0)

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: the heatmap with layer and position/head labels (escaped text)."""
        rows, cols = _axes(self.result)
        m = self.matrix()[::-1]
        what = {"head_out": "head outputs"}.get(self.result.hook, self.result.hook)
        at = ", last position" if self.result.scores.dim() == 3 else ""
        return heatmap_svg(
            self.colors(),
            tips=[[f"{v:+.3f}" for v in row] for row in m],
            row_labels=rows[::-1],
            col_labels=cols,
            title=(self.title + ": " if self.title else "") + f"patching {what}{at}: fraction of the answer recovered",
            standalone=standalone,
        )

    def summary(self) -> str:
        """A text/plain summary: clean and corrupted metric, and the patches that recover most."""
        r = self.result
        lines = [plain_token(self.title)] if self.title else []
        lines.append(
            f"PatchingView: {r.hook} by {' x '.join(r.dims)}; metric clean {r.clean_metric:+.3f}, corrupted {r.corrupted_metric:+.3f}"
        )
        for index, value in r.top(8):
            where = ", ".join(f"{d} {i}" for d, i in zip(r.dims, index))
            lines.append(f"  {where}: recovers {value:+.2f}")
        return "\n".join(lines)


def patching_view(result: PatchingResult, *, title: str = "") -> PatchingView:
    """A `PatchingResult` (from `labkit.interpret.activation_patching`) in, the heatmap view out."""
    if not isinstance(result, PatchingResult):
        raise InvalidInputError(
            f"patching_view draws a PatchingResult, got {type(result).__name__}; compute one with "
            "labkit.interpret.activation_patching(model, clean_ids, corrupted_ids, answer=..., wrong=...)"
        )
    result.recovered  # noqa: B018 - raises the one-line error when clean and corrupted agree
    return PatchingView(result, title)
