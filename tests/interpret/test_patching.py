"""Activation patching: every cut of every hook equals a plain one-patch-per-run loop, on GPT-2, Llama and BERT shapes.

The loop below is the definition (run the corrupted prompt once per patch, with one hook that copies the clean
activation in); `activation_patching` batches many patches per forward pass and skips positions a causal model
cannot see change. TransformerLens parity is in test_parity_transformer_lens.py.
"""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.interpret import PATCH_HOOKS, activation_patching, logit_diff_metric


def one_by_one(model, clean, corrupted, hook, by, metric):
    """The reference: one forward pass per patch, one hook, no batching, no skipping."""
    template = PATCH_HOOKS[hook][0]
    L, seq = len(model.blocks), clean.size(1)
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
        heads = cache[template.format(0)].size(2) if hook == "head_out" else 1
        sizes = {"layer": L, "pos": seq, "head": heads}
        dims = {
            "layer_pos": ("layer", "pos"),
            "layer": ("layer",),
            "head": ("layer", "head"),
            "head_pos": ("layer", "pos", "head"),
        }[by]
        out = torch.zeros(tuple(sizes[d] for d in dims))
        for index in torch.cartesian_prod(*[torch.arange(sizes[d]) for d in dims]).reshape(-1, len(dims)).tolist():
            spec = dict(zip(dims, index))
            name = template.format(spec["layer"])
            pos = slice(None) if "pos" not in spec else spec["pos"]

            def patch(x, _hook, spec=spec, name=name, pos=pos):
                x = x.clone()
                if "head" in spec:
                    x[:, pos, spec["head"]] = cache[name][:, pos, spec["head"]]
                else:
                    x[:, pos] = cache[name][:, pos]
                return x

            out[tuple(index)] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, patch)]).logits)
    return out


def lm_prompts(tok):
    clean = torch.tensor([tok.encode("the cat sat "), tok.encode("a dog flew o")])
    corrupted = clean.clone()
    corrupted[:, 4] = torch.tensor(tok.encode("bt"))
    return clean, corrupted


CUTS = [(hook, by) for hook, (_, cuts) in PATCH_HOOKS.items() for by in cuts]


@pytest.mark.parametrize("hook, by", CUTS, ids=[f"{h}-{b}" for h, b in CUTS])
@pytest.mark.parametrize("which", ["gpt2_like", "llama_like"])
def test_batched_sweeps_equal_one_patch_per_run(request, which, hook, by, char_tokenizer, one_torch_thread):
    model = request.getfixturevalue(which)
    clean, corrupted = lm_prompts(char_tokenizer)
    metric = logit_diff_metric([3, 8], [5, 1])
    ours = activation_patching(model, clean, corrupted, hook=hook, by=by, metric=metric, batch_size=10)
    ref = one_by_one(model, clean, corrupted, hook, by, metric)
    assert ours.dims and ours.scores.shape == ref.shape
    assert (ours.scores - ref).abs().max() < 1e-5
    assert (ref - ours.corrupted_metric).abs().max() > 1e-3  # the patches change the answer: agreement is not luck


def test_a_bidirectional_classifier_is_patched_at_every_position(classifier, char_tokenizer, one_torch_thread):
    clean = torch.tensor([char_tokenizer.encode("the cat sat")])
    corrupted = clean.clone()
    corrupted[0, 6] = char_tokenizer.encode("x")[0]

    def metric(logits):  # [batch, classes]
        return (logits[:, 0] - logits[:, 2]).mean()

    ours = activation_patching(classifier, clean, corrupted, hook="resid_post", metric=metric)
    ref = one_by_one(classifier, clean, corrupted, "resid_post", "layer_pos", metric)
    assert (ours.scores - ref).abs().max() < 1e-5
    assert (ours.scores[:, :6] - ours.corrupted_metric).abs().max() > 1e-4  # no causal skipping here


def test_patching_the_whole_input_stream_restores_the_clean_run(gpt2_like, char_tokenizer):
    clean, corrupted = lm_prompts(char_tokenizer)
    r = activation_patching(gpt2_like, clean, corrupted, hook="resid_pre", by="layer", answer=[3, 8], wrong=[5, 1])
    assert r.scores[0] == pytest.approx(r.clean_metric, abs=1e-5)
    assert r.recovered[0] == pytest.approx(1.0, abs=1e-4)
    every_head = activation_patching(
        gpt2_like, clean, corrupted, hook="head_out", by="layer", answer=[3, 8], wrong=[5, 1]
    )
    attn = activation_patching(gpt2_like, clean, corrupted, hook="attn_out", by="layer", answer=[3, 8], wrong=[5, 1])
    assert (every_head.scores - attn.scores).abs().max() < 1e-5  # all heads' z at once = the attention output
    top = r.top(1)[0]
    assert top[0][0] in r.layers and abs(top[1]) == pytest.approx(float(r.recovered.abs().max()))


def test_a_subset_of_layers_and_text_answers(gpt2_like, char_tokenizer):
    clean, corrupted = lm_prompts(char_tokenizer)
    full = activation_patching(gpt2_like, clean, corrupted, answer="a", wrong="t", tokenizer=char_tokenizer)
    one = activation_patching(gpt2_like, clean, corrupted, answer="a", wrong="t", tokenizer=char_tokenizer, layers=[-1])
    assert one.layers == [1] and torch.allclose(one.scores[0], full.scores[1], atol=1e-6)
    assert full.tokens[:4] == ["t", "h", "e", " "]


def test_bad_input_gets_one_line_errors(gpt2_like, char_tokenizer):
    clean, corrupted = lm_prompts(char_tokenizer)
    cases = [
        (dict(hook="resid_pr"), UnknownNameError, "did you mean 'resid_pre'"),
        (dict(hook="blocks.0.hook_attn"), UnknownNameError, "unknown hook"),
        (dict(hook="attn_out", by="head"), UnknownNameError, "attn_out can be patched by layer_pos, layer"),
        (dict(answer=10_000, wrong=1), InvalidInputError, "not in the vocabulary"),
        (dict(answer="cat", wrong="t", tokenizer=char_tokenizer), InvalidInputError, "not one token"),
        (dict(), InvalidInputError, "answer= and wrong="),
        (dict(metric=lambda logits: logits[:, -1, 0]), InvalidInputError, "one number"),
        (dict(answer=1, wrong=2, layers=[7]), InvalidInputError, "layer must be an integer in [-2, 1]"),
        (dict(answer=1, wrong=2, batch_size=0), InvalidInputError, "batch_size"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error) as info:
            activation_patching(gpt2_like, clean, corrupted, **kwargs)
        assert words in str(info.value) and "\n" not in str(info.value), kwargs
    with pytest.raises(InvalidInputError, match="same length") as info:
        activation_patching(gpt2_like, clean, corrupted[:, :-1], answer=1, wrong=2)
    assert "\n" not in str(info.value)
    same = activation_patching(gpt2_like, clean, clean, answer=1, wrong=2)
    with pytest.raises(InvalidInputError, match="nothing can be recovered"):
        same.recovered  # noqa: B018
