"""`StaticFallback`: what a labkit widget shows where no widget manager runs (GitHub, plain nbconvert, print).

Such hosts drop the widget's own output and show the richest other entry of its display bundle, so every widget
adds a plain-text summary and an SVG of its current state beside it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StaticFallback"]


class StaticFallback:
    """Mixin placed before `anywidget.AnyWidget`: adds "text/plain" and "image/svg+xml" to the display bundle.

    A subclass gives `_static_view()`: an object with `summary()` and `to_svg()` describing the current state
    (often the widget itself or its static view), or None while there is nothing to show (the bundle is left as is).
    """

    def _static_view(self) -> Any:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if bundle is None:
            return bundle
        view = self._static_view()
        if view is None:
            return bundle
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**data, "text/plain": view.summary(), "image/svg+xml": view.to_svg()}, meta
