"""What the four "looking inside" views share: colour scales, the static SVG/PNG heatmap and token strips, the page shell.

Each view (`labkit.viz.lens`, `.attribution`, `.neurons`, `.patching`) is a `LookView`: a JSON-able `spec()`
that `widgets/interpret.js` draws (in a page, or inside the matching widget), a static `to_svg()` drawn here in
Python for hosts that run no JavaScript, and `to_png()`, a raster of the same colours. Token text reaches the
page only as escaped JSON or escaped SVG text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.frontend import HtmlView, live_view_html, png_bytes, svg_open, to_base64

__all__ = [
    "LookView",
    "diverging_colors",
    "sequential_colors",
    "heatmap_svg",
    "token_rows_svg",
    "short",
    "finite",
]

_RED, _BLUE, _WHITE = np.array([178, 24, 43.0]), np.array([33, 102, 172.0]), np.array([255, 255, 255.0])
_DEEP = np.array([8, 48, 107.0])


def diverging_colors(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Signed values in, RGB uint8 [..., 3] out: red for positive, blue for negative, white at 0 (|v| >= scale is full)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    s = scale if scale is not None else float(np.abs(v).max()) if v.size else 1.0
    t = np.clip(v / (s if s > 0 else 1.0), -1.0, 1.0)[..., None]
    out = np.where(t >= 0, _WHITE + (_RED - _WHITE) * t, _WHITE + (_BLUE - _WHITE) * (-t))
    return np.floor(out + 0.5).astype(np.uint8)  # round half up, as the page's Math.round does


def sequential_colors(values: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Values in [low, high] in, RGB uint8 [..., 3] out: white at low, deep blue at high (NaN stays light grey)."""
    v = np.asarray(values, dtype=np.float64)
    t = np.clip((np.nan_to_num(v, nan=low) - low) / ((high - low) or 1.0), 0.0, 1.0)[..., None]
    out = np.floor(_WHITE + (_DEEP - _WHITE) * np.sqrt(t) + 0.5).astype(np.uint8)
    out[np.isnan(v)] = 235
    return out


def finite(x: Any) -> float | None:
    """A number in, a float out, or None for NaN/inf (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def short(text: str, n: int = 14) -> str:
    """Text cut to n characters with an ellipsis, whitespace made visible (for labels)."""
    text = text.replace("\n", "\u21b5").replace("\t", "\u2192")
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def heatmap_svg(
    colors: np.ndarray,
    *,
    texts: Sequence[Sequence[str]] | None = None,
    tips: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    cell: float | None = None,
    standalone: bool = True,
) -> str:
    """RGB colours [rows, cols, 3] with labels in, an SVG heatmap out (small: one rect per cell; large: one PNG).

    texts: a short text drawn in each cell (the logit lens's top token). tips: hover text per cell.
    """
    rows, cols = colors.shape[:2]
    cw = cell or (max(34.0, 7.0 * max((len(t) for r in texts for t in r), default=3) + 6) if texts else 22.0)
    ch = 18.0
    left = 10 + 7 * max((len(s) for s in row_labels), default=1)
    top = 24
    bottom = 10 + 6.5 * max((len(s) for s in col_labels), default=1)
    w, h = left + cols * cw + 8, top + rows * ch + bottom
    out = [
        svg_open(w, h, standalone=standalone),
        f'<text x="4" y="15" font-weight="bold">{html.escape(title)}</text>',
    ]
    if rows * cols <= 4096:
        for i in range(rows):
            for j in range(cols):
                x, y = left + j * cw, top + i * ch
                tip = f"<title>{html.escape(tips[i][j])}</title>" if tips else ""
                out.append(
                    f'<g>{tip}<rect x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" height="{ch:.1f}" fill="{_hex(colors[i, j])}"/>'
                )
                if texts:
                    dark = colors[i, j].astype(float).mean() < 140
                    out.append(
                        f'<text x="{x + 3:.1f}" y="{y + 13:.1f}" font-family="monospace" fill="{"#fff" if dark else "#111"}">'
                        f"{html.escape(short(texts[i][j], max(2, int(cw / 7) - 1)))}</text>"
                    )
                out.append("</g>")
    else:  # one PNG pixel per cell keeps a large grid small
        uri = "data:image/png;base64," + to_base64(png_bytes(np.ascontiguousarray(colors)))
        out.append(
            f'<image x="{left}" y="{top}" width="{cols * cw:.1f}" height="{rows * ch:.1f}" '
            f'preserveAspectRatio="none" style="image-rendering:pixelated" href="{uri}"/>'
        )
    for i, s in enumerate(row_labels):
        out.append(f'<text x="{left - 4}" y="{top + i * ch + 13:.1f}" text-anchor="end">{html.escape(s)}</text>')
    for j, s in enumerate(col_labels):
        x, y = left + (j + 0.5) * cw - 3, top + rows * ch + 6
        out.append(f'<text transform="translate({x:.1f},{y:.1f}) rotate(90)">{html.escape(short(s))}</text>')
    out.append("</svg>")
    return "".join(out)


def token_rows_svg(
    rows: Sequence[tuple[str, Sequence[str], np.ndarray]], *, title: str, width: int = 720, standalone: bool = True
) -> str:
    """[(row label, tokens, RGB colours [n, 3])] in, an SVG of each row's tokens on their colours (wrapped) out."""
    out: list[str] = []
    y = 22.0
    out.append(f'<text x="4" y="15" font-weight="bold">{html.escape(title)}</text>')
    for label, tokens, colors in rows:
        y += 6
        if label:
            out.append(f'<text x="4" y="{y + 10:.1f}" fill="#444">{html.escape(label)}</text>')
            y += 14
        x = 4.0
        for tok, c in zip(tokens, colors):
            shown = short(tok, 24)
            w = 7.2 * max(1, len(shown)) + 4
            if x + w > width and x > 4:
                x, y = 4.0, y + 20
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="18" rx="2" fill="{_hex(c)}"/>'
                f'<text x="{x + 2:.1f}" y="{y + 13:.1f}" font-family="monospace">{html.escape(shown)}</text>'
            )
            x += w + 1
        y += 22
    return svg_open(width, y + 4, standalone=standalone) + "".join(out) + "</svg>"


class LookView(HtmlView):
    """Base of the four views: `spec()` for the front end, `to_svg()`, `to_png()`, `summary()`; the page shell is here."""

    kind = "lens"  # which drawing of widgets/interpret.js
    title = ""

    def spec(self) -> dict:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def colors(self) -> np.ndarray:
        """RGB uint8 [rows, cols, 3] of the view's main picture (what `to_png` rasterises)."""
        raise NotImplementedError

    def to_png(self, cell: int = 12) -> bytes:
        """The main picture as PNG bytes, each cell `cell` pixels square (no text: the SVG carries the labels)."""
        rgb = np.repeat(np.repeat(self.colors(), cell, axis=0), cell, axis=1)
        return png_bytes(np.ascontiguousarray(rgb))

    def to_html(self) -> str:
        """A self-contained HTML fragment: CSS, the SVG fallback, the spec as escaped JSON and the inlined script."""
        return live_view_html(
            "labkit-look", "interpret.css", "interpret.js", self.to_svg(standalone=False), self.spec()
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {**super()._repr_mimebundle_(include, exclude), "image/png": to_base64(self.to_png())}

    def __repr__(self) -> str:
        return self.summary()  # type: ignore[attr-defined]

    def _page_title(self) -> str:
        return self.title or f"labkit {self.kind} view"
