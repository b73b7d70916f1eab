"""summary(): parameters by block, FLOPs per token and memory of a model (or of a config, built on the meta device)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from labkit.checks import check_int
from labkit.errors import InvalidInputError, UnknownNameError

__all__ = ["ModelSummary", "summary"]

_MODEL_FOR_ARCH = {"gpt": "GPT", "encoder": "Encoder", "seq2seq": "Seq2Seq", "lstm": "LSTMLM"}


@dataclass
class ModelSummary:
    """Parameter counts by block, FLOPs per token and memory estimates; print it or call `to_pandas()`."""

    rows: list[tuple[str, int]]  # (group name, parameters), tied weights counted once where they first appear
    total_params: int  # all parameters, tied ones once
    trainable_params: int  # those with requires_grad
    flops_per_token_train: float  # 6N + 12 * n_layer * n_embd * T (PaLM appendix B / nanoGPT estimate)
    flops_per_token_forward: float  # 2N + 4 * n_layer * n_embd * T
    weight_bytes: int  # parameters at `dtype`
    activation_bytes: int  # rough activations kept for backward at batch_size x seq_len (Korthikanti et al. 2022)
    batch_size: int
    seq_len: int
    dtype: torch.dtype = torch.float32
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        width = max([len(n) for n, _ in self.rows] + [10])
        lines = [f"{'block':<{width}}  {'params':>14}", "-" * (width + 16)]
        lines += [f"{name:<{width}}  {count:>14,}" for name, count in self.rows]
        lines += [
            "-" * (width + 16),
            f"{'total':<{width}}  {self.total_params:>14,}",
            f"trainable {self.trainable_params:,}",
            f"FLOPs/token: train {_human(self.flops_per_token_train)}, forward {_human(self.flops_per_token_forward)} (T={self.seq_len})",
            f"weights {_bytes(self.weight_bytes)} at {str(self.dtype).replace('torch.', '')}; "
            f"activations ~{_bytes(self.activation_bytes)} at batch {self.batch_size} x {self.seq_len}",
        ]
        return "\n".join(lines + self.notes)

    def to_pandas(self) -> Any:
        """Return a pandas DataFrame with columns block, params (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas ships with the notebook extras
            raise InvalidInputError("to_pandas needs pandas; run: pip install pandas") from exc
        return pd.DataFrame(self.rows, columns=["block", "params"])


def _human(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _build_on_meta(config: Any) -> nn.Module:
    import labkit.models as models

    arch = getattr(config, "arch", None)
    if arch not in _MODEL_FOR_ARCH:
        raise UnknownNameError(
            f"no model for config arch {arch!r}; pass a model or a config with arch in {sorted(_MODEL_FOR_ARCH)}"
        )
    with torch.device("meta"):  # shapes only: no memory, no init cost, so gpt2-medium is free
        return getattr(models, _MODEL_FOR_ARCH[arch])(config)


def _group(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 2 and parts[1].isdigit():  # blocks.3.attn.q_proj.weight -> blocks.3
        return ".".join(parts[:2])
    return parts[0]


def matmul_parameters(model: nn.Module) -> int:
    """A model in, its distinct parameters minus lookup-only tables (position and untied token embeddings) out.

    This is the N of the "6N FLOPs per token" estimate: an embedding table costs a lookup, not a matrix product,
    unless it is shared with a linear layer (a tied LM head), in which case it counts once.
    """
    shared_with_linear = {id(getattr(m, "weight", None)) for m in model.modules() if not isinstance(m, nn.Embedding)}
    distinct = {id(p): p for p in model.parameters()}
    lookups = {
        id(m.weight): m.weight
        for m in model.modules()
        if isinstance(m, nn.Embedding) and id(m.weight) not in shared_with_linear and id(m.weight) in distinct
    }
    return sum(p.numel() for i, p in distinct.items() if i not in lookups)


def summary(
    model: nn.Module | Any, batch_size: int = 1, seq_len: int | None = None, dtype: torch.dtype = torch.float32
) -> ModelSummary:
    """A model (or a model config, built on the meta device) in, a ModelSummary out.

    batch_size, seq_len: shape for the activation-memory and attention-FLOPs estimates (seq_len default:
    config.block_size). dtype: precision for the memory estimates.
    """
    check_int("batch_size", batch_size)
    check_int("seq_len", seq_len, allow_none=True, fix="None uses config.block_size")
    if not isinstance(model, nn.Module):
        model = _build_on_meta(model)
    config = getattr(model, "config", None)
    block = getattr(config, "block_size", None)
    if (
        seq_len is not None
        and isinstance(block, int)
        and seq_len > block
        and not getattr(config, "rope_extrapolate", False)
    ):
        raise InvalidInputError(
            f"seq_len={seq_len} is longer than the model's block_size={block}, so the model cannot run it; "
            f"use seq_len <= {block} (or None)"
        )
    groups: dict[str, int] = {}
    total = trainable = 0
    for name, p in model.named_parameters():  # deduplicated: tied weights appear once
        groups[_group(name)] = groups.get(_group(name), 0) + p.numel()
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    T = seq_len or getattr(config, "block_size", None) or 1
    n_layer = getattr(config, "n_layer", 0) or 0
    n_embd = getattr(config, "n_embd", 0) or 0
    n_head = getattr(config, "n_head", 0) or 0
    attn_layers = n_layer if n_head else 0
    N = matmul_parameters(model)  # embedding tables are lookups, not matmuls (unless tied to the LM head)
    bytes_per = torch.empty((), dtype=dtype, device="meta").element_size()
    act = 0
    if n_embd and n_layer:
        per_layer = T * batch_size * n_embd * (34 + (5 * n_head * T / n_embd if n_head else 0))  # bytes at 16-bit
        act = int(n_layer * per_layer * bytes_per / 2)
    notes = [] if n_head else ["(no attention layers: FLOPs are 6N / 2N)"]
    return ModelSummary(
        rows=list(groups.items()),
        total_params=total,
        trainable_params=trainable,
        flops_per_token_train=6 * N + 12 * attn_layers * n_embd * T,
        flops_per_token_forward=2 * N + 4 * attn_layers * n_embd * T,
        weight_bytes=total * bytes_per,
        activation_bytes=act,
        batch_size=batch_size,
        seq_len=T,
        dtype=dtype,
        notes=notes,
    )
