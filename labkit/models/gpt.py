"""GPT: a decoder-only Transformer (GPT-2 style, or Llama style with RoPE/RMSNorm/SwiGLU/GQA) with hook points.

Ladder: token embedding (+ learned positions) -> Block x n_layer -> final norm -> LM head.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labkit.checks import check_bool, check_float, check_int
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches
from labkit.models.config_base import ModelConfig, PresetTable, read_config_json
from labkit.models.hooks import HookedModel, HookPoint
from labkit.models.inputs import check_labels, ids_are_checkable
from labkit.models.kv_cache import KVCache
from labkit.models.layers import Block, RotaryEmbedding, is_tracing, make_norm
from labkit.models.outputs import ModelOutput

__all__ = ["GPTConfig", "GPT"]


@dataclass
class GPTConfig(ModelConfig):
    """Shape of a GPT; `GPTConfig.preset(name, **overrides)` gives named starting points."""

    arch: str = "gpt"  # checkpoints use it to refuse loading weights into the wrong model family
    vocab_size: int = 512  # set to your tokenizer's vocab_size
    block_size: int = 128  # longest context; the size of the learned position table
    n_layer: int = 3  # number of Transformer blocks
    n_head: int = 3  # query heads per block; n_embd must divide by it
    n_embd: int = 48  # residual stream width
    n_kv_head: int | None = None  # key/value heads (None = n_head); fewer gives grouped-query attention
    n_inner: int | None = None  # MLP width (None = 4 * n_embd, GPT-2's choice)
    dropout: float = 0.0  # on embeddings, attention and residual branches; 0 for small data is often fine
    bias: bool = True  # biases in linears and LayerNorms (GPT-2 has them, Llama does not)
    positions: str = "learned"  # "learned" (GPT-2 table) or "rotary" (RoPE on q/k, as in Llama)
    rope_theta: float = 10000.0  # RoPE frequency base (SmolLM2 uses 100000)
    rope_extrapolate: bool = False  # rotary only: accept sequences longer than block_size
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (Llama)
    mlp: str = "gelu_new"  # "gelu_new" (GPT-2's tanh GELU), "gelu", "relu" or "swiglu" (Llama)
    tie_embeddings: bool = True  # LM head shares the token embedding matrix (fewer parameters)
    layer_norm_eps: float = 1e-5  # norm epsilon; must match pretrained weights for exact parity
    initializer_range: float = 0.02  # std of the normal init (GPT-2's value)
    eos_token_id: int | list[int] | None = (
        None  # id(s) that end generate() when no tokenizer is given (pretrained sets it)
    )

    def __post_init__(self) -> None:
        self._check_arch("gpt")
        self._check_sizes("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
        for name in ("bias", "rope_extrapolate", "tie_embeddings"):  # "no" is truthy: it would switch the option on
            check_bool(f"GPTConfig.{name}", getattr(self, name))
        self._check_heads()
        kv = self.n_kv_head or self.n_head
        if kv < 1 or self.n_head % kv:
            raise InvalidInputError(
                f"n_head={self.n_head} must be divisible by n_kv_head={self.n_kv_head}; pick n_kv_head among its divisors"
            )
        if self.positions not in ("learned", "rotary"):
            raise UnknownNameError(f"unknown positions {self.positions!r}; choose 'learned' or 'rotary'")
        if self.positions == "rotary" and (self.n_embd // self.n_head) % 2:
            raise InvalidInputError(
                f"rotary positions need an even head width, got n_embd/n_head={self.n_embd // self.n_head}"
            )
        if self.norm not in ("layernorm", "rmsnorm"):
            raise UnknownNameError(f"unknown norm {self.norm!r}; choose 'layernorm' or 'rmsnorm'")
        mlps = ("gelu_new", "gelu", "relu", "silu", "swiglu")
        if self.mlp not in mlps:
            raise UnknownNameError(
                f"unknown mlp {self.mlp!r}; {close_matches(self.mlp, mlps) or 'choose one of ' + ', '.join(mlps)}"
            )
        self._check_fractions("dropout")
        # the numbers left: each bad value would build a model that silently computes nonsense (or NaN)
        check_int("GPTConfig.n_kv_head", self.n_kv_head, allow_none=True, fix="None gives one per query head")
        check_int("GPTConfig.n_inner", self.n_inner, allow_none=True, fix="None gives 4 * n_embd")
        check_float("GPTConfig.layer_norm_eps", self.layer_norm_eps, low=0, low_open=True, fix="GPT-2 uses 1e-5")
        check_float("GPTConfig.rope_theta", self.rope_theta, low=0, low_open=True, fix="Llama uses 10000")
        check_float("GPTConfig.initializer_range", self.initializer_range, low=0, fix="GPT-2 uses 0.02")
        eos = [self.eos_token_id] if isinstance(self.eos_token_id, int) else self.eos_token_id
        if eos is not None and (
            not isinstance(eos, list) or not all(isinstance(i, int) and 0 <= i < self.vocab_size for i in eos)
        ):
            raise InvalidInputError(
                f"GPTConfig.eos_token_id must be None, a token id or a list of ids below vocab_size, got {self.eos_token_id!r}"
            )

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.n_embd // self.n_head


_LLAMA = dict(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False)
_PRESETS: PresetTable = {
    "gpt-nano": (
        "3 layers x 48 wide, 3 heads: tests and instant CPU demos",
        dict(n_layer=3, n_head=3, n_embd=48, block_size=128),
    ),
    "gpt-micro": (
        "4 layers x 128 wide, 4 heads: trains in minutes on a CPU",
        dict(n_layer=4, n_head=4, n_embd=128, block_size=128),
    ),
    "gpt-mini": (
        "6 layers x 192 wide, 6 heads: a small GPU or a patient CPU",
        dict(n_layer=6, n_head=6, n_embd=192, block_size=256),
    ),
    "gpt-char": (
        "nanoGPT's Shakespeare-char CPU config: 4 layers, 4 heads, 128 wide, context 64",
        dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=64),
    ),
    "gpt2": (
        "GPT-2 small shapes (124M with tied embeddings)",
        dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
    ),
    "gpt2-medium": (
        "GPT-2 medium shapes (355M)",
        dict(vocab_size=50257, block_size=1024, n_layer=24, n_head=16, n_embd=1024),
    ),
    "smollm2-135m": (
        "SmolLM2-135M (Llama: GQA 9/3 heads, RoPE, RMSNorm, SwiGLU)",
        dict(
            vocab_size=49152,
            block_size=8192,
            n_layer=30,
            n_head=9,
            n_kv_head=3,
            n_embd=576,
            n_inner=1536,
            rope_theta=100000.0,
            **_LLAMA,
        ),
    ),
}
GPTConfig.preset_table = _PRESETS


class GPT(HookedModel):
    """Decoder-only Transformer: input ids [batch, seq] in, ModelOutput with next-token logits out."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.hook_embed = HookPoint()  # [batch, pos, n_embd] token embeddings
        if c.positions == "learned":
            self.wpe = nn.Embedding(c.block_size, c.n_embd)
            self.hook_pos_embed = HookPoint()  # [batch, pos, n_embd] position embeddings
        else:
            self.rotary = RotaryEmbedding(c.d_head, c.rope_theta)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(
                c.n_embd,
                c.n_head,
                n_kv_head=c.n_kv_head,
                n_inner=c.n_inner,
                mlp=c.mlp,
                norm=c.norm,
                norm_eps=c.layer_norm_eps,
                pre_norm=True,
                causal=True,
                bias=c.bias,
                dropout=c.dropout,
                layer_idx=i,
            )
            for i in range(c.n_layer)
        )
        self.ln_f = make_norm(c.norm, c.n_embd, c.layer_norm_eps, c.bias)
        self.hook_normalized = HookPoint()  # [batch, pos, n_embd] after the final norm, input to the LM head
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2: scale residual projections by 1/sqrt(2 * n_layer) so the residual stream's variance stays put
        for name, p in self.named_parameters():
            if name.endswith("attn.out_proj.weight") or name.endswith("mlp.fc_out.weight"):
                nn.init.normal_(p, 0.0, c.initializer_range / math.sqrt(2 * c.n_layer))
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.setup_hooks()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Return the number of parameters (tied weights counted once); optionally without embedding tables."""
        params = {id(p): p for p in self.parameters()}
        if exclude_embeddings:
            params.pop(id(self.wte.weight), None)
            if hasattr(self, "wpe"):
                params.pop(id(self.wpe.weight), None)
        return sum(p.numel() for p in params.values())

    def _validate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor | None, total_len: int
    ) -> None:
        c = self.config
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise InvalidInputError(
                f"input_ids must be an integer tensor [batch, seq], got {getattr(input_ids, 'shape', type(input_ids).__name__)}; "
                "add a batch dimension with ids.unsqueeze(0)"
            )
        if is_tracing():
            return  # an exported graph serves every size; the checks below read sizes and values on the host
        if input_ids.size(1) == 0:
            raise InvalidInputError("input_ids is empty (seq length 0); pass at least one token")
        if total_len > c.block_size and not (c.positions == "rotary" and c.rope_extrapolate):
            raise InvalidInputError(
                f"sequence of {total_len} tokens is longer than block_size={c.block_size}; truncate the input"
                + (" or set rope_extrapolate=True" if c.positions == "rotary" else " or use a larger block_size")
            )
        if input_ids.numel() and ids_are_checkable(input_ids):  # no host sync on GPUs, no graph break when compiled
            hi, lo = int(input_ids.max()), int(input_ids.min())
            if hi >= c.vocab_size:
                raise InvalidInputError(
                    f"token id {hi} >= vocab_size {c.vocab_size}; build the model with vocab_size >= {hi + 1} or re-encode with its tokenizer"
                )
            if lo < 0:
                raise InvalidInputError(f"token id {lo} is negative; token ids must be in [0, {c.vocab_size})")
        if attention_mask is not None and (
            attention_mask.dim() != 2
            or attention_mask.size(0) != input_ids.size(0)
            or attention_mask.size(1) != total_len
        ):
            raise InvalidInputError(
                f"attention_mask shape {tuple(attention_mask.shape)} must be [batch, past + seq] = "
                f"{(input_ids.size(0), total_len)}; 1 marks real tokens, 0 padding"
            )
        if labels is not None and labels.shape != input_ids.shape:
            raise InvalidInputError(
                f"labels shape {tuple(labels.shape)} must equal input_ids shape {tuple(input_ids.shape)} (the model shifts them)"
            )
        if labels is not None:
            check_labels(labels, c.vocab_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """Ids [batch, seq] in, ModelOutput(logits [batch, seq, vocab], loss, past_key_values, attentions, hidden_states) out.

        attention_mask: [batch, past + seq], 1 = real token, 0 = padding (left padding works). labels: aligned with
        input_ids (shifted inside, -100 ignored). position_ids: [batch, seq] (default: counted over real tokens).
        past_key_values: a KVCache from a previous call. use_cache: return the (new or updated) KVCache.
        output_attentions: also return per-layer patterns [batch, head, q, k].
        """
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        b, t = input_ids.shape if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2 else (0, 0)
        self._validate(input_ids, attention_mask, labels, past + t)
        if use_cache and past_key_values is None:
            past_key_values = KVCache(
                self.config.n_layer, max_len=min(max(t + 64, 128), max(self.config.block_size, t))
            )
        if position_ids is None:
            if attention_mask is not None:
                # count real tokens so left-padded rows start at position 0, as Hugging Face's generate does
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -t:]
            else:
                position_ids = torch.arange(past, past + t, device=input_ids.device).unsqueeze(0).expand(b, t)
        x = self.hook_embed(self.wte(input_ids))
        rope = None
        if self.config.positions == "learned":
            x = x + self.hook_pos_embed(self.wpe(position_ids))
        else:
            rope = self.rotary(position_ids)
        x = self.drop(x)
        attentions = []
        cache = past_key_values if (use_cache or past_key_values is not None) else None
        for block in self.blocks:
            x, pattern, _ = block(
                x, attention_mask=attention_mask, rope=rope, past_key_values=cache, output_attentions=output_attentions
            )
            attentions.append(pattern)
        x = self.hook_normalized(self.ln_f(x))
        logits = self.lm_head(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return ModelOutput(
            logits=logits,
            loss=loss,
            past_key_values=cache if use_cache else None,
            hidden_states=x,
            attentions=tuple(attentions) if output_attentions else None,
        )

    # ---- checkpoints and interop -------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write `config.json` and `model.safetensors` (no pickle) into the folder `path`."""
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as fh:
            json.dump(asdict(self.config), fh, indent=2)
        # contiguous copies: generate() may have stored weights column-major, which safetensors cannot write
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            tensors.pop("lm_head.weight", None)  # the same tensor as wte.weight
        save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> GPT:
        """A folder written by `save_pretrained` in, the GPT with those weights (on `map_location`) out."""
        from safetensors.torch import load_file

        raw = read_config_json(path, "pass a folder written by GPT.save_pretrained()")
        if raw.get("arch", "gpt") != "gpt":
            raise InvalidInputError(
                f"{os.fspath(path)!r} holds a {raw.get('arch')!r} model, not 'gpt'; load it with that model class"
            )
        if "model_type" in raw:
            raise InvalidInputError(
                f"{os.fspath(path)!r} is a Hugging Face checkpoint ({raw['model_type']}); use GPT.from_hf(path)"
            )
        weights_file = os.path.join(path, "model.safetensors")
        if not os.path.isfile(weights_file):
            raise MissingSourceError(
                f"no model.safetensors in {os.fspath(path)!r}; pass a folder written by GPT.save_pretrained()"
            )
        model = cls(GPTConfig(**raw))
        tensors = load_file(weights_file)
        if model.config.tie_embeddings:  # one copy of the shared matrix is stored, under either name
            shared = tensors.pop("lm_head.weight", None)
            if shared is not None:
                tensors.setdefault("wte.weight", shared)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if not (model.config.tie_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise InvalidInputError(
                f"{os.fspath(path)!r} does not fit its config.json: missing {missing[:3]}, unexpected {unexpected[:3]}; "
                "save it again with GPT.save_pretrained()"
            )
        return model.to(map_location)

    @classmethod
    def from_hf(cls, model_or_path: Any, *, copy: bool = True) -> GPT:
        """A transformers GPT2LMHeadModel / LlamaForCausalLM, a local folder or "hf:NAME" in, a GPT with equal weights out.

        copy: for a model object, give the GPT its own memory (default); False shares the float32 tensors with the
        transformers model (no copy, instant; training one then changes the other). Paths are converted once and
        cached (`labkit.models.load_pretrained`).
        """
        from labkit.models import hf_gpt

        return hf_gpt.from_hf(model_or_path, copy=copy)

    def to_hf(self) -> Any:
        """Return a transformers GPT2LMHeadModel (or LlamaForCausalLM for the Llama variant) with identical weights."""
        from labkit.models import hf_gpt

        return hf_gpt.to_hf(self)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike | None = None) -> tuple[GPT, Any]:
        """A Llama-architecture GGUF file (None = the packaged SmolLM2-135M-Instruct) in, (GPT, HF tokenizer) out."""
        from labkit.models import hf_gpt

        return hf_gpt.load_gguf(path)
