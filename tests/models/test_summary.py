"""summary(): per-block counts add up to the real parameter count, tied weights once, FLOPs formula, bad input."""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models import GPT, GPTConfig, ModelSummary, summary


def test_rows_sum_to_torch_count_and_tied_weights_once():
    model = GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=16))
    s = summary(model)
    assert isinstance(s, ModelSummary)
    assert sum(n for _, n in s.rows) == s.total_params == sum(p.numel() for p in model.parameters())
    names = [n for n, _ in s.rows]
    assert names == ["wte", "wpe", "blocks.0", "blocks.1", "ln_f"]  # tied lm_head is not a second row
    untied = summary(GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=16, tie_embeddings=False)))
    assert dict(untied.rows)["lm_head"] == 61 * 16 and untied.total_params == s.total_params + 61 * 16


def test_presets_counted_on_meta_device():
    s = summary(GPTConfig.preset("gpt2-medium"), seq_len=1024)
    assert s.total_params == 354_823_168
    assert dict(s.rows)["blocks.0"] == 12 * 1024**2 + 13 * 1024  # 4 d^2 attention + 8 d^2 MLP, biases and norms


def test_flops_and_memory_formulas():
    cfg = GPTConfig.preset("gpt2")
    s = summary(cfg, batch_size=4, seq_len=256, dtype=torch.bfloat16)
    n = 124_439_808 - 1024 * 768  # position table is not a matmul
    assert s.flops_per_token_train == 6 * n + 12 * 12 * 768 * 256
    assert s.flops_per_token_forward == 2 * n + 4 * 12 * 768 * 256
    assert s.weight_bytes == 124_439_808 * 2
    assert s.activation_bytes == int(12 * 256 * 4 * 768 * (34 + 5 * 12 * 256 / 768))
    assert summary(cfg, seq_len=256).weight_bytes == 2 * s.weight_bytes
    text = str(s)
    assert "124,439,808" in text and "blocks.11" in text and "FLOPs/token" in text


def test_to_pandas():
    pytest.importorskip("pandas")
    df = summary(GPTConfig.preset("gpt-nano")).to_pandas()
    assert (
        list(df.columns) == ["block", "params"]
        and df["params"].sum() == summary(GPTConfig.preset("gpt-nano")).total_params
    )


def test_bad_input():
    with pytest.raises(InvalidInputError, match="batch_size"):
        summary(GPTConfig(), batch_size=0)
    with pytest.raises(UnknownNameError, match="arch"):
        summary(object())
