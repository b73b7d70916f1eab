"""AttentionMathWidget: the attention walk-through of one head with step/layer/head synced to Python.

Python recomputes the steps (`labkit.viz.attention_math`) when `layer` or `head` changes and sends the escaped
step panels as HTML; the front end (`widgets/attention_math.js`) only shows one panel at a time.
`AttentionMathWidget.from_matrices(X, W_Q, W_K, W_V)` walks the learner's own small matrices instead
(`labkit.viz.attention_by_hand`): the page shows them in text boxes, and editing one sends the text back, which
Python parses and recomputes (a bad matrix shows its one-line error and keeps the last good steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets as t

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, module_text
from labkit.viz.attention_by_hand import attention_by_hand, format_matrix, parse_matrix
from labkit.viz.attention_math import (
    MAX_DIMS,
    MAX_TOKENS,
    AttentionWalkthrough,
    attention_walkthrough,
    check_walkthrough_input,
)
from labkit.widgets.fallback import StaticFallback

__all__ = ["AttentionMathWidget"]

_NAMES = ("X", "W_Q", "W_K", "W_V")


class AttentionMathWidget(StaticFallback, anywidget.AnyWidget):
    """Step through one head's attention on your model and prompt: `AttentionMathWidget(model, ids, tokens=...)`.

    Traits `step`, `layer` and `head` are validated against the model; changing layer or head recomputes the
    steps in Python (the front end never computes model internals).
    """

    _esm = module_text("attention_math.js")
    _css = asset_text("attention_math.css")

    step = t.Int(0, help="index of the step shown").tag(sync=True)
    layer = t.Int(0, help="which block").tag(sync=True)
    head = t.Int(0, help="which query head").tag(sync=True)
    n_layer = t.Int(1, help="number of blocks in the model (read-only)").tag(sync=True)
    n_head = t.Int(1, help="query heads per block (read-only)").tag(sync=True)
    step_names = t.List(t.Unicode(), help="the name of every step, in order").tag(sync=True)
    steps_html = t.Unicode("", help="every step as escaped HTML panels (built in Python)").tag(sync=True)
    header_html = t.Unicode("", help="layer/head and the check against the model, as escaped HTML").tag(sync=True)
    max_diff = t.Float(0.0, help="largest |walk-through - model| over the checked steps").tag(sync=True)
    editable = t.Bool(False, help="True for your own matrices (from_matrices); read-only").tag(sync=True)
    matrices = t.Dict(value_trait=t.Unicode(), help="X, W_Q, W_K, W_V as text, one row per line (from_matrices)").tag(
        sync=True
    )
    causal = t.Bool(False, help="hide later tokens (from_matrices)").tag(sync=True)
    error = t.Unicode("", help="why the last edit of the matrices was refused; empty when it was fine").tag(sync=True)

    @classmethod
    def from_matrices(
        cls,
        x: Any,
        w_q: Any,
        w_k: Any,
        w_v: Any,
        *,
        causal: bool = False,
        tokens: Sequence[str] | None = None,
        step: int = 0,
        title: str = "",
        **kwargs: Any,
    ) -> AttentionMathWidget:
        """Your X [n, d], W_Q and W_K [d, d_k], W_V [d, d_v] (text, lists or tensors) in, an editable walk-through out."""
        texts = {name: format_matrix(parse_matrix(m, name)) for name, m in zip(_NAMES, (x, w_q, w_k, w_v))}
        walk = attention_by_hand(*texts.values(), causal=causal, tokens=tokens, step=step, title=title)
        self = cls.__new__(cls)
        self._model, self._ids, self._tokens = None, None, tokens
        self._options = dict(title=title)
        self._ready = False
        anywidget.AnyWidget.__init__(self, **kwargs)
        with self.hold_trait_notifications():
            self.editable, self.causal, self.matrices = True, bool(causal), texts
        self.walkthrough = walk
        self._publish(step)
        return self

    def __init__(
        self,
        model: Any,
        input_ids: Any,
        tokens: Sequence[str] | None = None,
        *,
        layer: int = 0,
        head: int = 0,
        step: int = 0,
        max_tokens: int = MAX_TOKENS,
        max_dims: int = MAX_DIMS,
        title: str = "",
        **kwargs: Any,
    ) -> None:
        base, ids = check_walkthrough_input(model, input_ids)
        self._model, self._ids, self._tokens = model, ids, tokens
        self._options = dict(max_tokens=max_tokens, max_dims=max_dims, title=title)
        self._ready = False
        super().__init__(**kwargs)
        with self.hold_trait_notifications():
            self.n_layer, self.n_head = len(base.blocks), base.blocks[0].attn.n_head
        self.walkthrough = attention_walkthrough(model, ids, layer, head, tokens, step=step, **self._options)
        self._publish(step)

    def _publish(self, step: int | None = None) -> None:
        w = self.walkthrough
        self._ready = False  # held notifications fire when the block ends; they must not recompute again
        try:
            with self.hold_trait_notifications():
                self.layer, self.head = w.layer, w.head
                self.step_names = [s.name for s in w.steps]
                if step is not None or self.step >= len(w.steps):
                    self.step = min(step if step is not None else self.step, len(w.steps) - 1)
                self.steps_html, self.header_html, self.max_diff = w.steps_html(), w.header_html(), w.max_diff
        finally:
            self._ready = True
        w.step = self.step

    @t.observe("matrices", "causal")
    def _on_matrices(self, change: dict) -> None:
        if not self._ready or not self.editable:
            return
        texts = [self.matrices.get(name, "") for name in _NAMES]
        try:
            n = parse_matrix(texts[0], "X").shape[0]
            # labels given for another number of tokens no longer fit: t0, t1, ... fit any count
            tokens = self._tokens if self._tokens is not None and len(self._tokens) == n else None
            walk = attention_by_hand(*texts, causal=self.causal, tokens=tokens, title=self._options["title"])
        except InvalidInputError as exc:
            self.error = str(exc)
            return
        self.error = ""
        names = [s.name for s in walk.steps]
        current = self.step_names[self.step] if self.step < len(self.step_names) else ""
        self.walkthrough = walk
        self._publish(names.index(current) if current in names else min(self.step, len(names) - 1))

    @t.observe("layer", "head")
    def _recompute(self, change: dict) -> None:
        if not self._ready or self.editable:
            return
        name = self.step_names[self.step] if self.step < len(self.step_names) else ""
        self.walkthrough = attention_walkthrough(
            self._model, self._ids, self.layer, self.head, self._tokens, **self._options
        )
        names = [s.name for s in self.walkthrough.steps]
        # stay on the same kind of step (e.g. "softmax") when the head changes
        same = [i for i, n in enumerate(names) if n.split(" (")[0] == name.split(" (")[0]]
        self._publish(same[0] if same else min(self.step, len(names) - 1))

    @t.observe("step")
    def _on_step(self, change: dict) -> None:
        if self._ready:
            self.walkthrough.step = change["new"]

    @t.validate("layer")
    def _valid_layer(self, proposal: dict) -> int:
        return self._in_range(proposal["value"], self.n_layer, "layer", "blocks")

    @t.validate("head")
    def _valid_head(self, proposal: dict) -> int:
        return self._in_range(proposal["value"], self.n_head, "head", "heads per block")

    @t.validate("step")
    def _valid_step(self, proposal: dict) -> int:
        n = len(self.step_names) if self.step_names else 1
        return self._in_range(proposal["value"], n, "step", "steps")

    @staticmethod
    def _in_range(value: int, n: int, what: str, unit: str) -> int:
        return check_int(what, value, low=0, high=n - 1, fix=f"there are {n} {unit}")

    @property
    def steps(self) -> list:
        """The current steps (labkit.viz.attention_math.Step), whole matrices included."""
        return self.walkthrough.steps

    def to_view(self) -> AttentionWalkthrough:
        """The current state as a static view (HTML page with the slider, SVG, text)."""
        return self.walkthrough

    def _static_view(self) -> AttentionWalkthrough:
        return self.walkthrough
