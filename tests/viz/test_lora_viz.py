"""LoRA explorer math: counts equal PEFT's wrapped model, singular values equal the merged weight change."""

from __future__ import annotations

import copy

import pytest
import torch

peft = pytest.importorskip("peft")

from labkit.errors import InvalidInputError  # noqa: E402
from labkit.models import GPT, GPTConfig  # noqa: E402
from labkit.training.lora import lora, trainable_parameters  # noqa: E402
from labkit.viz.lora import (  # noqa: E402
    lora_parameter_figure,
    lora_parameter_table,
    lora_singular_value_figure,
    lora_singular_values,
)


def _gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=80, block_size=16, n_layer=2, n_head=4, n_embd=24, **overrides)).eval()


@pytest.mark.parametrize(
    "make, targets",
    [
        (lambda: _gpt(n_kv_head=2), ("attn",)),
        (lambda: _gpt(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False), "all-linear"),
        (lambda: _gpt(), ("attn-out", "mlp")),
    ],
)
def test_counts_equal_peft_for_two_ranks(make, targets):
    model = make()
    table = lora_parameter_table(model, ranks=(2, 16), targets=targets)
    for row in table.rows:
        wrapped = lora(copy.deepcopy(model), r=row.rank, targets=targets, verbose=False)
        assert (row.trainable, row.total) == trainable_parameters(wrapped)
        assert row.share == pytest.approx(row.trainable / row.total)
    assert not any(hasattr(m, "lora_A") for m in model.modules())  # the table never wraps the model


def test_counts_equal_peft_on_hugging_face_gpt2_conv1d():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=50, n_positions=16)
    )
    table = lora_parameter_table(hf, ranks=(1, 4), targets="attn")
    assert list(table.layers) == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    for row in table.rows:
        assert (row.trainable, row.total) == trainable_parameters(
            lora(copy.deepcopy(hf), r=row.rank, targets="attn", verbose=False)
        )


def test_singular_values_equal_the_merged_weight_change():
    model = _gpt()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapped = lora(model, r=3, alpha=12, targets="qv", verbose=False)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
    values = lora_singular_values(wrapped)
    assert sorted(values) == [f"blocks.{i}.attn.{n}" for i in range(2) for n in ("q_proj", "v_proj")]
    wrapped.merge_adapter()  # PEFT's own path: W + B A * alpha / r
    merged = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in wrapped.named_parameters()}
    for name, s in values.items():
        delta = merged[name + ".weight"].detach() - before[name + ".weight"]
        ref = torch.linalg.svdvals(delta)[:3]
        torch.testing.assert_close(s, ref, atol=1e-4, rtol=1e-4)
        assert s.shape == (3,) and bool((s[:-1] >= s[1:]).all())
    fig = lora_singular_value_figure(values, normalize=True)
    assert len(fig.data) == 4 and fig.data[0].y[0] == pytest.approx(1.0)


def test_fresh_adapter_has_zero_update():
    values = lora_singular_values(lora(_gpt(), r=2, verbose=False))
    assert all(float(v.abs().max()) == 0 for v in values.values())


def test_table_renders_as_text_html_svg_and_figure():
    table = lora_parameter_table(_gpt(), ranks=(1, 8))
    bundle = table._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"}
    assert f"{table.rows[1].trainable:,}" in bundle["text/plain"] and "<table" in bundle["text/html"]
    assert bundle["image/svg+xml"].count("<rect") == 2
    fig = lora_parameter_figure(table)
    assert list(fig.data[0].y) == [r.trainable for r in table.rows]
    assert table.row(5).trainable == 5 * table.rows[0].trainable


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m: lora_parameter_table(m, ranks=(0,)),
            r"^LoRA rank must be an integer >= 1, got 0; 4 to 64 are usual$",
        ),
        (lambda m: lora_parameter_table(m, ranks=()), "ranks must be a non-empty list"),
        (lambda m: lora_parameter_table(m, targets="nothing_here"), "matches no module"),
        (lambda m: lora_parameter_table(lora(m, r=1, verbose=False)), "already has LoRA adapters"),
        (lambda m: lora_singular_values(m), "has no LoRA layers"),
        (lambda m: lora_singular_value_figure({}), "no singular values to plot"),
    ],
)
def test_bad_inputs_raise_one_clear_line(call, message):
    with pytest.raises((InvalidInputError, KeyError), match=message) as info:
        call(_gpt())
    assert "\n" not in str(info.value)
