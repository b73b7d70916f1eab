"""Attention math walk-through: one head of the user's own model, step by step, on its real numbers.

`attention_steps(model, ids, layer, head)` recomputes one attention sublayer from the block's weights,
X -> Q, K, V (-> RoPE) -> QK^T -> / sqrt(d_k) -> causal mask -> softmax -> A V -> concat heads -> W_O,
and checks every step that has a hook point against what the model itself computed (`check` holds the
largest absolute difference), so the walk-through is the model's arithmetic, not a textbook's.
`attention_walkthrough(...)` renders the steps: HTML with every step present (a slider shows one at a time
once the inline script runs), an SVG of the final pattern and a text summary.
"""

from __future__ import annotations

import html
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from labkit.errors import InvalidInputError
from labkit.frontend import HtmlView, asset_text, mount_script, plain_token
from labkit.viz.attention import _tokens, attention_heatmap

__all__ = [
    "Step",
    "attention_steps",
    "AttentionWalkthrough",
    "attention_walkthrough",
    "step_table_html",
    "check_walkthrough_input",
    "MAX_TOKENS",
    "MAX_DIMS",
]

MAX_TOKENS, MAX_DIMS = 12, 8  # shown per matrix; more would make pages long and numbers unreadable


@dataclass
class Step:
    """One step of the walk-through: a labelled matrix with the real numbers and how it was made."""

    name: str  # short title, e.g. "Q = X W_Q"
    formula: str  # the operation in plain text (Unicode), e.g. "Q = X · W_Q + b_Q"
    matrix: torch.Tensor = field(repr=False)  # float32 [rows, cols], whole (views crop it)
    row_labels: list[str]
    col_labels: list[str]
    note: str = ""  # one or two sentences of why
    latex: str = ""  # the same formula in LaTeX, for notebooks that render it
    check: float | None = None  # largest |this - the model's own hook tensor|; None where no hook sees this step
    hook: str = ""  # the hook point the check compares with

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the whole matrix."""
        return tuple(self.matrix.shape)  # type: ignore[return-value]


def _int(value: Any, what: str, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise InvalidInputError(f"{what} {value!r} is out of range; the model has {n} {what}s (0..{n - 1})")
    return value


def check_walkthrough_input(model: Any, input_ids: Any) -> tuple[Any, torch.Tensor]:
    """A model and one sequence of ids in, (the labkit model under any PEFT wrapper, ids [1, T]) out, or one clear error."""
    from labkit.models.hooks import HookedModel

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel wraps the real one
    if not isinstance(base, HookedModel) or not hasattr(base, "blocks"):
        raise InvalidInputError(
            f"attention_steps needs a labkit GPT or Encoder, got {type(model).__name__}; "
            "convert a Hugging Face model with GPT.from_hf(...) or Encoder.from_hf(...)"
        )
    if getattr(base.config, "arch", "") == "seq2seq":
        raise InvalidInputError(
            "attention_steps walks through GPT and Encoder models, not Seq2Seq; pass a GPT or an Encoder"
        )
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.is_floating_point() or ids.shape[1] == 0:
        raise InvalidInputError(
            f"input_ids must be one sequence of token ids, [seq] or [1, seq], got shape {tuple(ids.shape)}; "
            "pass ids[0:1] for the first of a batch"
        )
    return base, ids.to(next(base.parameters()).device)


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _linear(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x W^T + b written out for a plain Linear; a LoRA-wrapped one (PEFT) is called, so its B A update counts."""
    if type(module) is torch.nn.Linear:
        b = module.bias
        return x @ module.weight.float().T + (b.float() if b is not None else 0.0)
    return module(x.to(module.weight.dtype)).float()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.no_grad()
def attention_steps(
    model: Any, input_ids: Any, layer: int = 0, head: int = 0, tokens: Sequence[str] | None = None
) -> list[Step]:
    """A labkit GPT/Encoder and one sequence of ids in, the steps of one head's attention out (list of Step).

    model: a labkit GPT (learned or rotary positions, multi-head or grouped-query) or Encoder, or a PeftModel
    wrapping one. input_ids: [seq] or [1, seq]. layer, head: which block and which query head.
    tokens: row/column labels (default: positions). Every step that a hook point also sees carries `check`, the
    largest absolute difference from the model's own tensor; the last step is the block's `hook_attn_out`.
    """
    base, ids = check_walkthrough_input(model, input_ids)
    blocks = base.blocks
    layer = _int(layer, "layer", len(blocks))
    attn = blocks[layer].attn
    H, KV, d = attn.n_head, attn.n_kv_head, attn.d_head
    head = _int(head, "head", H)
    T = ids.shape[1]
    labels = _tokens(tokens, T, "input", source="input_ids")
    p = f"blocks.{layer}."
    names = [p + "hook_resid_pre", p + "hook_attn_out"] + [
        p + "attn." + s for s in ("hook_q", "hook_k", "hook_v", "hook_scores", "hook_pattern", "hook_z")
    ]
    was_training = base.training
    base.eval()  # dropout would make the model's numbers differ from ours
    try:
        _, cache = base.run_with_cache(ids, names=names)
    finally:
        base.train(was_training)
    c = {n.rsplit(".", 1)[-1]: cache[n][0].float() for n in names}
    block = blocks[layer]
    X = block.ln_1(c["hook_resid_pre"]).float() if block.pre_norm else c["hook_resid_pre"]
    group = H // KV
    g = head // group

    def proj(linear: torch.nn.Module, n: int) -> torch.Tensor:  # [T, n, d]
        return _linear(linear, X).view(T, n, d)

    q, k, v = proj(attn.q_proj, H), proj(attn.k_proj, KV), proj(attn.v_proj, KV)
    dims = [f"d{i}" for i in range(d)]
    width = X.shape[1]
    gqa = (
        f" Grouped-query attention: {group} query heads share each key/value head; head {head} reads K/V head {g}."
        if group > 1
        else ""
    )
    steps = [
        Step(
            "X (attention input)",
            "X = LayerNorm(resid)" if block.pre_norm else "X = resid (post-norm block)",
            X,
            labels,
            [f"x{i}" for i in range(width)],
            f"One row per token, {width} numbers each: the residual stream entering block {layer}"
            + (
                ", normalised by the block's ln_1 (pre-norm)."
                if block.pre_norm
                else " (the norm comes after attention)."
            ),
            r"X = \mathrm{LN}(h)" if block.pre_norm else "X = h",
        ),
        Step(
            f"Q = X W_Q (head {head})",
            f"Q = X · W_Q + b_Q   [{T}×{width}]·[{width}×{d}]",
            q[:, head],
            labels,
            dims,
            f"Each token's query: what it looks for. Head {head} uses columns {head * d}..{head * d + d - 1} of W_Q.",
            r"Q = X W_Q + b_Q",
            _diff(q[:, head], c["hook_q"][:, head]),
            p + "attn.hook_q",
        ),
        Step(
            f"K = X W_K (kv head {g})",
            f"K = X · W_K + b_K   [{T}×{width}]·[{width}×{d}]",
            k[:, g],
            labels,
            dims,
            "Each token's key: what it offers to queries." + gqa,
            r"K = X W_K + b_K",
            _diff(k[:, g], c["hook_k"][:, g]),
            p + "attn.hook_k",
        ),
        Step(
            f"V = X W_V (kv head {g})",
            f"V = X · W_V + b_V   [{T}×{width}]·[{width}×{d}]",
            v[:, g],
            labels,
            dims,
            "Each token's value: what it passes on when attended to.",
            r"V = X W_V + b_V",
            _diff(v[:, g], c["hook_v"][:, g]),
            p + "attn.hook_v",
        ),
    ]
    if hasattr(base, "rotary"):
        cos, sin = base.rotary(torch.arange(T, device=ids.device)[None])
        cos, sin = cos[0][:, None], sin[0][:, None]  # [T, 1, d]
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        why = (
            "Rotary positions: pairs of dimensions (i, i + d/2) are rotated by an angle that grows with the position, "
            "so q·k depends on how far apart two tokens are. hook_q/hook_k hold the vectors before this rotation."
        )
        steps += [
            Step(
                "RoPE(Q)",
                "Q' = Q ⊙ cos(pos·θ) + rotate_half(Q) ⊙ sin(pos·θ)",
                q[:, head],
                labels,
                dims,
                why,
                r"Q' = Q \odot \cos(m\theta) + \mathrm{rot}(Q) \odot \sin(m\theta)",
            ),
            Step(
                "RoPE(K)",
                "K' = K ⊙ cos(pos·θ) + rotate_half(K) ⊙ sin(pos·θ)",
                k[:, g],
                labels,
                dims,
                "The keys are rotated the same way.",
                r"K' = K \odot \cos(m\theta) + \mathrm{rot}(K) \odot \sin(m\theta)",
            ),
        ]
    kk, vv = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # [T, H, d]
    raw = torch.einsum("qhd,khd->hqk", q, kk)  # [H, T, T]
    scaled = raw / math.sqrt(d)
    steps += [
        Step(
            "Q Kᵀ",
            f"S = Q Kᵀ   [{T}×{d}]·[{d}×{T}]",
            raw[head],
            labels,
            labels,
            "Row i, column j: how well token i's query matches token j's key (a dot product).",
            r"S = Q K^\top",
        ),
        Step(
            "÷ √d_k",
            f"S / √{d} = S / {math.sqrt(d):.3f}",
            scaled[head],
            labels,
            labels,
            f"Dividing by √d_k keeps the scores' spread near 1 whatever the head width ({d}), so softmax does not saturate.",
            rf"\frac{{Q K^\top}}{{\sqrt{{{d}}}}}",
        ),
    ]
    masked = scaled
    causal = bool(attn.causal)
    if causal:
        future = torch.ones(T, T, dtype=torch.bool, device=scaled.device).triu(1)
        masked = scaled.masked_fill(future, float("-inf"))
        visible = ~future
        model_scores = c["hook_scores"]
        check = max(
            _diff(masked[:, visible], model_scores[:, visible]),
            0.0 if bool((model_scores[:, future] <= -1e30).all()) else float("inf"),
        )
        steps.append(
            Step(
                "causal mask",
                "S[i, j] = −∞ where j > i",
                masked[head],
                labels,
                labels,
                "A token may not look ahead: scores for later tokens become −∞, so softmax gives them weight 0.",
                r"S_{ij} = -\infty \text{ for } j > i",
                check,
                p + "attn.hook_scores",
            )
        )
    else:
        steps[-1].check, steps[-1].hook = _diff(scaled, c["hook_scores"]), p + "attn.hook_scores"
    pattern = torch.softmax(masked, dim=-1)
    z = torch.einsum("hqk,khd->qhd", pattern, vv)  # [T, H, d]
    concat = z.reshape(T, H * d)
    out = _linear(attn.out_proj, concat)
    steps += [
        Step(
            "softmax",
            "A = softmax(S) row by row",
            pattern[head],
            labels,
            labels,
            "Each row becomes weights that are ≥ 0 and sum to 1: how much token i takes from each token j.",
            r"A = \mathrm{softmax}(S)",
            _diff(pattern, c["hook_pattern"]),
            p + "attn.hook_pattern",
        ),
        Step(
            "A V (head output)",
            f"z = A · V   [{T}×{T}]·[{T}×{d}]",
            z[:, head],
            labels,
            dims,
            "Each token's output is the weighted average of the value vectors it attends to.",
            r"z = A V",
            _diff(z[:, head], c["hook_z"][:, head]),
            p + "attn.hook_z",
        ),
        Step(
            f"concat {H} heads",
            f"Z = [{' | '.join(f'z_{i}' for i in range(H)) if H <= 4 else f'z_0 | z_1 | … | z_{H - 1}'}]   [{T}×{H * d}]",
            concat,
            labels,
            [f"h{h}.d{i}" for h in range(H) for i in range(d)],
            f"Every head does the same with its own weights; their outputs sit side by side ({H} × {d} = {H * d} columns).",
            r"Z = [z_0; \dots; z_{H-1}]",
            _diff(z, c["hook_z"]),
            p + "attn.hook_z",
        ),
        Step(
            "output projection",
            f"out = Z · W_O + b_O   [{T}×{H * d}]·[{H * d}×{width}]",
            out,
            labels,
            [f"x{i}" for i in range(width)],
            "W_O mixes the heads back into the residual stream's width; this is what the block adds to the residual.",
            r"\mathrm{out} = Z W_O + b_O",
            _diff(out, c["hook_attn_out"]),
            p + "hook_attn_out",
        ),
    ]
    for s in steps:  # views and notebooks read them on the CPU
        s.matrix = s.matrix.detach().float().cpu()
    return steps


# ---------------------------------------------------------------- rendering


def _fmt(x: float) -> str:
    if x == float("-inf"):
        return "−∞"
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.3g}"


def _cell_color(x: float, lo: float, hi: float, prob: bool) -> str:
    if not math.isfinite(x):
        return "#e0e0e0"
    if prob:
        a = math.sqrt(max(0.0, min(1.0, x)))
        return f"rgba(8,48,107,{a * 0.75:.2f})"
    scale = max(abs(lo), abs(hi), 1e-12)
    a = min(1.0, abs(x) / scale) * 0.6
    return f"rgba(178,24,43,{a:.2f})" if x >= 0 else f"rgba(33,102,172,{a:.2f})"


def step_table_html(step: Step, max_tokens: int = MAX_TOKENS, max_dims: int = MAX_DIMS) -> str:
    """A Step in, an HTML table of its (cropped) matrix with escaped labels and coloured cells out."""
    m = step.matrix
    rows = min(m.shape[0], max_tokens)
    square = step.col_labels == step.row_labels
    cols = min(m.shape[1], max_tokens if square else max_dims)
    part = m[:rows, :cols]
    finite = part[torch.isfinite(part)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 1.0)
    prob = step.name == "softmax"
    esc = lambda s: html.escape(s if len(s) <= 14 else s[:13] + "…")  # noqa: E731
    out = ['<table class="lk-am-table"><thead><tr><th></th>']
    out += [f"<th>{esc(c)}</th>" for c in step.col_labels[:cols]]
    out.append("</tr></thead><tbody>")
    for i in range(rows):
        out.append(f'<tr><th class="lk-am-row">{esc(step.row_labels[i])}</th>')
        for j in range(cols):
            x = float(part[i, j])
            out.append(f'<td style="background:{_cell_color(x, lo, hi, prob)}">{_fmt(x)}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    crop = []
    if m.shape[0] > rows:
        crop.append(f"first {rows} of {m.shape[0]} tokens")
    if m.shape[1] > cols:
        crop.append(f"first {cols} of {m.shape[1]} columns")
    if crop:
        out.append(
            f'<div class="lk-am-crop">showing {" and ".join(crop)}; pass max_tokens={m.shape[0]}'
            f"{f', max_dims={m.shape[1]}' if not square and m.shape[1] > cols else ''} to attention_walkthrough "
            "to show all</div>"
        )
    return "".join(out)


@dataclass
class AttentionWalkthrough(HtmlView):
    """The rendered walk-through: display it, `save_html(path)` it, or read `steps` and `max_diff`."""

    steps: list[Step]
    layer: int
    head: int
    step: int = 0  # the step the slider starts on
    max_tokens: int = MAX_TOKENS
    max_dims: int = MAX_DIMS
    title: str = ""
    subject: str = ""  # what the steps were computed on, when not a model's layer and head ("your matrices")

    @property
    def where(self) -> str:
        """'layer L, head H' for a model, else the subject."""
        return self.subject or f"layer {self.layer}, head {self.head}"

    @property
    def max_diff(self) -> float:
        """Largest |walk-through - model| over every checked step (the output check included)."""
        return max((s.check for s in self.steps if s.check is not None), default=0.0)

    @property
    def output_diff(self) -> float:
        """|walk-through output - the model's hook_attn_out|, largest entry."""
        return float(self.steps[-1].check)  # type: ignore[arg-type]

    def summary(self) -> str:
        """A text/plain summary: one line per step with its shape and its check against the model."""
        T = self.steps[0].matrix.shape[0]
        lines = ([plain_token(self.title)] if self.title else []) + [
            f"Attention walk-through: {self.where}, {T} tokens, {len(self.steps)} steps; "
            f"max |walk-through - {'reference' if self.subject else 'model'}| = {self.max_diff:.2e}",
            "  tokens: "
            + " ".join(plain_token(t) for t in self.steps[0].row_labels[: self.max_tokens])
            + (" ..." if T > self.max_tokens else ""),
        ]
        for i, s in enumerate(self.steps):
            check = f"  |diff vs {s.hook}| = {s.check:.2e}" if s.check is not None else ""
            lines.append(f"  {i:>2}. {s.name:<24} {s.shape[0]}x{s.shape[1]:<5} {s.formula}{check}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _pattern_view(self):
        s = next(s for s in self.steps if s.name == "softmax")
        n = min(s.matrix.shape[0], 64)
        return attention_heatmap(
            s.matrix[None, None, :n, :n].clamp(0, 1),
            s.row_labels[:n],
            title=f"{self.where}: softmax pattern",
        )

    def to_svg(self, standalone: bool = True) -> str:
        """The static fallback: an SVG heatmap of the head's final attention pattern (escaped labels)."""
        return self._pattern_view().to_svg(standalone)

    def steps_html(self) -> str:
        """Every step as an HTML panel (title, formula, table, note, check); the slider shows one at a time."""
        out = []
        whose = "" if self.subject else "the model's "
        for i, s in enumerate(self.steps):
            check = (
                ""
                if s.check is None
                else (
                    f'<div class="lk-am-check">matches {whose}{html.escape(s.hook)}: max |diff| = {s.check:.1e}</div>'
                )
            )
            out.append(
                f'<section class="lk-am-step" data-step="{i}"><h4>{i + 1}. {html.escape(s.name)}</h4>'
                f'<div class="lk-am-formula">{html.escape(s.formula)}</div>'
                f"{step_table_html(s, self.max_tokens, self.max_dims)}"
                f'<div class="lk-am-note">{html.escape(s.note)}</div>{check}</section>'
            )
        return "".join(out)

    def header_html(self) -> str:
        """The line above the steps: which layer/head and the largest difference from the model."""
        title = f'<div class="lk-am-title">{html.escape(self.title)}</div>' if self.title else ""
        return (
            f'{title}<div class="lk-am-head">{html.escape(self.where)}: '
            f"walk-through vs {'PyTorch' if self.subject else 'model'}, max |diff| = {self.max_diff:.1e}</div>"
        )

    def to_html(self) -> str:
        """A self-contained HTML fragment: CSS, every step (visible without JavaScript), and the slider script."""
        vid = "labkit-am-" + uuid.uuid4().hex
        return (
            f'<div class="labkit-am" id="{vid}" data-step="{self.step}"><style>{asset_text("attention_math.css")}</style>'
            f'{self.header_html()}<div class="lk-am-bar"></div><div class="lk-am-steps">{self.steps_html()}</div>'
            + mount_script("attention_math.js", vid)
            + "</div>"
        )

    def _page_title(self) -> str:
        return self.title or f"labkit attention walk-through, {self.where}"


def attention_walkthrough(
    model: Any,
    input_ids: Any,
    layer: int = 0,
    head: int = 0,
    tokens: Sequence[str] | None = None,
    *,
    step: int = 0,
    max_tokens: int = MAX_TOKENS,
    max_dims: int = MAX_DIMS,
    title: str = "",
) -> AttentionWalkthrough:
    """A labkit model and one sequence in, the step-by-step view of one head out (HTML slider, SVG, text).

    layer, head, tokens: as in `attention_steps`. step: the step shown first. max_tokens / max_dims: how many
    rows and columns each matrix shows (the numbers behind them are whole in `.steps`).
    """
    for name, value in (("max_tokens", max_tokens), ("max_dims", max_dims)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
    steps = attention_steps(model, input_ids, layer, head, tokens)
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < len(steps):
        raise InvalidInputError(
            f"step {step!r} is out of range; this walk-through has {len(steps)} steps (0..{len(steps) - 1})"
        )
    return AttentionWalkthrough(steps, layer, head, step, max_tokens, max_dims, title)
