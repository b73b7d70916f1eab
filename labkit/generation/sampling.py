"""Pure sampling functions: logits [..., vocab] in, filtered logits or chosen token ids out.

Each filter returns a new tensor and matches the Hugging Face logits processor of
the same idea (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
RepetitionPenaltyLogitsProcessor) value for value, ties included, so a notebook
can show exactly what `generate()` does to the model's distribution at each step.
"""

from __future__ import annotations

import math

import torch

from labkit.errors import InvalidInputError

__all__ = [
    "greedy",
    "sample",
    "warp_logits",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "apply_repetition_penalty",
    "check_sampling_args",
]

NEG_INF = -math.inf


def check_sampling_args(
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
) -> None:
    """Raise a one-line InvalidInputError for an out-of-range sampling parameter (None means "not used")."""
    if temperature is not None and (not isinstance(temperature, (int, float)) or not temperature >= 0):
        raise InvalidInputError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"top_k must be an integer >= 1 (or None for no top-k filter), got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise InvalidInputError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p!r}")
    if repetition_penalty is not None and (
        not isinstance(repetition_penalty, (int, float)) or not repetition_penalty > 0
    ):
        raise InvalidInputError(
            f"repetition_penalty must be > 0 (1 = no penalty, > 1 discourages repeats), got {repetition_penalty!r}"
        )


def _check_keep(min_tokens_to_keep: int) -> None:
    if isinstance(min_tokens_to_keep, bool) or not isinstance(min_tokens_to_keep, int) or min_tokens_to_keep < 1:
        raise InvalidInputError(f"min_tokens_to_keep must be an integer >= 1, got {min_tokens_to_keep!r}")


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """Logits [..., vocab] in, the most likely token id per row [...] out (first index on ties, like argmax)."""
    return logits.argmax(dim=-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits [..., vocab] in, logits / temperature out: < 1 sharpens the distribution, > 1 flattens it.

    temperature: strictly positive (temperature 0 means greedy; call `greedy` instead).
    """
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise InvalidInputError(f"temperature must be > 0 here (for temperature 0 use greedy()), got {temperature!r}")
    return logits / temperature


def top_k_filter(
    logits: torch.Tensor, k: int, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1
) -> torch.Tensor:
    """Logits [..., vocab] in, logits with everything below the k-th largest value set to `filter_value` out.

    k: how many tokens to keep (tokens tied with the k-th value are kept too). filter_value: what removed tokens get.
    min_tokens_to_keep: never keep fewer than this many tokens.
    """
    check_sampling_args(top_k=k)
    _check_keep(min_tokens_to_keep)
    k = min(max(k, min_tokens_to_keep), logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, filter_value)


def top_p_filter(
    logits: torch.Tensor, p: float, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1
) -> torch.Tensor:
    """Logits [..., vocab] in, logits outside the nucleus set to `filter_value` out (nucleus sampling, Holtzman et al. 2019).

    The nucleus is the smallest set of most likely tokens whose probabilities add up to at least p.
    p: in (0, 1]. filter_value: what removed tokens get. min_tokens_to_keep: never keep fewer than this many tokens.
    """
    check_sampling_args(top_p=p)
    _check_keep(min_tokens_to_keep)
    # Walk the vocabulary from the least likely token up: a token is dropped while the probability mass at or
    # below it is still <= 1 - p, i.e. while the tokens above it already cover p.
    ascending, order = torch.sort(logits, dim=-1, descending=False)
    mass_up_to = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = mass_up_to <= 1.0 - p
    drop_sorted[..., -min_tokens_to_keep:] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, filter_value)


def apply_repetition_penalty(logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Logits [..., vocab] and the ids seen so far [..., seq] in, logits with those tokens penalised out (CTRL, 2019).

    Each seen token's logit is divided by `penalty` when positive and multiplied by it when negative, once,
    however often the token occurred. penalty: > 0; 1 = no change, > 1 discourages repeats, < 1 encourages them.
    previous_ids: the same leading dimensions as logits (a 1-D logits row takes a 1-D id list).
    """
    check_sampling_args(repetition_penalty=penalty)
    if previous_ids.dim() != logits.dim() or previous_ids.shape[:-1] != logits.shape[:-1]:
        raise InvalidInputError(
            f"previous_ids shape {tuple(previous_ids.shape)} must match logits {tuple(logits.shape)} except in the last "
            "dimension ([batch, seq] ids for [batch, vocab] logits)"
        )
    if previous_ids.size(-1) == 0:
        return logits.clone()
    seen = logits.gather(-1, previous_ids)
    penalised = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, previous_ids, penalised)


def warp_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Logits [..., vocab] in, the logits sampling draws from out: temperature, then top-k, then top-p (HF's order).

    temperature: > 0 (1 = unchanged). top_k: keep the k most likely (None = all). top_p: nucleus mass (None or 1 = all).
    """
    check_sampling_args(temperature, top_k, top_p)
    if temperature != 1.0:
        logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits


def sample(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Logits [..., vocab] in, one sampled token id per row [...] out.

    temperature: 0 = greedy, otherwise > 0. top_k / top_p: filters applied before drawing (see `warp_logits`).
    generator: a seeded `torch.Generator` for reproducible draws (None = torch's global generator).
    """
    check_sampling_args(temperature, top_k, top_p)
    if temperature == 0:
        return greedy(logits)
    warped = warp_logits(logits, temperature, top_k, top_p)
    probs = torch.softmax(warped.float(), dim=-1)
    flat = probs.reshape(-1, probs.size(-1))
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
