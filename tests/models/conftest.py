"""Fixtures for pretrained-model tests: a tiny Llama written as a real GGUF file and as a Hugging Face folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TEXTS = ["The cat sat on the mat.", "A dog ran in the park, 42 times!", "Über naïve café; 東京 2024.\n\tTabs too"] * 20


def tiny_tokenizer():
    """A byte-level BPE (labkit's trainer) with SmolLM2's chat markers as its special tokens."""
    from labkit.data import train_tokenizer

    return train_tokenizer(
        TEXTS,
        kind="bpe",
        vocab_size=320,
        special_tokens={"unk": "<|endoftext|>", "bos": "<|im_start|>", "eos": "<|im_end|>"},
    )


def tiny_llama(vocab_size: int, tie: bool = False, seed: int = 0):
    """A random-init transformers LlamaForCausalLM with grouped-query attention (4 query heads, 2 key/value heads)."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        attn_implementation="eager",
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def _interleave(w: np.ndarray, heads: int) -> np.ndarray:
    # llama.cpp's converter: within each head, row k * d/2 + j (half-split rotary) becomes row 2j + k (interleaved)
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(path: Path, hf, tokenizer, quantize: str = "F32") -> Path:
    """A transformers Llama and a labkit byte-level tokenizer in, a GGUF file as llama.cpp's converter writes it out.

    quantize: "F32" (exact), or "Q8_0" to store the 2-D matrices 8-bit quantized (the norms stay F32).
    """
    import gguf

    c = hf.config
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    data = json.loads(tokenizer.backend.to_str())
    vocab = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = {t["content"]: t["id"] for t in data["added_tokens"]}
    tokens = [t for t, _ in vocab]
    for content, i in specials.items():
        tokens[i] = content
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]])
    w.add_bos_token_id(tokenizer.bos_id)
    w.add_eos_token_id(tokenizer.eos_id)
    w.add_unk_token_id(tokenizer.unk_id)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    sd = {k: v.detach().float().numpy() for k, v in hf.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    if not c.tie_word_embeddings:
        names["lm_head.weight"] = "output.weight"
    per_layer = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(c.num_hidden_layers):
        for src, dst in per_layer.items():
            names[f"model.layers.{i}.{src}.weight"] = f"blk.{i}.{dst}.weight"
    for src, dst in names.items():
        t = sd[src]
        if dst.endswith("attn_q.weight"):
            t = _interleave(t, c.num_attention_heads)
        elif dst.endswith("attn_k.weight"):
            t = _interleave(t, c.num_key_value_heads)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if quantize == "Q8_0" and t.ndim == 2:
            q = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(dst, gguf.quants.quantize(t, q), raw_dtype=q)
        else:
            w.add_tensor(dst, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory):
    """(tokenizer, hf model, gguf path, quantized gguf path, hf folder) for one tiny Llama, written once per session."""
    pytest.importorskip("gguf")
    pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_llama")
    tok = tiny_tokenizer()
    hf = tiny_llama(tok.vocab_size)
    f32 = write_llama_gguf(folder / "tiny.gguf", hf, tok)
    q8 = write_llama_gguf(folder / "tiny-q8.gguf", hf, tok, quantize="Q8_0")
    hf_dir = folder / "hf"
    hf.save_pretrained(hf_dir)
    tok.backend.save(str(hf_dir / "tokenizer.json"))
    (hf_dir / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|im_end|>", "bos_token": "<|im_start|>", "chat_template": CHAT_TEMPLATE})
    )
    return tok, hf, f32, q8, hf_dir


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty conversion cache for one test ($LABKIT_CACHE points at it)."""
    root = tmp_path / "labkit-cache"
    monkeypatch.setenv("LABKIT_CACHE", str(root))
    return root


@pytest.fixture(name="write_gguf")
def write_gguf_fixture():
    """The `write_llama_gguf(path, hf_model, tokenizer, quantize="F32")` helper."""
    return write_llama_gguf


@pytest.fixture(name="make_llama")
def make_llama_fixture():
    """The `tiny_llama(vocab_size, tie=False, seed=0)` helper."""
    return tiny_llama


@pytest.fixture(name="texts")
def texts_fixture():
    """Sample texts (ASCII, accents, CJK, digits, tabs) the tiny tokenizer was trained on."""
    return TEXTS
