"""Attention worked by hand: small matrices the learner types in; every intermediate of one head out.

Course material works attention on tiny matrices (three tokens, four features) with pencil and paper.
`attention_by_hand(X, W_Q, W_K, W_V)` does the same sum on the learner's own numbers and returns the
`AttentionWalkthrough` view that `attention_walkthrough` gives for a model: X -> Q, K, V -> Q K^T ->
/ sqrt(d_k) -> (causal mask) -> softmax -> A V, each step a `Step` with its matrix, and the output
checked against PyTorch's `scaled_dot_product_attention` on the same numbers. `parse_matrix` reads the
text a learner types ("1 0 1 0; 0 2 0 2" or one row per line) into a tensor, with one-line errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch

from labkit.errors import InvalidInputError
from labkit.viz.attention_math import MAX_DIMS, MAX_TOKENS, AttentionWalkthrough, Step

__all__ = ["parse_matrix", "format_matrix", "by_hand_steps", "attention_by_hand", "MAX_SIDE"]

MAX_SIDE = 16  # rows or columns a typed matrix may have: this is for working by hand, not for models


def parse_matrix(value: Any, name: str = "matrix") -> torch.Tensor:
    """Text ("1 2; 3 4" or one row per line, numbers split by spaces or commas), nested lists or a tensor in,
    a float64 [rows, cols] tensor out; a ragged, empty or non-numeric matrix raises one clear error."""
    if isinstance(value, str):
        rows = [r for r in re.split(r"[;\n]", value) if r.strip()]
        parsed = []
        for i, row in enumerate(rows):
            cells = [c for c in re.split(r"[,\s]+", row.strip().strip("[]")) if c]
            try:
                parsed.append([float(c) for c in cells])
            except ValueError:
                bad = next(c for c in cells if not _is_number(c))
                raise InvalidInputError(
                    f"{name}: {bad!r} in row {i + 1} is not a number; write numbers split by spaces, rows by ';' or new lines"
                ) from None
        value = parsed
    try:
        m = torch.as_tensor(value, dtype=torch.float64)
    except (ValueError, TypeError):
        raise InvalidInputError(
            f"{name} is not a rectangular matrix of numbers: every row needs the same number of entries"
        ) from None
    if m.dim() == 1 and m.numel():
        m = m[None]
    if m.dim() != 2 or m.numel() == 0:
        raise InvalidInputError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(m.shape)}")
    if max(m.shape) > MAX_SIDE:
        raise InvalidInputError(f"{name} is {m.shape[0]}x{m.shape[1]}; by hand means at most {MAX_SIDE} per side")
    if not torch.isfinite(m).all():
        raise InvalidInputError(f"{name} holds inf or nan; use finite numbers")
    return m


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_matrix(m: Any) -> str:
    """A matrix in, the text `parse_matrix` reads back out: one row per line, numbers split by spaces."""
    m = parse_matrix(m)
    return "\n".join(" ".join(f"{float(x):g}" for x in row) for row in m)


def by_hand_steps(
    x: Any, w_q: Any, w_k: Any, w_v: Any, *, causal: bool = False, tokens: Sequence[str] | None = None
) -> list[Step]:
    """X [n, d], W_Q and W_K [d, d_k], W_V [d, d_v] (text, lists or tensors) in, the steps of one head out.

    causal: hide later tokens (a decoder). tokens: row labels (default t0, t1, ...). The last step's `check` is
    the largest difference from `torch.nn.functional.scaled_dot_product_attention` on the same Q, K, V.
    """
    X = parse_matrix(x, "X")
    Wq, Wk, Wv = parse_matrix(w_q, "W_Q"), parse_matrix(w_k, "W_K"), parse_matrix(w_v, "W_V")
    n, d = X.shape
    for name, w in (("W_Q", Wq), ("W_K", Wk), ("W_V", Wv)):
        if w.shape[0] != d:
            raise InvalidInputError(
                f"{name} has {w.shape[0]} rows but X has {d} columns; {name} must be [{d}, k] so that X {name} works"
            )
    if Wq.shape[1] != Wk.shape[1]:
        raise InvalidInputError(
            f"W_Q gives queries of width {Wq.shape[1]} but W_K keys of width {Wk.shape[1]}; "
            "Q Kᵀ needs the same width: give W_Q and W_K the same number of columns"
        )
    if tokens is None:
        labels = [f"t{i}" for i in range(n)]
    else:
        labels = [str(t) for t in tokens]
        if len(labels) != n:
            raise InvalidInputError(f"tokens has {len(labels)} labels but X has {n} rows; give one label per row")
    d_k = Wq.shape[1]
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    raw = Q @ K.T
    scaled = raw / math.sqrt(d_k)
    dims = lambda k: [f"d{i}" for i in range(k)]  # noqa: E731
    steps = [
        Step("X (input)", f"X   [{n}×{d}]", X, labels, dims(d), "One row per token: the numbers you typed.", "X"),
        Step(
            "Q = X W_Q",
            f"Q = X · W_Q   [{n}×{d}]·[{d}×{d_k}]",
            Q,
            labels,
            dims(d_k),
            "Each token's query: row i of X times W_Q. Entry (i, j) is the dot product of row i of X and column j of W_Q.",
            r"Q = X W_Q",
        ),
        Step(
            "K = X W_K",
            f"K = X · W_K   [{n}×{d}]·[{d}×{d_k}]",
            K,
            labels,
            dims(d_k),
            "Each token's key: what it offers to the queries.",
            r"K = X W_K",
        ),
        Step(
            "V = X W_V",
            f"V = X · W_V   [{n}×{d}]·[{d}×{Wv.shape[1]}]",
            V,
            labels,
            dims(Wv.shape[1]),
            "Each token's value: what it passes on when another token attends to it.",
            r"V = X W_V",
        ),
        Step(
            "Q Kᵀ",
            f"S = Q Kᵀ   [{n}×{d_k}]·[{d_k}×{n}]",
            raw,
            labels,
            labels,
            "Row i, column j: the dot product of token i's query with token j's key.",
            r"S = Q K^\top",
        ),
        Step(
            "÷ √d_k",
            f"S / √{d_k} = S / {math.sqrt(d_k):.3f}",
            scaled,
            labels,
            labels,
            f"Dividing by √d_k = √{d_k} keeps the scores' spread near 1 whatever the width, so softmax does not saturate.",
            rf"\frac{{Q K^\top}}{{\sqrt{{{d_k}}}}}",
        ),
    ]
    masked = scaled
    if causal:
        future = torch.ones(n, n, dtype=torch.bool).triu(1)
        masked = scaled.masked_fill(future, float("-inf"))
        steps.append(
            Step(
                "causal mask",
                "S[i, j] = −∞ where j > i",
                masked,
                labels,
                labels,
                "A token may not look ahead: scores for later tokens become −∞, so softmax gives them weight 0.",
                r"S_{ij} = -\infty \text{ for } j > i",
            )
        )
    pattern = torch.softmax(masked, dim=-1)
    out = pattern @ V
    reference = torch.nn.functional.scaled_dot_product_attention(Q[None], K[None], V[None], is_causal=causal)[0]
    steps += [
        Step(
            "softmax",
            "A = softmax(S) row by row",
            pattern,
            labels,
            labels,
            "Each row becomes weights that are ≥ 0 and sum to 1: how much token i takes from each token j.",
            r"A_{ij} = \frac{e^{S_{ij}}}{\sum_k e^{S_{ik}}}",
        ),
        Step(
            "A V (output)",
            f"Z = A · V   [{n}×{n}]·[{n}×{Wv.shape[1]}]",
            out,
            labels,
            dims(Wv.shape[1]),
            "Each token's output is the weighted average of the value rows, with its row of A as the weights.",
            r"Z = A V",
            float((out - reference).abs().max()),
            "torch scaled_dot_product_attention",
        ),
    ]
    for s in steps:
        s.matrix = s.matrix.float()
    return steps


def attention_by_hand(
    x: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    *,
    causal: bool = False,
    tokens: Sequence[str] | None = None,
    step: int = 0,
    title: str = "",
) -> AttentionWalkthrough:
    """Your X, W_Q, W_K, W_V (text, lists or tensors) in, the step-by-step view of one attention head out.

    The same view as `attention_walkthrough` (HTML with a step slider, SVG of the pattern, text summary), computed
    on the numbers given; see `by_hand_steps` for the shapes. step: the step shown first.
    """
    steps = by_hand_steps(x, w_q, w_k, w_v, causal=causal, tokens=tokens)
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < len(steps):
        raise InvalidInputError(f"step {step!r} is out of range; there are {len(steps)} steps (0..{len(steps) - 1})")
    return AttentionWalkthrough(
        steps, 0, 0, step, MAX_TOKENS, MAX_DIMS, title, subject="your matrices" + (", causal" if causal else "")
    )
