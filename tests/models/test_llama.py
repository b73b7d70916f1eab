"""Llama-family interop: random-init LlamaForCausalLM (GQA, tied/untied) parity, to_hf, GGUF errors (the real SmolLM2
against transformers is in test_pretrained.py)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from labkit.models import GPT, GPTConfig  # noqa: E402


def _hf_llama(tie: bool, n_kv_head: int = 2):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=89,
        hidden_size=32,
        intermediate_size=56,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=n_kv_head,
        max_position_embeddings=48,
        rope_theta=1000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
        attn_implementation="eager",
    )
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("tie, n_kv_head", [(True, 2), (False, 2), (False, 1), (True, 4)])
def test_logits_and_attentions_match_transformers(tie, n_kv_head):
    hf = _hf_llama(tie, n_kv_head)
    model = GPT.from_hf(hf)
    c = model.config
    assert (c.positions, c.norm, c.mlp, c.n_kv_head, c.tie_embeddings, c.rope_theta) == (
        "rotary",
        "rmsnorm",
        "swiglu",
        n_kv_head,
        tie,
        1000.0,
    )
    ids = torch.randint(0, 89, (2, 13))
    with torch.no_grad():
        ref = hf(ids, output_attentions=True)
        out = model(ids, output_attentions=True)
        fast = model(ids)
        _, cache = model.run_with_cache(ids, names="blocks.1.attn.hook_pattern")
    assert (out.logits - ref.logits).abs().max() <= 1e-5
    assert (fast.logits - ref.logits).abs().max() <= 1e-5
    for layer in range(2):
        assert (out.attentions[layer] - ref.attentions[layer]).abs().max() <= 1e-6
    assert (cache.pattern(1) - ref.attentions[1]).abs().max() <= 1e-6


def test_cached_decoding_matches_transformers():
    hf = _hf_llama(False)
    model = GPT.from_hf(hf)
    ids = torch.randint(0, 89, (1, 10))
    with torch.no_grad():
        ref = hf(ids).logits[:, -1]
        out = model(ids[:, :6], use_cache=True)
        for t in range(6, 10):
            out = model(ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
    assert (out.logits[:, -1] - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("tie", [True, False])
def test_to_hf_round_trip(tie):
    torch.manual_seed(2)
    model = GPT(
        GPTConfig(
            vocab_size=89,
            block_size=48,
            n_layer=2,
            n_head=4,
            n_kv_head=2,
            n_embd=32,
            n_inner=56,
            positions="rotary",
            norm="rmsnorm",
            mlp="swiglu",
            bias=False,
            rope_theta=1000.0,
            tie_embeddings=tie,
        )
    ).eval()
    hf = model.to_hf()
    assert type(hf).__name__ == "LlamaForCausalLM" and hf.config.num_key_value_heads == 2
    ids = torch.randint(0, 89, (2, 9))
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-5
    assert GPT.from_hf(hf).config == model.config


def test_gguf_missing_file_raises_before_loading(tmp_path):
    from labkit.errors import MissingSourceError

    with pytest.raises(MissingSourceError, match="nothing.gguf"):
        GPT.from_gguf(tmp_path / "nothing.gguf")
