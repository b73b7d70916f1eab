"""Sampling functions equal Hugging Face's logits processors on random logits (ties included) and draw correctly."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError
from labkit.generation import apply_repetition_penalty, apply_temperature, greedy, sample, top_k_filter, top_p_filter

lp = pytest.importorskip("transformers.generation.logits_process")


@st.composite
def logits_batches(draw):
    """[batch, vocab] logits; half the time drawn from a few integers so that ties are frequent."""
    batch, vocab = draw(st.integers(1, 4)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if draw(st.booleans()):
        return torch.randint(-3, 4, (batch, vocab), generator=g).float()
    return torch.randn(batch, vocab, generator=g) * draw(st.sampled_from([0.1, 1.0, 8.0]))


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert torch.equal(torch.isinf(a), torch.isinf(b))
    finite = ~torch.isinf(a)
    assert torch.equal(a[finite], b[finite])


@settings(max_examples=60, deadline=None)
@given(logits_batches(), st.floats(0.05, 5.0))
def test_temperature_matches_transformers(logits, t):
    _same(apply_temperature(logits, t), lp.TemperatureLogitsWarper(t)(None, logits.clone()))


@settings(max_examples=80, deadline=None)
@given(logits_batches(), st.integers(1, 45), st.integers(1, 3))
def test_top_k_matches_transformers(logits, k, keep):
    ref = lp.TopKLogitsWarper(k, min_tokens_to_keep=keep)(None, logits.clone())
    _same(top_k_filter(logits, k, min_tokens_to_keep=keep), ref)


@settings(max_examples=80, deadline=None)
@given(logits_batches(), st.floats(0.01, 1.0), st.integers(1, 3))
def test_top_p_matches_transformers(logits, p, keep):
    ref = lp.TopPLogitsWarper(p, min_tokens_to_keep=keep)(None, logits.clone())
    _same(top_p_filter(logits, p, min_tokens_to_keep=keep), ref)


@settings(max_examples=60, deadline=None)
@given(logits_batches(), st.floats(0.2, 3.0), st.integers(0, 12), st.integers(0, 2**31 - 1))
def test_repetition_penalty_matches_transformers(logits, penalty, seq, seed):
    ids = torch.randint(0, logits.size(-1), (logits.size(0), seq), generator=torch.Generator().manual_seed(seed))
    ref = lp.RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
    _same(apply_repetition_penalty(logits, ids, penalty), ref)


def test_filters_are_pure_and_work_on_any_leading_shape():
    logits = torch.randn(2, 3, 11)
    before = logits.clone()
    out = top_p_filter(top_k_filter(logits, 4), 0.7)
    assert torch.equal(logits, before)
    flat = top_p_filter(top_k_filter(logits.view(6, 11), 4), 0.7)
    _same(out.view(6, 11), flat)
    ids = torch.randint(0, 11, (2, 3, 5))
    _same(
        apply_repetition_penalty(logits, ids, 1.3).view(6, 11),
        apply_repetition_penalty(logits.view(6, 11), ids.view(6, 5), 1.3),
    )


def test_greedy_is_argmax_and_sample_respects_filters():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 30, generator=g)
    assert torch.equal(greedy(logits), logits.argmax(-1))
    assert torch.equal(sample(logits, temperature=0.0), greedy(logits))
    assert torch.equal(sample(logits, top_k=1, generator=g), greedy(logits))
    draws = sample(logits.expand(4, 64, 30), top_k=3, generator=g)
    allowed = logits.topk(3, dim=-1).indices
    assert (draws[..., None] == allowed).any(-1).all()
    kept = ~torch.isinf(top_p_filter(logits, 0.5))
    draws = sample(logits, top_p=0.5, generator=g)
    assert kept.gather(-1, draws[:, None]).all()


def test_sample_with_a_seeded_generator_is_deterministic_and_follows_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    a = sample(logits.expand(5000, 4), temperature=0.7, generator=torch.Generator().manual_seed(3))
    b = sample(logits.expand(5000, 4), temperature=0.7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    freq = torch.bincount(a, minlength=4).float() / a.numel()
    assert (freq - torch.softmax(logits / 0.7, -1)).abs().max() < 0.03


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda x: top_p_filter(x, 0.0), "top_p"),
        (lambda x: top_p_filter(x, 1.5), "top_p"),
        (lambda x: top_k_filter(x, 0), "top_k"),
        (lambda x: apply_temperature(x, -1.0), "temperature"),
        (lambda x: sample(x, temperature=-0.5), "temperature"),
        (lambda x: apply_repetition_penalty(x, torch.zeros(2, 1, dtype=torch.long), 0.0), "repetition_penalty"),
        (lambda x: apply_repetition_penalty(x, torch.zeros(3, 1, dtype=torch.long), 1.2), "previous_ids"),
    ],
)
def test_bad_parameters_raise_one_line_errors(call, fragment):
    with pytest.raises(InvalidInputError) as info:
        call(torch.randn(2, 5))
    assert fragment in str(info.value) and "\n" not in str(info.value)
