"""LoRA explorer: how many parameters an adapter of rank r trains, and what a trained adapter learned.

`lora_parameter_table(model, ranks, targets)` counts, from the model's layer shapes alone (no PEFT wrapping),
what `labkit.training.lora.trainable_parameters(lora(copy, r=r, targets=...))` would report: each adapted layer
W [out, in] gains A [r, in] and B [out, r], so r * (in + out) trainable numbers. `lora_singular_values(peft_model)`
gives, per adapted module, the singular values of the learned update ΔW = B A * scale: how many directions the
adapter really uses. Both have plotly figures; the table also renders as HTML, SVG and text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.frontend import HtmlView

__all__ = [
    "LoraRow",
    "LoraTable",
    "lora_layer_shapes",
    "lora_parameter_table",
    "lora_parameter_figure",
    "lora_singular_values",
    "lora_singular_value_figure",
    "DEFAULT_RANKS",
]

DEFAULT_RANKS = (1, 2, 4, 8, 16, 32, 64)


def _check_rank(r: Any) -> int:
    return check_int("LoRA rank", r, fix="4 to 64 are usual")


def lora_layer_shapes(model: nn.Module, targets: str | Sequence[str] = ("attn",)) -> dict[str, tuple[int, int]]:
    """A model (not yet wrapped) and LoRA targets in, {module name: (in, out)} of every layer LoRA would adapt out.

    targets: as in `labkit.training.lora.lora` (aliases "attn", "qv", "attn-out", "mlp", "all-linear", suffixes, regex).
    Embeddings count as (num_embeddings, embedding_dim): PEFT gives them A [r, num] and B [dim, r].
    """
    from labkit.training import lora_targets

    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"lora_parameter_table needs a torch model (nn.Module), got {type(model).__name__}")
    matched = lora_targets(model, targets)
    modules = dict(model.named_modules())
    shapes = {}
    for name in matched:
        m = modules[name]
        if isinstance(m, nn.Linear):
            shapes[name] = (m.in_features, m.out_features)
        elif type(m).__name__ == "Conv1D":  # GPT-2's transposed linear: weight [in, out]
            shapes[name] = (m.weight.shape[0], m.weight.shape[1])
        elif isinstance(m, nn.Embedding):
            shapes[name] = (m.num_embeddings, m.embedding_dim)
        else:
            raise InvalidInputError(
                f"{name} is a {type(m).__name__}; the explorer counts Linear, Conv1D and Embedding "
                "layers only; target those"
            )
    return shapes


@dataclass
class LoraRow:
    """One rank's cost: trainable LoRA parameters, all parameters with the adapter, and the trainable share."""

    rank: int
    trainable: int
    total: int

    @property
    def share(self) -> float:
        """Trainable / total (a fraction, not a percentage)."""
        return self.trainable / self.total if self.total else 0.0


@dataclass
class LoraTable(HtmlView):
    """`lora_parameter_table`'s result: a row per rank plus the adapted layers; displays as a table."""

    rows: list[LoraRow]
    base_parameters: int  # the model's own parameters (shared weights once)
    layers: dict[str, tuple[int, int]] = field(repr=False)  # adapted module -> (in, out)
    targets: Any = ("attn",)

    def row(self, rank: int) -> LoraRow:
        """Any rank (also one not in the table) in, its LoraRow out (computed from the layer shapes)."""
        r = _check_rank(rank)
        trainable = r * sum(i + o for i, o in self.layers.values())
        return LoraRow(r, trainable, self.base_parameters + trainable)

    def summary(self) -> str:
        """A text/plain table: rank, trainable parameters, total, trainable share."""
        lines = [
            f"LoRA on {len(self.layers)} layers (targets {self.targets!r}) of a {self.base_parameters:,}-parameter model",
            f"  {'rank':>5} {'trainable':>12} {'total':>14} {'share':>9}",
        ]
        lines += [f"  {r.rank:>5} {r.trainable:>12,} {r.total:>14,} {100 * r.share:>8.3f}%" for r in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_html(self) -> str:
        """An HTML table (no script) with a bar per rank for the trainable share."""
        top = max((r.share for r in self.rows), default=1.0) or 1.0
        body = "".join(
            f"<tr><td>{r.rank}</td><td>{r.trainable:,}</td><td>{r.total:,}</td><td>{100 * r.share:.3f}%</td>"
            f'<td><div style="background:#4c78a8;height:10px;width:{160 * r.share / top:.0f}px"></div></td></tr>'
            for r in self.rows
        )
        layers = html.escape(", ".join(list(self.layers)[:6]) + (" …" if len(self.layers) > 6 else ""))
        return (
            f'<div class="labkit-lora"><div>LoRA on {len(self.layers)} layers ({layers}) of a '
            f'{self.base_parameters:,}-parameter model</div><table style="border-collapse:collapse;text-align:right">'
            f"<thead><tr><th>rank</th><th>trainable</th><th>total</th><th>share</th><th></th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>"
        )

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: a bar chart of trainable parameters per rank (labelled with the share)."""
        n = max(1, len(self.rows))
        top = max((r.trainable for r in self.rows), default=1) or 1
        bar_w, h, pad = 44, 160, 30
        ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
        width = pad + n * (bar_w + 8) + 10
        out = [
            f'<svg{ns} width="{width}" height="{h + 60}" font-family="sans-serif" font-size="10">',
            '<text x="4" y="12">LoRA trainable parameters by rank</text>',
        ]
        for i, r in enumerate(self.rows):
            bh = h * r.trainable / top
            x = pad + i * (bar_w + 8)
            out.append(
                f'<rect x="{x}" y="{20 + h - bh:.1f}" width="{bar_w}" height="{bh:.1f}" fill="#4c78a8">'
                f"<title>rank {r.rank}: {r.trainable:,} trainable ({100 * r.share:.3f}%)</title></rect>"
                f'<text x="{x + bar_w / 2}" y="{h + 34}" text-anchor="middle">r={r.rank}</text>'
                f'<text x="{x + bar_w / 2}" y="{h + 48}" text-anchor="middle">{100 * r.share:.2f}%</text>'
            )
        out.append("</svg>")
        return "".join(out)

    def _page_title(self) -> str:
        return "labkit LoRA parameter counts"

    def to_figure(self) -> Any:
        """A plotly figure: trainable parameters per rank (bars, log axis) and the trainable share (line)."""
        return lora_parameter_figure(self)


def lora_parameter_table(
    model: nn.Module, ranks: Sequence[int] = DEFAULT_RANKS, targets: str | Sequence[str] = ("attn",)
) -> LoraTable:
    """A model and ranks in, a LoraTable (trainable LoRA parameters, total, share per rank) out, without wrapping.

    model: a labkit or Hugging Face model without adapters. ranks: the LoRA ranks to price. targets: as in
    `labkit.training.lora.lora`. The counts equal `trainable_parameters(lora(copy.deepcopy(model), r, targets=...))`.
    """
    if isinstance(ranks, (int, str)) or not list(ranks):
        raise InvalidInputError(f"ranks must be a non-empty list of integers such as (1, 4, 16), got {ranks!r}")
    ranks = [_check_rank(r) for r in ranks]
    layers = lora_layer_shapes(model, targets)
    base = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    table = LoraTable([], base, layers, targets)
    table.rows = [table.row(r) for r in ranks]
    return table


def lora_parameter_figure(table: LoraTable) -> Any:
    """A LoraTable in, a plotly figure out: trainable parameters (bars, log y) and trainable share in % (line, right axis)."""
    import plotly.graph_objects as go

    ranks = [str(r.rank) for r in table.rows]
    fig = go.Figure()
    fig.add_bar(
        x=ranks,
        y=[r.trainable for r in table.rows],
        name="trainable parameters",
        hovertemplate="rank %{x}: %{y:,} trainable<extra></extra>",
    )
    fig.add_scatter(
        x=ranks,
        y=[100 * r.share for r in table.rows],
        name="share of the model (%)",
        yaxis="y2",
        mode="lines+markers",
        hovertemplate="rank %{x}: %{y:.3f}%<extra></extra>",
    )
    fig.update_layout(
        title=f"LoRA cost by rank ({len(table.layers)} adapted layers)",
        xaxis_title="rank",
        yaxis=dict(title="trainable parameters", type="log"),
        yaxis2=dict(title="share (%)", overlaying="y", side="right"),
        height=380,
    )
    return fig


@torch.no_grad()
def lora_singular_values(peft_model: nn.Module, adapter: str | None = None) -> dict[str, torch.Tensor]:
    """A model with LoRA adapters (from `lora` or `load_adapter`) in, {module name: singular values of B A · scale} out.

    Values are float32, largest first, r of them per module (at most min(in, out)). adapter: which adapter
    (default: the active one). A fresh adapter (B = 0) gives zeros: nothing learned yet.
    """
    from labkit.training import lora_factors

    if adapter is None:
        adapter = getattr(peft_model, "active_adapter", None) or "default"
    if not isinstance(peft_model, nn.Module):
        raise InvalidInputError(
            f"lora_singular_values needs a model with LoRA adapters, got {type(peft_model).__name__}"
        )
    base = peft_model.get_base_model() if hasattr(peft_model, "get_base_model") else peft_model
    layers = lora_factors(base, adapter)
    if not layers:
        raise InvalidInputError(
            f"the model has no LoRA layers for adapter {adapter!r}; wrap it with labkit.training.lora(model, r=...)"
        )
    out = {}
    for name, (a, b, scale) in layers.items():
        delta = (b.float() @ a.float()) * scale  # [out, in]
        k = min(a.shape[0], *delta.shape)
        out[name] = torch.linalg.svdvals(delta)[:k].cpu()
    return out


def lora_singular_value_figure(values: dict[str, torch.Tensor], normalize: bool = False) -> Any:
    """{module: singular values} in, a plotly line chart out (one line per module, index on x, value on y, log y).

    normalize: divide each module's values by its largest (compare shapes, not sizes).
    """
    import plotly.graph_objects as go

    if not values:
        raise InvalidInputError("no singular values to plot; pass the dict from lora_singular_values(peft_model)")
    fig = go.Figure()
    for name, s in values.items():
        s = s.float()
        y = (s / s[0]).tolist() if normalize and float(s[0]) > 0 else s.tolist()
        fig.add_scatter(
            x=list(range(1, len(y) + 1)),
            y=y,
            mode="lines+markers",
            name=html.escape(name),
            hovertemplate=html.escape(name) + " σ%{x}: %{y:.3g}<extra></extra>",
        )
    fig.update_layout(
        title="Singular values of the learned update ΔW = B A · scale",
        xaxis_title="index",
        yaxis=dict(title="σ / σ₁" if normalize else "singular value", type="log"),
        height=380,
    )
    return fig
