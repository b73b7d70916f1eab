"""Training curves: a History (or its DataFrame, dict or a dashboard's point lists) in; a plotly figure, an SVG or a text summary out.

`curve_data` reads every accepted source into one `CurveData` (plain lists), so the three outputs draw
the same numbers: `training_curves` (plotly: loss with validation, learning rate, gradient norm, throughput),
`curves_svg` (a static loss chart for reports, prints and hosts without JavaScript) and `curves_summary`
(text/plain, diffable). Titles are escaped wherever they are written.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError
from labkit.frontend import svg_open

__all__ = ["CurveData", "curve_data", "training_curves", "curves_svg", "curves_summary", "ema"]


@dataclass
class CurveData:
    """Per-step training values and per-evaluation validation losses, as plain lists (None = not measured)."""

    step: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    lr: list[float | None] = field(default_factory=list)
    tokens_per_s: list[float | None] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float | None] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)  # before clipping; empty or all None: not logged

    def __len__(self) -> int:
        return len(self.step)


def _num(value: Any) -> float | None:
    """A number (or None/NaN/inf) in, a finite float or None out: JSON and plotting never see NaN."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"curve values must be numbers, got {value!r}") from None
    return x if math.isfinite(x) else None


def _column(source: Any, name: str, n: int | None = None) -> list:
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    if value is None:
        return [None] * (n or 0)
    values = value.tolist() if hasattr(value, "tolist") else list(value)
    return values


def curve_data(source: Any) -> CurveData:
    """A History, `History.to_pandas()` frame, `History.to_dict()` dict, dashboard points or CurveData in, CurveData out.

    source: anything with `step`/`loss`/`lr`/`tokens_per_s` (+ `grad_norm`, `eval_step`/`eval_loss`) columns or
    attributes, or a mapping {"points": [[step, loss, lr, tokens_per_s, grad_norm], ...], "val_points":
    [[step, loss], ...]} (the dashboard's compact form; points without the grad_norm entry are read too).
    Non-finite values become None.
    """
    if isinstance(source, CurveData):
        return source
    if isinstance(source, Mapping) and "points" in source:
        pts, val = list(source.get("points") or []), list(source.get("val_points") or [])
        if any(not isinstance(p, (list, tuple)) or len(p) not in (4, 5) for p in pts):
            raise InvalidInputError(
                "points must be [step, loss, lr, tokens_per_s, grad_norm] lists; pass the dashboard's `points` trait"
            )
        if any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in val):
            raise InvalidInputError("val_points must be [step, loss] pairs; pass the dashboard's `val_points` trait")
        return CurveData(
            [int(p[0]) for p in pts],
            [_num(p[1]) for p in pts],
            [_num(p[2]) for p in pts],
            [_num(p[3]) for p in pts],
            [int(p[0]) for p in val],
            [_num(p[1]) for p in val],
            [_num(p[4]) if len(p) > 4 else None for p in pts],
        )
    if hasattr(source, "columns") and hasattr(source, "to_dict"):  # a pandas DataFrame
        frame = source
        if "step" not in frame.columns or "loss" not in frame.columns:
            raise InvalidInputError(
                f"the DataFrame needs 'step' and 'loss' columns (History.to_pandas()), got {list(frame.columns)}"
            )
        rows = frame.to_dict("list")
        steps, losses = rows["step"], [_num(v) for v in rows["loss"]]
        keep = [i for i, v in enumerate(losses) if v is not None]
        evals = [
            (int(s), _num(v)) for s, v in zip(steps, rows.get("eval_loss", [None] * len(steps))) if _num(v) is not None
        ]
        pick = lambda name: [_num(rows[name][i]) if name in rows else None for i in keep]  # noqa: E731
        return CurveData(
            [int(steps[i]) for i in keep],
            [losses[i] for i in keep],
            pick("lr"),
            pick("tokens_per_s"),
            [s for s, _ in evals],
            [v for _, v in evals],
            pick("grad_norm"),
        )
    if isinstance(source, Mapping) or hasattr(source, "step"):
        step = _column(source, "step")
        if not step and not _column(source, "eval_step"):
            if not (isinstance(source, Mapping) and "step" in source) and not hasattr(source, "loss"):
                raise InvalidInputError(
                    f"cannot read curves from a {type(source).__name__}; pass a History, its DataFrame or dict"
                )
        n = len(step)
        cols = {name: _column(source, name, n) for name in ("loss", "lr", "tokens_per_s", "grad_norm")}
        for name, col in cols.items():
            if len(col) != n:
                raise InvalidInputError(f"{name} has {len(col)} values but step has {n}; pass columns of equal length")
        eval_step, eval_loss = _column(source, "eval_step"), _column(source, "eval_loss")
        if len(eval_step) != len(eval_loss):
            raise InvalidInputError(
                f"eval_step has {len(eval_step)} values but eval_loss has {len(eval_loss)}; pass equal lengths"
            )
        return CurveData(
            [int(s) for s in step],
            [_num(v) for v in cols["loss"]],
            [_num(v) for v in cols["lr"]],
            [_num(v) for v in cols["tokens_per_s"]],
            [int(s) for s in eval_step],
            [_num(v) for v in eval_loss],
            [_num(v) for v in cols["grad_norm"]],
        )
    raise InvalidInputError(f"cannot read curves from a {type(source).__name__}; pass a History, its DataFrame or dict")


def ema(values: Sequence[float | None], smoothing: float) -> list[float | None]:
    """Values in, their exponential moving average out (bias-corrected like TensorBoard's; None stays None).

    smoothing: weight of the past in [0, 1); 0 returns the values unchanged.
    """
    check_float("smoothing", smoothing, low=0, high=1, high_open=True)
    out: list[float | None] = []
    avg, weight = 0.0, 0.0
    for v in values:
        if v is None:
            out.append(None)
            continue
        avg = smoothing * avg + (1 - smoothing) * v
        weight = smoothing * weight + (1 - smoothing)
        out.append(avg / weight)
    return out


def training_curves(source: Any, *, smoothing: float = 0.0, title: str = "", height: int = 620) -> Any:
    """A History (or anything `curve_data` reads) in, a plotly Figure out: loss + val loss, learning rate, tokens/s,
    and the gradient norm (before clipping) when the source logged it.

    smoothing: also draw an EMA of the training loss (0 = off, 0.9 = strong). title: figure title (escaped).
    height: figure height in pixels.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    d = curve_data(source)
    norms = any(g is not None for g in d.grad_norm)
    fig = make_subplots(
        rows=4 if norms else 3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.46, 0.16, 0.16, 0.22] if norms else [0.55, 0.2, 0.25],
        subplot_titles=("loss", "learning rate", "gradient norm", "tokens / s")
        if norms
        else ("loss", "learning rate", "tokens / s"),
    )
    last = 4 if norms else 3
    fig.add_trace(
        go.Scatter(
            x=d.step,
            y=d.loss,
            mode="lines",
            name="train loss",
            line=dict(color="#1f77b4", width=1),
            opacity=0.45 if smoothing else 1.0,
        ),
        row=1,
        col=1,
    )
    if smoothing:
        fig.add_trace(
            go.Scatter(
                x=d.step,
                y=ema(d.loss, smoothing),
                mode="lines",
                name=f"train loss (EMA {smoothing:g})",
                line=dict(color="#1f77b4", width=2),
            ),
            row=1,
            col=1,
        )
    if d.eval_step:
        fig.add_trace(
            go.Scatter(
                x=d.eval_step, y=d.eval_loss, mode="lines+markers", name="val loss", line=dict(color="#d62728", width=2)
            ),
            row=1,
            col=1,
        )
    fig.add_trace(go.Scatter(x=d.step, y=d.lr, mode="lines", name="lr", line=dict(color="#2ca02c")), row=2, col=1)
    if norms:
        fig.add_trace(
            go.Scatter(x=d.step, y=d.grad_norm, mode="lines", name="grad norm", line=dict(color="#9467bd")),
            row=3,
            col=1,
        )
    fig.add_trace(
        go.Scatter(x=d.step, y=d.tokens_per_s, mode="lines", name="tokens/s", line=dict(color="#ff7f0e")),
        row=last,
        col=1,
    )
    fig.update_xaxes(title_text="step", row=last, col=1)
    fig.update_layout(
        height=height,
        title=html.escape(title) if title else None,
        hovermode="x unified",
        margin=dict(l=60, r=20, t=60 if title else 40, b=40),
        legend=dict(orientation="h", y=1.08),
    )
    return fig


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _path(xs: Sequence[float], ys: Sequence[float | None], sx: Any, sy: Any) -> str:
    parts, pen = [], "M"
    for x, y in zip(xs, ys):
        if y is None:
            pen = "M"  # a gap (NaN step) breaks the line
            continue
        parts.append(f"{pen}{sx(x):.1f},{sy(y):.1f}")
        pen = "L"
    return "".join(parts)


def curves_svg(source: Any, *, width: int = 640, height: int = 240, title: str = "", standalone: bool = True) -> str:
    """A History (or anything `curve_data` reads) in, a static SVG line chart of train and val loss out.

    width/height: pixels (at least 100 x 80: the axes take 60 x 52). title: caption (escaped).
    standalone: include the SVG namespace (for .svg files).
    """
    check_int("width", width, low=100, fix="pixels; the axes and labels need at least 100")
    check_int("height", height, low=80, fix="pixels; the axes and labels need at least 80")
    d = curve_data(source)
    head = svg_open(width, height, standalone=standalone)
    caption = html.escape(title or "training loss", quote=True)
    ys = _finite(d.loss) + _finite(d.eval_loss)
    xs = d.step + d.eval_step
    if not ys:
        return head + f'<text x="8" y="16">{caption}: no points yet</text></svg>'
    left, right, top, bottom = 48, 12, 24, 28
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: top + (y1 - y) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    out = [
        head,
        f'<text x="{left}" y="14">{caption}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="none" stroke="#ccc"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        out.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    out.append(
        f'<text x="{left}" y="{height - 8}">{x0:g}</text>'
        f'<text x="{width - right}" y="{height - 8}" text-anchor="end">step {x1:g}</text>'
    )
    if d.step:
        out.append(f'<path d="{_path(d.step, d.loss, sx, sy)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    if d.eval_step:
        out.append(
            f'<path d="{_path(d.eval_step, d.eval_loss, sx, sy)}" fill="none" stroke="#d62728" stroke-width="2"/>'
        )
        for s, v in zip(d.eval_step, d.eval_loss):
            if v is not None:
                out.append(f'<circle cx="{sx(s):.1f}" cy="{sy(v):.1f}" r="2.5" fill="#d62728"/>')
    val = ' <tspan fill="#d62728">val</tspan>' if d.eval_step else ""
    out.append(
        f'<text x="{width - right}" y="14" text-anchor="end"><tspan fill="#1f77b4">train</tspan>{val}</text></svg>'
    )
    return "".join(out)


def curves_summary(source: Any, *, title: str = "") -> str:
    """A History (or anything `curve_data` reads) in, a short text summary out: last and best losses, lr, throughput."""
    d = curve_data(source)
    # the title is user text: < > & as \u escapes keep it inert wherever text/plain is shown
    safe = title.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    lines = [safe] if title else []
    losses = _finite(d.loss)
    if not d.step:
        lines.append("training curves: no steps logged yet")
    else:
        last = next((v for v in reversed(d.loss) if v is not None), None)
        lr = next((v for v in reversed(d.lr) if v is not None), None)
        tps = next((v for v in reversed(d.tokens_per_s) if v is not None), None)
        norm = next((v for v in reversed(d.grad_norm) if v is not None), None)
        parts = [f"{len(d.step)} points, steps {d.step[0]}..{d.step[-1]}"]
        if last is not None:
            parts.append(f"loss {last:.4f} (min {min(losses):.4f})")
        if lr is not None:
            parts.append(f"lr {lr:.3g}")
        if norm is not None:
            parts.append(f"grad norm {norm:.3g}")
        if tps is not None:
            parts.append(f"{tps:,.0f} tokens/s")
        lines.append("training curves: " + ", ".join(parts))
    evals = [(s, v) for s, v in zip(d.eval_step, d.eval_loss) if v is not None]
    if evals:
        best = min(evals, key=lambda e: e[1])
        lines.append(
            f"val loss {evals[-1][1]:.4f} at step {evals[-1][0]} (best {best[1]:.4f} at step {best[0]}, {len(evals)} evals)"
        )
    return "\n".join(lines)
