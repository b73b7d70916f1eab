"""Seq2Seq: the encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017).

Ladder: token embedding * sqrt(d) + sinusoidal positions -> encoder blocks
(bidirectional self-attention) and decoder blocks (causal self-attention,
cross-attention over the encoder output, MLP) -> output layer tied to the
target embedding. `encode()` and `decode_step()` let greedy and beam search
reuse the encoder output and the decoder's KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models.config_base import ModelConfig, PresetTable
from labkit.models.hooks import HookedModel, HookPoint
from labkit.models.inputs import check_labels, check_token_ids
from labkit.models.kv_cache import KVCache
from labkit.models.layers import Block, SinusoidalPositions
from labkit.models.outputs import ModelOutput

__all__ = ["Seq2SeqConfig", "Seq2Seq", "Seq2SeqCache"]


@dataclass
class Seq2SeqConfig(ModelConfig):
    """Shape of an encoder-decoder Transformer; `Seq2SeqConfig.preset(name, **overrides)` gives named starting points."""

    arch: str = "seq2seq"  # checkpoints use it to refuse loading weights into the wrong model family
    src_vocab_size: int = 1000  # source tokenizer size
    tgt_vocab_size: int = 1000  # target tokenizer size; equal to src with a shared (joint BPE) vocabulary
    share_embeddings: bool = False  # one embedding matrix for source and target (paper: shared BPE vocabulary)
    tie_output: bool = True  # output layer reuses the target embedding matrix (paper, section 3.4)
    block_size: int = 256  # longest source or target sequence accepted
    n_layer: int = 2  # encoder blocks (paper: 6)
    n_decoder_layer: int = 2  # decoder blocks (paper: 6)
    n_head: int = 4  # attention heads; n_embd must divide by it (paper: 8)
    n_embd: int = 64  # model width d_model (paper: 512)
    n_inner: int = 256  # feed-forward width d_ff (paper: 2048)
    dropout: float = 0.1  # residual, embedding and attention dropout (paper: 0.1)
    norm: str = "post"  # "post" as in the paper; "pre" trains more stably without warm-up
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon
    label_smoothing: float = 0.0  # paper trains with 0.1; 0 keeps the loss a plain cross-entropy
    pad_token_id: int = 0  # padding id in both vocabularies
    decoder_start_token_id: int = 1  # first decoder input when shifting labels right (usually BOS)

    def __post_init__(self) -> None:
        self._check_arch("seq2seq")
        self._check_sizes(
            "src_vocab_size",
            "tgt_vocab_size",
            "block_size",
            "n_layer",
            "n_decoder_layer",
            "n_head",
            "n_embd",
            "n_inner",
        )
        self._check_heads()
        if self.norm not in ("post", "pre"):
            raise UnknownNameError(f"unknown norm placement {self.norm!r}; choose 'post' (paper) or 'pre'")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise InvalidInputError(
                f"share_embeddings needs src_vocab_size == tgt_vocab_size, got {self.src_vocab_size} and {self.tgt_vocab_size}; "
                "train one joint tokenizer or set share_embeddings=False"
            )
        for name in ("pad_token_id", "decoder_start_token_id"):
            if not 0 <= getattr(self, name) < self.tgt_vocab_size:
                raise InvalidInputError(
                    f"{name}={getattr(self, name)} is outside the target vocabulary [0, {self.tgt_vocab_size})"
                )
        self._check_fractions("dropout", "label_smoothing")


_SEQ2SEQ_PRESETS: PresetTable = {
    "transformer-tiny": ("2+2 layers, 64 wide, 4 heads: trains on a CPU in minutes", dict()),
    "transformer-small": (
        "3+3 layers, 256 wide, 4 heads, 1024 FFN",
        dict(n_layer=3, n_decoder_layer=3, n_embd=256, n_inner=1024, src_vocab_size=8000, tgt_vocab_size=8000),
    ),
    "transformer-base": (
        "the paper's base model: 6+6 layers, 512 wide, 8 heads, 2048 FFN, shared 37k vocabulary",
        dict(
            n_layer=6,
            n_decoder_layer=6,
            n_embd=512,
            n_head=8,
            n_inner=2048,
            src_vocab_size=37000,
            tgt_vocab_size=37000,
            share_embeddings=True,
            block_size=512,
            label_smoothing=0.1,
        ),
    ),
}
Seq2SeqConfig.preset_table = _SEQ2SEQ_PRESETS


class Seq2SeqCache:
    """Decoder state for incremental decoding: a growing self-attention KVCache and a cross-attention KVCache
    filled once from the encoder output and then only read."""

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.self_attn = KVCache(n_layer, max_len)
        self.cross_attn = KVCache(n_layer, max_len)

    @property
    def seq_len(self) -> int:
        """Number of target positions already decoded."""
        return self.self_attn.seq_len

    def get_seq_length(self, layer: int = 0) -> int:
        """Layer index in, decoded target positions out (Hugging Face's name)."""
        return self.self_attn.get_seq_length(layer)

    def reorder(self, beam_indices: torch.Tensor) -> None:
        """Batch indices [new_batch] in; both caches are gathered in that order (beam search)."""
        self.self_attn.reorder(beam_indices)
        self.cross_attn.reorder(beam_indices)

    def __repr__(self) -> str:
        return f"Seq2SeqCache(n_layer={self.self_attn.n_layer}, seq_len={self.seq_len})"


class _Stack(nn.Module):
    """A list of blocks plus the final LayerNorm that pre-LN stacks need (Identity for post-LN)."""

    def __init__(self, config: Seq2SeqConfig, n_layer: int, decoder: bool) -> None:
        super().__init__()
        self.hook_embed = HookPoint()  # [batch, pos, n_embd] scaled token embedding + position, after dropout
        self.blocks = nn.ModuleList(
            Block(
                config.n_embd,
                config.n_head,
                n_inner=config.n_inner,
                mlp="relu",
                norm_eps=config.layer_norm_eps,
                pre_norm=config.norm == "pre",
                causal=decoder,
                dropout=config.dropout,
                cross_attention=decoder,
                layer_idx=i,
            )
            for i in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps) if config.norm == "pre" else nn.Identity()


class Seq2Seq(HookedModel):
    """Encoder-decoder Transformer: source ids and target ids in, ModelOutput with next-token logits out."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.src_embed = nn.Embedding(config.src_vocab_size, config.n_embd, padding_idx=config.pad_token_id)
        self.tgt_embed = (
            self.src_embed
            if config.share_embeddings
            else nn.Embedding(config.tgt_vocab_size, config.n_embd, padding_idx=config.pad_token_id)
        )
        self.positions = SinusoidalPositions(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = _Stack(config, config.n_layer, decoder=False)
        self.decoder = _Stack(config, config.n_decoder_layer, decoder=True)
        self.lm_head = nn.Linear(config.n_embd, config.tgt_vocab_size, bias=False)
        self._init_weights()
        if config.tie_output:
            self.lm_head.weight = self.tgt_embed.weight
        self.setup_hooks()

    def _init_weights(self) -> None:
        # Xavier for projections (as torch.nn.Transformer); embeddings N(0, d^-1/2) so that x * sqrt(d) has unit scale.
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name:
                nn.init.xavier_uniform_(p)
        for emb in {id(self.src_embed): self.src_embed, id(self.tgt_embed): self.tgt_embed}.values():
            nn.init.normal_(emb.weight, 0.0, self.config.n_embd**-0.5)
            with torch.no_grad():
                emb.weight[self.config.pad_token_id].zero_()

    def _embed(self, ids: torch.Tensor, table: nn.Embedding, start: int, hook: HookPoint) -> torch.Tensor:
        """Ids [batch, seq] from position `start` in, scaled embedding + sinusoidal position [batch, seq, n_embd] out."""
        positions = torch.arange(start, start + ids.size(1), device=ids.device)
        return hook(self.drop(table(ids) * self.config.n_embd**0.5 + self.positions(positions)))

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Source ids [batch, src] in, encoder output [batch, src, n_embd] out (plus attention patterns on request).

        input_ids: source token ids. attention_mask: 1 = real, 0 = padding. output_attentions: also return patterns.
        """
        self._check_ids(input_ids, self.config.src_vocab_size, "input_ids", attention_mask, "attention_mask")
        x = self._embed(input_ids, self.src_embed, 0, self.encoder.hook_embed)
        patterns = []
        for block in self.encoder.blocks:
            x, pattern, _ = block(x, attention_mask=attention_mask, output_attentions=output_attentions)
            patterns.append(pattern)
        x = self.encoder.ln_f(x)
        return (x, tuple(patterns)) if output_attentions else x

    def decode_step(
        self,
        decoder_input_ids: torch.Tensor,
        encoder_outputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Seq2SeqCache | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """New target ids [batch, new] and the encoder output in, ModelOutput with logits [batch, new, tgt_vocab] and
        the updated Seq2SeqCache out (the cache is created on the first step).

        encoder_outputs: from `encode`. attention_mask: source padding mask. past_key_values: the previous step's cache.
        decoder_attention_mask: target padding [batch, cached + new]. output_attentions: return decoder patterns.
        """
        return self(
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            past_key_values=past_key_values,
            use_cache=True,
            decoder_attention_mask=decoder_attention_mask,
            output_attentions=output_attentions,
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        encoder_outputs: torch.Tensor | ModelOutput | None = None,
        past_key_values: Seq2SeqCache | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """Source ids [batch, src] and target ids [batch, tgt] in, ModelOutput with logits [batch, tgt, tgt_vocab] out.

        input_ids / attention_mask: source and its padding (input_ids may be omitted when encoder_outputs is given).
        decoder_input_ids: target inputs; when None they are `labels` shifted right after decoder_start_token_id.
        decoder_attention_mask: target padding. labels: [batch, tgt] targets, -100 ignored.
        encoder_outputs: a precomputed `encode()` result. past_key_values / use_cache: incremental decoding state.
        output_attentions: return decoder self-, cross- and encoder attention patterns.
        """
        if labels is not None:
            check_labels(labels, self.config.tgt_vocab_size)
        if decoder_input_ids is None:
            if labels is None:
                raise InvalidInputError(
                    "Seq2Seq needs decoder_input_ids or labels (labels are shifted right into decoder inputs)"
                )
            decoder_input_ids = self.shift_right(labels)
        encoder_attentions = None
        if encoder_outputs is None:
            if input_ids is None:
                raise InvalidInputError("Seq2Seq needs input_ids or encoder_outputs; pass the source ids")
            encoded = self.encode(input_ids, attention_mask, output_attentions)
            memory, encoder_attentions = encoded if output_attentions else (encoded, None)
        else:
            memory = (
                encoder_outputs.encoder_last_hidden_state
                if isinstance(encoder_outputs, ModelOutput)
                else encoder_outputs
            )
        if use_cache and past_key_values is None:
            past_key_values = Seq2SeqCache(self.config.n_decoder_layer, self.config.block_size)
        start = past_key_values.seq_len if past_key_values is not None else 0
        self._check_ids(decoder_input_ids, self.config.tgt_vocab_size, "decoder_input_ids", None, "", start)
        if labels is not None and labels.shape != decoder_input_ids.shape:
            raise InvalidInputError(
                f"labels shape {tuple(labels.shape)} must equal decoder_input_ids shape {tuple(decoder_input_ids.shape)}"
            )
        if decoder_attention_mask is not None and decoder_attention_mask.shape != (
            decoder_input_ids.size(0),
            start + decoder_input_ids.size(1),
        ):
            raise InvalidInputError(
                f"decoder_attention_mask shape {tuple(decoder_attention_mask.shape)} must be [batch, cached + new] = "
                f"{(decoder_input_ids.size(0), start + decoder_input_ids.size(1))}"
            )
        x = self._embed(decoder_input_ids, self.tgt_embed, start, self.decoder.hook_embed)
        self_patterns, cross_patterns = [], []
        for block in self.decoder.blocks:
            x, sp, cp = block(
                x,
                attention_mask=decoder_attention_mask,
                encoder_hidden_states=memory,
                encoder_attention_mask=attention_mask,
                past_key_values=past_key_values.self_attn if past_key_values is not None else None,
                cross_past_key_values=past_key_values.cross_attn if past_key_values is not None else None,
                output_attentions=output_attentions,
            )
            self_patterns.append(sp)
            cross_patterns.append(cp)
        x = self.decoder.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                labels.reshape(-1),
                ignore_index=-100,
                label_smoothing=self.config.label_smoothing,
            )
        return ModelOutput(
            logits=logits,
            loss=loss,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=x,
            attentions=tuple(self_patterns) if output_attentions else None,
            encoder_last_hidden_state=memory,
            encoder_attentions=encoder_attentions,
            cross_attentions=tuple(cross_patterns) if output_attentions else None,
        )

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels [batch, tgt] in, decoder inputs out: decoder_start_token_id, then labels[:, :-1] with -100 -> pad."""
        start = torch.full_like(labels[:, :1], self.config.decoder_start_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def _check_ids(self, ids, vocab_size: int, name: str, mask, mask_name: str, start: int = 0) -> None:
        """Raise one clear error for a malformed id tensor (shape, length, range) or a mismatched mask."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.is_floating_point():
            raise InvalidInputError(
                f"{name} must be an integer tensor [batch, seq], got {getattr(ids, 'shape', type(ids).__name__)}; "
                "add a batch dimension with ids.unsqueeze(0)"
            )
        if start + ids.size(1) > self.config.block_size:
            raise InvalidInputError(
                f"{name} reaches {start + ids.size(1)} positions, more than block_size={self.config.block_size}; "
                "truncate the sequence or build the model with a larger block_size"
            )
        check_token_ids(ids, vocab_size, name)
        if mask is not None and mask.shape != ids.shape:
            raise InvalidInputError(f"{mask_name} shape {tuple(mask.shape)} must equal {name} shape {tuple(ids.shape)}")
