"""bertviz's neuron view from a labkit cache: the vectors it draws are the model's, the page is offline and inert."""

from __future__ import annotations

import html
import json
import re

import pytest
import torch

pytest.importorskip("bertviz")

from labkit.errors import InvalidInputError  # noqa: E402
from labkit.models import GPT, Encoder, EncoderConfig, GPTConfig  # noqa: E402
from labkit.viz import bertviz_neuron_view  # noqa: E402

HOSTILE = "</script><img src=x onerror=alert(1)>"
NAMES = ("hook_q", "hook_k", "hook_pattern")


def _params(view) -> dict:
    m = re.search(r"window\.bertviz_params = ", view.page)
    return json.JSONDecoder().raw_decode(view.page, m.end())[0]


def _cache(model, ids):
    with torch.no_grad():
        return model.run_with_cache(ids, names=lambda n: n.endswith(NAMES))[1]


@pytest.fixture(scope="module")
def encoder_cache():
    torch.manual_seed(0)
    model = Encoder(EncoderConfig(vocab_size=30, block_size=16, n_layer=2, n_head=3, n_embd=12)).eval()
    return _cache(model, torch.randint(0, 30, (1, 5)))


def test_vectors_and_weights_are_the_models_and_reproduce_the_softmax(encoder_cache):
    toks = ["[CLS]", "a", HOSTILE, "b", "[SEP]"]
    view = bertviz_neuron_view(encoder_cache, toks, layer=1, head=2, decimals=None)
    p = _params(view)
    data = p["attention"]["all"]
    assert p["bidirectional"] is True and (p["layer"], p["head"]) == (1, 2)
    assert data["left_text"] == toks == data["right_text"]
    q = torch.tensor(data["queries"][1][2])  # [pos, d_head]
    k = torch.tensor(data["keys"][1][2])
    assert torch.equal(q, encoder_cache["blocks.1.attn.hook_q"][0][:, 2])
    attn = torch.tensor(data["attn"][1][2])
    torch.testing.assert_close(torch.softmax(q @ k.T / q.shape[-1] ** 0.5, -1), attn, atol=1e-6, rtol=1e-5)


def test_page_is_offline_and_token_text_inert(encoder_cache):
    view = bertviz_neuron_view(encoder_cache, ["x", HOSTILE, "y", "z", "w"])
    assert HOSTILE not in view.page  # only its escaped JSON form
    body = view.page.split("</head>", 1)[1]  # the head holds the vendored d3/jQuery/require.js (namespace URIs)
    assert not re.search(r"[\"'(=]\s*https?://", body)
    assert "require.config" not in body and "define('d3'" in view.page
    frame = view.to_html()
    assert frame.startswith("<iframe") and "<script>" not in frame  # the page sits escaped in srcdoc
    assert html.unescape(frame.split('srcdoc="')[1].split('" style=')[0]) == view.page
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"} and "neuron" in bundle["text/plain"]


def test_decoder_with_grouped_query_attention_is_drawn_causal():
    torch.manual_seed(1)
    model = GPT(
        GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=4, n_kv_head=2, n_embd=16, positions="rotary")
    ).eval()
    cache = _cache(model, torch.randint(0, 20, (1, 4)))
    p = _params(bertviz_neuron_view(cache, head=3))
    assert p["bidirectional"] is False
    keys = torch.tensor(p["attention"]["all"]["keys"][0])  # [head, pos, d]: key head 1 serves query heads 2 and 3
    assert keys.shape[0] == 4 and torch.equal(keys[2], keys[3]) and not torch.equal(keys[1], keys[2])


def test_bad_input_raises_one_line(encoder_cache):
    with pytest.raises(InvalidInputError, match="layer 2 is out of range"):
        bertviz_neuron_view(encoder_cache, layer=2)
    with pytest.raises(InvalidInputError, match="head -1"):
        bertviz_neuron_view(encoder_cache, head=-1)
    with pytest.raises(InvalidInputError, match="display_mode"):
        bertviz_neuron_view(encoder_cache, display_mode="blue")
    patterns_only = {k: v for k, v in encoder_cache.items() if k.endswith("hook_pattern")}
    with pytest.raises(InvalidInputError, match="hook_q"):
        bertviz_neuron_view(patterns_only)
    with pytest.raises(InvalidInputError, match="ActivationCache"):
        bertviz_neuron_view(torch.zeros(1, 1, 2, 2))
