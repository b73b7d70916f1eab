"""Issue 17's bad inputs: each is refused in one line that names the problem and the fix, before the model runs.

"Before the model runs" is checked, not assumed: a forward pre-hook on the model counts its calls, and every
refusal below must leave the count at zero (a sweep or an integrated-gradients run never starts).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.interpret import activation_patching, attribute, logit_lens


@contextlib.contextmanager
def counting_calls(model):
    """Inside: calls[0] counts the model's forward passes."""
    calls = [0]
    handle = model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def refused(model, call, error, words):
    """Run call(); it must raise `error` whose one-line message holds `words`, with the model never called."""
    with counting_calls(model) as calls, pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert words in message, message
    assert "\n" not in message, message
    assert calls[0] == 0, f"the model ran {calls[0]} time(s) before {message!r}"
    return message


def ids(tok, text):
    return torch.tensor([tok.encode(text)])


def test_the_counter_sees_a_forward_pass(gpt2_like, char_tokenizer):
    with counting_calls(gpt2_like) as calls:
        logit_lens(gpt2_like, ids(char_tokenizer, "the cat"))
    assert calls[0] >= 1


def test_unknown_hook_names_list_close_matches(gpt2_like, char_tokenizer):
    clean, corrupted = ids(char_tokenizer, "the cat"), ids(char_tokenizer, "the bat")
    message = refused(
        gpt2_like,
        lambda: activation_patching(gpt2_like, clean, corrupted, hook="resid_pr", answer=1, wrong=2),
        UnknownNameError,
        "did you mean 'resid_pre'",
    )
    assert "unknown hook" in message
    refused(
        gpt2_like,
        lambda: activation_patching(gpt2_like, clean, corrupted, hook="mlp_outt", answer=1, wrong=2),
        UnknownNameError,
        "did you mean 'mlp_out'",
    )
    refused(  # the full hook names of the model itself
        gpt2_like,
        lambda: gpt2_like.run_with_cache(clean, names="blocks.1.hook_resid_psot"),
        UnknownNameError,
        "'blocks.1.hook_resid_post'",
    )


def test_patching_runs_of_different_lengths(gpt2_like, char_tokenizer):
    clean, longer = ids(char_tokenizer, "the cat"), ids(char_tokenizer, "the cats")
    message = refused(
        gpt2_like,
        lambda: activation_patching(gpt2_like, clean, longer, answer=1, wrong=2),
        InvalidInputError,
        "same length",
    )
    assert "(1, 7)" in message and "(1, 8)" in message
    two = torch.cat([clean, clean])
    refused(
        gpt2_like,
        lambda: activation_patching(gpt2_like, two, clean, answer=1, wrong=2),
        InvalidInputError,
        "same length",
    )


def test_a_target_token_not_in_the_vocabulary(gpt2_like, classifier, char_tokenizer):
    x = ids(char_tokenizer, "the cat")
    size = gpt2_like.config.vocab_size
    for call in (
        lambda: logit_lens(gpt2_like, x, target=size),
        lambda: attribute(gpt2_like, x, target=size),
        lambda: activation_patching(gpt2_like, x, ids(char_tokenizer, "the bat"), answer=size, wrong=1),
    ):
        refused(gpt2_like, call, InvalidInputError, f"id {size} is not in the vocabulary")
    for call in (  # text that is not one token of this vocabulary
        lambda: logit_lens(gpt2_like, x, target="cat", tokenizer=char_tokenizer),
        lambda: attribute(gpt2_like, x, target="cat", tokenizer=char_tokenizer),
    ):
        refused(gpt2_like, call, InvalidInputError, "not one token of this vocabulary")
    refused(
        classifier,
        lambda: attribute(classifier, x, target=3),
        InvalidInputError,
        "the classifier has 3 classes",
    )


@pytest.mark.parametrize("steps", [0, -1])
def test_integrated_gradients_with_no_steps(gpt2_like, char_tokenizer, steps):
    refused(
        gpt2_like,
        lambda: attribute(gpt2_like, ids(char_tokenizer, "the cat"), steps=steps),
        InvalidInputError,
        f"steps must be an integer >= 1, got {steps}; integrated gradients needs at least one step",
    )


def test_the_widgets_refuse_the_same_inputs_in_one_line(gpt2_like, char_tokenizer):
    from labkit.widgets import AttributionWidget, PatchingWidget

    refused(
        gpt2_like,
        lambda: AttributionWidget(gpt2_like, char_tokenizer, "the cat", steps=0),
        InvalidInputError,
        "steps must be an integer >= 1",
    )
    refused(
        gpt2_like,
        lambda: PatchingWidget(
            gpt2_like, ids(char_tokenizer, "the cat"), ids(char_tokenizer, "the cats"), answer=1, wrong=2
        ),
        InvalidInputError,
        "same length",
    )
