"""Checks on model inputs that every labkit model shares: token ids inside the vocabulary, cheaply."""

from __future__ import annotations

import torch

from labkit.errors import InvalidInputError

__all__ = ["ids_are_checkable", "check_token_ids", "check_labels"]


def ids_are_checkable(ids: torch.Tensor) -> bool:
    """True where range-checking ids is free: on the CPU and outside torch.compile.

    On a GPU, reading `ids.max()` back to the host would stall the pipeline on every forward (and break
    compiled graphs), so the check is skipped there; an out-of-range id then trips the embedding's device-side assert.
    """
    return ids.device.type == "cpu" and not torch.compiler.is_compiling()


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str) -> None:
    """Raise a one-line error when any id in `ids` lies outside [0, vocab_size) (CPU only; see ids_are_checkable)."""
    if ids.numel() == 0 or not ids_are_checkable(ids):
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = high if high >= vocab_size else low
        raise InvalidInputError(
            f"{name} contains token id {bad}, outside the vocabulary [0, {vocab_size}); "
            "set vocab_size to the tokenizer's vocab_size or re-encode with the model's tokenizer"
        )


def check_labels(labels: torch.Tensor, vocab_size: int, name: str = "labels") -> None:
    """Raise a one-line error for labels that cross-entropy would reject with a raw error: a float dtype, or an id
    outside [0, vocab_size) other than -100 (the ignored position). The range is read on the CPU only."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InvalidInputError(
            f"{name} must be an integer tensor of token ids (-100 = ignored), got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}; pass the ids, e.g. labels=input_ids"
        )
    if labels.numel() == 0 or not ids_are_checkable(labels):
        return
    kept = labels[labels != -100]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= vocab_size):
        bad = int(kept.max()) if int(kept.max()) >= vocab_size else int(kept.min())
        raise InvalidInputError(
            f"{name} contains {bad}, outside the vocabulary [0, {vocab_size}); labels are token ids, -100 marks "
            "positions to ignore"
        )
