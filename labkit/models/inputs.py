"""Checks on model inputs that every labkit model shares: token ids inside the vocabulary, cheaply."""

from __future__ import annotations

import torch

from labkit.errors import InvalidInputError

__all__ = ["ids_are_checkable", "check_token_ids"]


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
