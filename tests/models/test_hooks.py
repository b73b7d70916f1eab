"""Hook points: caching leaves outputs unchanged, only asked-for names are cached, hooks can ablate and are removed."""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models import GPT, ActivationCache, GPTConfig, HookPoint


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))


def test_hook_names_are_module_paths(model):
    names = model.hook_names()
    for expected in (
        "hook_embed",
        "hook_pos_embed",
        "blocks.0.hook_resid_pre",
        "blocks.1.attn.hook_pattern",
        "blocks.1.mlp.hook_post",
        "hook_normalized",
    ):
        assert expected in names
    assert all(model.get_submodule(n).name == n for n in names)


def test_run_with_cache_leaves_output_unchanged_and_caches_all(model, ids):
    plain = model(ids).logits
    out, cache = model.run_with_cache(ids)
    torch.testing.assert_close(out.logits, plain, atol=1e-6, rtol=0)
    assert set(cache) == set(model.hook_names())
    assert cache["blocks.0.attn.hook_q"].shape == (2, 9, 2, 8)
    assert cache.pattern(1).shape == (2, 2, 9, 9)
    torch.testing.assert_close(cache.pattern(1).sum(-1), torch.ones(2, 2, 9))
    # the pattern is causal: nothing above the diagonal
    assert cache.pattern(0)[..., 0, 1:].abs().max() == 0


@pytest.mark.parametrize(
    "names, expected",
    [
        ("hook_embed", {"hook_embed"}),
        (
            ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
            {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post"},
        ),
        (lambda n: n.endswith("hook_pattern"), {"blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"}),
    ],
)
def test_run_with_cache_caches_only_what_was_asked(model, ids, names, expected):
    _, cache = model.run_with_cache(ids, names=names)
    assert set(cache) == expected


def test_cached_pattern_equals_output_attentions(model, ids):
    out, cache = model.run_with_cache(ids, names=lambda n: "hook_pattern" in n, output_attentions=True)
    torch.testing.assert_close(cache.stack("hook_pattern"), torch.stack(out.attentions))
    assert cache.stack("hook_pattern").shape == (2, 2, 2, 9, 9)


def test_cache_helpers(model, ids):
    _, cache = model.run_with_cache(ids, names="hook_embed", device="cpu")
    assert isinstance(cache, ActivationCache) and len(cache) == 1 and list(cache.keys()) == ["hook_embed"]
    assert not cache["hook_embed"].requires_grad
    assert cache.to("cpu")["hook_embed"].device.type == "cpu"
    with pytest.raises(UnknownNameError, match="hook_embed"):
        cache["hook_embedd"]
    with pytest.raises(UnknownNameError):
        cache.stack("hook_nothing")
    _, kept = model.run_with_cache(ids, names="hook_embed", detach=False)
    assert kept["hook_embed"].requires_grad


def test_sdpa_path_equals_explicit_path_with_padding(model, ids):
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    fast = model(ids, attention_mask=mask).logits
    slow, cache = model.run_with_cache(ids, attention_mask=mask, names="blocks.0.attn.hook_pattern")
    torch.testing.assert_close(slow.logits[mask.bool()], fast[mask.bool()], atol=1e-5, rtol=0)
    # padded keys get no attention from real queries
    assert cache.pattern(0)[0, :, 3:, :3].abs().max() == 0


def test_run_with_hooks_ablates_and_removes_hooks(model, ids):
    plain = model(ids).logits
    ablated = model.run_with_hooks(
        ids, fwd_hooks=[("blocks.0.attn.hook_z", lambda t, hook: torch.zeros_like(t))]
    ).logits
    assert (ablated - plain).abs().max() > 1e-3
    assert not any(p.has_hooks for p in model.hook_points().values())
    torch.testing.assert_close(model(ids).logits, plain)


def test_zero_ablating_attention_equals_removing_its_output(model, ids):
    # ablating hook_z of layer 1 is the same as setting the layer's out_proj contribution to its bias only
    seen = {}

    def look(t, hook):
        seen[hook.name] = t

    out = model.run_with_hooks(
        ids, fwd_hooks=[("blocks.1.attn.hook_z", lambda t, hook: torch.zeros_like(t)), ("blocks.1.hook_attn_out", look)]
    )
    bias = model.blocks[1].attn.out_proj.bias
    torch.testing.assert_close(seen["blocks.1.hook_attn_out"], bias.expand_as(seen["blocks.1.hook_attn_out"]))
    assert out.logits.shape == (2, 9, 50)


def test_hooks_removed_even_when_forward_raises(model, ids):
    def boom(t, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.run_with_hooks(ids, fwd_hooks=[(lambda n: n.endswith("hook_resid_mid"), boom)])
    assert not any(p.has_hooks for p in model.hook_points().values())


def test_hooks_context_manager_and_has_hooks(model, ids):
    point = model.get_submodule("blocks.0.attn.hook_pattern")
    assert isinstance(point, HookPoint) and not point.has_hooks
    with model.hooks([("blocks.0.attn.hook_pattern", lambda t, hook: None)]):
        assert point.has_hooks
    assert not point.has_hooks


def test_bad_hook_names_and_functions(model, ids):
    with pytest.raises(UnknownNameError, match="blocks.0.attn.hook_pattern"):
        model.run_with_cache(ids, names="blocks.0.attn.hook_patern")
    with pytest.raises(UnknownNameError, match="unknown hook point"):
        model.run_with_hooks(ids, fwd_hooks=[("nope", lambda t, h: None)])
    with pytest.raises(InvalidInputError, match="not callable"):
        model.run_with_hooks(ids, fwd_hooks=[("hook_embed", 3)])
    assert not any(p.has_hooks for p in model.hook_points().values())
