"""Tiny models for the interpret tests: a GPT-2-shaped GPT, a Llama-shaped GPT, a BERT-style classifier, a char tokenizer.

Weights are random (seeded) and scaled up so activations, logits and patching effects are far from zero:
parity at 1e-5 on numbers near zero would prove little.
"""

from __future__ import annotations

import pytest
import torch

from labkit.data import train_tokenizer
from labkit.models import GPT, Encoder, EncoderConfig, GPTConfig

TEXT = "the cat sat on the mat. the dog sat on the log. a bird flew over the tree. "


def scaled(model: torch.nn.Module, factor: float = 3.0) -> torch.nn.Module:
    """Multiply every weight by `factor` (norm gains included) and return the model in eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model.eval()


@pytest.fixture(scope="session")
def char_tokenizer():
    return train_tokenizer([TEXT * 5], kind="char")


@pytest.fixture(scope="session")
def gpt2_like(char_tokenizer):
    """GPT-2 layout: learned positions, LayerNorm with biases, tanh-GELU MLP; 2 layers, 4 heads, 32 wide."""
    torch.manual_seed(0)
    return scaled(GPT(GPTConfig(vocab_size=char_tokenizer.vocab_size, block_size=48, n_layer=2, n_head=4, n_embd=32)))


@pytest.fixture(scope="session")
def llama_like(char_tokenizer):
    """Llama layout: rotary positions, RMSNorm, SwiGLU, grouped-query attention (4 query heads, 2 key/value heads)."""
    torch.manual_seed(1)
    cfg = GPTConfig.preset(
        "gpt-nano", vocab_size=char_tokenizer.vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, n_inner=48,
        positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False, block_size=48,
    )  # fmt: skip
    return scaled(GPT(cfg), 2.0)


@pytest.fixture(scope="session")
def classifier(char_tokenizer):
    """A BERT-style encoder with a 3-class classification head."""
    torch.manual_seed(2)
    cfg = EncoderConfig.preset(
        "encoder-tiny", vocab_size=char_tokenizer.vocab_size, block_size=48, head="classification", num_labels=3
    )
    return scaled(Encoder(cfg), 2.0)
