"""Logit lens: decode the residual stream after every block through the final norm and the unembedding.

A GPT's prediction is `lm_head(ln_f(x_L))`, where `x_L` is the residual stream after the last block. The logit
lens (nostalgebraist, 2020) applies the same two steps to `x_0 ... x_{L-1}`, the stream entering each block,
and asks at which depth the final answer appears. Row `l` of the result is the stream after `l` blocks
(row 0: the embeddings; row L: the model's own output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from labkit.checks import check_int
from labkit.errors import InvalidInputError
from labkit.interpret.common import as_batch, decoder_parts, eval_mode, n_layers, token_id, token_texts, vocab_size

__all__ = ["residual_stack", "lens_logits", "logit_lens", "LogitLens"]


def _stream_names(model: Any) -> list[str]:
    L = n_layers(model)
    return [f"blocks.{i}.hook_resid_pre" for i in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]


def residual_stack(model: Any, input_ids: Any, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """A GPT and ids [batch, seq] in, the residual stream entering each block plus the last block's output out.

    Returns [n_layer + 1, batch, seq, n_embd]: row l is the stream after l blocks (row 0 is the embeddings).
    """
    decoder_parts(model, "residual_stack")
    ids = as_batch(input_ids)
    names = _stream_names(model)
    with torch.no_grad(), eval_mode(model):
        _, cache = model.run_with_cache(ids, names=names, attention_mask=attention_mask)
    return torch.stack([cache[n] for n in names])


def lens_logits(model: Any, input_ids: Any, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """A GPT and ids [batch, seq] in, logit-lens logits [n_layer + 1, batch, seq, vocab] out (the last row = model logits)."""
    norm, head = decoder_parts(model, "lens_logits")
    stack = residual_stack(model, input_ids, attention_mask)
    with torch.no_grad():
        return head(norm(stack)).float()


@dataclass
class LogitLens:
    """The logit lens of one sequence: top tokens, and a target token's probability and rank, at every depth and position.

    Arrays are [rows, seq] (or [rows, seq, k]); row l is the stream after l blocks, the last row is the model's output.
    """

    tokens: list[str]  # the input tokens' text
    labels: list[str]  # one per row: "emb", "1", ..., str(n_layer)
    top_ids: torch.Tensor  # [rows, seq, k] long
    top_probs: torch.Tensor  # [rows, seq, k]
    top_tokens: list[list[list[str]]]  # [rows][seq][k] text of top_ids
    target_ids: torch.Tensor  # [seq] long, -1 where a position has no target
    target_tokens: list[str]  # [seq] text of the target ("" where none)
    target_probs: torch.Tensor  # [rows, seq] (nan where no target)
    target_ranks: torch.Tensor  # [rows, seq] long, 1 = the most likely token (0 where no target)
    entropy: torch.Tensor  # [rows, seq] in nats
    kl_to_final: torch.Tensor  # [rows, seq] KL(final || row) in nats: 0 on the last row
    target_kind: str = "final"  # how targets were chosen: "final", "next" or "given"
    logits: torch.Tensor | None = field(default=None, repr=False)  # [rows, seq, vocab] when keep_logits=True

    @property
    def n_rows(self) -> int:
        """Number of depths shown (n_layer + 1)."""
        return len(self.labels)

    def first_row_with_target_on_top(self, position: int = -1) -> int | None:
        """The first depth at which the target is the top token at `position` (None if it never is)."""
        pos = position % len(self.tokens)
        hits = (self.target_ranks[:, pos] == 1).nonzero()
        return int(hits[0]) if len(hits) else None

    def to_pandas(self, position: int = -1) -> Any:
        """One row per depth at `position`: top token and probability, target probability and rank, entropy."""
        import pandas as pd

        pos = position % len(self.tokens)
        return pd.DataFrame(
            {
                "after blocks": self.labels,
                "top token": [self.top_tokens[r][pos][0] for r in range(self.n_rows)],
                "top prob": self.top_probs[:, pos, 0].tolist(),
                "target": [self.target_tokens[pos]] * self.n_rows,
                "target prob": self.target_probs[:, pos].tolist(),
                "target rank": self.target_ranks[:, pos].tolist(),
                "entropy": self.entropy[:, pos].tolist(),
            }
        ).set_index("after blocks")


def _given_targets(target: Any, seq: int, tokenizer: Any, size: int) -> tuple[torch.Tensor | None, str]:
    """Targets that do not depend on the model's output, resolved (and refused) before the model runs."""
    if target is None or (isinstance(target, str) and target == "final"):
        return None, "final"  # the model's own top prediction, known after the forward pass
    if isinstance(target, str) and target == "next":
        return None, "next"
    if isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.dim() == 1):
        values = target.tolist() if isinstance(target, torch.Tensor) else list(target)
        if len(values) != seq:
            raise InvalidInputError(
                f"target has {len(values)} entries for {seq} positions; give one token per position (-1 for none)"
            )
        return torch.tensor(
            [-1 if v == -1 else token_id(tokenizer, v, size, "target") for v in values], dtype=torch.long
        ), "given"
    return torch.full((seq,), token_id(tokenizer, target, size, "target"), dtype=torch.long), "given"


def logit_lens(
    model: Any,
    input_ids: Any,
    *,
    tokenizer: Any = None,
    target: Any = None,
    top_k: int = 5,
    keep_logits: bool = False,
) -> LogitLens:
    """A GPT and one sequence of ids in, its `LogitLens` (top-k tokens, target probability and rank per depth and position) out.

    tokenizer: labkit or transformers tokenizer, for token text and text targets.
    target: None or "final" (the model's own top prediction at each position), "next" (the actual next input
    token), a token id or one-token text (the same target everywhere), or one id per position (-1 for none).
    top_k: tokens kept per cell. keep_logits: also keep the [rows, seq, vocab] logits (large for big vocabularies).
    """
    decoder_parts(model, "logit_lens")
    ids = as_batch(input_ids, batch=False)
    size = vocab_size(model)
    k = check_int("top_k", top_k, low=1, high=size, fix="keep a handful of tokens per cell")
    if isinstance(target, str) and target not in ("final", "next") and tokenizer is None:
        raise InvalidInputError(f"target {target!r} is text; pass tokenizer= (or use 'final', 'next' or a token id)")
    targets, kind = _given_targets(target, ids.size(1), tokenizer, size)  # bad targets fail before the model runs
    logits = lens_logits(model, ids)[:, 0]  # [rows, seq, vocab]
    if kind == "final":
        targets = logits[-1].argmax(-1)
    elif kind == "next":
        targets = torch.full((ids.size(1),), -1, dtype=torch.long)
        targets[:-1] = ids[0, 1:]
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    top = probs.topk(k, dim=-1)
    rows, seq = logits.shape[:2]
    has = targets >= 0
    safe = targets.clamp(min=0)
    t_logit = logits.gather(-1, safe.expand(rows, seq).unsqueeze(-1)).squeeze(-1)
    ranks = (logits > t_logit.unsqueeze(-1)).sum(-1) + 1
    t_prob = probs.gather(-1, safe.expand(rows, seq).unsqueeze(-1)).squeeze(-1)
    entropy = -(probs * logp).sum(-1)
    final_logp = logp[-1]
    kl = (final_logp.exp() * (final_logp - logp)).sum(-1).clamp(min=0)
    flat = token_texts(tokenizer, top.indices.reshape(-1))
    top_tokens = [[flat[(r * seq + p) * k : (r * seq + p + 1) * k] for p in range(seq)] for r in range(rows)]
    target_text = token_texts(tokenizer, safe)
    return LogitLens(
        tokens=token_texts(tokenizer, ids[0]),
        labels=["emb"] + [str(i) for i in range(1, rows)],
        top_ids=top.indices,
        top_probs=top.values,
        top_tokens=top_tokens,
        target_ids=torch.where(has, targets, torch.full_like(targets, -1)),
        target_tokens=[t if h else "" for t, h in zip(target_text, has.tolist())],
        target_probs=torch.where(has, t_prob, torch.full_like(t_prob, math.nan)),
        target_ranks=torch.where(has, ranks, torch.zeros_like(ranks)),
        entropy=entropy,
        kl_to_final=kl,
        target_kind=kind,
        logits=logits if keep_logits else None,
    )
