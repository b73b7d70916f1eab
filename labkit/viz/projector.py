"""Embedding projector: embedding matrices (tokens, sentences, checkpoints) in; 2-D/3-D maps, neighbours and figures out.

`project` reduces [n, d] embeddings with PCA (exact SVD, or `torch.pca_lowrank` when both sides are large),
t-SNE (scikit-learn) or UMAP (umap-learn, optional). `nearest_neighbours` searches by cosine in the original
space, never in the 2-D picture, whose distances lie. `projector_figure` draws a plotly scatter coloured by label
or frequency, with escaped hover text and an optional search highlight. `checkpoint_trajectory` projects every
checkpoint of a run and aligns each frame to the previous one by orthogonal Procrustes (rotation/reflection
only, no scaling), so moving points mean learning, not a spinning axis.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from labkit.checks import check_float, check_int, check_tensor
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches
from labkit.frontend import svg_open

__all__ = [
    "METHODS",
    "ProjectionResult",
    "Neighbour",
    "Trajectory",
    "embedding_matrix",
    "project",
    "nearest_neighbours",
    "token_frequencies",
    "procrustes",
    "projector_figure",
    "checkpoint_trajectory",
]

METHODS = ("pca", "tsne", "umap")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# token-embedding tensors of labkit models, in the order they are tried (GPT, Encoder, LSTMLM, Seq2Seq)
EMBEDDING_KEYS = ("wte.weight", "embeddings.token.weight", "embed.weight", "src_embed.weight", "tgt_embed.weight")
_EXACT_PCA_LIMIT = 2048  # above this on both sides, randomized PCA (torch.pca_lowrank) is much faster and as good


def embedding_matrix(source: Any, *, key: str | None = None) -> torch.Tensor:
    """An embedding source in, a float32 matrix [n, d] out.

    source: a tensor/array [n, d]; an `nn.Embedding`; a labkit model (its token embedding) or any model with
    `get_input_embeddings()`; or a checkpoint folder / run folder written by `labkit.training.save_checkpoint`.
    key: the state-dict name to read (default: the first of `EMBEDDING_KEYS` present).
    """
    if isinstance(source, (str, os.PathLike)):
        from safetensors import safe_open

        from labkit.training.checkpoint import resolve_checkpoint

        folder = resolve_checkpoint(source)
        with safe_open(os.fspath(folder / "model.safetensors"), framework="pt") as f:
            keys = list(f.keys())
            name = key or next((k for k in EMBEDDING_KEYS if k in keys), None)
            if name is None or name not in keys:
                raise UnknownNameError(
                    f"checkpoint {os.fspath(folder)!r} has no tensor {name or 'token embedding'!r}; "
                    f"{close_matches(name or 'embed.weight', keys) or 'pass key= one of its tensors'}"
                )
            return _as_matrix(f.get_tensor(name), f"{folder.name}:{name}")
    if isinstance(source, nn.Embedding):
        return _as_matrix(source.weight, "nn.Embedding")
    if isinstance(source, nn.Module):
        state = dict(source.named_parameters())
        name = key or next((k for k in EMBEDDING_KEYS if k in state), None)
        if name is not None and name in state:
            return _as_matrix(state[name], name)
        if key is None and hasattr(source, "get_input_embeddings"):
            return _as_matrix(source.get_input_embeddings().weight, "input embeddings")
        raise UnknownNameError(
            f"{type(source).__name__} has no parameter {key or 'token embedding'!r}; "
            f"{close_matches(key or 'embed.weight', state) or 'pass key= one of its parameters'}"
        )
    return _as_matrix(source, "embeddings")


def _as_matrix(x: Any, what: str, min_rows: int = 2) -> torch.Tensor:
    t = check_tensor(what, x, fix="pass a [n, d] tensor, a model or a checkpoint")
    if t.dim() != 2 or t.shape[0] < min_rows or t.shape[1] < 1:
        raise InvalidInputError(f"{what} must be a matrix [n >= {min_rows}, d], got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InvalidInputError(f"{what} has NaN or inf values; check the model or checkpoint")
    return t


class Neighbour(NamedTuple):
    """One nearest neighbour: row index, its token (or None), cosine similarity to the query."""

    index: int
    token: str | None
    cosine: float


@dataclass
class ProjectionResult:
    """Coordinates [n, dims] of a projection, with what made them (method; PCA's components and explained variance)."""

    coords: torch.Tensor  # [n, dims] float32
    method: str
    explained_variance: torch.Tensor | None = None  # PCA: share of the total variance per component
    components: torch.Tensor | None = field(default=None, repr=False)  # PCA: [dims, d] unit directions
    mean: torch.Tensor | None = field(default=None, repr=False)  # PCA: [d], subtracted before projecting

    @property
    def dims(self) -> int:
        """Number of output dimensions (2 or 3)."""
        return int(self.coords.shape[1])

    def summary(self) -> str:
        """A text/plain summary: method, points, dims and (PCA) explained variance."""
        line = f"ProjectionResult({self.method}, {self.coords.shape[0]} points -> {self.dims}-D)"
        if self.explained_variance is not None:
            ev = ", ".join(f"{v:.1%}" for v in self.explained_variance.tolist())
            line += f"; explained variance {ev} (total {float(self.explained_variance.sum()):.1%})"
        return line

    def __repr__(self) -> str:
        return self.summary()

    def to_svg(
        self,
        tokens: Sequence[str] | None = None,
        labels: Sequence[Any] | None = None,
        *,
        size: int = 420,
        standalone: bool = True,
    ) -> str:
        """The static fallback: an SVG scatter of the first two coordinates; escaped tokens as point titles.

        labels: one label per point (colours). standalone: include the SVG namespace (for an .svg file).
        """
        xy = self.coords[:, :2].numpy().astype(np.float64)
        lo, hi = xy.min(0), xy.max(0)
        pts = (
            10 + (xy - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-12) * (size - 20) + (size - 20) / 2
        )  # aspect kept
        colors = _label_colors(labels, len(xy)) if labels is not None else [PALETTE[0]] * len(xy)
        step = max(1, math.ceil(len(xy) / 5000))  # a big vocabulary: every step-th point keeps the file small
        caption = self.summary()[:90] + (
            f" ({len(range(0, len(xy), step))} of {len(xy)} points drawn, one in {step}; projector_figure shows all)"
            if step > 1
            else ""
        )
        out = [
            svg_open(size, size + 20, standalone=standalone),
            f'<text x="4" y="{size + 14}">{html.escape(caption)}</text>',
        ]
        r = 3 if len(xy) <= 2000 else 1.5
        for i in range(0, len(xy), step):
            x, y = pts[i]
            title = f"<title>{html.escape(str(tokens[i]))}</title>" if tokens is not None else ""
            out.append(
                f'<circle cx="{x:.1f}" cy="{size - y:.1f}" r="{r}" fill="{colors[i]}" fill-opacity="0.7">{title}</circle>'
            )
        out.append("</svg>")
        return "".join(out)


def _label_colors(labels: Sequence[Any], n: int) -> list[str]:
    labels = _check_length("labels", labels, n)
    order = {v: i for i, v in enumerate(dict.fromkeys(labels))}
    return [PALETTE[order[v] % len(PALETTE)] for v in labels]


def _check_length(name: str, values: Sequence[Any] | None, n: int) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, str):
        raise InvalidInputError(f"{name} must be a sequence with one entry per point, got one string; pass a list")
    values = list(values.tolist() if isinstance(values, (torch.Tensor, np.ndarray)) else values)
    if len(values) != n:
        raise InvalidInputError(f"got {len(values)} {name} for {n} points; pass exactly one per row of the embeddings")
    return values


def _check_method(method: str, dims: int, n: int) -> None:
    if method not in METHODS:
        raise UnknownNameError(
            f"unknown projection method {method!r}; {close_matches(method, METHODS) or 'choose one of ' + ', '.join(METHODS)}"
        )
    if isinstance(dims, bool) or dims not in (2, 3):
        raise InvalidInputError(f"dims must be 2 or 3, got {dims!r}")
    if method == "tsne" and n < 5:
        raise InvalidInputError(f"t-SNE needs at least 5 points, got {n}; use method='pca'")


def _pca(x: torch.Tensor, dims: int) -> ProjectionResult:
    xd = x.double()
    mean = xd.mean(0)
    xc = xd - mean
    total = xc.pow(2).sum()
    if min(xc.shape) > _EXACT_PCA_LIMIT:
        _, _, v = torch.pca_lowrank(xc, q=min(dims + 10, min(xc.shape)), center=False, niter=6)
        vt = v[:, :dims].T
    else:
        vt = torch.linalg.svd(xc, full_matrices=False).Vh[:dims]
    # a fixed sign per component (largest loading positive) so reruns and neighbouring frames agree
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True))).squeeze(1)
    vt = vt * torch.where(signs == 0, torch.ones_like(signs), signs)[:, None]
    coords = xc @ vt.T
    ratio = coords.pow(2).sum(0) / total if total > 0 else torch.zeros(dims, dtype=torch.float64)
    if vt.shape[0] < dims:  # fewer features than dims: pad with zeros so the picture still has `dims` axes
        coords = torch.cat([coords, coords.new_zeros(coords.shape[0], dims - vt.shape[0])], 1)
        ratio = torch.cat([ratio, ratio.new_zeros(dims - vt.shape[0])])
    return ProjectionResult(coords.float(), "pca", ratio.float(), vt.float(), mean.float())


def project(
    embeddings: Any,
    method: str = "pca",
    dims: int = 2,
    *,
    normalize: bool = False,
    seed: int = 0,
    perplexity: float | None = None,
    n_neighbors: int = 15,
    init: Any = None,
) -> ProjectionResult:
    """Embeddings [n, d] (or anything `embedding_matrix` reads) in, a `ProjectionResult` with coords [n, dims] out.

    method: "pca" (exact SVD; randomized when both sides exceed 2048), "tsne" (scikit-learn) or "umap"
    (needs `pip install umap-learn`). dims: 2 or 3. normalize: L2-normalise rows first (cosine geometry, good
    for sentence embeddings). seed: t-SNE/UMAP random state. perplexity: t-SNE (default min(30, (n-1)/3)).
    n_neighbors: UMAP. init: t-SNE starting coordinates [n, dims] (default PCA).
    """
    x = embedding_matrix(embeddings)
    n = x.shape[0]
    _check_method(method, dims, n)
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
    if method == "pca":
        return _pca(x, dims)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise MissingSourceError(
                "method='umap' needs the umap-learn package; run: pip install umap-learn (or use method='tsne')"
            ) from None
        reducer = umap.UMAP(n_components=dims, n_neighbors=min(n_neighbors, n - 1), random_state=seed)
        return ProjectionResult(torch.as_tensor(reducer.fit_transform(x.numpy()), dtype=torch.float32), "umap")
    from sklearn.manifold import TSNE

    perplexity = perplexity if perplexity is not None else min(30.0, max(2.0, (n - 1) / 3))
    check_float(
        "perplexity", perplexity, low=0, high=n, low_open=True, high_open=True, fix=f"try {max(2.0, (n - 1) / 3):.0f}"
    )
    if init is None:
        start: Any = "pca"
    else:
        start = _as_matrix(init, "init").numpy().astype(np.float64)
        if start.shape != (n, dims):
            raise InvalidInputError(f"init must have shape {(n, dims)}, got {start.shape}")
    # exact gradients are faster than Barnes-Hut's tree below a few hundred points, and a little more accurate
    tsne = TSNE(
        n_components=dims,
        perplexity=perplexity,
        init=start,
        random_state=seed,
        method="exact" if n <= 300 else "barnes_hut",
    )
    return ProjectionResult(
        torch.as_tensor(tsne.fit_transform(x.numpy().astype(np.float64)), dtype=torch.float32), "tsne"
    )


def _find_token(token: str, tokens: Sequence[str] | None) -> int:
    if tokens is None:
        raise InvalidInputError(
            f"cannot look up {token!r} without tokens; pass tokens= (one string per row) or a row index"
        )
    try:
        return list(tokens).index(token)
    except ValueError:
        hint = close_matches(token, dict.fromkeys(tokens)) or "pass one of the tokens or a row index"
        raise UnknownNameError(f"token {token!r} is not in the vocabulary; {hint}") from None


def nearest_neighbours(
    embeddings: Any, query: int | str | Any, tokens: Sequence[str] | None = None, k: int = 10
) -> list[Neighbour]:
    """Embeddings [n, d] and a query (row index, token string or a [d] vector) in, its k nearest rows by cosine out.

    The query row itself is left out. tokens: one string per row (needed for a string query; shown in results).
    k: how many neighbours (at most n - 1 for a row query).
    """
    x = embedding_matrix(embeddings)
    n = x.shape[0]
    toks = _check_length("tokens", tokens, n) if tokens is not None else None
    if isinstance(query, str):
        row: int | None = _find_token(query, toks)
    elif isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        row = int(query)
        if not -n <= row < n:
            raise InvalidInputError(f"query row {row} is out of range for {n} embeddings (0..{n - 1})")
        row %= n
    else:
        row = None
    q = x[row] if row is not None else _as_matrix(torch.as_tensor(query).reshape(1, -1), "query vector", 1)[0]
    if q.shape[0] != x.shape[1]:
        raise InvalidInputError(f"query vector has {q.shape[0]} dimensions but the embeddings have {x.shape[1]}")
    limit = n - 1 if row is not None else n
    check_int("k", k, high=limit, fix=f"the vocabulary has {n} rows{', minus the query' if row is not None else ''}")
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    sims = xn @ torch.nn.functional.normalize(q.double(), dim=0)
    if row is not None:
        sims[row] = -math.inf
    values, idx = torch.topk(sims, k)
    return [Neighbour(int(i), toks[int(i)] if toks is not None else None, float(v)) for v, i in zip(values, idx)]


def token_frequencies(ids: Any, vocab_size: int) -> torch.Tensor:
    """Token ids (any shape) and the vocabulary size in, the count of every id [vocab_size] out (for colouring)."""
    check_int("vocab_size", vocab_size, fix="the tokenizer's vocab_size")
    t = torch.as_tensor(ids).reshape(-1)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:  # .long() would truncate 1.7 to id 1
        raise InvalidInputError(f"token ids must be integers, got dtype {t.dtype}; pass the ids from encode()")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= vocab_size):
        raise InvalidInputError(f"token ids must lie in 0..{vocab_size - 1}, got range {int(t.min())}..{int(t.max())}")
    return torch.bincount(t, minlength=vocab_size)


def procrustes(moving: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two point sets [n, k] in, (moving aligned onto reference, the orthogonal matrix R [k, k]) out.

    Minimises ||(moving - mean) R + ref_mean - reference|| over orthogonal R (rotation or reflection, no scaling).
    """
    a, b = moving.double(), reference.double()
    ma, mb = a.mean(0), b.mean(0)
    u, _, vh = torch.linalg.svd((a - ma).T @ (b - mb))
    r = u @ vh
    return ((a - ma) @ r + mb).float(), r.float()


def _traces(
    coords: torch.Tensor, tokens: list[str], labels: list[Any], freqs: list[float], hover: list[str], big: bool
) -> list:
    import plotly.graph_objects as go

    c = coords.numpy()
    three = c.shape[1] == 3
    text = [html.escape(str(t)) for t in tokens] if tokens else [str(i) for i in range(len(c))]
    extra = [html.escape(str(h)) for h in hover] if hover else [""] * len(c)
    scatter = go.Scatter3d if three else (go.Scattergl if big else go.Scatter)

    def one(rows: list[int], name: str | None, marker: dict) -> Any:
        xyz = dict(x=c[rows, 0], y=c[rows, 1], **({"z": c[rows, 2]} if three else {}))
        return scatter(
            **xyz,
            mode="markers",
            name=name,
            showlegend=name is not None,
            marker=marker,
            text=[text[i] for i in rows],
            customdata=[[i, extra[i]] for i in rows],
            hovertemplate="%{text}<br>row %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        )

    size = 3 if three else 6
    if labels:
        groups: dict[Any, list[int]] = {}
        for i, v in enumerate(labels):
            groups.setdefault(v, []).append(i)
        return [
            one(rows, html.escape(str(v)), dict(size=size, color=PALETTE[j % len(PALETTE)], opacity=0.75))
            for j, (v, rows) in enumerate(groups.items())
        ]
    if freqs:
        color = np.log10(1 + np.asarray(freqs, dtype=np.float64))
        return [
            one(
                list(range(len(c))),
                None,
                dict(size=size, color=color, colorscale="Viridis", opacity=0.8, colorbar=dict(title="log10(1+count)")),
            )
        ]
    return [one(list(range(len(c))), None, dict(size=size, color=PALETTE[0], opacity=0.7))]


def projector_figure(
    embeddings: Any,
    tokens: Sequence[str] | None = None,
    *,
    method: str = "pca",
    dims: int = 2,
    labels: Sequence[Any] | None = None,
    frequencies: Sequence[float] | None = None,
    hover: Sequence[str] | None = None,
    search: int | str | None = None,
    k: int = 10,
    normalize: bool = False,
    seed: int = 0,
    title: str = "",
) -> Any:
    """Embeddings (or a `ProjectionResult`) and tokens in, a plotly 2-D/3-D scatter out.

    labels: one category per point (one colour each, legend). frequencies: one count per point (log colour scale;
    see `token_frequencies`). hover: extra text per point. search: a token or row whose k cosine neighbours (in the
    original space) are ringed and listed in the title. method/dims/normalize/seed: see `project`.
    """
    import plotly.graph_objects as go

    result = embeddings if isinstance(embeddings, ProjectionResult) else None
    n = result.coords.shape[0] if result is not None else embedding_matrix(embeddings).shape[0]
    toks = [str(t) for t in _check_length("tokens", tokens, n)]
    lab, freqs, extra = (
        _check_length("labels", labels, n),
        _check_length("frequencies", frequencies, n),
        _check_length("hover", hover, n),
    )
    if search is not None and result is not None:
        raise InvalidInputError(
            "search needs the embeddings themselves (cosine in the original space), not a ProjectionResult"
        )
    neighbours = nearest_neighbours(embeddings, search, toks or None, k=min(k, n - 1)) if search is not None else []
    if result is None:
        result = project(embeddings, method, dims, normalize=normalize, seed=seed)
    fig = go.Figure(_traces(result.coords, toks, lab, freqs, extra, n > 5000))
    heading = html.escape(title or f"{result.method.upper()} of {n} embeddings")
    if neighbours:
        row = search if not isinstance(search, str) else toks.index(search)
        rows = [int(row) % n] + [nb.index for nb in neighbours]
        c = result.coords.numpy()[rows]
        names = [html.escape(toks[i] if toks else str(i)) for i in rows]
        xyz = dict(x=c[:, 0], y=c[:, 1], **({"z": c[:, 2]} if result.dims == 3 else {}))
        scatter = go.Scatter3d if result.dims == 3 else go.Scatter
        fig.add_trace(
            scatter(
                **xyz,
                mode="markers+text",
                text=names,
                textposition="top center",
                name="search",
                marker=dict(
                    size=[14] + [9] * len(neighbours), color="rgba(0,0,0,0)", line=dict(color="#d62728", width=2)
                ),
                hoverinfo="text",
            )
        )
        heading += "<br>" + html.escape(
            f"nearest to {names[0]}: " + ", ".join(f"{names[j + 1]} {nb.cosine:.2f}" for j, nb in enumerate(neighbours))
        )
    fig.update_layout(
        title=heading, height=600, legend=dict(itemsizing="constant"), margin=dict(l=10, r=10, t=70, b=10)
    )
    return fig


@dataclass
class Trajectory:
    """Projected, aligned frames of a run: one [n, dims] coords tensor per checkpoint, and how they were aligned."""

    frames: list[torch.Tensor]
    names: list[str]
    method: str
    rotations: list[torch.Tensor]  # per frame the orthogonal matrix applied (identity for the first)
    displacement_raw: list[float]  # root-mean-square distance the points moved from the previous frame, unaligned
    displacement: list[float]  # the same after alignment (never larger: Procrustes minimises exactly this)

    def summary(self) -> str:
        """A text/plain summary: frames, method, and how much alignment removed."""
        moved = sum(self.displacement_raw[1:]), sum(self.displacement[1:])
        return (
            f"Trajectory({self.method}, {len(self.frames)} frames of {self.frames[0].shape[0]} points): "
            f"rms movement {moved[0]:.3g} before alignment, {moved[1]:.3g} after ({', '.join(self.names[:6])}"
            f"{', ...' if len(self.names) > 6 else ''})"
        )

    def __repr__(self) -> str:
        return self.summary()

    def to_figure(
        self,
        tokens: Sequence[str] | None = None,
        *,
        labels: Sequence[Any] | None = None,
        frequencies: Sequence[float] | None = None,
        title: str = "",
    ) -> Any:
        """A plotly figure with one animation frame per checkpoint, a slider and a play button; fixed axes."""
        import plotly.graph_objects as go

        n = self.frames[0].shape[0]
        toks = [str(t) for t in _check_length("tokens", tokens, n)]
        lab, freqs = _check_length("labels", labels, n), _check_length("frequencies", frequencies, n)
        make = lambda f: _traces(f, toks, lab, freqs, [], n > 5000)  # noqa: E731
        allc = torch.cat(self.frames).numpy()
        lo, hi = allc.min(0), allc.max(0)
        pad = 0.05 * (hi - lo + 1e-9)
        ranges = [[float(lo[i] - pad[i]), float(hi[i] + pad[i])] for i in range(allc.shape[1])]
        fig = go.Figure(
            make(self.frames[0]), frames=[go.Frame(data=make(f), name=name) for f, name in zip(self.frames, self.names)]
        )
        steps = [
            dict(
                method="animate",
                label=html.escape(name),
                args=[[name], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
            )
            for name in self.names
        ]
        axes = (
            {"scene": dict(xaxis=dict(range=ranges[0]), yaxis=dict(range=ranges[1]), zaxis=dict(range=ranges[2]))}
            if len(ranges) == 3
            else {"xaxis": dict(range=ranges[0]), "yaxis": dict(range=ranges[1])}
        )
        play = dict(
            label="play", method="animate", args=[None, dict(frame=dict(duration=500, redraw=True), fromcurrent=True)]
        )
        fig.update_layout(
            title=html.escape(title or f"{self.method.upper()} per checkpoint, Procrustes-aligned"),
            height=600,
            sliders=[dict(steps=steps, currentvalue=dict(prefix="checkpoint: "))],
            updatemenus=[dict(type="buttons", buttons=[play], x=0, y=0, xanchor="right", yanchor="top")],
            **axes,
        )
        return fig


def _rms(d: torch.Tensor) -> float:
    return float(d.double().pow(2).sum(1).mean().sqrt())


def checkpoint_trajectory(
    checkpoints: Sequence[Any],
    *,
    method: str = "pca",
    dims: int = 2,
    key: str | None = None,
    names: Sequence[str] | None = None,
    align: bool = True,
    normalize: bool = False,
    seed: int = 0,
) -> Trajectory:
    """Checkpoints of a run (embedding matrices, models, or folders from `save_checkpoint`) in, an aligned `Trajectory` out.

    Each checkpoint is projected on its own (t-SNE starts from the previous frame), then rotated onto the previous
    aligned frame by `procrustes`. key: state-dict name of the embedding (see `embedding_matrix`). names: frame labels
    (default: folder names, else 0, 1, ...). align: False keeps raw projections (to see the spin alignment removes).
    """
    if isinstance(checkpoints, (str, os.PathLike, torch.Tensor, np.ndarray)) or len(checkpoints) < 1:
        raise InvalidInputError("checkpoints must be a non-empty list (of matrices, models or checkpoint folders)")
    mats = [embedding_matrix(c, key=key) for c in checkpoints]
    shapes = sorted({tuple(m.shape) for m in mats})
    if len(shapes) > 1:
        raise InvalidInputError(f"checkpoints have different embedding shapes {shapes}; pass checkpoints of one run")
    _check_method(method, dims, mats[0].shape[0])
    labels = (
        list(names)
        if names is not None
        else [Path(c).name if isinstance(c, (str, os.PathLike)) else str(i) for i, c in enumerate(checkpoints)]
    )
    if len(labels) != len(mats):
        raise InvalidInputError(f"got {len(labels)} names for {len(mats)} checkpoints; pass one name per checkpoint")
    frames, rotations, raw, moved = [], [], [0.0], [0.0]
    for m in mats:
        init = frames[-1] if method == "tsne" and frames else None
        coords = project(m, method, dims, normalize=normalize, seed=seed, init=init).coords
        rot = torch.eye(dims)
        if frames:
            raw.append(_rms(coords - frames[-1]))
            if align:
                coords, rot = procrustes(coords, frames[-1])
            moved.append(_rms(coords - frames[-1]))
        frames.append(coords)
        rotations.append(rot)
    return Trajectory(frames, labels, method, rotations, raw, moved)
