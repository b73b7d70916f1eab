"""Encoder: a BERT-style bidirectional Transformer with masked-LM, pretraining or classification heads and BERT/MiniLM interop.

The ladder is `EncoderEmbeddings -> Block (post-LN, bidirectional) x n_layer ->
head`, with heads `"mlm"` (BERT's transform + tied decoder + bias),
`"pretraining"` (the MLM head plus next-sentence prediction on the pooled [CLS]:
BERT's two pretraining objectives, loss = MLM + NSP), `"classification"`
(pooler -> dropout -> linear) or `None` (hidden states).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models.config_base import ModelConfig, PresetTable
from labkit.models.hooks import HookedModel, HookPoint
from labkit.models.inputs import check_labels, check_token_ids, ids_are_checkable
from labkit.models.layers import Block
from labkit.models.outputs import ModelOutput

__all__ = ["EncoderConfig", "Encoder", "encode_sentences"]

HEADS = ("mlm", "pretraining", "classification", None)


@dataclass
class EncoderConfig(ModelConfig):
    """Shape of a BERT-style encoder; `EncoderConfig.preset(name, **overrides)` gives named starting points."""

    arch: str = "encoder"  # checkpoints use it to refuse loading weights into the wrong model family
    vocab_size: int = 30522  # BERT's uncased WordPiece vocabulary; set to your tokenizer's vocab_size
    block_size: int = 512  # learned position embeddings: the longest input the model accepts
    type_vocab_size: int = 2  # segment ids (sentence A / B) for pair tasks
    n_layer: int = 2  # number of post-LN Transformer blocks
    n_head: int = 2  # attention heads per block; n_embd must divide by it
    n_embd: int = 128  # hidden width
    n_inner: int = 512  # feed-forward width; BERT uses 4 * n_embd
    dropout: float = 0.1  # on embeddings and residual branches (BERT's hidden_dropout_prob)
    attn_dropout: float = 0.1  # on attention probabilities (BERT's attention_probs_dropout_prob)
    classifier_dropout: float = 0.1  # between pooler and classifier
    layer_norm_eps: float = 1e-12  # BERT's value; matters for weight parity with pretrained checkpoints
    pad_token_id: int = 0  # [PAD] in BERT's vocabulary
    head: str | None = "mlm"  # "mlm", "pretraining" (MLM + next-sentence prediction), "classification", None (features)
    num_labels: int = 2  # classes of the classification head
    pooler: bool = True  # dense+tanh over [CLS]; BERT pretraining has it, HF's BertForMaskedLM does not
    initializer_range: float = 0.02  # std of the normal init, as in BERT

    def __post_init__(self) -> None:
        self._check_arch("encoder")
        self._check_sizes(
            "vocab_size", "block_size", "type_vocab_size", "n_layer", "n_head", "n_embd", "n_inner", "num_labels"
        )
        self._check_heads()
        if self.head not in HEADS:
            raise UnknownNameError(
                f"unknown Encoder head {self.head!r}; choose 'mlm', 'pretraining', 'classification' or None"
            )
        if self.head in ("classification", "pretraining") and not self.pooler:
            raise InvalidInputError(f"head={self.head!r} reads the pooler; set pooler=True")
        self._check_fractions("dropout", "attn_dropout", "classifier_dropout")


_ENCODER_PRESETS: PresetTable = {
    "encoder-tiny": (
        "2 layers x 64 wide, 1k vocab: for tests and instant demos",
        dict(vocab_size=1000, block_size=128, n_layer=2, n_head=2, n_embd=64, n_inner=256),
    ),
    "bert-tiny": (
        "BERT L-2 H-128 A-2 (Turc et al. 2019): trains on a CPU",
        dict(n_layer=2, n_head=2, n_embd=128, n_inner=512),
    ),
    "bert-mini": ("BERT L-4 H-256 A-4", dict(n_layer=4, n_head=4, n_embd=256, n_inner=1024)),
    "bert-small": ("BERT L-4 H-512 A-8", dict(n_layer=4, n_head=8, n_embd=512, n_inner=2048)),
    "minilm-l6": (
        "all-MiniLM-L6-v2 shapes: 6 layers, 384 wide, 12 heads",
        dict(n_layer=6, n_head=12, n_embd=384, n_inner=1536, head=None),
    ),
    "bert-base": (
        "BERT-base: 12 layers, 768 wide, 12 heads (110M)",
        dict(n_layer=12, n_head=12, n_embd=768, n_inner=3072),
    ),
}
EncoderConfig.preset_table = _ENCODER_PRESETS


class EncoderEmbeddings(nn.Module):
    """Token + learned position + segment embeddings, then LayerNorm and dropout (BERT's input layer)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.n_embd, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.block_size, config.n_embd)
        self.token_type = nn.Embedding(config.type_vocab_size, config.n_embd)
        self.norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """Ids [batch, seq] and segment ids in, embeddings [batch, seq, n_embd] out."""
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self.token(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.drop(self.norm(x))


class MLMHead(nn.Module):
    """BERT's masked-LM head: dense -> GELU -> LayerNorm -> decoder tied to the token embeddings, plus a bias."""

    def __init__(self, config: EncoderConfig, token_embedding: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd)
        self.norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.token_embedding = [token_embedding]  # a list so the tied matrix is not registered twice
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [batch, seq, n_embd] in, vocabulary logits [batch, seq, vocab] out."""
        x = self.norm(F.gelu(self.dense(hidden)))
        return F.linear(x, self.token_embedding[0].weight, self.bias)


class Pooler(nn.Module):
    """dense + tanh over the first ([CLS]) position: one vector per text."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [batch, seq, n_embd] in, pooled [batch, n_embd] out."""
        return torch.tanh(self.dense(hidden[:, 0]))


class Encoder(HookedModel):
    """BERT-style encoder: ids (+ mask, segments) in, ModelOutput with head logits and last hidden state out."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = EncoderEmbeddings(config)
        self.hook_embed = HookPoint()  # [batch, pos, n_embd] after embedding LayerNorm
        # Post-LN, bidirectional blocks with exact-erf GELU: BERT's layer, so pretrained weights drop in unchanged.
        self.blocks = nn.ModuleList(
            Block(
                config.n_embd,
                config.n_head,
                n_inner=config.n_inner,
                mlp="gelu",
                norm_eps=config.layer_norm_eps,
                pre_norm=False,
                causal=False,
                dropout=config.dropout,
                attn_dropout=config.attn_dropout,
                layer_idx=i,
            )
            for i in range(config.n_layer)
        )
        self.pooler = Pooler(config) if config.pooler else None
        if config.head in ("mlm", "pretraining"):
            self.mlm_head = MLMHead(config, self.embed.token)
        if config.head == "pretraining":
            self.nsp_head = nn.Linear(config.n_embd, 2)  # is B the sentence after A? (1 = random, as in BERT)
        elif config.head == "classification":
            self.classifier_drop = nn.Dropout(config.classifier_dropout)
            self.classifier = nn.Linear(config.n_embd, config.num_labels)
        self.apply(self._init_weights)
        self.setup_hooks()

    def _init_weights(self, module: nn.Module) -> None:
        # BERT's init: N(0, 0.02) weights, zero biases, unit LayerNorm; the padding row stays zero.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        next_sentence_label: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Ids [batch, seq] in, ModelOutput out: logits ([batch, seq, vocab] for mlm and pretraining, [batch, labels]
        for classification, None without a head), loss when labels are given, last hidden state, attentions on
        request; the pretraining head adds `seq_relationship_logits` [batch, 2].

        input_ids: token ids. attention_mask: 1 = real token, 0 = padding. token_type_ids: segment ids (default 0).
        labels: mlm/pretraining: [batch, seq] with -100 on unmasked positions; classification: [batch] class ids.
        output_attentions: also return per-layer attention patterns [batch, head, q, k].
        next_sentence_label: pretraining only, [batch]: 0 = segment B follows A in the text, 1 = B is random.
            The loss is the sum of the MLM and NSP cross-entropies that have labels (BERT's pretraining loss).
        """
        token_type_ids = self._validate(input_ids, attention_mask, token_type_ids, labels, next_sentence_label)
        x = self.hook_embed(self.embed(input_ids, token_type_ids))
        key_padding = None if attention_mask is None else attention_mask.bool()
        attentions = []
        for block in self.blocks:
            x, pattern, _ = block(x, attention_mask=key_padding, output_attentions=output_attentions)
            if output_attentions:
                attentions.append(pattern)
        logits, loss = self._head(x, labels)
        nsp_logits = None
        if self.config.head == "pretraining":
            nsp_logits = self.nsp_head(self.pooler(x))
            if next_sentence_label is not None:
                nsp_loss = F.cross_entropy(nsp_logits, next_sentence_label.reshape(-1))
                loss = nsp_loss if loss is None else loss + nsp_loss
        return ModelOutput(
            logits=logits,
            loss=loss,
            hidden_states=x,
            attentions=tuple(attentions) if output_attentions else None,
            seq_relationship_logits=nsp_logits,
        )

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """Last hidden state [batch, seq, n_embd] in, BERT's pooled [CLS] vector [batch, n_embd] out."""
        if self.pooler is None:
            raise InvalidInputError("this Encoder has no pooler; build it with pooler=True")
        return self.pooler(hidden)

    def _head(
        self, hidden: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Apply the configured head; return (logits, loss)."""
        head = self.config.head
        if head is None:
            if labels is not None:
                raise InvalidInputError(
                    "labels need a head; build the Encoder with head='mlm' or head='classification'"
                )
            return None, None
        if head in ("mlm", "pretraining"):
            logits = self.mlm_head(hidden)
        else:
            logits = self.classifier(self.classifier_drop(self.pooler(hidden)))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)
        return logits, loss

    def _validate(self, input_ids, attention_mask, token_type_ids, labels, next_sentence_label) -> torch.Tensor:
        """Raise one clear error for malformed inputs; return token_type_ids (zeros when absent)."""
        c = self.config
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise InvalidInputError(
                f"input_ids must be an integer tensor [batch, seq], got {getattr(input_ids, 'shape', type(input_ids).__name__)}; "
                "add a batch dimension with ids.unsqueeze(0)"
            )
        if input_ids.size(1) > c.block_size:
            raise InvalidInputError(
                f"sequence of {input_ids.size(1)} tokens is longer than block_size={c.block_size}; truncate the input"
            )
        check_token_ids(input_ids, c.vocab_size, "input_ids")
        for name, value in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if value is not None and value.shape != input_ids.shape:
                raise InvalidInputError(
                    f"{name} shape {tuple(value.shape)} must equal input_ids shape {tuple(input_ids.shape)}"
                )
        if token_type_ids is None:  # no early return: the label checks below apply either way
            token_type_ids = torch.zeros_like(input_ids)
        elif (
            token_type_ids.numel()
            and ids_are_checkable(token_type_ids)
            and (token_type_ids.min() < 0 or token_type_ids.max() >= c.type_vocab_size)
        ):
            raise InvalidInputError(
                f"token_type_ids must lie in [0, {c.type_vocab_size}), got {int(token_type_ids.max())}; "
                "use 0 for the first segment and 1 for the second"
            )
        if labels is not None and c.head == "classification" and labels.shape != input_ids.shape[:1]:
            raise InvalidInputError(
                f"classification labels must have shape [batch]={tuple(input_ids.shape[:1])}, got {tuple(labels.shape)}"
            )
        if labels is not None and c.head in ("mlm", "pretraining") and labels.shape != input_ids.shape:
            raise InvalidInputError(
                f"mlm labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}"
            )
        if labels is not None and c.head in ("mlm", "pretraining"):
            check_labels(labels, c.vocab_size, "mlm labels")
        if labels is not None and c.head == "classification":
            check_labels(labels, c.num_labels, "classification labels")
        if next_sentence_label is not None:
            if c.head != "pretraining":
                raise InvalidInputError(
                    f"next_sentence_label needs the NSP head; build the Encoder with head='pretraining' (it has {c.head!r})"
                )
            if tuple(next_sentence_label.shape) != tuple(input_ids.shape[:1]):
                raise InvalidInputError(
                    f"next_sentence_label must have shape [batch]={tuple(input_ids.shape[:1])}, "
                    f"got {tuple(next_sentence_label.shape)}; one 0 (is next) or 1 (random) per pair"
                )
        return token_type_ids

    @classmethod
    def from_hf(cls, model_or_path: Any, *, copy: bool = True) -> Encoder:
        """A transformers BertModel / BertForMaskedLM / BertForPreTraining / BertForSequenceClassification, its folder
        or "hf:NAME" in,
        an Encoder with the same weights out.

        model_or_path: a transformers model object, a local folder with config.json and model.safetensors (such as
        the packaged MiniLM's), or "hf:NAME". Folders and names are converted once and cached
        (`labkit.models.load_pretrained`, which also returns the tokenizer). copy: for a model object, give the
        Encoder its own memory (default); False shares the float32 tensors with the transformers model.
        """
        from labkit.models import hf_bert
        from labkit.models.materialize import build_model

        if isinstance(model_or_path, (str, os.PathLike)):
            from labkit.models.pretrained import load_expecting

            return load_expecting(model_or_path, "encoder", "Encoder.from_hf")[0]
        hf_config, state = hf_bert.read_hf_checkpoint(model_or_path)
        config = EncoderConfig(**hf_bert.config_from_hf(hf_config, state))
        renamed = hf_bert.state_from_hf(state, config.n_layer)
        if not isinstance(copy, bool):
            raise InvalidInputError(f"copy must be True or False, got {copy!r}")
        state = {k: v.detach().float() for k, v in renamed.items()}
        if copy:  # one copy per tensor (none made by .float() on float32), so the live model keeps its own weights
            state = {
                k: v.clone() if v.untyped_storage().data_ptr() == renamed[k].untyped_storage().data_ptr() else v
                for k, v in state.items()
            }
        return build_model(cls, config, state, where="from_hf")

    def to_hf(self) -> Any:
        """Return the equivalent transformers model (BertModel, BertForMaskedLM, BertForPreTraining or
        BertForSequenceClassification)."""
        from labkit.models import hf_bert

        return hf_bert.to_hf(self)

    @torch.no_grad()
    def encode_sentences(
        self, texts: Sequence[str], tokenizer: Any, pooling: str = "mean", normalize: bool = True, batch_size: int = 32
    ) -> torch.Tensor:
        """Texts in, one embedding per text [len(texts), n_embd] out (sentence-transformers' mean pooling by default).

        texts: sentences. tokenizer: a transformers tokenizer, a `tokenizers.Tokenizer` or a labkit Tokenizer.
        pooling: "mean" (average over real tokens), "cls" (first token) or "max". normalize: L2-normalise each row.
        batch_size: texts per forward pass.
        """
        return encode_sentences(self, texts, tokenizer, pooling=pooling, normalize=normalize, batch_size=batch_size)


POOLINGS = ("mean", "cls", "max")


def encode_sentences(
    model: Encoder,
    texts: Sequence[str],
    tokenizer: Any,
    pooling: str = "mean",
    normalize: bool = True,
    batch_size: int = 32,
) -> torch.Tensor:
    """An Encoder, texts and their tokenizer in, sentence embeddings [len(texts), n_embd] out; see Encoder.encode_sentences."""
    if pooling not in POOLINGS:
        raise UnknownNameError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    if isinstance(texts, str):
        raise InvalidInputError("texts must be a list of strings, got one string; wrap it as [text]")
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(texts), batch_size):
        ids, mask = _tokenize(list(texts[start : start + batch_size]), tokenizer, model.config.block_size)
        ids, mask = ids.to(device), mask.to(device)
        hidden = model(ids, attention_mask=mask).hidden_states
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        if pooling == "mean":
            # sentence-transformers: sum over real tokens divided by their count (clamped to avoid 0/0)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        elif pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = hidden.masked_fill(weights == 0, float("-inf")).max(1).values
        rows.append(F.normalize(pooled, dim=-1) if normalize else pooled)
    return torch.cat(rows) if rows else torch.empty(0, model.config.n_embd)


def _tokenize(texts: list[str], tokenizer: Any, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts in, right-padded (input_ids, attention_mask) long tensors out, for any of the supported tokenizer kinds."""
    from labkit.data.tokenizer import Tokenizer as LabkitTokenizer

    if isinstance(tokenizer, LabkitTokenizer):  # its encode_batch adds no [CLS]/[SEP] unless asked
        seqs = tokenizer.encode_batch(texts, add_special_tokens=True)
        masks = [[1] * len(s) for s in seqs]
    elif hasattr(tokenizer, "encode_batch"):  # a tokenizers.Tokenizer (its post-processor adds the specials)
        encoded = tokenizer.encode_batch(texts)
        seqs = [list(getattr(e, "ids", e)) for e in encoded]
        masks = [list(getattr(e, "attention_mask", [1] * len(s))) for e, s in zip(encoded, seqs)]
    elif callable(tokenizer):  # a transformers tokenizer
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        seqs, masks = [list(s) for s in enc["input_ids"]], [list(m) for m in enc["attention_mask"]]
    else:
        raise InvalidInputError(
            f"tokenizer must be a transformers tokenizer, a tokenizers.Tokenizer or a labkit Tokenizer, got {type(tokenizer).__name__}"
        )
    # Keep the last token when truncating so [SEP] still closes the text.
    seqs = [s if len(s) <= max_length else s[: max_length - 1] + s[-1:] for s in seqs]
    masks = [m[: len(s)] for m, s in zip(masks, seqs)]
    width = max((len(s) for s in seqs), default=0)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, (s, m) in enumerate(zip(seqs, masks)):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, : len(m)] = torch.tensor(m, dtype=torch.long)
    return ids, mask
