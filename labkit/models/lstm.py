"""LSTMLM: the recurrent baseline language model (embedding -> LSTM -> linear) with GPT's interface.

It takes the same batches as GPT (`labels` aligned with `input_ids`, shifted
inside), returns a `ModelOutput`, and carries its recurrent `(h, c)` state in
`past_key_values`, so the trainer and `generate()` treat it like a decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labkit.errors import InvalidInputError
from labkit.models.config_base import ModelConfig, PresetTable
from labkit.models.hooks import HookedModel, HookPoint
from labkit.models.inputs import check_labels, check_token_ids
from labkit.models.outputs import ModelOutput

__all__ = ["LSTMConfig", "LSTMLM"]


@dataclass
class LSTMConfig(ModelConfig):
    """Shape of an LSTM language model; `LSTMConfig.preset(name, **overrides)` gives named starting points."""

    arch: str = "lstm"  # checkpoints use it to refuse loading weights into the wrong model family
    vocab_size: int = 65  # tokenizer size; 65 fits a character-level Shakespeare vocabulary
    n_embd: int = 128  # embedding width; must equal hidden_size when tie_weights is on
    hidden_size: int = 256  # LSTM state width: the model's memory per layer
    n_layer: int = 2  # stacked LSTM layers; 2 is the classic Zaremba et al. setting
    dropout: float = 0.2  # on embeddings, between LSTM layers and before the output layer
    tie_weights: bool = False  # share embedding and output matrices (Press & Wolf 2017); saves vocab*width params
    block_size: int = 256  # training/generation context length; the LSTM itself has no position limit

    def __post_init__(self) -> None:
        self._check_arch("lstm")
        self._check_sizes("vocab_size", "n_embd", "hidden_size", "n_layer", "block_size")
        self._check_fractions("dropout")
        if self.tie_weights and self.n_embd != self.hidden_size:
            raise InvalidInputError(
                f"tie_weights needs n_embd == hidden_size, got {self.n_embd} and {self.hidden_size}; "
                "set them equal or tie_weights=False"
            )


_LSTM_PRESETS: PresetTable = {
    "lstm-char": (
        "character-level, 2x256, trains on a CPU in minutes",
        dict(n_embd=128, hidden_size=256, n_layer=2, dropout=0.2),
    ),
    "lstm-tiny": (
        "1x64 for tests and quick demos",
        dict(n_embd=32, hidden_size=64, n_layer=1, dropout=0.0, block_size=64),
    ),
    "zaremba-small": (
        "Zaremba et al. 2014 small word model: 2x200, no dropout",
        dict(vocab_size=10000, n_embd=200, hidden_size=200, n_layer=2, dropout=0.0, block_size=20),
    ),
    "zaremba-medium": (
        "Zaremba et al. 2014 medium word model: 2x650, dropout 0.5, tied",
        dict(vocab_size=10000, n_embd=650, hidden_size=650, n_layer=2, dropout=0.5, tie_weights=True, block_size=35),
    ),
}
LSTMConfig.preset_table = _LSTM_PRESETS


class LSTMLM(HookedModel):
    """Embedding -> dropout -> multi-layer LSTM -> dropout -> linear; input ids in, next-token logits out."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.hook_embed = HookPoint()  # [batch, pos, n_embd]
        self.drop = nn.Dropout(config.dropout)
        # nn.LSTM applies its own dropout only between layers, never after the last one.
        self.lstm = nn.LSTM(
            config.n_embd,
            config.hidden_size,
            config.n_layer,
            batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.hook_lstm_out = HookPoint()  # [batch, pos, hidden_size]
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self._init_weights()
        if config.tie_weights:
            self.lm_head.weight = self.embed.weight
        self.setup_hooks()

    def _init_weights(self) -> None:
        # Small uniform init as in Zaremba et al.; the output bias starts at zero so early losses are ~log(vocab).
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.lm_head.weight, -0.1, 0.1)
        nn.init.zeros_(self.lm_head.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        past_key_values: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """Token ids [batch, seq] in, ModelOutput with logits [batch, seq, vocab] (and loss, (h, c) state) out.

        input_ids: token ids. labels: aligned with input_ids (shifted here), -100 ignored.
        past_key_values: the (h, c) state returned by a previous call with use_cache=True.
        use_cache: return the final (h, c) state in `past_key_values`.
        attention_mask: [batch, seq] or [batch, past + seq]; checked, not applied: right padding only (an LSTM
            cannot skip left padding, and pads after the text never influence the real tokens).
        position_ids: accepted and ignored: an LSTM has no positions.
        output_attentions: must be False; an LSTM has no attention.
        """
        self._validate(input_ids, labels, past_key_values, attention_mask, output_attentions)
        x = self.hook_embed(self.embed(input_ids))
        out, state = self.lstm(self.drop(x), past_key_values)
        out = self.hook_lstm_out(out)
        logits = self.lm_head(self.drop(out))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return ModelOutput(logits=logits, loss=loss, past_key_values=state if use_cache else None, hidden_states=out)

    def _validate(self, input_ids, labels, state, attention_mask, output_attentions) -> None:
        """Raise one clear error for malformed inputs before running the LSTM."""
        if output_attentions:
            raise InvalidInputError("LSTMLM has no attention; call it with output_attentions=False")
        if (
            not isinstance(input_ids, torch.Tensor)
            or input_ids.dim() != 2
            or input_ids.dtype not in (torch.long, torch.int)
        ):
            raise InvalidInputError(
                f"input_ids must be an integer tensor [batch, seq], got {getattr(input_ids, 'shape', type(input_ids).__name__)}; "
                "add a batch dimension with ids.unsqueeze(0)"
            )
        check_token_ids(input_ids, self.config.vocab_size, "input_ids")
        if labels is not None and labels.shape != input_ids.shape:
            raise InvalidInputError(
                f"labels shape {tuple(labels.shape)} must equal input_ids shape {tuple(input_ids.shape)}"
            )
        if labels is not None:
            check_labels(labels, self.config.vocab_size)
        if attention_mask is not None:
            # GPT-style callers pass [batch, past + seq] while decoding; any width covering the new tokens is fine.
            if (
                attention_mask.dim() != 2
                or attention_mask.size(0) != input_ids.size(0)
                or attention_mask.size(1) < input_ids.size(1)
            ):
                raise InvalidInputError(
                    f"attention_mask shape {tuple(attention_mask.shape)} must be [batch, seq] (or [batch, past + seq]) "
                    f"for input_ids of shape {tuple(input_ids.shape)}"
                )
            mask = attention_mask.bool()
            # A real token after a pad means left (or inner) padding, which would feed pads into the state.
            if (mask[:, 1:] & ~mask[:, :-1]).any():
                raise InvalidInputError("LSTMLM supports right padding only (pads after the text); pad on the right")
        if state is not None:
            want = (self.config.n_layer, input_ids.size(0), self.config.hidden_size)
            if not isinstance(state, (tuple, list)) or len(state) != 2 or any(tuple(s.shape) != want for s in state):
                raise InvalidInputError(
                    f"past_key_values must be the (h, c) pair of shape {want} returned with use_cache=True"
                )
