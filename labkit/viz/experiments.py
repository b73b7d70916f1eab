"""Scores over seeds: one dot per run, and each condition's mean with its spread (plotly).

`seed_spread_figure(source)` takes `compare_augmentations`' result, or any mapping {condition: [score per
seed]}, and draws every run as a dot (hover: condition, seed, score) with the mean and ± one standard
deviation beside it. With a baseline, a second panel shows the paired differences from it, seed by seed:
a difference whose spread straddles zero is not an improvement you can claim.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from labkit.errors import InvalidInputError

__all__ = ["seed_spread_figure", "seed_scores"]


def seed_scores(source: Any) -> tuple[dict[str, list[float]], list[Any], str, str | None]:
    """An experiment (with `names`, `seeds`, `scores(name)`) or {condition: [scores]} in,
    ({condition: scores}, seeds, metric name, baseline or None) out."""
    if hasattr(source, "scores") and hasattr(source, "names"):
        scores = {name: list(source.scores(name)) for name in source.names}
        return scores, list(source.seeds), getattr(source, "metric_name", "score"), getattr(source, "baseline", None)
    if isinstance(source, Mapping) and source:
        scores = {}
        for name, values in source.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise InvalidInputError(f"condition {name!r} needs a non-empty list of scores, one per seed")
            try:
                scores[str(name)] = [float(v) for v in values]
            except (TypeError, ValueError):
                raise InvalidInputError(f"condition {name!r} holds a non-number; pass scores as floats") from None
        n = max(len(v) for v in scores.values())
        return scores, list(range(n)), "score", None
    raise InvalidInputError(
        f"seed_spread_figure needs compare_augmentations' result or {{condition: [scores]}}, got {type(source).__name__}"
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _add_runs(
    fig: Any,
    col: int,
    x: str,
    values: list[float],
    seeds: list[Any],
    mean_std: tuple[float, float],
    hover: tuple[str, str],
    legend: bool | None,
) -> None:
    """Adds to panel `col` of `fig`, at x: a dot per run (seed) and the mean with a ± 1 std error bar.

    hover: the dots' and the mean's hovertemplates. legend: whether this x shows the legend entries; None leaves
    the traces unnamed (the difference panel repeats what the first panel's legend says).
    """
    import plotly.graph_objects as go

    mean, std = mean_std
    run_hover, mean_hover = hover
    fig.add_trace(
        go.Scatter(
            x=[x] * len(values),
            y=values,
            mode="markers",
            marker={"size": 9, "opacity": 0.6, "color": "#1f77b4"},
            customdata=seeds[: len(values)],
            hovertemplate=run_hover,
            showlegend=bool(legend),
            name=None if legend is None else "one run (seed)",
            legendgroup="runs",
        ),
        row=1,
        col=col,
    )
    fig.add_trace(
        go.Scatter(
            x=[x],
            y=[mean],
            mode="markers",
            marker={"size": 14, "symbol": "line-ew-open", "line": {"width": 3}, "color": "#d62728"},
            error_y={"type": "data", "array": [std], "visible": True, "color": "#d62728"},
            hovertemplate=mean_hover,
            showlegend=bool(legend),
            name=None if legend is None else "mean ± 1 std",
            legendgroup="mean",
        ),
        row=1,
        col=col,
    )


def seed_spread_figure(source: Any, *, title: str = "", height: int = 380) -> Any:
    """Scores per condition and seed in (see `seed_scores`), a plotly figure out: dots per run, mean ± 1 std.

    title: heading (default: the metric's name over seeds). height: pixels.
    """
    from plotly.subplots import make_subplots

    scores, seeds, metric, baseline = seed_scores(source)
    names = list(scores)
    paired = baseline is not None and len(names) > 1
    fig = make_subplots(
        rows=1,
        cols=2 if paired else 1,
        subplot_titles=[f"{metric} per run", f"paired difference from {baseline!r}"] if paired else None,
        horizontal_spacing=0.12,
    )
    for i, name in enumerate(names):
        values = scores[name]
        mean, std = _mean_std(values)
        run_hover = f"{name}<br>seed %{{customdata}}<br>{metric} %{{y:.4f}}<extra></extra>"
        mean_hover = f"{name}<br>mean {mean:.4f} ± {std:.4f} (1 std, {len(values)} seeds)<extra></extra>"
        _add_runs(fig, 1, name, values, seeds, (mean, std), (run_hover, mean_hover), legend=i == 0)
    if paired:
        base = scores[baseline]
        others = [n for n in names if n != baseline]
        for name in others:
            diffs = [s - b for s, b in zip(scores[name], base)]
            mean, std = _mean_std(diffs)
            run_hover = f"{name} − {baseline}<br>seed %{{customdata}}<br>%{{y:+.4f}}<extra></extra>"
            mean_hover = f"{name} − {baseline}<br>mean {mean:+.4f} ± {std:.4f}<extra></extra>"
            _add_runs(fig, 2, name, diffs, seeds, (mean, std), (run_hover, mean_hover), legend=None)
        fig.add_hline(y=0, line_dash="dot", line_color="#7f7f7f", row=1, col=2)
    fig.update_yaxes(title_text=metric, row=1, col=1)
    fig.update_layout(
        title=title or f"{metric} over {len(seeds)} seeds",
        height=height,
        legend={"orientation": "h", "y": -0.15},
        margin={"t": 70},
    )
    return fig
