"""Neuron view: one MLP unit's activation coloured over text, its top-activating contexts, and the tokens it promotes.

`neuron_view(acts, neuron, effect=...)` draws a `labkit.interpret.NeuronActivations` for one unit: the top
contexts (the firing token in bold, every token tinted by the activation there), then each text of the corpus
tinted the same way, and, when `effect` (from `neuron_logit_effect`) is given, the tokens the unit's output
weights push up and down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.frontend import plain_token
from labkit.interpret import NeuronActivations, TokenEffect
from labkit.viz.interpret_base import LookView, diverging_colors, token_rows_svg

__all__ = ["NeuronView", "neuron_view", "neuron_spec"]


def neuron_spec(
    acts: NeuronActivations,
    neuron: int,
    effect: TokenEffect | None = None,
    title: str = "",
    k: int = 8,
    window: int = 8,
    max_texts: int = 20,
) -> dict:
    """Activations, a neuron and optional token effects in, the JSON-able spec `widgets/interpret.js` draws out."""
    contexts = acts.top_contexts(neuron, k=k, window=window)
    per_text = acts.of(neuron)
    scale = max(max(float(a.abs().max()) for a in per_text), 1e-8)
    return {
        "kind": "neuron",
        "title": title,
        "layer": acts.layer,
        "neuron": neuron,
        "n_neurons": acts.n_neurons,
        "scale": scale,
        "contexts": [
            {
                "text_index": c.text_index,
                "position": c.position,
                "activation": round(c.activation, 5),
                "tokens": c.tokens,
                "acts": [round(x, 5) for x in c.activations],
                "center": c.center,
            }
            for c in contexts
        ],
        "texts": [
            {"tokens": toks, "acts": [round(x, 5) for x in a.tolist()]}
            for toks, a in list(zip(acts.tokens, per_text))[:max_texts]
        ],
        "n_texts": len(per_text),  # the page says when it shows fewer
        "promoted": [[t, round(s, 4)] for t, s in effect.promoted] if effect else [],
        "suppressed": [[t, round(s, 4)] for t, s in effect.suppressed] if effect else [],
    }


@dataclass
class NeuronView(LookView):
    """A rendered neuron; display it in a notebook, `save_html(path)` it, or read `acts` and `neuron`."""

    acts: NeuronActivations
    neuron: int
    effect: TokenEffect | None = None
    title: str = ""
    k: int = 8
    window: int = 8
    max_texts: int = 20  # whole texts drawn under the contexts; the page says when there are more
    _cached: dict = field(default_factory=dict, repr=False)
    kind = "neuron"

    def spec(self) -> dict:
        """The JSON-able description the front end mounts."""
        if not self._cached:
            self._cached.update(
                neuron_spec(self.acts, self.neuron, self.effect, self.title, self.k, self.window, self.max_texts)
            )
        return self._cached

    def colors(self) -> np.ndarray:
        """RGB [contexts, window, 3]: the top contexts' activations (short rows padded with white)."""
        ctx = self.spec()["contexts"]
        width = max((len(c["acts"]) for c in ctx), default=1)
        out = np.full((max(1, len(ctx)), width, 3), 255, np.uint8)
        for i, c in enumerate(ctx):
            out[i, : len(c["acts"])] = diverging_colors(np.array(c["acts"]), self.spec()["scale"])
        return out

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: the top contexts as tinted token rows, then the promoted tokens (escaped text)."""
        spec = self.spec()
        rows = [
            (f"#{i + 1}: {c['activation']:.3f} (text {c['text_index']}, token {c['position']})", c["tokens"],
             diverging_colors(np.array(c["acts"]), spec["scale"]))
            for i, c in enumerate(spec["contexts"])
        ]  # fmt: skip
        if spec["promoted"]:
            toks = [t for t, _ in spec["promoted"]]
            rows.append(("promotes", toks, diverging_colors(np.array([s for _, s in spec["promoted"]]))))
        title = self.title or f"layer {spec['layer']}, neuron {spec['neuron']}: top-activating contexts"
        return token_rows_svg(rows, title=title, standalone=standalone)

    def summary(self) -> str:
        """A text/plain listing: top contexts (firing token in brackets), promoted and suppressed tokens."""
        spec = self.spec()
        lines = [plain_token(self.title)] if self.title else []
        lines.append(f"NeuronView: layer {spec['layer']}, neuron {spec['neuron']} of {spec['n_neurons']}")
        for c in spec["contexts"]:
            toks = [f"[{t}]" if i == c["center"] else t for i, t in enumerate(c["tokens"])]
            lines.append(f"  {c['activation']:+.3f}  {plain_token(''.join(toks))}")
        if spec["promoted"]:
            lines.append("  promotes: " + ", ".join(plain_token(t) for t, _ in spec["promoted"]))
            lines.append("  suppresses: " + ", ".join(plain_token(t) for t, _ in spec["suppressed"]))
        return "\n".join(lines)


def neuron_view(
    acts: NeuronActivations,
    neuron: int,
    *,
    effect: TokenEffect | None = None,
    title: str = "",
    k: int = 8,
    window: int = 8,
    max_texts: int = 20,
) -> NeuronView:
    """Activations over a corpus (`labkit.interpret.neuron_activations`) and a neuron in, the neuron view out.

    effect: `neuron_logit_effect(model, layer, neuron)` to list the tokens it promotes. k: top contexts shown.
    window: tokens either side of each context's firing token. max_texts: whole texts drawn below (the page
    says how many there are when it shows fewer).
    """
    if not isinstance(acts, NeuronActivations):
        raise InvalidInputError(
            f"neuron_view draws NeuronActivations, got {type(acts).__name__}; compute them with "
            "labkit.interpret.neuron_activations(model, texts, layer=..., tokenizer=...)"
        )
    neuron = check_int(
        "neuron", neuron, low=0, high=acts.n_neurons - 1, fix=f"layer {acts.layer} has {acts.n_neurons} MLP units"
    )
    if effect is not None and (effect.layer, effect.neuron) != (acts.layer, neuron):
        raise InvalidInputError(
            f"effect is for layer {effect.layer} neuron {effect.neuron}, the view shows layer {acts.layer} neuron {neuron}; "
            "compute neuron_logit_effect for the same unit"
        )
    return NeuronView(
        acts,
        neuron,
        effect,
        title,
        check_int("k", k, low=1),
        check_int("window", window, low=0),
        check_int("max_texts", max_texts, low=1),
    )
