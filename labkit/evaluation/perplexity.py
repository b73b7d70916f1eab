"""Perplexity of a language model over batches, weighted by target tokens.

Perplexity is exp(mean negative log-likelihood per target token). Averaging the
per-batch mean losses would weight a short batch like a long one, so this module
sums the token log-likelihoods itself (from the logits) and divides once at the end.

Which tokens are targets depends on the model: causal LMs (labkit `GPT`, `LSTMLM`,
Hugging Face `*ForCausalLM` / `*LMHeadModel`) predict token t+1 from position t,
so the labels are shifted by one (`labels[:, 1:]`); `Seq2Seq`, `Encoder` (MLM) and
Hugging Face encoder-decoders score `labels` where they stand. In both cases
positions labelled -100 are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from labkit.checks import check_int
from labkit.errors import InvalidInputError

__all__ = ["PerplexityResult", "perplexity"]

_CAUSAL_ARCHS = {"gpt", "lstm"}
_UNSHIFTED_ARCHS = {"seq2seq", "encoder"}


@dataclass(frozen=True)
class PerplexityResult:
    """Token-weighted perplexity over a set of batches; `float(result)` is the perplexity."""

    perplexity: float  # exp(loss)
    loss: float  # mean negative log-likelihood per target token, in nats
    tokens: int  # target tokens counted (labels != -100, after the causal shift)
    batches: int  # batches evaluated

    def __float__(self) -> float:
        return self.perplexity


def perplexity(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    shift_labels: bool | None = None,
) -> PerplexityResult:
    """A model and batches (dicts with `input_ids`, `labels`, ...) in, token-weighted `PerplexityResult` out.

    model: a labkit model or a Hugging Face model (anything whose output has `.logits`); it runs under
        `torch.no_grad()` in eval mode, and every module's training flag is restored afterwards.
    batches: iterable of dicts passed as `model(**batch)`. `labels` use -100 for ignored positions; a causal
        LM batch without `labels` scores `input_ids` (masked by `attention_mask` when present).
    device: where to run (default: where the model is); batches are moved there, and the model too for the
        duration of the call (it goes back to its own device afterwards).
    max_batches: stop after this many batches (None = all).
    shift_labels: True for next-token models (labels[:, 1:] are scored against logits[:, :-1]), False when
        labels align with logits. None detects it from the model (labkit `config.arch`, Hugging Face class).
    """
    check_int("max_batches", max_batches, allow_none=True, fix="None scores every batch")
    if isinstance(batches, Mapping):
        raise InvalidInputError("batches is a single dict; pass an iterable of batch dicts, e.g. [batch]")
    shift = _is_causal(model) if shift_labels is None else bool(shift_labels)
    first = next(model.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    device = home if device is None else torch.device(device)
    flags = [(m, m.training) for m in model.modules()]
    total_nll = 0.0
    total_tokens = 0
    n_batches = 0
    model.eval()
    try:
        if device != home:
            model.to(device)
        with torch.no_grad():
            for batch in batches:
                nll, count = _batch_nll(model, batch, shift, device, n_batches)
                total_nll += nll
                total_tokens += count
                n_batches += 1
                if n_batches == max_batches:  # stop before pulling another batch from an iterator
                    break
    finally:
        if device != home:
            model.to(home)
        for module, flag in flags:
            module.training = flag
    if n_batches == 0:
        raise InvalidInputError("batches is empty; pass at least one batch dict with input_ids and labels")
    if total_tokens == 0:
        raise InvalidInputError(
            f"no target tokens in {n_batches} batch(es): every label is -100"
            + (" or sequences have length 1 (causal models predict from the 2nd token on)" if shift else "")
        )
    loss = total_nll / total_tokens
    return PerplexityResult(perplexity=math.exp(loss), loss=loss, tokens=total_tokens, batches=n_batches)


def _batch_nll(
    model: torch.nn.Module, batch: Mapping[str, Any], shift: bool, device: Any, index: int
) -> tuple[float, int]:
    """Run one batch; return (sum of target-token NLL, number of target tokens)."""
    if not isinstance(batch, Mapping):
        raise InvalidInputError(
            f"batch {index} is a {type(batch).__name__}; batches must be dicts such as "
            "{'input_ids': ..., 'labels': ...}"
        )
    inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if "input_ids" not in inputs and "inputs_embeds" not in inputs:
        raise InvalidInputError(
            f"batch {index} has no 'input_ids' (its keys: {', '.join(map(str, inputs)) or 'none'}); "
            "batches must be dicts such as {'input_ids': ..., 'labels': ...}"
        )
    labels = inputs.get("labels")
    if labels is None:
        if not shift or "input_ids" not in inputs:
            raise InvalidInputError(f"batch {index} has no 'labels'; add labels (-100 = ignored) to score this model")
        labels = inputs["input_ids"]
        if inputs.get("attention_mask") is not None:
            labels = labels.masked_fill(inputs["attention_mask"] == 0, -100)
    out = model(**inputs)
    logits = out["logits"] if isinstance(out, Mapping) else getattr(out, "logits", None)
    if logits is None:
        raise InvalidInputError(
            f"the model's output for batch {index} has no logits; perplexity needs a model with an LM head"
        )
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    if logits.shape[:-1] != labels.shape:
        raise InvalidInputError(
            f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)} in batch {index}; "
            f"check shift_labels (now {shift})"
        )
    # float() so half-precision models do not lose the sum; reduction="sum" gives the token weighting
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return float(nll), int((labels != -100).sum())


def _is_causal(model: torch.nn.Module) -> bool:
    """Decide whether the model shifts its labels (next-token prediction) or scores them in place."""
    config = getattr(model, "config", None)
    arch = getattr(config, "arch", None)
    if arch in _CAUSAL_ARCHS:
        return True
    if arch in _UNSHIFTED_ARCHS:
        return False
    if config is not None and hasattr(config, "is_encoder_decoder"):  # a Hugging Face PretrainedConfig
        name = type(model).__name__
        if config.is_encoder_decoder or name.endswith(("ForMaskedLM", "ForSeq2SeqLM")):
            return False
        if name.endswith(("ForCausalLM", "LMHeadModel")):
            return True
    raise InvalidInputError(
        f"cannot tell whether {type(model).__name__} shifts its labels; "
        "pass shift_labels=True (next-token LM) or shift_labels=False (labels align with logits)"
    )
