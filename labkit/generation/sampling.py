"""Pure sampling functions: logits [..., vocab] in, filtered logits or chosen token ids out.

Each filter returns a new tensor and matches the Hugging Face logits processor of
the same idea (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
RepetitionPenaltyLogitsProcessor) value for value, ties included, so a notebook
can show exactly what `generate()` does to the model's distribution at each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError

__all__ = [
    "SamplingOptions",
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
    check_float("temperature", temperature, low=0, allow_none=True, fix="0 means greedy")
    check_int("top_k", top_k, allow_none=True, fix="None keeps every token")
    check_float("top_p", top_p, low=0, high=1, low_open=True, allow_none=True, fix="1 keeps every token")
    check_float(
        "repetition_penalty",
        repetition_penalty,
        low=0,
        low_open=True,
        allow_none=True,
        fix="1 = no penalty, > 1 discourages repeats",
    )


@dataclass(frozen=True)
class SamplingOptions:
    """How `generate`, `stream` and the playground choose each token: greedy, or sampled from the filtered distribution.

    do_sample: None = sample when temperature, top_k or top_p is given (and temperature != 0), else greedy.
    temperature: None = 1; 0 = greedy. top_k: keep the k most likely tokens (None = all). top_p: keep the
    smallest set holding this much probability, in (0, 1] (None = all). repetition_penalty: > 0, 1 = off
    (applies to greedy and beam search too). seed: seeds a local torch.Generator, so the same seed gives
    the same tokens (None = torch's global generator).
    Every field is checked when the object is made; `SamplingOptions(temperature=-1)` fails at once.
    """

    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        check_sampling_args(self.temperature, self.top_k, self.top_p, self.repetition_penalty)
        if self.do_sample not in (None, True, False):
            raise InvalidInputError(
                f"do_sample must be True, False or None (decide from the filters), got {self.do_sample!r}"
            )
        check_int("seed", self.seed, low=0, allow_none=True, fix="None draws fresh randomness")
        if self.do_sample and self.temperature == 0:
            raise InvalidInputError(
                "do_sample=True needs temperature > 0 (temperature 0 means greedy); raise temperature or set do_sample=False"
            )

    @property
    def samples(self) -> bool:
        """True when tokens are drawn at random, False for greedy (argmax) decoding."""
        if self.do_sample is not None:
            return self.do_sample
        given = self.temperature is not None or self.top_k is not None or self.top_p is not None
        return given and self.temperature != 0

    @property
    def effective_temperature(self) -> float:
        """The temperature sampling divides the logits by (1 when none is given)."""
        return 1.0 if self.temperature is None else float(self.temperature)

    def warp(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits [..., vocab] in, the logits sampling draws from out (temperature, top-k, top-p; see `warp_logits`)."""
        return warp_logits(logits, self.effective_temperature, self.top_k, self.top_p)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """Logits [..., vocab] in, the most likely token id per row [...] out (first index on ties, like argmax)."""
    return logits.argmax(dim=-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits [..., vocab] in, logits / temperature out: < 1 sharpens the distribution, > 1 flattens it.

    temperature: strictly positive (temperature 0 means greedy; call `greedy` instead).
    """
    check_float("temperature", temperature, low=0, low_open=True, fix="for temperature 0 use greedy()")
    return logits / temperature


def top_k_filter(
    logits: torch.Tensor, k: int, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1
) -> torch.Tensor:
    """Logits [..., vocab] in, logits with everything below the k-th largest value set to `filter_value` out.

    k: how many tokens to keep (tokens tied with the k-th value are kept too). filter_value: what removed tokens get.
    min_tokens_to_keep: never keep fewer than this many tokens.
    """
    check_sampling_args(top_k=k)
    check_int("min_tokens_to_keep", min_tokens_to_keep)
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
    check_int("min_tokens_to_keep", min_tokens_to_keep)
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
