"""Widgets for looking inside a model: LogitLensWidget, AttributionWidget, NeuronWidget, PatchingWidget.

Each is an anywidget over the same front-end module as the static views (`widgets/interpret.js`): Python computes
with `labkit.interpret`, builds the view's spec with `labkit.viz` and sends it as the `spec` trait; the page's
controls (text, target, method, neuron, hook) set traits, and Python answers with a new spec. A bad value typed
in the page shows its one-line error in the widget instead of a traceback in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets as t

from labkit.checks import check_choice, check_int
from labkit.errors import InvalidInputError, LabkitError
from labkit.frontend import asset_text, module_text
from labkit.interpret import (
    PATCH_HOOKS,
    NeuronActivations,
    activation_patching,
    attention_rollout,
    attribute,
    logit_lens,
    neuron_logit_effect,
)
from labkit.viz.attribution import METHOD_NAMES, AttributionView
from labkit.viz.interpret_base import LookView
from labkit.viz.lens import LogitLensView
from labkit.viz.neurons import NeuronView
from labkit.viz.patching import PatchingView
from labkit.widgets.fallback import StaticFallback

__all__ = ["LogitLensWidget", "AttributionWidget", "NeuronWidget", "PatchingWidget"]


def _encode(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    if not text:
        raise InvalidInputError("the text is empty; type something to look inside")
    ids = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    if not ids:
        raise InvalidInputError(f"{text!r} encodes to no tokens; type some words")
    return list(ids)


class _LookWidget(StaticFallback, anywidget.AnyWidget):
    """Shared traits and display of the four widgets; subclasses give `_compute()` -> view and `_controls()`."""

    _esm = module_text("interpret.js")
    _css = asset_text("interpret.css")

    spec = t.Dict(
        help="what the page draws (see labkit.viz lens_spec, attribution_spec, neuron_spec, patching_spec)"
    ).tag(sync=True)
    controls = t.List(t.Dict(), help="the page's controls: name, label, type, value, options").tag(sync=True)
    status = t.Unicode("", help="a note shown while Python recomputes").tag(sync=True)
    title = t.Unicode("", help="a line above the view").tag(sync=True)

    _view: LookView | None = None
    _ready = False

    def _compute(self) -> LookView:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _controls(self) -> list[dict]:
        return []

    def refresh(self, raise_errors: bool = False) -> None:
        """Recompute the view from the current traits and send it to the page (errors show in the page)."""
        self.status = "computing\u2026"
        try:
            self._view = self._compute()
            spec = self._view.spec()
        except LabkitError as exc:
            self._view = None
            if raise_errors:
                raise
            spec = {"kind": self._kind, "title": self.title, "error": str(exc)}
        finally:
            self.status = ""
        self.controls = self._controls()
        self.spec = spec

    _kind = "lens"

    def to_view(self) -> LookView:
        """The current state as a static view (HTML page, SVG, PNG, text)."""
        if self._view is None:
            raise InvalidInputError(f"the widget shows an error: {self.spec.get('error')}; fix the input first")
        return self._view

    def _static_view(self) -> LookView | None:
        return self._view


class LogitLensWidget(_LookWidget):
    """Type a text, see the logit lens of `model` on it: `LogitLensWidget(model, tokenizer, "The capital of France is")`.

    target: "" (the model's final prediction), "next" (the next input token), or a one-token text such as " Paris".
    """

    text = t.Unicode("", help="the input text").tag(sync=True)
    target = t.Unicode("", help="'' = final prediction, 'next' = next input token, or one token's text").tag(sync=True)
    _kind = "lens"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        text: str = "",
        *,
        target: str = "",
        top_k: int = 5,
        title: str = "",
        **kwargs: Any,
    ) -> None:
        self._model, self._tokenizer = model, tokenizer
        self._top_k = check_int("top_k", top_k, low=1)
        super().__init__(text=text, target=target, title=title, **kwargs)
        self.refresh(raise_errors=True)
        self._ready = True

    def _compute(self) -> LookView:
        ids = _encode(self._tokenizer, self.text, False)
        lens = logit_lens(self._model, ids, tokenizer=self._tokenizer, target=self.target or None, top_k=self._top_k)
        return LogitLensView(lens, self.title)

    def _controls(self) -> list[dict]:
        return [
            {"name": "text", "label": "text", "type": "text", "value": self.text},
            {"name": "target", "label": "target", "type": "text", "value": self.target},
        ]

    @t.observe("text", "target")
    def _changed(self, change: dict) -> None:
        if self._ready:
            self.refresh()


class AttributionWidget(_LookWidget):
    """Attribution of one text by several methods side by side: `AttributionWidget(model, tokenizer, "a fine film")`.

    methods: any of "integrated_gradients", "gradient_x_input", "attention_rollout". target: the class or token
    to explain ("" = the model's prediction). steps: IG quadrature points. Other options go to `attribute`.
    """

    text = t.Unicode("", help="the input text").tag(sync=True)
    target = t.Unicode("", help="class index or token text to explain ('' = the prediction)").tag(sync=True)
    steps = t.Int(50, help="integrated-gradients steps").tag(sync=True)
    _kind = "attr"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        text: str = "",
        *,
        methods: Sequence[str] = ("integrated_gradients", "gradient_x_input", "attention_rollout"),
        target: str = "",
        steps: int = 50,
        add_special_tokens: bool = False,
        title: str = "",
        **attribute_kwargs: Any,
    ) -> None:
        self._model, self._tokenizer = model, tokenizer
        self._methods = [check_choice("method", m, list(METHOD_NAMES)) for m in methods]
        if not self._methods:
            raise InvalidInputError("methods is empty; choose at least one of " + ", ".join(METHOD_NAMES))
        self._special = bool(add_special_tokens)
        self._kwargs = attribute_kwargs
        super().__init__(text=text, target=target, steps=check_int("steps", steps, low=1), title=title)
        self.refresh(raise_errors=True)
        self._ready = True

    def _target(self) -> Any:
        value = self.target.strip()
        if value == "":
            return None
        if (
            value.lstrip("-").isdigit()
            and getattr(getattr(self._model, "config", None), "head", None) == "classification"
        ):
            return int(value)
        return self.target

    def _compute(self) -> LookView:
        ids = _encode(self._tokenizer, self.text, self._special)
        rows = []
        for method in self._methods:
            if method == "attention_rollout":
                rows.append(attention_rollout(self._model, ids, tokenizer=self._tokenizer))
            else:
                rows.append(
                    attribute(
                        self._model, ids, method=method, target=self._target(), steps=self.steps,
                        tokenizer=self._tokenizer, **self._kwargs,
                    )
                )  # fmt: skip
        return AttributionView(rows, [""] * len(rows), self.title)

    def _controls(self) -> list[dict]:
        return [
            {"name": "text", "label": "text", "type": "text", "value": self.text},
            {"name": "target", "label": "target", "type": "text", "value": self.target},
            {"name": "steps", "label": "IG steps", "type": "number", "value": self.steps, "min": 1, "max": 1000},
        ]

    @t.observe("text", "target", "steps")
    def _changed(self, change: dict) -> None:
        if self._ready:
            self.refresh()


class NeuronWidget(_LookWidget):
    """Browse the MLP units of one layer: `NeuronWidget(acts, model=model, tokenizer=tok)` (acts from neuron_activations).

    model (a GPT) adds the tokens each unit promotes. The page picks a neuron by number or from the most
    selective ones (largest max / mean |activation|).
    """

    neuron = t.Int(0, help="the MLP unit shown").tag(sync=True)
    _kind = "neuron"

    def __init__(
        self,
        acts: NeuronActivations,
        *,
        model: Any = None,
        tokenizer: Any = None,
        neuron: int | None = None,
        k: int = 8,
        title: str = "",
        **kwargs: Any,
    ) -> None:
        if not isinstance(acts, NeuronActivations):
            raise InvalidInputError(
                f"NeuronWidget needs NeuronActivations, got {type(acts).__name__}; use labkit.interpret.neuron_activations"
            )
        self._acts, self._model, self._tokenizer, self._k = acts, model, tokenizer, check_int("k", k, low=1)
        self._selective = acts.selectivity().topk(min(10, acts.n_neurons)).indices.tolist()
        first = self._selective[0] if neuron is None else check_int("neuron", neuron, low=0, high=acts.n_neurons - 1)
        super().__init__(neuron=first, title=title, **kwargs)
        self.refresh(raise_errors=True)
        self._ready = True

    def _compute(self) -> LookView:
        n = check_int(
            "neuron",
            self.neuron,
            low=0,
            high=self._acts.n_neurons - 1,
            fix=f"layer {self._acts.layer} has {self._acts.n_neurons} MLP units",
        )
        effect = None
        if self._model is not None and hasattr(self._model, "lm_head"):
            effect = neuron_logit_effect(self._model, self._acts.layer, n, tokenizer=self._tokenizer)
        return NeuronView(self._acts, n, effect, self.title, self._k)

    def _controls(self) -> list[dict]:
        options = [[str(i), f"{i}"] for i in self._selective]
        if str(self.neuron) not in dict(options):
            options.insert(0, [str(self.neuron), str(self.neuron)])
        return [
            {
                "name": "neuron",
                "label": "neuron",
                "type": "number",
                "value": self.neuron,
                "min": 0,
                "max": self._acts.n_neurons - 1,
            },
            {
                "name": "neuron",
                "label": "most selective",
                "type": "select",
                "value": str(self.neuron),
                "options": options,
                "numeric": True,
            },
        ]

    @t.observe("neuron")
    def _changed(self, change: dict) -> None:
        if self._ready:
            self.refresh()


class PatchingWidget(_LookWidget):
    """Activation patching with a hook picker: `PatchingWidget(model, clean_ids, corrupted_ids, answer=..., wrong=...)`.

    Every (hook, by) sweep is computed once and kept, so switching back is instant. Options go to
    `labkit.interpret.activation_patching`.
    """

    hook = t.Unicode("resid_pre", help="what is patched: " + ", ".join(PATCH_HOOKS)).tag(sync=True)
    by = t.Unicode("", help="how it is cut ('' = the hook's default)").tag(sync=True)
    _kind = "patch"

    def __init__(
        self,
        model: Any,
        clean_ids: Any,
        corrupted_ids: Any,
        *,
        hook: str = "resid_pre",
        by: str = "",
        title: str = "",
        **options: Any,
    ) -> None:
        self._model, self._clean, self._corrupted, self._options = model, clean_ids, corrupted_ids, options
        self._results: dict[tuple[str, str], Any] = {}
        super().__init__(hook=hook, by=by, title=title)
        self.refresh(raise_errors=True)
        self._ready = True

    def _compute(self) -> LookView:
        cuts = PATCH_HOOKS.get(self.hook, ("", ("layer_pos",)))[1]
        by = self.by if self.by in cuts else None
        key = (self.hook, by or "")
        if key not in self._results:
            self._results[key] = activation_patching(
                self._model, self._clean, self._corrupted, hook=self.hook, by=by, **self._options
            )
        return PatchingView(self._results[key], self.title)

    def _controls(self) -> list[dict]:
        cuts = PATCH_HOOKS.get(self.hook, ("", ("layer_pos",)))[1]
        return [
            {
                "name": "hook",
                "label": "patch",
                "type": "select",
                "value": self.hook,
                "options": [[h, h] for h in PATCH_HOOKS],
            },
            {
                "name": "by",
                "label": "by",
                "type": "select",
                "value": self.by if self.by in cuts else cuts[0],
                "options": [[c, c] for c in cuts],
            },
        ]

    def result(self) -> Any:
        """The PatchingResult on screen."""
        return self.to_view().result  # type: ignore[attr-defined]

    @t.observe("hook", "by")
    def _changed(self, change: dict) -> None:
        if self._ready:
            if change["name"] == "hook":
                self._ready = False
                self.by = ""  # the new hook's default cut
                self._ready = True
            self.refresh()
