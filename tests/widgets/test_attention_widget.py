"""AttentionWidget without a kernel: traits carry the binary payload, selections are validated, qk mode re-encodes."""

from __future__ import annotations

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.frontend import module_text, unpack_arrays
from labkit.models import GPT, GPTConfig
from labkit.widgets import AttentionWidget

HOSTILE = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def cache():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=3, n_head=2, n_embd=16)).eval()
    ids = torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(2))
    _, cache = model.run_with_cache(ids, names=lambda n: n.endswith(("hook_q", "hook_k", "hook_pattern")))
    return cache


TOKENS = ["a", HOSTILE, "c", "d", "e", "f"]


def test_from_cache_fills_the_traits_with_the_binary_payload(cache):
    w = AttentionWidget.from_cache(cache, TOKENS, layer=2, head=1)
    assert w.shape == [3, 2, 6, 6] and (w.layer, w.head, w.view) == (2, 1, "head")
    assert w.tokens == TOKENS and w.target_tokens == []
    assert isinstance(w.payload, bytes) and len(w.payload) == 3 * 2 * 6 * 6 * 2  # float16, dense
    decoded = unpack_arrays(w.header, w.payload)["attn"]
    torch.testing.assert_close(decoded, cache.stack("hook_pattern")[:, 0].half().float())
    assert w._esm == module_text("attention.js") and "export default" in w._esm and w._css


def test_trait_metadata_syncs_what_the_front_end_reads(cache):
    w = AttentionWidget.from_cache(cache, TOKENS)
    synced = {name for name, trait in w.traits(sync=True).items()}
    assert {
        "tokens",
        "target_tokens",
        "payload",
        "header",
        "shape",
        "view",
        "layer",
        "head",
        "focus_token",
        "info",
    } <= synced
    assert all(w.trait_metadata(n, "help") for n in ("tokens", "payload", "layer", "head", "focus_token"))


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("layer", 3, r"^layer must be an integer in \[0, 2\], got 3; the attention has 3 layers$"),
        ("layer", -1, r"^layer must be an integer in \[0, 2\], got -1"),
        ("head", 2, r"^head must be an integer in \[0, 1\] \(or None\), got 2; the attention has 2 heads$"),
        ("focus_token", 6, r"^focus_token must be an integer in \[0, 5\] \(or None\), got 6; there are 6 query"),
    ],
)
def test_selection_is_validated_against_the_shape(cache, name, value, message):
    w = AttentionWidget.from_cache(cache, TOKENS)
    before = getattr(w, name)
    with pytest.raises(InvalidInputError, match=message):
        setattr(w, name, value)
    assert getattr(w, name) == before
    with pytest.raises(InvalidInputError, match=message):
        AttentionWidget.from_cache(cache, TOKENS, **{name: value})


def test_view_and_input_errors(cache):
    with pytest.raises(Exception, match="view"):
        AttentionWidget.from_cache(cache, TOKENS, view="nope")
    with pytest.raises(InvalidInputError, match="got 2 key tokens"):
        AttentionWidget.from_cache(cache, ["a", "b"])
    plain = AttentionWidget(torch.softmax(torch.randn(2, 2, 4, 4), -1))
    with pytest.raises(InvalidInputError, match="view 'qk' needs"):
        plain.view = "qk"
    with pytest.raises(InvalidInputError, match="ActivationCache"):
        AttentionWidget.from_cache(torch.zeros(1, 1, 2, 2))
    with pytest.raises(InvalidInputError, match="shape must be 4 positive sizes"):
        plain.shape = [1, 2]


def test_qk_mode_re_encodes_one_head_when_the_selection_changes(cache):
    w = AttentionWidget.from_cache(cache, TOKENS, view="qk", layer=1, head=0)
    arrays = unpack_arrays(w.header, w.payload)
    torch.testing.assert_close(arrays["q"][0, 0], cache["blocks.1.attn.hook_q"][0, :, 0].half().float())
    assert w.info["layer_ids"] == [1] and w.info["head_ids"] == [0]
    w.layer, w.head = 2, 1
    arrays = unpack_arrays(w.header, w.payload)
    torch.testing.assert_close(arrays["k"][0, 0], cache["blocks.2.attn.hook_k"][0, :, 1].half().float())
    assert w.info["layer_ids"] == [2] and w.info["head_ids"] == [1]
    w.view = "model"  # back to every layer and head
    assert unpack_arrays(w.header, w.payload)["attn"].shape == (3, 2, 6, 6)


def test_cross_attention_widget_carries_both_token_lists():
    att = torch.softmax(torch.randn(2, 2, 3, 5), -1)
    w = AttentionWidget(att, ["s0", "s1", "s2", "s3", "s4"], query_tokens=["t0", "t1", "t2"], view="cross")
    assert w.tokens == ["s0", "s1", "s2", "s3", "s4"] and w.target_tokens == ["t0", "t1", "t2"]
    assert w.info["q_label"].startswith("target")


def test_mimebundle_adds_static_fallbacks_and_escapes_tokens(cache):
    w = AttentionWidget.from_cache(cache, TOKENS, layer=1, head=0)
    data, _ = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "<img" not in data["image/svg+xml"] and "<img" not in data["text/plain"]
    assert data["text/plain"].startswith("AttentionView(head)") and "layer 1, head 0" in data["text/plain"]
    page = w.to_view().to_html()
    assert "<img" not in page and page.count("</script>") == 2


def test_pruning_options_reach_the_payload():
    att = torch.softmax(torch.randn(1, 2, 8, 8), -1)
    w = AttentionWidget(att, top_k=3)
    assert w.header["arrays"]["attn"]["top_k"] == 3 and len(w.payload) == 1 * 2 * 8 * 3 * 4
