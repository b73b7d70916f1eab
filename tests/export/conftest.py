"""Fixtures for the export tests: a tiny tokenizer, tiny models of each family and their ONNX files (exported once)."""

from __future__ import annotations

import pytest
import torch

TEXTS = [
    "The cat sat on the mat.",
    "A dog ran in the park, 42 times!",
    "To be, or not to be: that is the question.",
] * 20


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE trained by labkit, with an end-of-text token."""
    from labkit.data import train_tokenizer

    return train_tokenizer(
        TEXTS, kind="bpe", vocab_size=300, special_tokens={"unk": "<|endoftext|>", "eos": "<|endoftext|>"}
    )


def tiny_gpt(vocab_size: int, seed: int = 0, **overrides):
    """A random GPT whose large init makes next-token distributions peaked (greedy choices are clear, not ties)."""
    from labkit.models import GPT, GPTConfig

    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=32, initializer_range=0.3)
    cfg.update(overrides)
    return GPT(GPTConfig(**cfg)).eval()


def tiny_llama(vocab_size: int, seed: int = 0):
    """A labkit GPT in the Llama layout: RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases, untied head."""
    return tiny_gpt(
        vocab_size,
        seed,
        positions="rotary",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
        n_kv_head=2,
        tie_embeddings=False,
    )


@pytest.fixture(scope="module")
def gpt(bpe_tokenizer):
    return tiny_gpt(bpe_tokenizer.vocab_size)


def lm_batch(tokenizer, width: int = 32, rows: int = 8):
    """Rows of `width` consecutive ids from the test texts: a language-modelling batch [rows, width]."""
    ids = tokenizer.encode(" ".join(TEXTS))
    return torch.tensor([ids[i * width : (i + 1) * width] for i in range(rows)])


@pytest.fixture(scope="module")
def trained_gpt(bpe_tokenizer):
    """A tiny GPT fitted for 40 Adam steps to the test texts: a perplexity far below the vocabulary size."""
    model = tiny_gpt(bpe_tokenizer.vocab_size, initializer_range=0.02).train()
    batch = lm_batch(bpe_tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
