"""Neuron activations: the recorded values are the MLP hidden activations, contexts come out in order, effects use W_out."""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.interpret import neuron_activations, neuron_logit_effect

TEXTS = ["the cat sat on the mat.", "a bird", "the dog sat on the log.", "flew over the tree"]


@pytest.mark.parametrize("which", ["gpt2_like", "llama_like"])
def test_activations_are_the_mlp_hidden_units(request, which, char_tokenizer):
    model = request.getfixturevalue(which)
    acts = neuron_activations(model, TEXTS, layer=1, tokenizer=char_tokenizer, batch_size=1)
    assert acts.layer == 1 and len(acts.acts) == len(TEXTS) and acts.tokens[1] == list("a bird")
    for text, a in zip(TEXTS, acts.acts):
        _, cache = model.run_with_cache(torch.tensor([char_tokenizer.encode(text)]), names=["blocks.1.mlp.hook_post"])
        assert torch.allclose(a, cache["blocks.1.mlp.hook_post"][0], atol=1e-6)
    assert acts.n_neurons == model.blocks[1].mlp.fc_out.in_features
    short = neuron_activations(model, [char_tokenizer.encode(t) for t in TEXTS], layer=-1, max_length=5)
    assert short.layer == 1 and all(a.size(0) == 5 for a in short.acts)
    assert torch.allclose(short.acts[0], acts.acts[0][:5], atol=1e-6)


def test_top_contexts_are_the_largest_activations_in_order(gpt2_like, char_tokenizer):
    acts = neuron_activations(gpt2_like, TEXTS, layer=0, tokenizer=char_tokenizer)
    n = acts.strongest(1)[0][0]
    contexts = acts.top_contexts(n, k=6, window=3)
    values = [c.activation for c in contexts]
    everything = torch.cat(acts.of(n))
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(float(everything.max()))
    assert values == pytest.approx(everything.topk(6).values.tolist())
    for c in contexts:
        assert c.tokens[c.center] == acts.tokens[c.text_index][c.position]
        assert c.activations[c.center] == pytest.approx(c.activation)
        assert len(c.tokens) <= 7
    assert acts.selectivity().shape == (acts.n_neurons,)


@pytest.mark.parametrize("which", ["gpt2_like", "llama_like"])
def test_logit_effect_reads_the_output_column_through_the_final_gain(request, which, char_tokenizer):
    model = request.getfixturevalue(which)
    effect = neuron_logit_effect(model, 1, 7, tokenizer=char_tokenizer, k=3)
    with torch.no_grad():
        w = model.blocks[1].mlp.fc_out.weight[:, 7]
        if isinstance(model.ln_f, torch.nn.LayerNorm):
            w = w - w.mean()
        scores = model.lm_head.weight @ (w * model.ln_f.weight)
    assert effect.promoted_ids == scores.topk(3).indices.tolist()
    assert effect.suppressed_ids == (-scores).topk(3).indices.tolist()
    assert [s for _, s in effect.promoted] == pytest.approx(scores.topk(3).values.tolist(), abs=1e-5)


def test_bad_input_gets_one_line_errors(gpt2_like, classifier, char_tokenizer):
    acts = neuron_activations(gpt2_like, TEXTS[:2], layer=0, tokenizer=char_tokenizer)
    for call, words in [
        (lambda: neuron_activations(gpt2_like, TEXTS, layer=0), "pass tokenizer="),
        (lambda: neuron_activations(gpt2_like, TEXTS, layer=5, tokenizer=char_tokenizer), "layer must be an integer"),
        (lambda: neuron_activations(gpt2_like, ["", "a"], layer=0, tokenizer=char_tokenizer), "has no tokens"),
        (lambda: acts.top_contexts(10_000), "layer 0 has 128 MLP units"),
        (lambda: neuron_logit_effect(classifier, 0, 0), "pass a labkit GPT"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value)
