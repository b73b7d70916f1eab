"""What every analysis in labkit.interpret needs: one checked sequence of ids, token text, target tokens, eval mode.

The analyses take labkit models (GPT, Encoder, LSTMLM, and the Hugging Face GPT-2 / BERT / Llama models
labkit loads into them) and either a labkit `Tokenizer` or a transformers tokenizer; both decode one id with
`decode([id])` and encode without special tokens with `encode(text, add_special_tokens=False)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from labkit.errors import InvalidInputError, LabkitError

__all__ = [
    "as_batch",
    "token_texts",
    "token_id",
    "vocab_size",
    "n_layers",
    "eval_mode",
    "input_embedding",
    "decoder_parts",
]


def as_batch(input_ids: Any, name: str = "input_ids", batch: bool = True) -> torch.Tensor:
    """Ids as a list, [seq] or [batch, seq] tensor in, a long tensor [batch, seq] out; batch=False demands one row."""
    if isinstance(input_ids, (list, tuple)):
        try:
            input_ids = torch.tensor(input_ids, dtype=torch.long)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must be token ids (ints), got {input_ids!r:.60}") from exc
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise InvalidInputError(
            f"{name} must be integer token ids (a list or a [seq] / [batch, seq] tensor), got {type(input_ids).__name__}"
            f"{'' if not isinstance(input_ids, torch.Tensor) else ' of ' + str(input_ids.dtype)}; encode the text first"
        )
    ids = input_ids.long()
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.dim() != 2 or ids.size(1) == 0:
        raise InvalidInputError(f"{name} must be [seq] or [batch, seq] with at least one token, got {tuple(ids.shape)}")
    if not batch and ids.size(0) != 1:
        raise InvalidInputError(
            f"{name} holds {ids.size(0)} sequences; this analysis takes one sequence at a time (loop over the batch)"
        )
    return ids


def vocab_size(model: nn.Module) -> int:
    """A labkit model in, the size of its token vocabulary out."""
    cfg = getattr(model, "config", None)
    size = getattr(cfg, "vocab_size", None)
    if not isinstance(size, int):
        raise InvalidInputError(f"{type(model).__name__} has no config.vocab_size; pass a labkit model")
    return size


def n_layers(model: nn.Module) -> int:
    """A labkit Transformer in, its number of blocks out (hook names blocks.0 ... blocks.{n-1})."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise InvalidInputError(
            f"{type(model).__name__} has no Transformer blocks; pass a labkit GPT or Encoder "
            "(GPT.from_hf / Encoder.from_hf load Hugging Face models)"
        )
    return len(blocks)


def token_texts(tokenizer: Any, ids: Sequence[int] | torch.Tensor) -> list[str]:
    """A tokenizer (labkit or transformers, or None) and ids in, the text of each token out ("#17" without one).

    Ids the tokenizer does not know (a model vocabulary padded beyond the tokenizer's) also come out as "#17".
    """
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    if tokenizer is None:
        return [f"#{int(i)}" for i in ids]
    if not hasattr(tokenizer, "decode"):
        raise InvalidInputError(
            f"tokenizer must be a labkit Tokenizer or a transformers tokenizer, got {type(tokenizer).__name__}"
        )
    return [_decode_one(tokenizer, int(i)) for i in ids]


def _decode_one(tokenizer: Any, i: int) -> str:
    # a model's vocabulary may be larger than its tokenizer's (padded to a round size): those ids show as "#n"
    try:
        return tokenizer.decode([i])
    except (LabkitError, IndexError, ValueError, TypeError, OverflowError):
        return f"#{i}"


def token_id(tokenizer: Any, token: Any, size: int, name: str = "target") -> int:
    """A token (an id, or a text that is exactly one token) in, its id out; one clear error when it is not in the vocabulary.

    tokenizer: needed for text. size: the model's vocabulary size (ids must lie in [0, size)).
    """
    if isinstance(token, torch.Tensor) and token.dim() == 0:
        token = token.item()
    if isinstance(token, bool):
        raise InvalidInputError(f"{name} must be a token id or a token's text, got {token!r}")
    if isinstance(token, int):
        if not 0 <= token < size:
            raise InvalidInputError(
                f"{name} id {token} is not in the vocabulary (ids 0..{size - 1}); pick an id below {size}"
            )
        return token
    if isinstance(token, str):
        if tokenizer is None:
            raise InvalidInputError(f"{name} {token!r} is text; pass tokenizer= so it can be turned into an id")
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            pieces = token_texts(tokenizer, ids)
            raise InvalidInputError(
                f"{name} {token!r} is not one token of this vocabulary (it encodes to {len(ids)}: {pieces}); "
                "pick a single token, e.g. with a leading space (' Paris') or its first piece"
            )
        if not 0 <= ids[0] < size:
            raise InvalidInputError(f"{name} {token!r} has id {ids[0]}, outside the model's vocabulary of {size}")
        return int(ids[0])
    raise InvalidInputError(f"{name} must be a token id (int) or a token's text (str), got {type(token).__name__}")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: the model in eval mode (no dropout) inside, its own mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def input_embedding(model: nn.Module) -> nn.Embedding:
    """A labkit model in, the nn.Embedding that turns its input ids into token vectors out (what attribution perturbs)."""
    for path in ("wte", "embed.token", "embed"):
        module: Any = model
        for part in path.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.Embedding):
            return module
    raise InvalidInputError(
        f"{type(model).__name__} has no token embedding labkit knows (wte, embed.token or embed); "
        "attribution works on labkit GPT, Encoder and LSTMLM models"
    )


def decoder_parts(model: nn.Module, what: str) -> tuple[nn.Module, nn.Module]:
    """A labkit GPT in, (final norm, LM head) out: the two steps that turn a residual stream into logits."""
    norm, head = getattr(model, "ln_f", None), getattr(model, "lm_head", None)
    if norm is None or head is None or not hasattr(model, "blocks"):
        raise InvalidInputError(
            f"{what} reads the residual stream through the final norm and the unembedding, which "
            f"{type(model).__name__} does not have; pass a labkit GPT (GPT.from_hf loads GPT-2 and Llama models)"
        )
    return norm, head
