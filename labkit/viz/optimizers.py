"""Optimizer views: a comparison's loss curves side by side, and the optimizer state of one small layer.

`optimizer_curves(comparison)` draws every run's loss against optimizer step and against training seconds
(plotly), so "fewer steps" and "less time" can be told apart. `moment_view(snapshots)` shows, for each recorded
step of one parameter (`labkit.training.MomentRecorder`), the weight, the gradient, Adam's bias-corrected moments
m̂ and √v̂, the step per unit of learning rate m̂/(√v̂+ε) and the change the optimizer really made, as heatmaps;
hovering a cell in the page shows every number of that weight and the update rule's prediction beside the real
change. The page data is float16, each panel scaled by its largest value (so tiny second moments survive).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError
from labkit.frontend import HtmlView, live_view_html, pack_arrays, png_bytes, svg_open, to_base64
from labkit.viz.curves import ema

__all__ = ["optimizer_curves", "moment_view", "MomentView", "MOMENT_PANELS", "COLORS"]

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
# panel key, heading, what it is (page legend), signed (diverging colours) or not
MOMENT_PANELS: dict[str, tuple[str, str, bool]] = {
    "weight": ("w", "the weight before the step", True),
    "grad": ("g", "the gradient this step used (after clipping)", True),
    "m_hat": ("m̂", "first moment m / (1 − β₁ᵗ): a running mean of g", True),
    "sqrt_v_hat": ("√v̂", "√(v / (1 − β₂ᵗ)): a running RMS of g", False),
    "direction": ("m̂/(√v̂+ε)", "Adam's step per unit of learning rate", True),
    "update": ("Δw", "the change the optimizer made: w after − w before", True),
}
SGD_PANELS = ("weight", "grad", "m_hat", "update")  # m_hat is the momentum buffer for SGD


# ---- loss curves of a comparison ----------------------------------------------------------------------------


def _runs(source: Any) -> list[tuple[str, list[int], list[float], list[float] | None]]:
    """A comparison (or {label: run / History}) in, [(label, steps, losses, seconds or None)] out."""
    runs = getattr(source, "runs", source)
    if not isinstance(runs, Mapping) or not runs:
        raise InvalidInputError(
            f"optimizer_curves needs compare_optimizers' result or {{label: History}}, got {type(source).__name__}"
        )
    out = []
    for name, run in runs.items():
        history = getattr(run, "history", run)
        if not hasattr(history, "step") or not hasattr(history, "loss"):
            raise InvalidInputError(f"run {name!r} is a {type(run).__name__}; pass an OptimizerRun or a History")
        seconds = getattr(run, "wall_s", None)
        if seconds is not None and len(seconds) != len(history.step):
            seconds = None
        losses = [v if math.isfinite(v) else None for v in history.loss]
        out.append((str(name), list(history.step), losses, None if seconds is None else list(seconds)))
    return out


def optimizer_curves(
    comparison: Any, *, smoothing: float = 0.8, log_y: bool = False, title: str = "", height: int = 420
) -> Any:
    """A comparison (`compare_optimizers`' result, or {label: History}) in, a plotly figure out.

    Left: training loss against optimizer step; right: against training seconds (when the runs timed their
    steps). One colour per optimizer: a faint line for the raw loss and a solid one for its moving average.
    smoothing: EMA weight of the past in [0, 1) (0: raw only). log_y: logarithmic loss axis. title: escaped.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    smoothing = check_float("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    height = check_int("height", height, low=100)
    runs = _runs(comparison)
    timed = all(r[3] is not None for r in runs)
    fig = make_subplots(
        rows=1,
        cols=2 if timed else 1,
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=("loss against step", "loss against training seconds") if timed else ("loss against step",),
    )
    for i, (name, steps, losses, seconds) in enumerate(runs):
        color, label = COLORS[i % len(COLORS)], html.escape(name)
        smooth = ema(losses, smoothing) if smoothing else losses
        for col, xs in ((1, steps), (2, seconds)):
            if xs is None or (col == 2 and not timed):
                continue
            if smoothing:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=losses,
                        mode="lines",
                        line=dict(color=color, width=1),
                        opacity=0.25,
                        name=label,
                        legendgroup=label,
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=1,
                    col=col,
                )
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=smooth,
                    mode="lines",
                    line=dict(color=color, width=2),
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    hovertemplate=f"{label}: %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="optimizer step", row=1, col=1)
    if timed:
        fig.update_xaxes(title_text="seconds of training", row=1, col=2)
    fig.update_yaxes(title_text="training loss (nats per token)", type="log" if log_y else "linear", row=1, col=1)
    fig.update_layout(
        height=height,
        title=html.escape(title) if title else None,
        hovermode="x unified",
        margin=dict(l=60, r=20, t=70 if title else 50, b=50),
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


# ---- optimizer state of one layer -----------------------------------------------------------------------------


def _signed_colors(x: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] in, RGB uint8 out: blue for negative, white for 0, red for positive."""
    x = np.clip(np.nan_to_num(x.astype(np.float32)), -1.0, 1.0)[..., None]
    white = np.array([255, 255, 255], np.float32)
    blue, red = np.array([33, 102, 172], np.float32), np.array([178, 24, 43], np.float32)
    mag = np.sqrt(np.abs(x))  # square root keeps small values visible, as the page does
    color = np.where(x < 0, white + (blue - white) * mag, white + (red - white) * mag)
    return np.rint(color).astype(np.uint8)


def _plain_colors(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] in, RGB uint8 out: white for 0, deep purple for 1."""
    x = np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0)[..., None]
    white, purple = np.array([255, 255, 255], np.float32), np.array([84, 39, 143], np.float32)
    return np.rint(white + (purple - white) * np.sqrt(x)).astype(np.uint8)


def _as_matrix(t: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    t = t.detach().float().cpu()
    t = t.reshape(1, -1) if t.dim() < 2 else t.reshape(t.shape[0], -1)
    return t[:rows, :cols]


@dataclass
class MomentView(HtmlView):
    """`moment_view`'s result: per recorded step, heatmap panels of one parameter's optimizer state; displays itself.

    panels: {key: tensor [frames, rows, cols]} (float32, cropped); frames: one dict per snapshot (step, lr, ...).
    """

    name: str
    kind: str
    panels: dict[str, torch.Tensor]
    frames: list[dict[str, Any]]
    full_shape: tuple[int, ...]
    title: str = ""
    summaries: list[str] = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) shown (after cropping)."""
        first = next(iter(self.panels.values()))
        return int(first.shape[1]), int(first.shape[2])

    def scales(self) -> dict[str, list[float]]:
        """{panel: largest |value| per frame}: each panel's colour scale, and the divisor of its page data."""
        return {k: [float(v[f].abs().max()) or 1.0 for f in range(v.shape[0])] for k, v in self.panels.items()}

    def spec(self) -> dict[str, Any]:
        """The page data: names, frames, panels with their scales, and the float16 payload (scaled to [-1, 1])."""
        scales = self.scales()
        scaled = {k: v / torch.tensor(scales[k]).view(-1, 1, 1) for k, v in self.panels.items()}
        header, data = pack_arrays(scaled)
        rows, cols = self.shape
        return {
            "title": self.title or f"optimizer state of {self.name}",
            "name": self.name,
            "kind": self.kind,
            "rows": rows,
            "cols": cols,
            "full_shape": list(self.full_shape),
            "frames": self.frames,
            "panels": [
                {"key": k, "label": MOMENT_PANELS[k][0], "about": MOMENT_PANELS[k][1], "signed": MOMENT_PANELS[k][2]}
                for k in self.panels
            ],
            "scales": scales,
            "header": header,
            "b64": to_base64(data),
        }

    def summary(self) -> str:
        """Text: what is shown, then one line per recorded step (mean sizes and how well the rule predicts Δw)."""
        rows, cols = self.shape
        crop = "" if (rows, cols) == tuple(self._full2d()) else f", showing {rows}x{cols} of {self._full2d()}"
        lines = [f"{self.title or 'optimizer state'}: {self.name} {tuple(self.full_shape)} ({self.kind}){crop}"]
        return "\n".join(lines + [f"  {s}" for s in self.summaries])

    def __repr__(self) -> str:
        return self.summary()

    def _full2d(self) -> tuple[int, int]:
        s = self.full_shape
        return (1, int(s[0]) if s else 1) if len(s) < 2 else (int(s[0]), int(np.prod(s[1:])))

    def to_svg(self, standalone: bool = True, frame: int = -1) -> str:
        """The static fallback: one frame's panels as heatmap images with their headings and scales."""
        f = range(len(self.frames))[frame]
        rows, cols = self.shape
        cell = max(1.0, min(12.0, 150.0 / max(rows, cols)))
        pw, ph = cols * cell, rows * cell
        gap, top = 16, 40
        n = len(self.panels)
        width = int(8 + n * (pw + gap))
        height = int(top + ph + 24)
        info = self.frames[f]
        out = [
            svg_open(width, height, standalone=standalone),
            f'<text x="4" y="14">{html.escape(self.title or self.name)}: step {info["step"]} '
            f"({html.escape(self.kind)}, lr {info['lr']:.3g})</text>",
        ]
        for i, (key, values) in enumerate(self.panels.items()):
            x = 8 + i * (pw + gap)
            m = values[f].numpy()
            scale = float(np.abs(m).max()) or 1.0
            signed = MOMENT_PANELS[key][2]
            rgb = _signed_colors(m / scale) if signed else _plain_colors(m / scale)
            uri = "data:image/png;base64," + to_base64(png_bytes(rgb))
            out.append(
                f'<text x="{x:.1f}" y="{top - 6}">{html.escape(MOMENT_PANELS[key][0])}</text>'
                f'<image x="{x:.1f}" y="{top}" width="{pw:.1f}" height="{ph:.1f}" preserveAspectRatio="none" '
                f'style="image-rendering:pixelated" href="{uri}"><title>{html.escape(MOMENT_PANELS[key][1])}</title>'
                f"</image>"
                f'<text x="{x:.1f}" y="{top + ph + 14:.1f}" fill="#555">{"±" if signed else "max "}{scale:.2g}</text>'
            )
        out.append("</svg>")
        return "".join(out)

    def to_html(self) -> str:
        """A self-contained HTML fragment: CSS, the SVG fallback, the payload and the inlined script (no URL)."""
        return live_view_html("labkit-mom", "moments.css", "moments.js", self.to_svg(standalone=False), self.spec())

    def _page_title(self) -> str:
        return self.title or f"labkit optimizer state of {self.name}"


def moment_view(
    snapshots: Any, *, max_rows: int = 64, max_cols: int = 64, title: str = "", max_frames: int = 24
) -> MomentView:
    """Moment snapshots of one parameter (a `MomentRecorder`, or its `snapshots`) in, a `MomentView` out.

    max_rows, max_cols: crop the parameter (its first rows and columns) so every cell stays visible.
    max_frames: at most this many steps (evenly spaced, always the first and last). title: shown above.
    """
    snaps = list(getattr(snapshots, "snapshots", snapshots))
    if not snaps:
        raise InvalidInputError(
            "no snapshots to show; train with callbacks=[MomentRecorder(name, steps=[...])] and pass the recorder"
        )
    if not all(hasattr(s, "exp_avg") and hasattr(s, "direction") for s in snaps):
        raise InvalidInputError("moment_view takes MomentSnapshot objects (from labkit.training.MomentRecorder)")
    max_rows, max_cols = check_int("max_rows", max_rows), check_int("max_cols", max_cols)
    max_frames = check_int("max_frames", max_frames, low=2 if len(snaps) > 1 else 1)
    names, kinds = {s.name for s in snaps}, {s.kind for s in snaps}
    if len(names) > 1 or len(kinds) > 1:
        raise InvalidInputError(f"snapshots must come from one parameter and optimizer, got {sorted(names)}")
    snaps = sorted(snaps, key=lambda s: s.step)
    if len(snaps) > max_frames:
        picks = sorted({round(i * (len(snaps) - 1) / (max_frames - 1)) for i in range(max_frames)})
        snaps = [snaps[i] for i in picks]
    kind = snaps[0].kind
    keys: Sequence[str] = SGD_PANELS if kind == "sgd" else tuple(MOMENT_PANELS)

    def panel(s: Any, key: str) -> torch.Tensor:
        value = s.v_hat.sqrt() if key == "sqrt_v_hat" else getattr(s, key)
        return _as_matrix(value, max_rows, max_cols)

    panels = {k: torch.stack([panel(s, k) for s in snaps]) for k in keys}
    frames = [
        {
            "step": s.step,
            "lr": s.lr,
            "betas": list(s.betas),
            "eps": s.eps,
            "weight_decay": s.weight_decay,
            "momentum": s.momentum,
        }
        for s in snaps
    ]
    return MomentView(
        name=snaps[0].name,
        kind=kind,
        panels=panels,
        frames=frames,
        full_shape=tuple(snaps[0].weight.shape),
        title=title,
        summaries=[s.summary() for s in snaps],
    )
