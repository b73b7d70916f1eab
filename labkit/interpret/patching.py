"""Activation patching: run a corrupted prompt, copy one activation in from the clean run, see how much of the answer comes back.

Clean: "The capital of France is" (answer " Paris"); corrupted: "The capital of Italy is". The metric is the
logit difference `logit(Paris) - logit(Rome)` at the last position. Copying an activation from the clean run
into the corrupted run at one (layer, position) or one (layer, head) and re-measuring the metric tells how
much that activation carries: `recovered = (patched - corrupted) / (clean - corrupted)` is 1 when the
patch restores the clean answer and 0 when it changes nothing.

What can be patched (`hook=`), and how it is cut (`by=`):

| hook | activation | by |
| --- | --- | --- |
| `resid_pre`, `resid_mid`, `resid_post` | the residual stream | `layer_pos` [layer, pos], `layer` [layer] |
| `attn_out`, `mlp_out` | a block's attention / MLP output | `layer_pos`, `layer` |
| `head_out` (alias `z`) | each head's output before the output projection | `head` [layer, head], `head_pos` [layer, pos, head], `layer_pos`, `layer` |

Patches run in batches (`batch_size` rows per forward pass), so a sweep of a few hundred patches on a small
model takes seconds. In a causal model, positions before the first token where the two prompts differ hold
identical activations in both runs, so those patches are not run: their value is the corrupted metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from labkit.checks import check_choice, check_int
from labkit.errors import InvalidInputError, UnknownNameError, close_matches
from labkit.interpret.common import as_batch, eval_mode, n_layers, token_id, token_texts, vocab_size

__all__ = ["PATCH_HOOKS", "activation_patching", "logit_diff_metric", "PatchingResult"]

# hook kind -> (hook name template, the ways it can be cut)
PATCH_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "resid_pre": ("blocks.{}.hook_resid_pre", ("layer_pos", "layer")),
    "resid_mid": ("blocks.{}.hook_resid_mid", ("layer_pos", "layer")),
    "resid_post": ("blocks.{}.hook_resid_post", ("layer_pos", "layer")),
    "attn_out": ("blocks.{}.hook_attn_out", ("layer_pos", "layer")),
    "mlp_out": ("blocks.{}.hook_mlp_out", ("layer_pos", "layer")),
    "head_out": ("blocks.{}.attn.hook_z", ("head", "head_pos", "layer_pos", "layer")),
}
_ALIASES = {"z": "head_out"}
_DIMS = {
    "layer_pos": ("layer", "pos"),
    "layer": ("layer",),
    "head": ("layer", "head"),
    "head_pos": ("layer", "pos", "head"),
}

Metric = Callable[[torch.Tensor], torch.Tensor]


def logit_diff_metric(answer: Any, wrong: Any, position: int = -1) -> Metric:
    """Answer and wrong token ids (one each, or one per prompt) in, metric(logits [batch, pos, vocab]) -> mean logit difference out."""
    ids = {}
    for name, value in (("answer", answer), ("wrong", wrong)):
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise InvalidInputError(
                f"{name} must be a token id (or one per prompt), got {value!r}; turn text into ids with token_id()"
            ) from None
        if t.is_floating_point() or t.dtype == torch.bool or t.numel() == 0 or int(t.min()) < 0:
            raise InvalidInputError(f"{name} must be a token id >= 0 (or one per prompt), got {value!r}")
        ids[name] = t.reshape(-1)
    if ids["answer"].shape == ids["wrong"].shape and torch.equal(ids["answer"], ids["wrong"]):
        raise InvalidInputError(
            f"answer and wrong are the same token ({answer!r}), so the logit difference is always 0; pick a wrong token"
        )
    check_int("position", position, low=None)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, position] if logits.dim() == 3 else logits
        a = torch.as_tensor(answer, device=last.device).reshape(-1, 1).expand(last.size(0), 1)
        w = torch.as_tensor(wrong, device=last.device).reshape(-1, 1).expand(last.size(0), 1)
        return (last.gather(-1, a) - last.gather(-1, w)).mean()

    return metric


@dataclass
class PatchingResult:
    """Metric after each patch (`scores`, with named dims), the clean and corrupted metrics, and what was patched."""

    scores: torch.Tensor  # metric of each patched run, shaped by `dims`
    dims: tuple[str, ...]  # ("layer", "pos"), ("layer",), ("layer", "head") or ("layer", "pos", "head")
    hook: str  # the patched hook kind, e.g. "resid_pre"
    clean_metric: float
    corrupted_metric: float
    tokens: list[str]  # clean tokens (text), one per position
    corrupted_tokens: list[str]
    layers: list[int]  # the layers swept (rows of `scores`)

    @property
    def recovered(self) -> torch.Tensor:
        """(patched - corrupted) / (clean - corrupted): 1 = the patch restores the clean metric, 0 = no effect."""
        gap = self.clean_metric - self.corrupted_metric
        if abs(gap) < 1e-12:
            raise InvalidInputError(
                "the clean and corrupted runs give the same metric, so nothing can be recovered; choose prompts that differ in the answer"
            )
        return (self.scores - self.corrupted_metric) / gap

    def top(self, k: int = 5) -> list[tuple[tuple[int, ...], float]]:
        """The k patches that recover most, as ((layer, ...), recovered) with real layer numbers."""
        rec = self.recovered
        flat = rec.flatten()
        out = []
        for i in flat.abs().topk(min(k, flat.numel())).indices.tolist():
            index = list(torch.unravel_index(torch.tensor(i), rec.shape))
            index = [int(x) for x in index]
            index[0] = self.layers[index[0]]
            out.append((tuple(index), float(flat[i])))
        return out


def _hook_kind(hook: str) -> str:
    if not isinstance(hook, str):
        raise InvalidInputError(f"hook must be a name such as 'resid_pre', got {type(hook).__name__}")
    kind = _ALIASES.get(hook, hook)
    if kind not in PATCH_HOOKS:
        names = [*PATCH_HOOKS, *_ALIASES]
        hint = close_matches(hook, names) or "choose one of " + ", ".join(names)
        raise UnknownNameError(f"unknown hook {hook!r} for patching; {hint}")
    return kind


def _metric_value(metric: Metric, logits: torch.Tensor) -> float:
    value = metric(logits)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidInputError(
            f"metric must return one number (a 0-d tensor) for a batch of logits, got {shape}; reduce it, e.g. with .mean()"
        )
    return float(value)


def activation_patching(
    model: Any,
    clean_ids: Any,
    corrupted_ids: Any,
    *,
    hook: str = "resid_pre",
    by: str | None = None,
    metric: Metric | None = None,
    answer: Any = None,
    wrong: Any = None,
    tokenizer: Any = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    attention_mask: torch.Tensor | None = None,
) -> PatchingResult:
    """A model, clean and corrupted ids ([seq] or [batch, seq], same shape) in, a `PatchingResult` out.

    hook: what to patch (see the module docstring). by: how to cut it (default: "head" for head_out,
    "layer_pos" otherwise). metric: fn(logits of one patched run [batch, ...]) -> 0-d tensor; or give
    answer/wrong (ids or one-token texts, one each or one per prompt) for the logit difference at the last
    position. tokenizer: token text, and text answers. layers: which layers to sweep (default all).
    batch_size: rows per forward pass. attention_mask: shared by both runs.
    """
    kind = _hook_kind(hook)
    template, cuts = PATCH_HOOKS[kind]
    by = check_choice("by", cuts[0] if by is None else by, cuts, fix=f"{kind} can be patched by {', '.join(cuts)}")
    clean = as_batch(clean_ids, "clean_ids")
    corrupted = as_batch(corrupted_ids, "corrupted_ids")
    if clean.shape != corrupted.shape:
        raise InvalidInputError(
            f"clean run is {tuple(clean.shape)} tokens and corrupted run {tuple(corrupted.shape)}; patching copies "
            "activations position by position, so use prompts of the same length (pick words of one token each)"
        )
    L = n_layers(model)
    size = vocab_size(model)
    chosen = list(range(L)) if layers is None else [check_int("layer", x, low=-L, high=L - 1) % L for x in layers]
    if not chosen:
        raise InvalidInputError("layers is empty; pass at least one layer or None for all")
    rows_per_patch = clean.size(0)
    check_int("batch_size", batch_size, low=1)
    if metric is None:
        if answer is None or wrong is None:
            raise InvalidInputError(
                "give metric=fn(logits) -> number, or answer= and wrong= tokens for a logit difference"
            )

        def ids_of(x: Any, name: str) -> Any:
            items = x if isinstance(x, (list, tuple)) else [x]
            if len(items) not in (1, rows_per_patch):
                raise InvalidInputError(
                    f"{name} has {len(items)} entries for {rows_per_patch} prompts; give one or one per prompt"
                )
            return [token_id(tokenizer, t, size, name) for t in items]

        metric = logit_diff_metric(ids_of(answer, "answer"), ids_of(wrong, "wrong"))
    elif not callable(metric):
        raise InvalidInputError(f"metric must be a function of the logits, got {type(metric).__name__}")

    names = [template.format(layer) for layer in chosen]
    with torch.no_grad(), eval_mode(model):
        clean_out, cache = model.run_with_cache(clean, names=names, attention_mask=attention_mask)
        corrupted_out = model(corrupted, attention_mask=attention_mask)
        clean_metric = _metric_value(metric, clean_out.logits)
        corrupted_metric = _metric_value(metric, corrupted_out.logits)
        seq = clean.size(1)
        n_head = cache[names[0]].size(2) if kind == "head_out" else 1
        dims = _DIMS[by]
        sizes = {"layer": len(chosen), "pos": seq, "head": n_head}
        shape = tuple(sizes[d] for d in dims)
        scores = torch.full(shape, corrupted_metric, dtype=torch.float32)
        differs = (clean != corrupted).any(0).nonzero()
        causal = bool(getattr(model.blocks[0].attn, "causal", False))
        first = (int(differs[0]) if len(differs) else seq) if causal else 0
        patches = []  # (index into scores, layer index into chosen, position or None, head or None)
        for index in torch.cartesian_prod(*[torch.arange(s) for s in shape]).reshape(-1, len(shape)).tolist():
            spec = dict(zip(dims, index))
            pos = spec.get("pos")
            if pos is not None and pos < first:
                continue  # identical in both runs: patching changes nothing
            patches.append((tuple(index), spec["layer"], pos, spec.get("head")))
        per_pass = max(1, batch_size // rows_per_patch)
        for start in range(0, len(patches), per_pass):
            chunk = patches[start : start + per_pass]
            values = _run_chunk(model, corrupted, cache, names, kind, chunk, metric, attention_mask)
            for (index, *_), v in zip(chunk, values):
                scores[index] = v
    return PatchingResult(
        scores=scores,
        dims=dims,
        hook=kind,
        clean_metric=clean_metric,
        corrupted_metric=corrupted_metric,
        tokens=token_texts(tokenizer, clean[0]),
        corrupted_tokens=token_texts(tokenizer, corrupted[0]),
        layers=chosen,
    )


def _run_chunk(
    model: Any,
    corrupted: torch.Tensor,
    cache: Any,
    names: list[str],
    kind: str,
    chunk: list[tuple[tuple[int, ...], int, int | None, int | None]],
    metric: Metric,
    attention_mask: torch.Tensor | None,
) -> list[float]:
    """Run len(chunk) patched copies of the corrupted batch in one forward pass; return each copy's metric."""
    b = corrupted.size(0)
    n = len(chunk)
    ids = corrupted.repeat(n, 1)
    mask = attention_mask.repeat(n, 1) if attention_mask is not None else None
    by_layer: dict[int, list[tuple[int, int | None, int | None]]] = {}
    for row, (_, li, pos, head) in enumerate(chunk):
        by_layer.setdefault(li, []).append((row, pos, head))

    def make_hook(li: int) -> Callable:
        clean_act = cache[names[li]]  # [b, seq, ...]

        def patch(x: torch.Tensor, hook: Any) -> torch.Tensor:
            x = x.clone()
            for row, pos, head in by_layer[li]:
                rows = slice(row * b, (row + 1) * b)
                p = slice(None) if pos is None else pos
                if kind == "head_out" and head is not None:
                    x[rows, p, head] = clean_act[:, p, head]
                else:
                    x[rows, p] = clean_act[:, p]
            return x

        return patch

    hooks = [(names[li], make_hook(li)) for li in by_layer]
    logits = model.run_with_hooks(ids, fwd_hooks=hooks, attention_mask=mask).logits
    return [_metric_value(metric, logits[r * b : (r + 1) * b]) for r in range(n)]
