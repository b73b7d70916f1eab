"""The four interpret widgets without a kernel: setting a trait (what the page's controls do) recomputes in Python
and pushes a new spec; a bad value typed in the page shows its one-line error in the widget instead of raising."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from labkit.data import train_tokenizer
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, module_text
from labkit.interpret import activation_patching, attribute, logit_lens, neuron_activations
from labkit.models import GPT, Encoder, EncoderConfig, GPTConfig
from labkit.widgets.interpret import AttributionWidget, LogitLensWidget, NeuronWidget, PatchingWidget

TEXT = "the cat sat on the mat. the dog sat on the log. "


@cache
def _setup():
    tok = train_tokenizer([TEXT * 10], kind="char")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=16)).eval()
    clf = Encoder(
        EncoderConfig.preset("encoder-tiny", vocab_size=tok.vocab_size, block_size=48, head="classification")
    ).eval()
    return tok, gpt, clf


def test_logit_lens_widget_follows_text_and_target():
    tok, gpt, _ = _setup()
    w = LogitLensWidget(gpt, tok, "the cat", target="next")
    assert w.spec["kind"] == "lens" and w.spec["tokens"] == list("the cat")
    assert (
        w._esm == module_text("interpret.js") and "export default" in w._esm and w._css == asset_text("interpret.css")
    )
    assert {"spec", "controls", "status", "title", "text", "target"} <= set(w.traits(sync=True))
    assert [c["name"] for c in w.controls] == ["text", "target"]
    w.text = "the dog sat"  # what typing in the page does
    expected = logit_lens(gpt, tok.encode("the dog sat"), tokenizer=tok, target="next")
    assert w.spec["top_tokens"] == expected.top_tokens and w.spec["target_kind"] == "next"
    w.target = "cat"  # not one token of a character vocabulary
    assert "not one token" in w.spec["error"] and "\n" not in w.spec["error"]
    with pytest.raises(InvalidInputError, match="fix the input first"):
        w.to_view()
    w.target = "d"
    assert "error" not in w.spec and w.spec["target_tokens"] == ["d"] * 11
    bundle, _ = w._repr_mimebundle_()
    assert bundle["text/plain"].startswith("LogitLensView") and bundle["image/svg+xml"].startswith("<svg")
    with pytest.raises(InvalidInputError, match="not one token"):  # in the constructor, a bad value raises
        LogitLensWidget(gpt, tok, "the cat", target="cat")


def test_attribution_widget_shows_one_row_per_method_and_recomputes():
    tok, gpt, clf = _setup()
    w = AttributionWidget(gpt, tok, "the cat sat", steps=16)
    assert [r["method"] for r in w.spec["rows"]] == ["integrated_gradients", "gradient_x_input", "attention_rollout"]
    ref = attribute(gpt, tok.encode("the cat sat"), steps=16, tokenizer=tok)
    assert w.spec["rows"][0]["scores"] == pytest.approx(ref.scores.tolist(), abs=1e-5)
    w.steps = 0
    assert "steps must be an integer >= 1" in w.spec["error"]
    w.steps = 8
    assert "8 steps" in w.spec["rows"][0]["caption"]
    c = AttributionWidget(clf, tok, "the dog", methods=["integrated_gradients"], target="1", steps=8)
    assert c.spec["rows"][0]["caption"].startswith("integrated gradients \u00b7 logit of class 1")
    with pytest.raises(Exception, match="method must be one of"):
        AttributionWidget(gpt, tok, "x", methods=["lime"])


def test_neuron_widget_picks_neurons():
    tok, gpt, _ = _setup()
    acts = neuron_activations(gpt, [TEXT, "the cat"], layer=1, tokenizer=tok)
    w = NeuronWidget(acts, model=gpt, tokenizer=tok)
    first = w.neuron
    assert first == int(acts.selectivity().argmax()) and w.spec["neuron"] == first and w.spec["promoted"]
    w.neuron = 3
    assert w.spec["neuron"] == 3 and w.spec["contexts"][0]["activation"] == pytest.approx(
        acts.top_contexts(3, k=1)[0].activation, abs=1e-4
    )
    assert [c["name"] for c in w.controls] == ["neuron", "neuron"] and w.controls[1]["numeric"]
    w.neuron = 10_000
    assert "MLP units" in w.spec["error"]


def test_patching_widget_switches_hooks_and_keeps_results():
    tok, gpt, _ = _setup()
    clean, corrupted = tok.encode("the cat sat"), tok.encode("the dog sat")
    w = PatchingWidget(gpt, clean, corrupted, answer="a", wrong="o", tokenizer=tok)
    ref = activation_patching(gpt, clean, corrupted, answer="a", wrong="o", tokenizer=tok)
    assert w.spec["dims"] == ["layer", "pos"] and torch.allclose(w.result().scores, ref.scores, atol=1e-6)
    w.by = "layer"
    assert w.spec["dims"] == ["layer"]
    w.hook = "head_out"  # the page's hook picker: `by` falls back to the new hook's default
    assert w.by == "" and w.spec["dims"] == ["layer", "head"] and w.controls[1]["value"] == "head"
    kept = w.result()
    w.hook = "mlp_out"
    w.hook = "head_out"
    assert w.result() is kept
    w.hook = "resid"
    assert "unknown hook 'resid'" in w.spec["error"]
