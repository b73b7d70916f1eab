"""Attribution: how much each input token contributed to one output number, by gradients (Captum) or attention rollout.

For an output `f` (a target logit, or the loss) and input token embeddings `x` (one vector per token):

- gradient x input: `x * df/dx`, summed over the embedding dimensions; one backward pass.
- integrated gradients (Sundararajan et al., 2017): `(x - x') * integral_0^1 df/dx(x' + a (x - x')) da`, with a
  baseline `x'` (zero vectors, a padding token, or your own), computed by Captum's `IntegratedGradients` with
  `steps` quadrature points. Completeness: the attributions add up to `f(x) - f(x')`; Captum's convergence
  delta is the gap, and `Attribution.relative_error` reports it as a fraction of `|f(x) - f(x')|`.
- attention rollout (Abnar & Zuidema, 2020): multiply the head-averaged attention of every layer, each mixed
  half-and-half with the identity for the residual connection; cheap (one forward pass), no gradients.

Embeddings are replaced through a forward hook on the model's token-embedding table, so the same code serves
labkit's GPT, Encoder (classification or masked-LM head) and LSTMLM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from labkit.checks import check_choice, check_float, check_int
from labkit.errors import InvalidInputError
from labkit.interpret.common import as_batch, eval_mode, input_embedding, n_layers, token_id, token_texts, vocab_size

__all__ = ["METHODS", "OBJECTIVES", "Attribution", "attribute", "attention_rollout", "embedding_forward"]

METHODS = ("integrated_gradients", "gradient_x_input")
OBJECTIVES = ("logit", "loss")


@dataclass
class Attribution:
    """Per-token scores for one output of one input, with what was explained and how well IG's completeness holds."""

    tokens: list[str]
    scores: torch.Tensor  # [seq] one number per input token
    method: str  # "integrated_gradients", "gradient_x_input" or "attention_rollout"
    explains: str  # what the scores explain, in words ("logit of ' Paris' at position 5")
    target_id: int | None = None  # the explained class or token id (None for the loss and rollout)
    vectors: torch.Tensor | None = field(default=None, repr=False)  # [seq, n_embd] per dimension; rollout: [seq, seq]
    f_input: float | None = None  # f(x)
    f_baseline: float | None = None  # f(baseline) (integrated gradients)
    delta: float | None = None  # sum of attributions - (f(x) - f(baseline)) (integrated gradients)
    steps: int | None = None

    @property
    def relative_error(self) -> float | None:
        """|delta| / |f(x) - f(baseline)|: IG's completeness error as a fraction (None for other methods)."""
        if self.delta is None or self.f_input is None or self.f_baseline is None:
            return None
        gap = abs(self.f_input - self.f_baseline)
        return abs(self.delta) / gap if gap > 0 else (0.0 if self.delta == 0 else float("inf"))

    def completeness(self) -> str:
        """One line: sum of attributions against f(x) - f(baseline), and the error (IG only)."""
        if self.delta is None:
            return f"{self.method}: no completeness property"
        total = float(self.scores.sum())
        return (
            f"sum of attributions {total:+.4f} vs f(x) - f(baseline) = {self.f_input - self.f_baseline:+.4f} "
            f"({self.steps} steps; error {abs(self.delta):.2e}, {100 * self.relative_error:.3f}% of the gap)"
        )

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k tokens with the largest |score|, as (token, score)."""
        idx = self.scores.abs().topk(min(k, len(self.tokens))).indices.tolist()
        return [(self.tokens[i], float(self.scores[i])) for i in idx]


def embedding_forward(
    model: Any,
    input_ids: torch.Tensor,
    objective: Callable[[torch.Tensor], torch.Tensor],
    **model_kwargs: Any,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A model, one row of ids and objective(logits [n, ...]) -> [n] in, f(embeddings [n, seq, n_embd]) -> [n] out.

    The returned function runs the model on the same ids with the token embeddings replaced by its argument
    (a forward hook on the embedding table), which is what Captum's IntegratedGradients differentiates.
    """
    table = input_embedding(model)

    def forward(embeddings: torch.Tensor) -> torch.Tensor:
        n = embeddings.size(0)
        handle = table.register_forward_hook(lambda module, args, out: embeddings)
        try:
            kwargs = {
                k: (v.expand(n, *v.shape[1:]) if isinstance(v, torch.Tensor) else v) for k, v in model_kwargs.items()
            }
            logits = model(input_ids.expand(n, -1), **kwargs).logits
        finally:
            handle.remove()
        return objective(logits)

    return forward


def _objective(logits: torch.Tensor, ids: torch.Tensor, objective: str, target: int | None, position: int) -> Callable:
    if objective == "loss":
        if logits.dim() == 2:  # classification: cross-entropy against the target class
            return lambda out: F.cross_entropy(out.float(), torch.full((out.size(0),), target), reduction="none")

        def lm_loss(out: torch.Tensor) -> torch.Tensor:
            labels = ids[:, 1:].expand(out.size(0), -1)
            ce = F.cross_entropy(out[:, :-1].float().transpose(1, 2), labels, reduction="none")
            return ce.mean(-1)

        return lm_loss
    if logits.dim() == 2:
        return lambda out: out[:, target].float()
    return lambda out: out[:, position, target].float()


def _baseline(baseline: Any, emb: torch.Tensor, table: torch.nn.Embedding, size: int) -> torch.Tensor:
    if isinstance(baseline, str):
        check_choice("baseline", baseline, ["zeros"], fix="or pass a token id, ids [seq] or embeddings [seq, n_embd]")
        return torch.zeros_like(emb)
    if isinstance(baseline, int) and not isinstance(baseline, bool):
        token_id(None, baseline, size, "baseline")
        return table.weight[baseline].detach().expand_as(emb).clone()
    if isinstance(baseline, torch.Tensor):
        if not baseline.is_floating_point():
            ids = as_batch(baseline, "baseline", batch=False)
            if ids.shape[1] != emb.shape[1]:
                raise InvalidInputError(
                    f"baseline has {ids.shape[1]} ids for {emb.shape[1]} input tokens; give one per token"
                )
            if int(ids.max()) >= size or int(ids.min()) < 0:
                raise InvalidInputError(f"baseline ids must lie in [0, {size}); got {int(ids.min())}..{int(ids.max())}")
            return table(ids).detach()
        base = baseline.detach().to(emb.dtype)
        base = base.unsqueeze(0) if base.dim() == 2 else base
        if base.shape != emb.shape:
            raise InvalidInputError(
                f"baseline embeddings have shape {tuple(baseline.shape)}; need {tuple(emb.shape[1:])}"
            )
        return base
    raise InvalidInputError(
        f"baseline must be 'zeros', a token id, ids [seq] or embeddings [seq, n_embd], got {type(baseline).__name__}"
    )


def attribute(
    model: Any,
    input_ids: Any,
    *,
    method: str = "integrated_gradients",
    objective: str = "logit",
    target: Any = None,
    position: int = -1,
    baseline: Any = "zeros",
    steps: int = 50,
    tokenizer: Any = None,
    internal_batch_size: int | None = None,
    **model_kwargs: Any,
) -> Attribution:
    """A model and one sequence of ids in, an `Attribution` (one score per input token) out, computed with Captum.

    method: "integrated_gradients" or "gradient_x_input". objective: "logit" (a target logit) or "loss" (the
    language-modelling loss of the sequence, or the classifier's cross-entropy against `target`).
    target: the explained class or token (id or one-token text; default: the model's own prediction).
    position: which position's logits an LM target is read at. baseline (IG): "zeros", a token id for every
    position, ids [seq] (keep [CLS]/[SEP] and pad the rest, say) or embeddings [seq, n_embd].
    steps (IG): quadrature points (Gauss-Legendre). internal_batch_size (IG): rows per forward pass.
    model_kwargs: passed to the model (attention_mask, token_type_ids).
    """
    method = check_choice("method", method, METHODS, fix="attention rollout is attention_rollout(model, ids)")
    objective = check_choice("objective", objective, OBJECTIVES)
    steps = check_int("steps", steps, low=1, fix="integrated gradients needs at least one step; 50 is a good start")
    check_int("internal_batch_size", internal_batch_size, low=1, allow_none=True)
    ids = as_batch(input_ids, batch=False)
    size = vocab_size(model)
    table = input_embedding(model)
    cfg = getattr(model, "config", None)
    if hasattr(cfg, "head") and cfg.head is None:
        raise InvalidInputError(
            f"{type(model).__name__} has no output head (head=None), so there is no logit to explain; "
            "use head='mlm' or 'classification'"
        )
    classifier = getattr(cfg, "head", None) == "classification"
    if classifier and target is not None:  # bad targets fail before the model runs
        n_classes = getattr(cfg, "num_labels", 0)
        target = check_int("target", target, low=0, high=n_classes - 1, fix=f"the classifier has {n_classes} classes")
    elif target is not None:
        target = token_id(tokenizer, target, size, "target")
    seq = ids.size(1)
    if not classifier:
        position = check_int("position", position, low=-seq, high=seq - 1) % seq
    from captum.attr import InputXGradient, IntegratedGradients

    with eval_mode(model):
        with torch.no_grad():
            logits = model(ids, **model_kwargs).logits
        if target is None:
            target = int(logits[0].argmax(-1)) if logits.dim() == 2 else int(logits[0, position].argmax())
        if objective == "loss" and logits.dim() == 3:
            explains, target_id = "language-modelling loss of the sequence", None
        elif objective == "loss":
            explains, target_id = f"cross-entropy against class {target}", target
        elif logits.dim() == 2:
            explains, target_id = f"logit of class {target}", target
        else:
            text = token_texts(tokenizer, [target])[0]
            explains, target_id = f"logit of {text!r} at position {position}", target
        fn = embedding_forward(model, ids, _objective(logits, ids, objective, target, position), **model_kwargs)
        emb = table(ids).detach().requires_grad_()
        if method == "gradient_x_input":
            vectors = InputXGradient(fn).attribute(emb)
            with torch.no_grad():
                f_x = float(fn(emb)[0])
            return Attribution(
                token_texts(tokenizer, ids[0]), vectors[0].sum(-1).detach(), method, explains, target_id,
                vectors[0].detach(), f_input=f_x,
            )  # fmt: skip
        base = _baseline(baseline, emb, table, size)
        vectors, delta = IntegratedGradients(fn).attribute(
            emb, baselines=base, n_steps=steps, return_convergence_delta=True, internal_batch_size=internal_batch_size
        )
        with torch.no_grad():
            f_x, f_b = float(fn(emb)[0]), float(fn(base)[0])
    return Attribution(
        token_texts(tokenizer, ids[0]), vectors[0].sum(-1).detach(), method, explains, target_id, vectors[0].detach(),
        f_input=f_x, f_baseline=f_b, delta=float(delta[0]), steps=steps,
    )  # fmt: skip


def attention_rollout(
    model: Any,
    input_ids: Any,
    *,
    position: int | None = None,
    residual: float = 0.5,
    tokenizer: Any = None,
    **model_kwargs: Any,
) -> Attribution:
    """A Transformer and one sequence of ids in, attention rollout (an `Attribution`) for one position out.

    position: whose input mix is shown (default: 0, the [CLS] token, for a classifier; the last token otherwise).
    residual: weight of the identity mixed into every layer's head-averaged attention (0.5 in the paper).
    The full rollout matrix [seq, seq] is in `.vectors`; `.scores` is its row for `position` (sums to 1).
    """
    ids = as_batch(input_ids, batch=False)
    L = n_layers(model)
    residual = check_float("residual", residual, low=0.0, high=1.0)
    seq = ids.size(1)
    if position is None:
        position = 0 if getattr(getattr(model, "config", None), "head", None) == "classification" else -1
    position = check_int("position", position, low=-seq, high=seq - 1) % seq
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(L)]
    with torch.no_grad(), eval_mode(model):
        _, cache = model.run_with_cache(ids, names=names, **model_kwargs)
    eye = torch.eye(seq)
    rollout = eye
    for name in names:
        mixed = residual * eye + (1 - residual) * cache[name][0].float().mean(0)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rollout = mixed @ rollout
    return Attribution(
        token_texts(tokenizer, ids[0]),
        rollout[position].clone(),
        "attention_rollout",
        f"attention flow into position {position}",
        vectors=rollout,
    )
