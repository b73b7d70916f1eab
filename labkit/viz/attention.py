"""Attention views: caches, model outputs or tensors in; self-contained HTML, SVG and a text summary out.

Every view is an `AttentionView` whose `_repr_mimebundle_` carries `text/html` (inlined JS + CSS + the
attention as base64 float16, no URL of any kind, so it renders offline and from a saved notebook),
`image/svg+xml` (a server-side heatmap, for print and for hosts that run no JavaScript) and `text/plain`
(a diffable summary). Token text is escaped everywhere it is written.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from labkit.checks import check_choice, check_int, check_tensor
from labkit.errors import InvalidInputError
from labkit.frontend import (
    HtmlView,
    auto_top_k,
    live_view_html,
    pack_arrays,
    plain_token,
    png_bytes,
    svg_open,
    to_base64,
    weight_colors,
)

__all__ = [
    "AttentionPayload",
    "AttentionView",
    "attention_payload",
    "attention_tensor",
    "head_view",
    "model_view",
    "qk_view",
    "cross_attention_view",
    "attention_heatmap",
    "payload_from_tensor",
    "DEFAULT_MAX_BYTES",
]

DEFAULT_MAX_BYTES = 3_000_000  # raw payload budget: base64 makes it 4 MB, under the 5 MB page limit
_PATTERN = re.compile(r"^(?:(?P<stack>[\w.]+)\.)?blocks\.(?P<layer>\d+)\.(?P<kind>attn|cross_attn)\.hook_pattern$")
_CAPTURE = "model.run_with_cache(ids, names=lambda n: n.endswith('hook_pattern'))"


def _select_batch(t: torch.Tensor, batch_index: int, what: str) -> torch.Tensor:
    if not -t.shape[0] <= batch_index < t.shape[0]:
        raise InvalidInputError(f"batch_index {batch_index} is out of range for {what} with batch size {t.shape[0]}")
    return t[batch_index]


def _from_cache(cache: Mapping, stack: str | None, cross: bool, batch_index: int) -> torch.Tensor:
    kind = "cross_attn" if cross else "attn"
    found: dict[str, dict[int, torch.Tensor]] = {}
    for name in cache:
        m = _PATTERN.match(str(name))
        if m and m["kind"] == kind:
            found.setdefault(m["stack"] or "", {})[int(m["layer"])] = cache[name]
    if not found:
        raise InvalidInputError(f"the cache holds no *.{kind}.hook_pattern tensors; capture them with {_CAPTURE}")
    if stack is None and len(found) > 1:
        raise InvalidInputError(f"the cache has attention from several stacks {sorted(found)}; pass stack= one of them")
    key = stack if stack is not None else next(iter(found))
    if key not in found:
        raise InvalidInputError(f"stack {stack!r} has no {kind} patterns in this cache; choose one of {sorted(found)}")
    layers = found[key]
    return torch.stack(
        [_select_batch(layers[i].detach().float().cpu(), batch_index, f"layer {i}") for i in sorted(layers)]
    )


def attention_tensor(
    attention: Any, *, stack: str | None = None, cross: bool = False, batch_index: int = 0
) -> torch.Tensor:
    """Any attention source in, a float32 tensor [layer, head, query, key] out (validated).

    attention: a labkit `ActivationCache` (or any mapping of hook name -> tensor), a model output with
    `attentions` / `cross_attentions` (labkit or Hugging Face), a tuple of per-layer [batch, head, q, k]
    (or [head, q, k]) tensors, or one tensor [layer, head, q, k], [batch, layer, head, q, k], [head, q, k] or [q, k].
    stack: "encoder"/"decoder" for Seq2Seq caches. cross: decoder -> encoder patterns. batch_index: which example.
    """
    if hasattr(attention, "attentions") or hasattr(
        attention, "cross_attentions"
    ):  # before Mapping: HF outputs are dicts
        check_choice("stack", stack, (None, "encoder", "decoder"), fix="a model output has encoder and decoder sides")
        name = "cross_attentions" if cross else ("encoder_attentions" if stack == "encoder" else "attentions")
        value = getattr(attention, name, None)
        if not value:
            raise InvalidInputError(f"the model output has no {name}; run the model with output_attentions=True")
        return attention_tensor(tuple(value), batch_index=batch_index)
    if isinstance(attention, Mapping):
        t = _from_cache(attention, stack, cross, batch_index)
    elif stack is not None:  # only caches and Seq2Seq outputs have stacks; anything else would ignore it silently
        raise InvalidInputError(
            f"stack={stack!r} applies only to a cache or a Seq2Seq model output; leave stack=None for a tuple or tensor"
        )
    elif isinstance(attention, (tuple, list)):
        if not attention:
            raise InvalidInputError("the attention tuple is empty; pass one [batch, head, q, k] tensor per layer")
        try:
            layers = [torch.as_tensor(a).detach().float().cpu() for a in attention]
        except (TypeError, ValueError, RuntimeError):
            kinds = sorted({type(a).__name__ for a in attention})
            raise InvalidInputError(
                f"cannot read attention from a {type(attention).__name__} of {', '.join(kinds)}; "
                "pass one [batch, head, q, k] tensor per layer"
            ) from None
        if any(a.dim() not in (3, 4) for a in layers):
            raise InvalidInputError(
                f"each layer must be [batch, head, q, k] or [head, q, k], got shapes {[tuple(a.shape) for a in layers]}"
            )
        layers = [_select_batch(a, batch_index, f"layer {i}") if a.dim() == 4 else a for i, a in enumerate(layers)]
        if len({a.shape for a in layers}) > 1:
            raise InvalidInputError(
                f"layers have different shapes {[tuple(a.shape) for a in layers]}; pass one example's attention"
            )
        t = torch.stack(layers)
    else:
        t = check_tensor("attention", attention, fix="pass a cache, output, tuple or tensor")
        if t.dim() == 5:
            t = _select_batch(t, batch_index, "the [batch, layer, head, q, k] tensor")
        elif t.dim() in (2, 3):
            t = t.reshape((1,) * (4 - t.dim()) + tuple(t.shape))
        elif t.dim() != 4:
            raise InvalidInputError(
                f"attention tensor must be [layer, head, q, k] (or 2-5 dims), got shape {tuple(t.shape)}"
            )
    if t.numel() == 0:
        raise InvalidInputError(f"attention is empty (shape {tuple(t.shape)}); pass at least one token")
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise InvalidInputError(
            f"attention has NaN or inf values (first at [layer, head, q, k] = {bad}); check the model's inputs and mask"
        )
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-3 or hi > 1.0 + 1e-2:
        raise InvalidInputError(
            f"attention weights must lie in [0, 1] (softmax probabilities), got range [{lo:.3g}, {hi:.3g}]; pass hook_pattern, not hook_scores"
        )
    return t.clamp(0.0, 1.0)


def _tokens(tokens: Sequence[str] | None, n: int, what: str, source: str = "the attention") -> list[str]:
    """Token strings for `n` positions (their indices when None), or one clear error when they do not fit.

    what: "key", "query" or "input" (names the positions in the error); source: what has the n positions.
    """
    if tokens is None:
        return [str(i) for i in range(n)]
    if isinstance(tokens, str):
        raise InvalidInputError(
            f"{what} tokens must be a list of strings, got one string {tokens[:30]!r}; split it into tokens"
        )
    out = [str(t) for t in tokens]
    if len(out) != n:
        raise InvalidInputError(
            f"got {len(out)} {what} tokens but {source} has {n} {what} positions; pass one token per position"
        )
    return out


@dataclass
class AttentionPayload:
    """Compact binary attention for the browser: `header` (tiny JSON) + `data` (float16 bytes) + token lists."""

    header: dict
    data: bytes
    query_tokens: list[str]
    key_tokens: list[str]
    shape: tuple[int, int, int, int]  # [layer, head, query, key]
    top_k: int | None = None
    layer_ids: list[int] | None = None  # real layer numbers when the arrays hold a subset (qk view)
    head_ids: list[int] | None = None

    @property
    def nbytes(self) -> int:
        """Size of the binary part in bytes."""
        return len(self.data)


def attention_payload(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    query_tokens: Sequence[str] | None = None,
    top_k: int | str | None = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    stack: str | None = None,
    cross: bool = False,
    batch_index: int = 0,
) -> AttentionPayload:
    """Attention (any source `attention_tensor` reads) and tokens in, an `AttentionPayload` out.

    tokens: key tokens (and query tokens unless `query_tokens` is given, as in cross-attention).
    top_k: None keeps every weight; k keeps the k largest per query row; "auto" keeps all when the float16
    array fits `max_bytes`, else the largest k that fits. stack / cross / batch_index: see `attention_tensor`.
    """
    t = attention_tensor(attention, stack=stack, cross=cross, batch_index=batch_index)
    return payload_from_tensor(t, tokens, query_tokens, top_k, max_bytes)


def payload_from_tensor(
    t: torch.Tensor, tokens, query_tokens, top_k, max_bytes, extra: dict | None = None, layer_ids=None, head_ids=None
) -> AttentionPayload:
    """A validated [layer, head, query, key] tensor and its token labels in, an `AttentionPayload` out.

    top_k: None, "auto" (prune only past `max_bytes`) or k per query row; extra: more named arrays to pack;
    layer_ids/head_ids: the original indices when `t` holds a selection.
    """
    L, H, Q, K = t.shape
    check_int("max_bytes", max_bytes, fix="the payload's byte budget; the default is 3_000_000")
    k_tok = _tokens(tokens, K, "key")
    q_tok = (
        _tokens(query_tokens, Q, "query")
        if query_tokens is not None
        else (k_tok if Q == K else _tokens(None, Q, "query"))
    )
    if top_k == "auto":
        top_k = auto_top_k(tuple(t.shape), max_bytes)
    else:
        check_int("top_k", top_k, allow_none=True, fix="or 'auto' to fit max_bytes")
    arrays = {"attn": t, **(extra or {})}
    header, data = pack_arrays(arrays, {"attn": top_k})
    return AttentionPayload(
        header, data, q_tok, k_tok, (L, H, Q, K), header["arrays"]["attn"]["top_k"], layer_ids, head_ids
    )


@dataclass
class AttentionView(HtmlView):
    """A rendered attention view; display it in a notebook, `save_html(path)` it, or `to_figure()` it (plotly)."""

    kind: str  # "head" | "model" | "qk" | "cross" | "heatmap"
    payload: AttentionPayload
    attention: torch.Tensor = field(repr=False)  # float32 [layer, head, query, key], for the static fallbacks
    layer: int = 0
    head: int | None = None
    focus: int | None = None
    title: str = ""
    note: str = ""

    def spec(self) -> dict:
        """The JSON-able description the front end mounts (without the binary payload)."""
        p = self.payload
        labels = {"cross": ("target (decoder, query)", "source (encoder, key)")}.get(self.kind, (None, None))
        return {
            "view": self.kind,
            "header": p.header,
            "q_tokens": p.query_tokens,
            "k_tokens": p.key_tokens,
            "layer": 0 if self.kind == "qk" else self.layer,
            "head": 0 if self.kind == "qk" else self.head,
            "focus": self.focus,
            "layer_ids": p.layer_ids,
            "head_ids": p.head_ids,
            "title": self.title,
            "note": self.note,
            "q_label": labels[0],
            "k_label": labels[1],
        }

    def _matrix(self) -> tuple[np.ndarray, str]:
        """The matrix of the static fallback: the selected head, or the mean over heads, and its caption."""
        li = 0 if self.kind == "qk" else self.layer
        lname = self.payload.layer_ids[0] if self.payload.layer_ids else self.layer
        if self.kind == "qk" or self.head is not None:
            hi = 0 if self.kind == "qk" else self.head
            hname = self.payload.head_ids[0] if self.payload.head_ids else self.head
            return self.attention[li, hi].numpy(), f"layer {lname}, head {hname}"
        return self.attention[li].mean(0).numpy(), f"layer {lname}, mean of {self.payload.shape[1]} heads"

    def summary(self) -> str:
        """A text/plain summary: shapes, payload size, and each query's strongest key (first 24 queries)."""
        L, H, Q, K = self.payload.shape
        m, caption = self._matrix()
        pruning = (
            f"pruned to the top {self.payload.top_k} of {K} keys per query (top_k=None keeps all)"
            if self.payload.top_k
            else "all weights"
        )
        lines = [
            f"AttentionView({self.kind}): {L} layers x {H} heads, {Q} queries x {K} keys; {caption}",
            f"payload: {self.payload.nbytes:,} bytes float16, {pruning}",
        ]
        if self.title:
            lines.insert(0, plain_token(self.title))
        for i in range(min(Q, 24)):
            j = int(m[i].argmax())
            lines.append(
                f"  {i:>3} {plain_token(self.payload.query_tokens[i])} -> {plain_token(self.payload.key_tokens[j])} {m[i, j]:.3f}"
            )
        if Q > 24:
            lines.append(f"  ... {Q - 24} more queries")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: an SVG heatmap of the selected layer/head with escaped token labels.

        standalone: include the SVG namespace declaration (needed for an .svg file, not inside HTML).
        """
        m, caption = self._matrix()
        Q, K = m.shape
        cell = max(1.0, min(20.0, 480.0 / max(Q, K)))
        labels = cell >= 8
        pad_l = 8 + (7 * min(16, max(len(t) for t in self.payload.query_tokens)) if labels else 0)
        pad_t, pad_b = 22, (8 + 7 * min(16, max(len(t) for t in self.payload.key_tokens)) if labels else 8)
        w, h = pad_l + K * cell + 8, pad_t + Q * cell + pad_b
        esc = lambda s: html.escape(s if len(s) <= 16 else s[:15] + "\u2026", quote=True)  # noqa: E731
        hidden = "" if labels else f"; {Q} x {K} tokens: labels hidden at this size (to_figure() shows them)"
        out = [
            svg_open(w, h, standalone=standalone),
            f'<text x="4" y="14">{html.escape(self.kind + " view: " + caption + hidden)}</text>',
        ]
        if Q * K <= 4096:  # small: one rect per cell, so the SVG diffs cell by cell
            colors = weight_colors(m)
            for i in range(Q):
                for j in range(K):
                    r, g, b = colors[i, j]
                    out.append(
                        f'<rect x="{pad_l + j * cell:.1f}" y="{pad_t + i * cell:.1f}" width="{cell:.1f}" '
                        f'height="{cell:.1f}" fill="#{r:02x}{g:02x}{b:02x}"><title>{m[i, j]:.3f}</title></rect>'
                    )
        else:  # large: one embedded PNG pixel per cell keeps the file small
            uri = "data:image/png;base64," + to_base64(png_bytes(weight_colors(m)))
            out.append(
                f'<image x="{pad_l}" y="{pad_t}" width="{K * cell:.1f}" height="{Q * cell:.1f}" '
                f'preserveAspectRatio="none" style="image-rendering:pixelated" href="{uri}"/>'
            )
        if labels:
            for i, t in enumerate(self.payload.query_tokens):
                out.append(
                    f'<text x="{pad_l - 4}" y="{pad_t + (i + 0.7) * cell:.1f}" text-anchor="end">{esc(t)}</text>'
                )
            for j, t in enumerate(self.payload.key_tokens):
                x, y = pad_l + (j + 0.7) * cell, pad_t + Q * cell + 4
                out.append(f'<text transform="translate({x:.1f},{y:.1f}) rotate(90)">{esc(t)}</text>')
        out.append("</svg>")
        return "".join(out)

    def to_html(self) -> str:
        """A self-contained HTML fragment: CSS, the SVG fallback, the base64 payload and the inlined script."""
        return live_view_html(
            "labkit-attn",
            "attention.css",
            "attention.js",
            self.to_svg(standalone=False),
            {**self.spec(), "b64": to_base64(self.payload.data)},
        )

    def _page_title(self) -> str:
        return self.title or f"labkit {self.kind} view"

    def to_figure(self) -> Any:
        """A plotly heatmap of the selected layer/head (mean over heads when none is selected)."""
        import plotly.graph_objects as go

        m, caption = self._matrix()
        q = [html.escape(t) for t in self.payload.query_tokens]
        k = [html.escape(t) for t in self.payload.key_tokens]
        fig = go.Figure(
            go.Heatmap(
                z=m,
                colorscale="Blues",
                zmin=0,
                zmax=1,
                customdata=[[(qi, kj) for kj in k] for qi in q],
                hovertemplate="%{customdata[0]} \u2192 %{customdata[1]}: %{z:.3f}<extra></extra>",
            )
        )
        fig.update_layout(
            title=html.escape(f"{self.kind} view: {caption}"),
            height=max(300, 18 * len(q) + 120),
            xaxis=dict(tickvals=list(range(len(k))), ticktext=k, title="key"),
            yaxis=dict(tickvals=list(range(len(q))), ticktext=q, title="query", autorange="reversed"),
        )
        return fig


def _check_selection(shape: tuple[int, ...], layer: int, head: int | None) -> None:
    L, H = shape[0], shape[1]
    check_int("layer", layer, low=0, high=L - 1, fix=f"the attention has {L} layers")
    check_int("head", head, low=0, high=H - 1, allow_none=True, fix=f"the attention has {H} heads; None shows all")


def _view(
    kind: str,
    attention: Any,
    tokens,
    query_tokens,
    layer: int,
    head: int | None,
    stack: str | None,
    cross: bool,
    top_k,
    max_bytes: int,
    batch_index: int,
    title: str,
) -> AttentionView:
    """What every public view function does: read the attention, check the selection, build the payload and view.

    The arguments are those of the public functions (`head_view` and its siblings), in that order.
    """
    t = attention_tensor(attention, stack=stack, cross=cross, batch_index=batch_index)
    _check_selection(tuple(t.shape), layer, head)
    p = payload_from_tensor(t, tokens, query_tokens, top_k, max_bytes)
    return AttentionView(kind, p, t, layer, head, title=title)


def head_view(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    layer: int = 0,
    head: int | None = None,
    top_k: int | str | None = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    stack: str | None = None,
    batch_index: int = 0,
    title: str = "",
) -> AttentionView:
    """Attention (cache, output, tuple or tensor) and tokens in, an interactive head view out.

    Lines join each query token (left) to the keys it attends to (right), opacity = weight, one colour per
    head; layer selector, head chips, hover a token to see only its lines. layer/head: initial selection
    (head None = all heads). top_k/max_bytes: payload pruning (see `attention_payload`). stack: Seq2Seq side.
    """
    return _view("head", attention, tokens, None, layer, head, stack, False, top_k, max_bytes, batch_index, title)


def model_view(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    top_k: int | str | None = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    stack: str | None = None,
    batch_index: int = 0,
    title: str = "",
) -> AttentionView:
    """Attention and tokens in, a grid of every layer x head (thumbnails; click one to enlarge) out.

    Parameters as in `head_view`; the static fallback shows layer 0, mean over heads.
    """
    return _view("model", attention, tokens, None, 0, None, stack, False, top_k, max_bytes, batch_index, title)


def attention_heatmap(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    layer: int = 0,
    head: int = 0,
    query_tokens: Sequence[str] | None = None,
    top_k: int | str | None = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    stack: str | None = None,
    cross: bool = False,
    batch_index: int = 0,
    title: str = "",
) -> AttentionView:
    """Attention and tokens in, a query x key heatmap of one layer/head out (`.to_figure()` gives plotly).

    query_tokens: row labels when queries differ from keys (cross-attention, with cross=True).
    """
    return _view(
        "heatmap", attention, tokens, query_tokens, layer, head, stack, cross, top_k, max_bytes, batch_index, title
    )


def cross_attention_view(
    attention: Any,
    source_tokens: Sequence[str] | None = None,
    target_tokens: Sequence[str] | None = None,
    *,
    layer: int = 0,
    head: int | None = None,
    top_k: int | str | None = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    batch_index: int = 0,
    title: str = "",
) -> AttentionView:
    """Decoder -> encoder attention (Seq2Seq cache, output.cross_attentions or [layer, head, tgt, src]) in, a view out.

    Target (decoder) tokens on the left attend to source (encoder) tokens on the right; controls as in `head_view`.
    """
    # a cache or a Seq2Seq output holds both stacks; the cross-attention sits in the decoder's
    stack = "decoder" if isinstance(attention, Mapping) else None
    return _view(
        "cross", attention, source_tokens, target_tokens, layer, head, stack, True, top_k, max_bytes, batch_index, title
    )


def qk_view(
    cache: Mapping,
    tokens: Sequence[str] | None = None,
    *,
    layer: int = 0,
    head: int = 0,
    query: int | None = None,
    stack: str | None = None,
    cross: bool = False,
    query_tokens: Sequence[str] | None = None,
    batch_index: int = 0,
    title: str = "",
) -> AttentionView:
    """A cache with hook_q, hook_k and hook_pattern in, the query-key view of one head out.

    For a chosen query token: its q vector, every key's k vector, their elementwise products, q.k/sqrt(d)
    and the weight the model used. query: initially selected query position (None = last).
    stack: "encoder"/"decoder" for Seq2Seq. cross: the decoder's cross-attention (query_tokens = target tokens).
    """
    if not isinstance(cache, Mapping):
        raise InvalidInputError(f"qk_view needs an ActivationCache (hook name -> tensor), got {type(cache).__name__}")
    base = f"{stack + '.' if stack else ''}blocks.{layer}.{'cross_attn' if cross else 'attn'}."
    names = [base + s for s in ("hook_q", "hook_k", "hook_pattern")]
    missing = [n for n in names if n not in cache]
    layers = sorted({int(m[1]) for n in cache if (m := re.search(r"blocks\.(\d+)\.", str(n)))})
    if missing and layers and layer not in layers:
        raise InvalidInputError(f"layer {layer!r} is not in the cache; cached layers: {layers}")
    if missing:
        raise InvalidInputError(
            f"qk_view needs {', '.join(missing)} in the cache; capture them with model.run_with_cache("
            "ids, names=lambda n: n.endswith(('hook_q', 'hook_k', 'hook_pattern')))"
        )
    pick = lambda n: _select_batch(cache[n].detach().float().cpu(), batch_index, n)  # noqa: E731
    q, k = pick(names[0]), pick(names[1])  # [pos, head, d_head], [pos, kv_head, d_head]
    pattern = attention_tensor(pick(names[2]))  # [1, head, q, k]
    H = q.shape[1]
    _check_selection((1, H), 0, head)
    check_int(
        "query", query, low=0, high=q.shape[0] - 1, allow_none=True, fix=f"there are {q.shape[0]} query positions"
    )
    qh, kh = q[:, head], k[:, head // max(1, H // k.shape[1])]  # grouped-query attention shares k across heads
    w = pattern[0, head]
    scores = qh @ kh.T / math.sqrt(qh.shape[-1])
    mask = w > 0
    recomputed = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)
    note = (
        ""
        if torch.allclose(recomputed, w, atol=1e-3)
        else (
            "softmax(q\u00b7k/\u221ad) differs from the model's weights: hook_q/hook_k are read before rotary "
            "position embeddings or other score terms; the weight column is what the model used."
        )
    )
    extra = {"q": qh[None, None], "k": kh[None, None]}
    p = payload_from_tensor(w[None, None], tokens, query_tokens, None, DEFAULT_MAX_BYTES, extra, [layer], [head])
    return AttentionView("qk", p, w[None, None], layer, head, focus=query, title=title, note=note)
