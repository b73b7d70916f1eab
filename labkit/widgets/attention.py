"""AttentionWidget: the attention views as a live anywidget (layer/head/focus synced with Python).

The front end is `widgets/attention.js`, the same module the static pages of `labkit.viz.attention`
inline; attention travels as the raw-bytes `payload` trait (float16, optionally pruned), never as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import traitlets as t

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, module_text
from labkit.viz.attention import DEFAULT_MAX_BYTES, AttentionView, attention_tensor, payload_from_tensor, qk_view
from labkit.widgets.fallback import StaticFallback

__all__ = ["AttentionWidget"]

VIEWS = ("head", "model", "qk", "cross", "heatmap")


class AttentionWidget(StaticFallback, anywidget.AnyWidget):
    """Interactive attention view: head, model (layer x head grid), qk (one head's vectors), cross, heatmap.

    Build it with `AttentionWidget(attention, tokens, view=...)` or `AttentionWidget.from_cache(cache, tokens)`;
    `attention` is anything `labkit.viz.attention_tensor` reads. Changing `layer`, `head` or `view` in Python
    updates the page, and clicks in the page update them here.
    """

    _esm = module_text("attention.js")
    _css = asset_text("attention.css")

    tokens = t.List(t.Unicode(), help="key tokens (and query tokens unless target_tokens is set)").tag(sync=True)
    target_tokens = t.List(t.Unicode(), help="query tokens when they differ from the keys (cross-attention)").tag(
        sync=True
    )
    payload = t.Bytes(b"", help="the arrays as float16 bytes; layout in `header`").tag(sync=True)
    header = t.Dict(help="where each array lives in `payload` (labkit-arrays/1)").tag(sync=True)
    shape = t.List(t.Int(), [1, 1, 1, 1], help="[layer, head, query, key] of the whole attention").tag(sync=True)
    view = t.Enum(VIEWS, "head", help="which view the page shows").tag(sync=True)
    layer = t.Int(0, help="selected layer").tag(sync=True)
    head = t.Int(None, allow_none=True, help="selected head; None shows every head (head and cross views)").tag(
        sync=True
    )
    focus_token = t.Int(None, allow_none=True, help="query position to focus (None: none; qk view: the last)").tag(
        sync=True
    )
    info = t.Dict(help="labels for the page: title, note, layer_ids, head_ids, q_label, k_label").tag(sync=True)

    def __init__(
        self,
        attention: Any = None,
        tokens: Sequence[str] | None = None,
        *,
        view: str = "head",
        query_tokens: Sequence[str] | None = None,
        top_k: int | str | None = "auto",
        max_bytes: int = DEFAULT_MAX_BYTES,
        stack: str | None = None,
        cross: bool | None = None,
        batch_index: int = 0,
        title: str = "",
        **kwargs: Any,
    ) -> None:
        if view not in VIEWS:
            raise InvalidInputError(f"view {view!r} is not one of {', '.join(VIEWS)}")
        self._source, self._tokens, self._query_tokens = attention, tokens, query_tokens
        self._options = dict(
            top_k=top_k,
            max_bytes=max_bytes,
            stack=stack,
            batch_index=batch_index,
            cross=(view == "cross") if cross is None else cross,
        )
        self._title, self._tensor, self._mode = title, None, None
        # the selection is validated against the shape, so it is set after the attention is known
        selection = {k: kwargs.pop(k) for k in ("layer", "head", "focus_token") if k in kwargs}
        super().__init__(**kwargs)
        if attention is None:
            if selection:
                raise InvalidInputError(
                    "layer/head/focus_token need an attention; pass AttentionWidget(attention, tokens, ...)"
                )
            return
        if view == "qk" and not isinstance(attention, Mapping):
            raise InvalidInputError(
                "view='qk' needs an ActivationCache with hook_q/hook_k/hook_pattern; use from_cache"
            )
        o = self._options
        self._tensor = attention_tensor(attention, stack=o["stack"], cross=o["cross"], batch_index=o["batch_index"])
        self._mode = "init"  # the observer waits; _rebuild below encodes once
        with self.hold_trait_notifications():
            self.shape = list(self._tensor.shape)
            self.view = view
            for name, value in selection.items():
                setattr(self, name, value)
        self._rebuild()

    @classmethod
    def from_cache(cls, cache: Mapping, tokens: Sequence[str] | None = None, **kwargs: Any) -> AttentionWidget:
        """An ActivationCache (hook_pattern; hook_q/hook_k for the qk view) and tokens in, a widget out.

        kwargs: view, layer, head, query_tokens, top_k, max_bytes, stack, cross, batch_index, title.
        """
        if not isinstance(cache, Mapping):
            raise InvalidInputError(
                f"from_cache needs an ActivationCache (hook name -> tensor), got {type(cache).__name__}"
            )
        return cls(cache, tokens, **kwargs)

    # ------------------------------------------------------------------ payload

    def _current_view(self) -> AttentionView:
        o = self._options
        if self.view == "qk":
            return qk_view(
                self._source,
                self._tokens,
                layer=self.layer,
                head=self.head or 0,
                query=self.focus_token,
                stack=o["stack"],
                cross=o["cross"],
                query_tokens=self._query_tokens,
                batch_index=o["batch_index"],
                title=self._title,
            )
        p = payload_from_tensor(self._tensor, self._tokens, self._query_tokens, o["top_k"], o["max_bytes"])
        head = (self.head or 0) if self.view == "heatmap" else self.head
        return AttentionView(self.view, p, self._tensor, self.layer, head, self.focus_token, self._title)

    def _rebuild(self) -> None:
        """Re-encode the payload for the current mode (all layers, or one head's q/k for the qk view)."""
        if self._tensor is None:
            return
        v = self._current_view()
        p, note = v.payload, v.note
        self._mode = (self.view, self.layer, self.head) if self.view == "qk" else "all"
        labels = ("target (decoder, query)", "source (encoder, key)") if self._options["cross"] else (None, None)
        with self.hold_trait_notifications():
            self.tokens = p.key_tokens
            self.target_tokens = p.query_tokens if p.query_tokens != p.key_tokens else []
            self.header, self.payload = p.header, p.data
            self.info = {
                "title": self._title,
                "note": note,
                "layer_ids": p.layer_ids,
                "head_ids": p.head_ids,
                "q_label": labels[0],
                "k_label": labels[1],
            }

    @t.observe("view", "layer", "head")
    def _on_selection(self, change: dict) -> None:
        if self._tensor is None or self._mode == "init":
            return
        wanted = (self.view, self.layer, self.head) if self.view == "qk" else "all"
        if wanted != self._mode:
            self._rebuild()

    # ------------------------------------------------------------------ validation

    @t.validate("shape")
    def _valid_shape(self, proposal: dict) -> list[int]:
        shape = list(proposal["value"])
        if len(shape) != 4 or any(n < 1 for n in shape):
            raise InvalidInputError(f"shape must be 4 positive sizes [layer, head, query, key], got {shape}")
        return shape

    @t.validate("layer")
    def _valid_layer(self, proposal: dict) -> int:
        n = self.shape[0]
        return check_int("layer", proposal["value"], low=0, high=n - 1, fix=f"the attention has {n} layers")

    @t.validate("head")
    def _valid_head(self, proposal: dict) -> int | None:
        n = self.shape[1]
        return check_int(
            "head", proposal["value"], low=0, high=n - 1, allow_none=True, fix=f"the attention has {n} heads"
        )

    @t.validate("focus_token")
    def _valid_focus(self, proposal: dict) -> int | None:
        n = self.shape[2]
        return check_int(
            "focus_token", proposal["value"], low=0, high=n - 1, allow_none=True, fix=f"there are {n} query positions"
        )

    @t.validate("view")
    def _valid_view(self, proposal: dict) -> str:
        view = proposal["value"]
        if view == "qk" and self._tensor is not None and not isinstance(self._source, Mapping):
            raise InvalidInputError(
                "view 'qk' needs the widget built from an ActivationCache with hook_q/hook_k (from_cache)"
            )
        return view

    # ------------------------------------------------------------------ static output

    def to_view(self) -> AttentionView:
        """The current state as a static `AttentionView` (HTML page, SVG, text summary)."""
        if self._tensor is None:
            raise InvalidInputError(
                "this AttentionWidget has no attention yet; build it with AttentionWidget(attention, tokens)"
            )
        return self._current_view()

    def _static_view(self) -> AttentionView | None:
        return None if self._tensor is None else self.to_view()
