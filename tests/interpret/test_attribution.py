"""Attribution: integrated gradients equals Captum's LayerIntegratedGradients and a hand-written quadrature,
completeness holds to 1% of |f(x) - f(baseline)| at 50 steps, gradient x input and rollout follow their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.interpret import attention_rollout, attribute

TOL = 1e-5


def _ids(tok, text="the cat sat on the mat"):
    return torch.tensor([tok.encode(text)])


def test_integrated_gradients_equals_captum_layer_integrated_gradients_on_a_gpt(gpt2_like, char_tokenizer):
    from captum.attr import LayerIntegratedGradients

    ids = _ids(char_tokenizer)
    base = torch.full_like(ids, char_tokenizer.encode(" ")[0])  # every token replaced by a space
    ours = attribute(gpt2_like, ids, target=7, position=-2, baseline=base, steps=50)
    lig = LayerIntegratedGradients(lambda x: gpt2_like(x).logits[:, -2, 7], gpt2_like.wte)
    theirs, delta = lig.attribute(ids, baselines=base, n_steps=50, return_convergence_delta=True)
    assert ours.vectors.abs().max() > 0.01
    assert (ours.vectors - theirs[0]).abs().max() < TOL
    assert ours.delta == pytest.approx(float(delta[0]), abs=TOL)
    assert ours.explains == f"logit of '#7' at position {ids.size(1) - 2}"  # no tokenizer given: ids as #n


def test_integrated_gradients_equals_captum_on_a_bert_classifier(classifier, char_tokenizer):
    from captum.attr import LayerIntegratedGradients

    ids = _ids(char_tokenizer, "the dog sat")
    mask = torch.ones_like(ids)
    base = ids.clone()
    base[0, 1:-1] = 0  # keep the first and last token, blank the rest
    ours = attribute(classifier, ids, target=2, baseline=base, attention_mask=mask)
    lig = LayerIntegratedGradients(
        lambda x: classifier(x, attention_mask=mask.expand_as(x)).logits[:, 2], classifier.embed.token
    )
    theirs = lig.attribute(ids, baselines=base, n_steps=50)
    assert (ours.vectors - theirs[0]).abs().max() < TOL
    assert ours.scores.shape == (ids.size(1),) and ours.target_id == 2 and ours.explains == "logit of class 2"


def test_integrated_gradients_equals_a_hand_written_gauss_legendre_sum(gpt2_like, char_tokenizer):
    ids = _ids(char_tokenizer, "a bird flew")
    steps = 20
    ours = attribute(gpt2_like, ids, target=3, steps=steps)  # baseline: zero vectors
    x = gpt2_like.wte(ids).detach()
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    total = torch.zeros_like(x)
    for node, weight in zip(nodes, weights):
        point = ((node + 1) / 2 * x).requires_grad_()
        handle = gpt2_like.wte.register_forward_hook(lambda m, a, o, point=point: point)
        f = gpt2_like(ids).logits[0, -1, 3]
        handle.remove()
        total += weight / 2 * torch.autograd.grad(f, point)[0]
    assert (ours.vectors - (x * total)[0]).abs().max() < TOL


def test_gradient_x_input_is_the_embedding_times_its_gradient(llama_like, char_tokenizer):
    ids = _ids(char_tokenizer)
    ours = attribute(llama_like, ids, method="gradient_x_input", target="t", tokenizer=char_tokenizer)
    x = llama_like.wte(ids).detach().requires_grad_()
    handle = llama_like.wte.register_forward_hook(lambda m, a, o: x)
    f = llama_like(ids).logits[0, -1, char_tokenizer.encode("t")[0]]
    handle.remove()
    grad = torch.autograd.grad(f, x)[0]
    assert (ours.vectors - (x * grad)[0]).abs().max() < TOL
    assert ours.f_input == pytest.approx(f.item(), abs=TOL) and ours.delta is None and ours.relative_error is None


@pytest.mark.parametrize(
    "which, kwargs",
    [
        ("gpt2_like", dict(target=5)),
        ("gpt2_like", dict(objective="loss")),
        ("llama_like", dict(baseline=0)),
        ("classifier", dict(target=1)),
        ("classifier", dict(objective="loss", target=2)),
    ],
    ids=["gpt2-logit", "gpt2-loss", "llama-pad-baseline", "bert-logit", "bert-loss"],
)
def test_completeness_holds_to_one_percent_at_50_steps(request, which, kwargs, char_tokenizer):
    model = request.getfixturevalue(which)
    a = attribute(model, _ids(char_tokenizer, "the cat sat on the mat."), steps=50, **kwargs)
    gap = a.f_input - a.f_baseline
    assert abs(gap) > 0.05
    assert a.delta == pytest.approx(float(a.scores.sum()) - gap, abs=1e-4)  # the reported delta is the real gap
    assert a.relative_error <= 0.01, a.completeness()
    assert "% of the gap" in a.completeness()


def test_the_model_keeps_its_mode_and_needs_no_grad_mode(gpt2_like, char_tokenizer):
    gpt2_like.train()
    try:
        with torch.no_grad():
            a = attribute(gpt2_like, _ids(char_tokenizer), target=2, steps=8)
        assert gpt2_like.training and a.relative_error is not None
    finally:
        gpt2_like.eval()


def test_attention_rollout_multiplies_mixed_attention(gpt2_like, classifier, char_tokenizer):
    ids = _ids(char_tokenizer, "a bird flew")
    r = attention_rollout(gpt2_like, ids, tokenizer=char_tokenizer)
    _, cache = gpt2_like.run_with_cache(ids, names=lambda n: n.endswith("hook_pattern"))
    eye = torch.eye(ids.size(1))
    a0, a1 = (0.5 * eye + 0.5 * cache[f"blocks.{i}.attn.hook_pattern"][0].mean(0) for i in range(2))
    assert torch.allclose(r.vectors, a1 @ a0, atol=1e-6)
    assert torch.allclose(r.vectors.sum(-1), torch.ones(ids.size(1)), atol=1e-5)
    assert torch.equal(r.scores, r.vectors[-1]) and r.vectors[0, 1:].abs().max() == 0  # causal: nothing from the future
    assert torch.equal(attention_rollout(gpt2_like, ids, residual=1.0).vectors, eye)
    cls = attention_rollout(classifier, ids)
    assert "position 0" in cls.explains and torch.equal(cls.scores, cls.vectors[0])


def test_bad_input_gets_one_line_errors(gpt2_like, char_tokenizer):
    ids = _ids(char_tokenizer)
    cases = [
        (
            dict(steps=0),
            InvalidInputError,
            "steps must be an integer >= 1, got 0; integrated gradients needs at least one step",
        ),
        (dict(method="saliency"), UnknownNameError, "method must be one of"),
        (dict(target=10_000), InvalidInputError, "not in the vocabulary"),
        (dict(target="xyz", tokenizer=char_tokenizer), InvalidInputError, "not one token"),
        (dict(baseline=torch.zeros(3, dtype=torch.long)), InvalidInputError, "give one per token"),
        (dict(baseline="ones"), UnknownNameError, "baseline must be one of 'zeros'"),
        (dict(position=99), InvalidInputError, "position must be an integer"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error) as info:
            attribute(gpt2_like, ids, **kwargs)
        assert words in str(info.value) and "\n" not in str(info.value), kwargs
