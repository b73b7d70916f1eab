"""Attention walk-through: every step equals the model's own hook tensors, the pattern equals Hugging Face's, views escape."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.frontend import classic_script
from labkit.models import GPT, GPTConfig
from labkit.models.encoder import Encoder, EncoderConfig
from labkit.viz.attention_math import attention_steps, attention_walkthrough

HOSTILE = "</script><img src=x onerror=alert(1)>"
LLAMA = dict(positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=2, n_inner=48)
NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "attention_math.js"


def _gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=60, block_size=32, n_layer=2, n_head=4, n_embd=32, **overrides)).eval()
    with torch.no_grad():  # GPT init leaves biases at 0 and norms at 1: randomize so every term is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def _ids(n: int = 9) -> torch.Tensor:
    return torch.randint(0, 60, (1, n), generator=torch.Generator().manual_seed(3))


MODELS = {
    "gpt2-style": lambda: _gpt(),
    "llama-style (rope, gqa)": lambda: _gpt(**LLAMA),
    "encoder (post-norm, bidirectional)": lambda: (
        torch.manual_seed(0),
        Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=60)).eval(),
    )[1],
}


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("layer, head", [(0, 0), (1, 3)])
def test_every_step_matches_the_models_hooks_and_the_output_is_hook_attn_out(kind, layer, head):
    model = MODELS[kind]()
    head = min(head, model.blocks[0].attn.n_head - 1)
    ids = _ids()
    steps = attention_steps(model, ids, layer=layer, head=head)
    _, cache = model.run_with_cache(ids, names=f"blocks.{layer}.hook_attn_out")
    torch.testing.assert_close(steps[-1].matrix, cache[f"blocks.{layer}.hook_attn_out"][0], atol=1e-5, rtol=0)
    checked = [s for s in steps if s.check is not None]
    assert len(checked) >= 6 and all(s.check <= 1e-5 for s in checked), [(s.name, s.check) for s in checked]
    assert steps[-1].hook == f"blocks.{layer}.hook_attn_out" and steps[-1].check <= 1e-5
    names = [s.name for s in steps]
    rotary = kind.startswith("llama")
    assert ("RoPE(Q)" in names) == rotary and ("RoPE(K)" in names) == rotary
    assert ("causal mask" in names) == (not kind.startswith("encoder"))
    T, d = ids.shape[1], model.blocks[0].attn.d_head
    pattern = next(s for s in steps if s.name == "softmax").matrix
    assert pattern.shape == (T, T) and torch.allclose(pattern.sum(-1), torch.ones(T))
    if not kind.startswith("encoder"):
        assert pattern.triu(1).abs().max() == 0  # no weight on future tokens
    assert next(s for s in steps if s.name.startswith("Q =")).matrix.shape == (T, d)


def test_the_check_catches_a_model_that_differs_from_the_walk_through():
    model = _gpt()
    handle = model.blocks[1].hook_attn_out.add_hook(lambda t, hook: t + 0.5)  # the model now adds 0.5 after attention
    try:
        steps = attention_steps(model, _ids(), layer=1, head=0)
    finally:
        handle.remove()
    assert steps[-1].check == pytest.approx(0.5, abs=1e-5)
    assert all(s.check <= 1e-5 for s in steps[:-1] if s.check is not None)


@pytest.mark.parametrize("style", ["gpt2", "llama"])
def test_pattern_equals_hugging_face_eager_attention_weights(style):
    pytest.importorskip("transformers")
    model = _gpt(**(LLAMA if style == "llama" else {}))
    hf = model.to_hf().eval()
    hf.config._attn_implementation = "eager"  # the explicit softmax path returns attention weights
    ids = _ids()
    with torch.no_grad():
        ref = hf(ids, output_attentions=True).attentions
    for layer, head in [(0, 1), (1, 3)]:
        steps = attention_steps(model, ids, layer=layer, head=head)
        pattern = next(s for s in steps if s.name == "softmax").matrix
        torch.testing.assert_close(pattern, ref[layer][0, head].float(), atol=2e-5, rtol=0)


def test_intermediate_steps_follow_the_textbook_from_the_shown_matrices():
    steps = {s.name.split(" (")[0]: s for s in attention_steps(_gpt(**LLAMA), _ids(), layer=1, head=3)}
    q, k = steps["RoPE(Q)"].matrix, steps["RoPE(K)"].matrix
    torch.testing.assert_close(steps["Q Kᵀ"].matrix, q @ k.T)
    torch.testing.assert_close(steps["÷ √d_k"].matrix, q @ k.T / math.sqrt(q.shape[1]))
    torch.testing.assert_close(steps["softmax"].matrix, torch.softmax(steps["causal mask"].matrix, -1))
    # grouped-query: head 3 of 4 with 2 kv heads reads kv head 1
    assert steps["K = X W_K"].name == "K = X W_K (kv head 1)" and "Grouped-query" in steps["K = X W_K"].note
    torch.testing.assert_close(steps["A V"].matrix, steps["softmax"].matrix @ steps["V = X W_V"].matrix)


def _view(n_tokens: int = 14):
    tokens = [HOSTILE, "a&b"] + [f"t{i}" for i in range(n_tokens - 2)]
    return attention_walkthrough(_gpt(), _ids(n_tokens), layer=1, head=2, tokens=tokens, title=HOSTILE), tokens


def test_view_has_every_step_in_the_static_html_cropped_with_a_note():
    view, tokens = _view()
    page = view.to_html()
    assert page.count('<section class="lk-am-step"') == len(view.steps) == 11
    tables = re.findall(r'<table class="lk-am-table">.*?</table>', page)
    assert len(tables) == len(view.steps)
    assert all(t.count("<tr>") <= 12 + 1 for t in tables)  # header + at most 12 token rows
    assert "showing first 12 of 14 tokens" in page and "first 8 of 32 columns" in page
    assert f"max |diff| = {view.max_diff:.1e}" in page and view.output_diff <= 1e-5
    text = view.summary()
    assert "11 steps" in text and "hook_attn_out" in text and len(text.splitlines()) == 2 + 1 + 11


def test_hostile_tokens_stay_text_in_html_svg_and_plain(tmp_path):
    view, _ = _view(6)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain", "image/svg+xml"}
    for mime, text in bundle.items():
        assert "<img" not in text, mime
    assert bundle["text/html"].count("</script>") == 1 and "&lt;/script&gt;&lt;img" in bundle["text/html"]
    svg = ET.fromstring(bundle["image/svg+xml"])
    assert any((t.text or "").startswith("</script><img") for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    page = view.save_html(tmp_path / "walk.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<img" not in page
    for bad in ("http:", "https:", "cdn", 'src="'):
        assert bad not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").lower()


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, ids: attention_steps(m, ids, layer=2),
            r"^layer must be an integer in \[0, 1\], got 2; the model has 2 layers$",
        ),
        (
            lambda m, ids: attention_steps(m, ids, head=4),
            r"^head must be an integer in \[0, 3\], got 4; the model has 4 heads$",
        ),
        (lambda m, ids: attention_steps(m, ids.repeat(2, 1)), r"one sequence of token ids.*got shape \(2, 9\)"),
        (
            lambda m, ids: attention_steps(m, ids, tokens=["a"]),
            "got 1 input tokens but input_ids has 9 input positions",
        ),
        (lambda m, ids: attention_steps(torch.nn.Linear(2, 2), ids), "needs a labkit GPT or Encoder, got Linear"),
        (
            lambda m, ids: attention_walkthrough(m, ids, step=99),
            r"^step must be an integer in \[0, 10\], got 99; this walk-through has 11 steps$",
        ),
        (lambda m, ids: attention_walkthrough(m, ids, max_tokens=0), r"^max_tokens must be an integer >= 1, got 0$"),
    ],
)
def test_bad_inputs_raise_one_clear_line(call, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        call(_gpt(), _ids())
    assert "\n" not in str(info.value)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_slider_helpers_and_the_inlined_script_run_in_node():
    code = (
        f"import {{ clampStep }} from {json.dumps(MODULE.as_uri())};\n"
        "console.log(JSON.stringify([clampStep(-1, 5), clampStep(2.4, 5), clampStep(9, 5), clampStep('x', 5), clampStep(3, 0)]));"
    )
    done = subprocess.run([NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, 2, 4, 0, 0]
    script = (
        "(function(){"
        + classic_script("attention_math.js")
        + "\nconsole.log(typeof mountStatic, typeof __default.render);})();"
    )
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["function", "function"], done.stderr


def test_a_lora_wrapped_model_is_walked_through_with_its_adapter():
    pytest.importorskip("peft")
    from labkit.training.lora import lora

    wrapped = lora(_gpt(), r=2, targets=("attn", "attn-out"), verbose=False)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a non-zero update, so ignoring the adapter would show up
    steps = attention_steps(wrapped, _ids(), layer=1, head=1)
    assert all(s.check <= 1e-5 for s in steps if s.check is not None), [(s.name, s.check) for s in steps]
