"""ModelOutput: what every labkit model's forward returns (Hugging Face field names)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

__all__ = ["ModelOutput"]


@dataclass
class ModelOutput:
    """Result of a forward pass; fields a model does not produce stay None.

    Also readable like a dict (`out["logits"]`), as Hugging Face outputs are.
    """

    logits: torch.Tensor | None = None  # [batch, seq, vocab] for LMs, [batch, labels] for classifiers
    loss: torch.Tensor | None = None  # scalar mean loss over non -100 labels, when labels were given
    past_key_values: Any = None  # KVCache (Transformers) or recurrent state (LSTM), with use_cache=True
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer [batch, head, q, k], with output_attentions=True
    hidden_states: torch.Tensor | None = None  # last hidden state [batch, seq, n_embd] (before the head)
    encoder_last_hidden_state: torch.Tensor | None = None  # Seq2Seq: encoder output the decoder attends to
    encoder_attentions: tuple[torch.Tensor, ...] | None = None  # Seq2Seq: encoder self-attention patterns
    cross_attentions: tuple[torch.Tensor, ...] | None = None  # Seq2Seq: decoder -> encoder patterns
    seq_relationship_logits: torch.Tensor | None = None  # Encoder head="pretraining": NSP logits [batch, 2]

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(f"ModelOutput has no field {key!r}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        """Return the names of the fields that are not None."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]
