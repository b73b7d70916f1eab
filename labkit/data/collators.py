"""Collators: lists of variable-length examples in, padded batches (dicts of tensors) out.

`PadCollator` pads every sequence key to the longest item (optionally to a
multiple of 8 for tensor cores) and builds `attention_mask`; `mask_tokens` is
BERT's masked-language-model corruption rule, and `MLMCollator` combines the
two. Key names follow Hugging Face (`input_ids`, `attention_mask`, `labels`,
...), so `model(**batch)` works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError

__all__ = ["PadCollator", "MLMCollator", "mask_tokens"]

IGNORE_INDEX = -100  # the loss ignores this label (torch's cross_entropy default, Hugging Face's convention)
_LABEL_KEYS = ("labels",)
_ZERO_PAD_KEYS = ("attention_mask", "decoder_attention_mask", "token_type_ids", "special_tokens_mask")
_MASK_FOR = {"input_ids": "attention_mask", "decoder_input_ids": "decoder_attention_mask"}


def _as_tensor(value: Any, key: str) -> torch.Tensor:
    """One item's value (list, tuple, numpy array, tensor, number) in, a tensor out (integers become int64)."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if tensor.dim() > 1:
        raise InvalidInputError(
            f"item[{key!r}] has shape {tuple(tensor.shape)}; PadCollator pads 0-d or 1-d values per item"
        )
    if not tensor.is_floating_point() and tensor.dtype != torch.bool:
        tensor = tensor.long()
    return tensor


class PadCollator:
    """A list of dict items (1-d sequences or scalars) in, a dict of padded tensors plus attention masks out.

    pad_id: id written into padded positions of `input_ids`, `decoder_input_ids` and other id sequences.
    padding_side: "right" (training) or "left" (generation prompts, so the last real token is at the end).
    label_pad_id: value for padded `labels` positions (-100: ignored by the loss).
    pad_to_multiple_of: round the padded length up to a multiple of this (8 suits tensor cores).

    Sequence keys are each padded to their own longest item (sources and targets may differ);
    `attention_mask` marks the real `input_ids` positions with 1 (and `decoder_attention_mask` the
    real `decoder_input_ids`) unless the items bring their own masks; scalar values (class labels) are stacked.
    """

    def __init__(
        self,
        pad_id: int,
        padding_side: str = "right",
        label_pad_id: int = IGNORE_INDEX,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        check_int("pad_id", pad_id, low=0, fix="use tokenizer.pad_id")
        if padding_side not in ("right", "left"):
            raise InvalidInputError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        check_int("pad_to_multiple_of", pad_to_multiple_of, allow_none=True)
        self.pad_id = pad_id
        self.padding_side = padding_side
        self.label_pad_id = label_pad_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def _pad_value(self, key: str) -> int:
        if key in _LABEL_KEYS:
            return self.label_pad_id
        if key in _ZERO_PAD_KEYS:
            return 0
        return self.pad_id

    def _pad(self, seqs: list[torch.Tensor], value: int) -> torch.Tensor:
        """Pad 1-d tensors to one length on `padding_side` and stack them into [batch, length]."""
        length = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        out = torch.full((len(seqs), length), value, dtype=seqs[0].dtype)
        for row, seq in enumerate(seqs):
            if len(seq) == 0:
                continue
            if self.padding_side == "right":
                out[row, : len(seq)] = seq
            else:
                out[row, length - len(seq) :] = seq
        return out

    def _mask(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        return self._pad([torch.ones(len(s), dtype=torch.long) for s in seqs], 0)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Items (dicts with the same keys) in, {key: [batch, longest] or [batch] tensor} out."""
        if not items:
            raise InvalidInputError("PadCollator got an empty list of items; a batch needs at least one example")
        if not isinstance(items[0], Mapping):
            raise InvalidInputError(
                f"PadCollator needs dict items such as {{'input_ids': [...]}}, got {type(items[0]).__name__}"
            )
        keys = list(items[0])
        for item in items:
            if set(item) != set(keys):
                raise InvalidInputError(
                    f"items have different keys ({sorted(keys)} vs {sorted(item)}); give every example the same fields"
                )
        batch: dict[str, Any] = {}
        for key in keys:
            values = [item[key] for item in items]
            if isinstance(values[0], str):  # raw text travels along untouched (handy for printing)
                batch[key] = list(values)
                continue
            tensors = [_as_tensor(v, key) for v in values]
            dims = {t.dim() for t in tensors}
            if dims == {0}:
                batch[key] = torch.stack(tensors)
            elif dims == {1}:
                batch[key] = self._pad(tensors, self._pad_value(key))
                mask_key = _MASK_FOR.get(key)
                if mask_key is not None and mask_key not in keys:
                    batch[mask_key] = self._mask(tensors)
            else:
                raise InvalidInputError(
                    f"item[{key!r}] mixes scalars and sequences across the batch; use one kind per field"
                )
        return batch

    def __repr__(self) -> str:
        return (
            f"PadCollator(pad_id={self.pad_id}, padding_side={self.padding_side!r}, "
            f"label_pad_id={self.label_pad_id}, pad_to_multiple_of={self.pad_to_multiple_of})"
        )


def mask_tokens(
    input_ids: Any,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    pad_id: int | None = None,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids in, (masked ids, labels) out, by BERT's rule; the input is not modified.

    Each eligible position (not a special token, not `pad_id`, not `mask_id`, and inside
    `attention_mask` when given) is chosen with `probability`. `labels` holds the original id at
    chosen positions and -100 elsewhere. Of the chosen positions 80% become `mask_id`, 10% a random
    non-special token id, and 10% stay unchanged (so the model cannot learn that only [MASK] needs predicting).

    mask_id: the [MASK] id. vocab_size: ids are in [0, vocab_size). special_ids: ids never chosen nor drawn.
    pad_id: padding id, never chosen. probability: selection rate (BERT: 0.15).
    generator: a CPU torch.Generator for reproducible masks (None uses torch's global RNG).
    attention_mask: 1 = real token, 0 = padding; padding positions are never chosen.
    """
    ids = torch.as_tensor(input_ids)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise InvalidInputError(f"input_ids must hold integer token ids, got dtype {ids.dtype}")
    ids = ids.long()
    check_int("vocab_size", vocab_size)
    check_int("mask_id", mask_id, low=0, high=vocab_size - 1, fix="use tokenizer.mask_id")
    check_float("probability", probability, low=0, high=1, fix="BERT uses 0.15")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(ids.shape):
        raise InvalidInputError(
            f"attention_mask shape {tuple(attention_mask.shape)} must equal input_ids shape {tuple(ids.shape)}"
        )
    if isinstance(special_ids, (int, str)) or not isinstance(special_ids, Iterable):
        raise InvalidInputError(f"special_ids must be a list of token ids, got {special_ids!r}; wrap one id as [id]")
    special_ids = [check_int("each special id", i, low=0) for i in special_ids]
    protected = {int(i) for i in special_ids} | {mask_id} | ({int(pad_id)} if pad_id is not None else set())
    protected_t = torch.tensor(sorted(protected), dtype=torch.long, device=ids.device)
    eligible = ~torch.isin(ids, protected_t)
    if attention_mask is not None:
        eligible &= attention_mask.to(ids.device).bool()
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[[i for i in protected if 0 <= i < vocab_size]] = False
    candidates = allowed.nonzero().squeeze(1)
    if len(candidates) == 0:
        raise InvalidInputError(f"every id in [0, {vocab_size}) is special; random replacement needs ordinary tokens")
    # Draw on the CPU with the caller's generator so a seed gives the same masks on every device.
    select_u = torch.rand(ids.shape, generator=generator)
    action_u = torch.rand(ids.shape, generator=generator)
    random_ids = candidates[torch.randint(len(candidates), ids.shape, generator=generator)]
    chosen = (select_u < probability).to(ids.device) & eligible
    action_u = action_u.to(ids.device)
    to_mask = chosen & (action_u < 0.8)
    to_random = chosen & (action_u >= 0.8) & (action_u < 0.9)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    masked = ids.clone()
    masked[to_mask] = mask_id
    masked[to_random] = random_ids.to(ids.device)[to_random]
    return masked, labels


def _auto_collate(pad_id: int | None) -> Callable[[list[Any]], dict[str, Any]]:
    """Stack equal-length dict items; pad with PadCollator when the dataset knows its pad id (Batches' default)."""
    padder = PadCollator(pad_id) if pad_id is not None else None

    def collate(items: list[Any]) -> dict[str, Any]:
        if not isinstance(items[0], Mapping):
            raise InvalidInputError(
                f"Batches' default collate needs dict items, got {type(items[0]).__name__}; pass collate_fn="
            )
        if padder is not None:
            return padder(items)
        batch = {}
        for key in items[0]:
            values = [torch.as_tensor(item[key]) for item in items]
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise InvalidInputError(
                    f"items have different {key!r} shapes {sorted(shapes)[:2]}; pass collate_fn=PadCollator(pad_id=tokenizer.pad_id)"
                )
            batch[key] = torch.stack(values)
        return batch

    return collate


def _mix(seed: int, step: int) -> int:
    """(seed, step) in, a well-spread 63-bit seed out (splitmix64), so per-batch generators are independent."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class MLMCollator:
    """Dict items with `input_ids` in, {"input_ids" (masked), "attention_mask", "labels"} out: PadCollator + mask_tokens.

    tokenizer_or_pad_id: a tokenizer (pad_id, mask_id, vocab_size and special_ids are read from it) or a pad id.
    mask_id, vocab_size, special_ids: required with a bare pad id; override the tokenizer's otherwise.
    probability: masking rate (BERT: 0.15). seed: None draws from torch's global RNG; an int makes batch k's
    masks a function of (seed, k), and `state_dict()`/`load_state_dict()` carry k so a resumed run masks identically.
    padding_side, pad_to_multiple_of: as in PadCollator. Any `labels` in the items are replaced.
    """

    def __init__(
        self,
        tokenizer_or_pad_id: Any,
        *,
        mask_id: int | None = None,
        vocab_size: int | None = None,
        special_ids: Iterable[int] | None = None,
        probability: float = 0.15,
        seed: int | None = None,
        padding_side: str = "right",
        pad_to_multiple_of: int | None = None,
    ) -> None:
        if isinstance(tokenizer_or_pad_id, int) and not isinstance(tokenizer_or_pad_id, bool):
            pad_id = tokenizer_or_pad_id
            tok_special: Iterable[int] = ()
        else:
            tok = tokenizer_or_pad_id
            pad_id = getattr(tok, "pad_id", None)
            mask_id = getattr(tok, "mask_id", None) if mask_id is None else mask_id
            vocab_size = getattr(tok, "vocab_size", None) if vocab_size is None else vocab_size
            tok_special = getattr(tok, "special_ids", ()) or ()
            if pad_id is None:
                raise InvalidInputError(
                    "the tokenizer has no pad token; train it with '[PAD]' among special_tokens or pass a pad id"
                )
        if mask_id is None or vocab_size is None:
            raise InvalidInputError(
                "MLMCollator needs mask_id and vocab_size; pass a tokenizer with a '[MASK]' token or give them explicitly"
            )
        check_float("probability", probability, low=0, high=1, fix="BERT uses 0.15")
        check_int("seed", seed, low=None, allow_none=True)
        self.pad = PadCollator(pad_id, padding_side=padding_side, pad_to_multiple_of=pad_to_multiple_of)
        self.mask_id, self.vocab_size = int(mask_id), int(vocab_size)
        self.special_ids = frozenset(int(i) for i in (tok_special if special_ids is None else special_ids))
        self.probability = float(probability)
        self.seed = seed
        self.calls = 0  # batches collated so far; with a seed, batch k's masks depend only on (seed, k)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Items in, a padded batch with BERT-masked `input_ids` and MLM `labels` out."""
        stripped = [{k: v for k, v in item.items() if k != "labels"} for item in items]
        batch = self.pad(stripped)
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(_mix(self.seed, self.calls))
        self.calls += 1
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"],
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            special_ids=self.special_ids,
            pad_id=self.pad.pad_id,
            probability=self.probability,
            generator=generator,
            attention_mask=batch.get("attention_mask"),
        )
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Return {"seed", "calls"}: JSON-serialisable, enough to continue the same mask sequence."""
        return {"seed": self.seed, "calls": self.calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a `state_dict()`: the next batch gets the masks it would have had without the interruption."""
        if state.get("seed") != self.seed:
            raise InvalidInputError(
                f"state was saved with seed={state.get('seed')!r} but this collator has seed={self.seed!r}; build it with the same seed"
            )
        self.calls = int(state["calls"])

    def __repr__(self) -> str:
        return (
            f"MLMCollator(pad_id={self.pad.pad_id}, mask_id={self.mask_id}, vocab_size={self.vocab_size}, "
            f"probability={self.probability}, seed={self.seed})"
        )
