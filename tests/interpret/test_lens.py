"""Logit lens: its last row is the model's own output, its records agree with the logits, bad targets fail in one line.

Parity with TransformerLens's accumulated_resid(apply_ln=True) + unembed is in test_parity_transformer_lens.py.
"""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.interpret import lens_logits, logit_lens, residual_stack


@pytest.mark.parametrize("which", ["gpt2_like", "llama_like"])
def test_last_row_is_the_model_output_and_rows_decode_the_stream(request, which, char_tokenizer):
    model = request.getfixturevalue(which)
    ids = torch.tensor([char_tokenizer.encode("the cat sat on the mat")])
    stack = residual_stack(model, ids)
    assert stack.shape == (3, 1, ids.size(1), 32)
    _, cache = model.run_with_cache(ids, names=["hook_embed", "blocks.1.hook_resid_pre"])
    assert torch.equal(stack[1], cache["blocks.1.hook_resid_pre"])
    logits = lens_logits(model, ids)
    with torch.no_grad():
        assert (logits[-1] - model(ids).logits).abs().max() < 1e-5
        assert (logits[0] - model.lm_head(model.ln_f(stack[0]))).abs().max() < 1e-5
    assert (logits[0] - logits[-1]).abs().max() > 0.1  # the depths really differ


def test_records_agree_with_the_logits(gpt2_like, char_tokenizer):
    ids = char_tokenizer.encode("the dog sat on the log")
    lens = logit_lens(gpt2_like, ids, tokenizer=char_tokenizer, target="next", top_k=4, keep_logits=True)
    probs = torch.softmax(lens.logits, dim=-1)
    assert lens.labels == ["emb", "1", "2"] and lens.tokens == list("the dog sat on the log")
    assert torch.allclose(lens.top_probs, probs.topk(4, dim=-1).values, atol=1e-6)
    assert lens.top_tokens[2][0][0] == char_tokenizer.decode([int(lens.top_ids[2, 0, 0])])
    t = lens.target_ids
    assert t[:-1].tolist() == ids[1:] and t[-1] == -1 and lens.target_tokens[-1] == ""
    for r in range(3):
        for p in range(len(ids) - 1):
            row = probs[r, p]
            assert lens.target_probs[r, p] == pytest.approx(float(row[t[p]]), abs=1e-6)
            assert lens.target_ranks[r, p] == int((row > row[t[p]]).sum()) + 1
    assert torch.isnan(lens.target_probs[:, -1]).all() and (lens.target_ranks[:, -1] == 0).all()
    assert torch.allclose(lens.entropy, -(probs * probs.log()).sum(-1), atol=1e-4)
    assert lens.kl_to_final[-1].abs().max() < 1e-5 and (lens.kl_to_final >= 0).all()
    frame = lens.to_pandas(position=3)
    assert list(frame.index) == lens.labels and frame["target"].iloc[0] == "d"


def test_targets_final_fixed_and_text(gpt2_like, char_tokenizer):
    ids = char_tokenizer.encode("a bird flew")
    final = logit_lens(gpt2_like, ids)
    assert final.target_kind == "final" and (final.target_ranks[-1] == 1).all()
    assert final.first_row_with_target_on_top(-1) is not None
    fixed = logit_lens(gpt2_like, ids, target="t", tokenizer=char_tokenizer)
    assert (fixed.target_ids == char_tokenizer.encode("t")[0]).all() and fixed.target_kind == "given"
    per_pos = logit_lens(gpt2_like, ids, target=[-1] * (len(ids) - 1) + [5])
    assert per_pos.target_ids.tolist() == [-1] * (len(ids) - 1) + [5]


def test_bad_input_gets_one_line_errors(gpt2_like, classifier, char_tokenizer):
    ids = char_tokenizer.encode("the cat")
    cases = [
        (dict(target=10_000), "target id 10000 is not in the vocabulary"),
        (dict(target="cat", tokenizer=char_tokenizer), "not one token of this vocabulary"),
        (dict(target="zzz"), "pass tokenizer="),
        (dict(target=[1, 2]), "one token per position"),
        (dict(top_k=0), "top_k must be an integer"),
    ]
    for kwargs, words in cases:
        with pytest.raises(InvalidInputError) as info:
            logit_lens(gpt2_like, ids, **kwargs)
        assert words in str(info.value) and "\n" not in str(info.value), kwargs
    with pytest.raises(InvalidInputError, match="one sequence at a time"):
        logit_lens(gpt2_like, [ids, ids])
    with pytest.raises(InvalidInputError, match="pass a labkit GPT"):
        logit_lens(classifier, ids)
    with pytest.raises(InvalidInputError, match="integer token ids"):
        logit_lens(gpt2_like, torch.rand(5))


def test_ids_beyond_the_tokenizer_show_as_numbers(char_tokenizer):
    from labkit.interpret import token_texts

    assert token_texts(char_tokenizer, [char_tokenizer.encode("a")[0], char_tokenizer.vocab_size + 3]) == [
        "a",
        f"#{char_tokenizer.vocab_size + 3}",
    ]
    assert token_texts(None, [4]) == ["#4"]
