"""ProjectorWidget: the embedding projector as a live anywidget (search box and neighbour list synced with Python).

The page (`widgets/projector.js`) draws the 2-D/3-D points on a canvas and sends what the user asks for
(`query` from the search box, `selected` from a click, `k`, `frame` from the checkpoint slider); Python
answers with `neighbours`, found by cosine in the original embedding space of the current frame
(`labkit.viz.projector.nearest_neighbours`). Coordinates travel as float32 bytes, not JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import numpy as np
import torch
import traitlets as t

from labkit.checks import check_int
from labkit.errors import InvalidInputError, LabkitError
from labkit.frontend import asset_text, module_text, plain_token
from labkit.viz.projector import (
    Neighbour,
    ProjectionResult,
    checkpoint_trajectory,
    embedding_matrix,
    nearest_neighbours,
    project,
)
from labkit.widgets.fallback import StaticFallback

__all__ = ["ProjectorWidget"]


class ProjectorWidget(StaticFallback, anywidget.AnyWidget):
    """Interactive embedding projector: points (PCA / t-SNE / UMAP, 2-D or 3-D), search, neighbours, checkpoint slider.

    Build it with `ProjectorWidget(embeddings, tokens, method=..., dims=...)` or
    `ProjectorWidget.from_checkpoints([...], tokens)`. Set `query` (a token) or `selected` (a row) from Python or
    in the page; `neighbours` follows. `search(token)` does the same and returns the neighbours (raising on errors).
    """

    _esm = module_text("projector.js")
    _css = asset_text("projector.css")

    tokens = t.List(t.Unicode(), help="one label per point (token or sentence)").tag(sync=True)
    labels = t.List(t.Unicode(), help="one category per point (colours, legend); empty for none").tag(sync=True)
    values = t.List(t.Float(), help="one count per point (log colour scale); empty for none").tag(sync=True)
    coords = t.Bytes(b"", help="float32 little-endian coordinates [frames, points, dims]").tag(sync=True)
    shape = t.List(t.Int(), [1, 0, 2], help="[frames, points, dims] of `coords`").tag(sync=True)
    frame_names = t.List(t.Unicode(), help="one name per frame (checkpoint folder names)").tag(sync=True)
    frame = t.Int(0, help="the frame shown (checkpoint index)").tag(sync=True)
    query = t.Unicode("", help="search text: a token to find; the page's search box sets it").tag(sync=True)
    selected = t.Int(None, allow_none=True, help="row of the searched/clicked point, or None").tag(sync=True)
    k = t.Int(10, help="how many neighbours to list").tag(sync=True)
    neighbours = t.List(t.Dict(), help="[{index, token, cosine}] nearest to `selected`, by cosine").tag(sync=True)
    error = t.Unicode("", help="why the last search from the page found nothing (one line)").tag(sync=True)
    info = t.Dict(help="title, method, explained variance").tag(sync=True)

    def __init__(
        self,
        embeddings: Any = None,
        tokens: Sequence[str] | None = None,
        *,
        method: str = "pca",
        dims: int = 2,
        labels: Sequence[Any] | None = None,
        frequencies: Sequence[float] | None = None,
        k: int = 10,
        normalize: bool = False,
        seed: int = 0,
        title: str = "",
        query: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._matrices: list[torch.Tensor] = []
        self._results: list[ProjectionResult] = []
        self._busy = False
        if embeddings is None:
            return
        x = embedding_matrix(embeddings)
        result = project(x, method, dims, normalize=normalize, seed=seed)
        self._load([x], [result], ["0"], tokens, labels, frequencies, k, title or _title(result))
        if query:
            self.search(query)

    @classmethod
    def from_checkpoints(
        cls,
        checkpoints: Sequence[Any],
        tokens: Sequence[str] | None = None,
        *,
        method: str = "pca",
        dims: int = 2,
        key: str | None = None,
        names: Sequence[str] | None = None,
        labels: Sequence[Any] | None = None,
        frequencies: Sequence[float] | None = None,
        k: int = 10,
        normalize: bool = False,
        seed: int = 0,
        title: str = "",
    ) -> ProjectorWidget:
        """Checkpoints of one run (matrices, models or `save_checkpoint` folders) in, a widget with a frame slider out.

        Frames are aligned by Procrustes (see `labkit.viz.projector.checkpoint_trajectory`); neighbours are searched
        in the embedding matrix of the frame shown.
        """
        traj = checkpoint_trajectory(
            checkpoints, method=method, dims=dims, key=key, names=names, normalize=normalize, seed=seed
        )
        widget = cls()
        mats = [embedding_matrix(c, key=key) for c in checkpoints]
        heading = title or f"{method.upper()} per checkpoint ({len(mats)} frames, Procrustes-aligned)"
        frames = [ProjectionResult(f, method) for f in traj.frames]
        widget._load(mats, frames, traj.names, tokens, labels, frequencies, k, heading)
        return widget

    def _load(
        self,
        mats: list[torch.Tensor],
        frames: list[ProjectionResult],
        names: Sequence[str],
        tokens,
        labels,
        frequencies,
        k: int,
        title: str,
    ) -> None:
        n = mats[0].shape[0]
        toks = _per_point("tokens", tokens, n, str) if tokens is not None else [str(i) for i in range(n)]
        self._matrices, self._results = mats, frames
        coords = torch.stack([f.coords.float() for f in frames]).numpy().astype("<f4")
        info = {"title": title, "method": frames[0].method}
        if frames[0].explained_variance is not None:
            info["explained_variance"] = [round(float(v), 6) for v in frames[0].explained_variance]
        with self.hold_trait_notifications():
            self.shape = list(coords.shape)
            self.coords = coords.tobytes()
            self.frame_names = [str(nm) for nm in names]
            self.tokens = toks
            self.labels = _per_point("labels", labels, n, str) if labels is not None else []
            self.values = _per_point("frequencies", frequencies, n, float) if frequencies is not None else []
            self.k = k
            self.info = info

    # ------------------------------------------------------------------ search

    def search(self, query: int | str) -> list[Neighbour]:
        """A token (or a row index) in, its `k` nearest neighbours by cosine out; the page highlights them.

        Raises UnknownNameError (with close matches) for a token not in `tokens`, InvalidInputError for a bad row.
        """
        if not self._matrices:
            raise InvalidInputError(
                "this ProjectorWidget has no embeddings yet; build it with ProjectorWidget(embeddings, tokens)"
            )
        found = nearest_neighbours(self._matrices[self.frame], query, self.tokens, k=self.k)
        row = self.tokens.index(query) if isinstance(query, str) else int(query) % len(self.tokens)
        self._show(row, found, query if isinstance(query, str) else self.tokens[row])
        return found

    def _show(self, row: int | None, found: list[Neighbour], query: str) -> None:
        self._busy = True  # our own trait changes must not start another search
        try:
            with self.hold_trait_notifications():
                self.selected, self.query, self.error = row, query, ""
                self.neighbours = [
                    {"index": nb.index, "token": nb.token, "cosine": round(nb.cosine, 6)} for nb in found
                ]
        finally:
            self._busy = False

    @t.observe("query")
    def _on_query(self, change: dict) -> None:
        if self._busy or not self._matrices:
            return
        if not change["new"]:
            self._show(None, [], "")
            return
        try:
            self.search(change["new"])
        except LabkitError as exc:  # from the page: report it there instead of raising into the kernel log
            self._busy = True
            try:
                self.error, self.neighbours, self.selected = str(exc), [], None
            finally:
                self._busy = False

    @t.observe("selected", "k", "frame")
    def _on_selection(self, change: dict) -> None:
        if self._busy or not self._matrices:
            return
        if self.selected is not None:
            self.search(self.selected)
        elif change["name"] == "selected":
            self._show(None, [], "")

    # ------------------------------------------------------------------ validation

    @t.validate("k")
    def _valid_k(self, proposal: dict) -> int:
        k, n = proposal["value"], self.shape[1]
        if n:
            check_int("k", k, high=n - 1, fix=f"the vocabulary has {n} rows, minus the query")
        return k

    @t.validate("frame")
    def _valid_frame(self, proposal: dict) -> int:
        frames = self.shape[0]
        return check_int("frame", proposal["value"], low=0, high=frames - 1, fix=f"there are {frames} frames")

    @t.validate("selected")
    def _valid_selected(self, proposal: dict) -> int | None:
        n = self.shape[1]
        return check_int("selected", proposal["value"], low=0, high=n - 1, allow_none=True, fix=f"there are {n} points")

    # ------------------------------------------------------------------ static output

    def to_result(self) -> ProjectionResult:
        """The frame shown as a `ProjectionResult` (coords of that frame; PCA details when there is one frame)."""
        if not self._results:
            raise InvalidInputError(
                "this ProjectorWidget has no embeddings yet; build it with ProjectorWidget(embeddings, tokens)"
            )
        return self._results[min(self.frame, len(self._results) - 1)]

    def summary(self) -> str:
        """A text/plain summary: the projection, the frame, and the current search with its neighbours."""
        lines = [self.to_result().summary()]
        if self.shape[0] > 1:
            lines.append(f"frame {self.frame + 1} of {self.shape[0]}: {plain_token(self.frame_names[self.frame])}")
        if self.selected is not None:
            lines.append(
                f"nearest to {plain_token(self.tokens[self.selected])}: "
                + ", ".join(f"{plain_token(str(nb['token']))} {nb['cosine']:.3f}" for nb in self.neighbours)
            )
        return "\n".join(lines)

    def to_svg(self) -> str:
        """The frame shown as an SVG scatter, with the tokens and labels (the static fallback)."""
        return self.to_result().to_svg(self.tokens, self.labels or None)

    def _static_view(self) -> ProjectorWidget | None:
        return self if self._results else None


def _title(result: ProjectionResult) -> str:
    return f"{result.method.upper()} of {result.coords.shape[0]} points ({result.dims}-D)"


def _per_point(name: str, values: Any, n: int, kind: type) -> list:
    if isinstance(values, str):
        raise InvalidInputError(f"{name} must be a sequence with one entry per point, got one string; pass a list")
    values = list(values.tolist() if isinstance(values, (torch.Tensor, np.ndarray)) else values)
    if len(values) != n:
        raise InvalidInputError(f"got {len(values)} {name} for {n} points; pass exactly one per row of the embeddings")
    return [kind(v) for v in values]
