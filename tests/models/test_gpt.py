"""GPT: presets and parameter counts, config/input validation, loss, KV cache == full recompute, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError
from labkit.models import GPT, GPTConfig, KVCache, ModelOutput

TINY = dict(vocab_size=61, block_size=32, n_layer=2, n_head=4, n_embd=32)
LLAMA = dict(
    TINY, n_kv_head=2, positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False, n_inner=48, rope_theta=500.0
)


def _model(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**kw)).eval()


@pytest.mark.parametrize(
    "name, count", [("gpt2", 124_439_808), ("gpt2-medium", 354_823_168), ("smollm2-135m", 134_515_008)]
)
def test_preset_parameter_counts_on_meta(name, count):
    with torch.device("meta"):
        model = GPT(GPTConfig.preset(name))
    assert model.num_parameters() == count


def test_presets_listed_and_overridable():
    assert {"gpt-nano", "gpt-micro", "gpt-mini", "gpt-char", "gpt2", "gpt2-medium", "smollm2-135m"} <= set(
        GPTConfig.presets()
    )
    char = GPTConfig.preset("gpt-char", vocab_size=70)
    assert (char.n_layer, char.n_head, char.n_embd, char.block_size, char.vocab_size) == (4, 4, 128, 64, 70)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(n_embd=30, n_head=4), InvalidInputError, "n_embd=30 must be divisible by n_head=4"),
        (dict(n_head=4, n_kv_head=3), InvalidInputError, "n_head=4 must be divisible by n_kv_head=3"),
        (dict(positions="alibi"), UnknownNameError, "alibi"),
        (dict(norm="batchnorm"), UnknownNameError, "batchnorm"),
        (dict(mlp="gelu_nwe"), UnknownNameError, "gelu_new"),
        (dict(dropout=1.5), InvalidInputError, "dropout"),
        (dict(vocab_size=0), InvalidInputError, "vocab_size"),
    ],
)
def test_config_validation(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GPTConfig(**{**TINY, **kwargs})


def test_unknown_preset_and_field():
    with pytest.raises(UnknownNameError, match="gpt2-medium"):
        GPTConfig.preset("gpt2-meduim")
    with pytest.raises(UnknownNameError, match="n_layer"):
        GPTConfig.preset("gpt-nano", n_layers=2)


def test_forward_shapes_and_loss_matches_shifted_cross_entropy():
    model = _model(**TINY)
    ids = torch.randint(0, 61, (3, 10))
    labels = ids.clone()
    labels[:, :2] = -100
    out = model(ids, labels=labels)
    assert isinstance(out, ModelOutput) and out.logits.shape == (3, 10, 61) and out.hidden_states.shape == (3, 10, 32)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 61), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    assert out.past_key_values is None and out.attentions is None


@pytest.mark.parametrize("cfg", [TINY, LLAMA], ids=["gpt2-style", "llama-style"])
def test_bad_inputs_raise_one_clear_error(cfg):
    model = _model(**cfg)
    with pytest.raises(InvalidInputError, match="token id 61 >= vocab_size 61"):
        model(torch.tensor([[1, 61]]))
    with pytest.raises(InvalidInputError, match="negative"):
        model(torch.tensor([[1, -2]]))
    with pytest.raises(InvalidInputError, match="33 tokens is longer than block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="unsqueeze"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="attention_mask shape"):
        model(torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 4))
    with pytest.raises(InvalidInputError, match="labels shape"):
        model(torch.zeros(1, 5, dtype=torch.long), labels=torch.zeros(1, 4, dtype=torch.long))


def test_rotary_may_extrapolate_only_when_configured():
    model = _model(**{**LLAMA, "rope_extrapolate": True})
    assert model(torch.zeros(1, 40, dtype=torch.long)).logits.shape == (1, 40, 61)


@pytest.mark.parametrize("cfg", [TINY, LLAMA], ids=["gpt2-style", "llama-style"])
def test_kv_cache_incremental_decoding_equals_full_recompute(cfg):
    model = _model(**cfg)
    ids = torch.randint(0, 61, (2, 12))
    full = model(ids).logits
    out = model(ids[:, :5], use_cache=True)
    cache = out.past_key_values
    steps = [out.logits]
    for t in range(5, 12):
        out = model(ids[:, t : t + 1], past_key_values=cache, use_cache=True)
        steps.append(out.logits)
    assert cache.get_seq_length() == 12 and out.past_key_values is cache
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", [TINY, LLAMA], ids=["gpt2-style", "llama-style"])
def test_kv_cache_with_left_padding_equals_unpadded_rows(cfg):
    model = _model(**cfg)
    short, long_ = torch.randint(0, 61, (1, 4)), torch.randint(0, 61, (1, 7))
    ids = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), long_])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1] * 7])
    nxt = torch.randint(0, 61, (2, 3))
    out = model(ids, attention_mask=mask, use_cache=True)
    logits = [out.logits[:, -1]]
    for t in range(3):
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
        out = model(nxt[:, t : t + 1], attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
        logits.append(out.logits[:, -1])
    # each row alone, no padding, no cache
    for row, prompt in enumerate((short, long_)):
        alone = model(torch.cat([prompt, nxt[row : row + 1]], 1)).logits[0, -4:]
        torch.testing.assert_close(torch.stack([step[row] for step in logits]), alone, atol=1e-5, rtol=0)


def test_output_attentions_and_sdpa_equal_explicit():
    model = _model(**LLAMA)
    ids = torch.randint(0, 61, (2, 9))
    fast = model(ids).logits
    out = model(ids, output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 9, 9)
    torch.testing.assert_close(out.logits, fast, atol=1e-5, rtol=0)


def test_kv_cache_buffers_grow_reorder_and_crop():
    cache = KVCache(n_layer=1, max_len=2)
    k = torch.arange(2 * 1 * 5 * 3, dtype=torch.float32).view(2, 1, 5, 3)
    ka, va = cache.update(0, k[:, :, :1], -k[:, :, :1])
    ka, va = cache.update(0, k[:, :, 1:], -k[:, :, 1:])  # beyond max_len: the buffer grows
    torch.testing.assert_close(ka, k)
    torch.testing.assert_close(va, -k)
    cache.reorder(torch.tensor([1, 1]))
    torch.testing.assert_close(cache.get(0)[0], k[[1, 1]])
    cache.crop(3)
    assert cache.seq_len == 3 and cache.get(0)[0].shape == (2, 1, 3, 3)
    with pytest.raises(InvalidInputError, match="batch"):
        cache.update(0, torch.zeros(3, 1, 1, 3), torch.zeros(3, 1, 1, 3))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6), st.integers(1, 8))
def test_kv_cache_chunked_updates_equal_concatenation(chunks, max_len):
    cache = KVCache(n_layer=2, max_len=max_len)
    total = sum(chunks)
    k, v = torch.randn(2, 3, total, 4), torch.randn(2, 3, total, 4)
    start = 0
    for n in chunks:
        ka, va = cache.update(1, k[:, :, start : start + n], v[:, :, start : start + n])
        start += n
        assert torch.equal(ka, k[:, :, :start]) and torch.equal(va, v[:, :, :start])
    assert cache.get_seq_length(1) == total


def test_save_and_load_round_trip(tmp_path):
    model = _model(**LLAMA)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = GPT.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    ids = torch.randint(0, 61, (1, 8))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)
    assert loaded.lm_head.weight is loaded.wte.weight
    with pytest.raises(MissingSourceError, match="config.json"):
        GPT.from_pretrained(tmp_path / "missing")


def test_init_scales_residual_projections():
    model = GPT(GPTConfig(**{**TINY, "n_layer": 8, "n_embd": 256, "n_head": 4}))
    assert abs(model.blocks[0].attn.q_proj.weight.std().item() - 0.02) < 2e-3
    assert abs(model.blocks[0].attn.out_proj.weight.std().item() - 0.02 / 4) < 1e-3


def test_autocast_bfloat16_runs_and_trains():
    model = _model(**LLAMA).train()
    ids = torch.randint(0, 61, (2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, labels=ids, output_attentions=True)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.wte.weight.grad is not None and torch.isfinite(model.wte.weight.grad).all()


def test_config_is_json_serialisable():
    import json

    cfg = GPTConfig.preset("smollm2-135m")
    assert GPTConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg


def test_a_folder_without_config_json_is_refused_with_the_fix(tmp_path):
    from labkit.models.hf_bert import read_hf_checkpoint

    with pytest.raises(MissingSourceError) as info:
        GPT.from_pretrained(tmp_path)
    assert str(info.value) == f"no config.json in {str(tmp_path)!r}; pass a folder written by GPT.save_pretrained()"
    with pytest.raises(MissingSourceError, match="no config.json in .*; pass a folder saved with save_pretrained"):
        read_hf_checkpoint(tmp_path)
