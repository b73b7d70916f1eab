"""LoraExplorer: a rank slider showing what a LoRA adapter of that rank trains, and a trained adapter's spectrum.

Counts come from `labkit.viz.lora` (layer shapes, no PEFT wrapping); the front end is `widgets/lora.js`.
Each adapted layer costs r * (in + out), so the page can also redraw the count from `unit` = sum(in + out)
while a static export (no Python behind it) is being dragged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets as t
from torch import nn

from labkit.checks import check_int
from labkit.frontend import module_text
from labkit.viz.lora import LoraTable, lora_parameter_table, lora_singular_values
from labkit.widgets.fallback import StaticFallback

__all__ = ["LoraExplorer"]


class LoraExplorer(StaticFallback, anywidget.AnyWidget):
    """Rank slider -> trainable LoRA parameters and their share of the model: `LoraExplorer(model, targets="attn")`.

    model: a labkit or Hugging Face model without adapters. targets: as in `labkit.training.lora.lora`.
    adapter_model: optionally a model with trained LoRA adapters; the page then shows the singular values of
    each learned update B A * scale (`spectrum`).
    """

    _esm = module_text("lora.js")

    rank = t.Int(8, help="LoRA rank r").tag(sync=True)
    max_rank = t.Int(64, help="the slider's top (the widest adapted layer's min(in, out), at most 256)").tag(sync=True)
    trainable = t.Int(0, help="trainable LoRA parameters at this rank").tag(sync=True)
    total = t.Int(0, help="all parameters with the adapter at this rank").tag(sync=True)
    share = t.Float(0.0, help="trainable / total (a fraction)").tag(sync=True)
    unit = t.Int(0, help="sum of in + out over the adapted layers: trainable = rank * unit").tag(sync=True)
    base_parameters = t.Int(0, help="the model's own parameters").tag(sync=True)
    layers = t.List(t.List(), help="[[module name, in, out], ...] of the adapted layers").tag(sync=True)
    targets = t.Unicode("", help="the targets, as text").tag(sync=True)
    spectrum = t.Dict(help="{module name: singular values of the learned update}, empty without an adapter").tag(
        sync=True
    )

    def __init__(
        self,
        model: nn.Module,
        targets: str | Sequence[str] = ("attn",),
        *,
        rank: int = 8,
        adapter_model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        self.table: LoraTable = lora_parameter_table(model, ranks=(1,), targets=targets)
        layers = self.table.layers
        self._ready = False
        super().__init__(**kwargs)
        with self.hold_trait_notifications():
            self.max_rank = max(1, min(256, max(min(i, o) for i, o in layers.values())))
            self.unit = sum(i + o for i, o in layers.values())
            self.base_parameters = self.table.base_parameters
            self.layers = [[name, i, o] for name, (i, o) in layers.items()]
            self.targets = targets if isinstance(targets, str) else ", ".join(targets)
            if adapter_model is not None:
                self.spectrum = {
                    name: [round(float(x), 6) for x in s] for name, s in lora_singular_values(adapter_model).items()
                }
        self._ready = True
        self.rank = rank
        self._update()

    @t.validate("rank")
    def _valid_rank(self, proposal: dict) -> int:
        return check_int(
            "rank", proposal["value"], high=self.max_rank, fix="larger ranks add no directions beyond the layers' width"
        )

    @t.observe("rank")
    def _on_rank(self, change: dict) -> None:
        if self._ready:
            self._update()

    def _update(self) -> None:
        row = self.table.row(self.rank)
        with self.hold_trait_notifications():
            self.trainable, self.total, self.share = row.trainable, row.total, row.share

    def _static_view(self) -> LoraTable:
        return self.to_table()

    def to_table(self) -> LoraTable:
        """A LoraTable for ranks 1, 4, 16, 64 (up to max_rank) and the current rank (the static fallbacks show it)."""
        ranks = sorted({r for r in (1, 4, 16, 64) if r <= self.max_rank} | {self.rank})
        return LoraTable(
            [self.table.row(r) for r in ranks], self.table.base_parameters, self.table.layers, self.targets
        )
