"""Attention views: payload round trip and size, every input kind, hostile token text, offline output, errors."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError, MissingSourceError
from labkit.frontend import (
    asset_text,
    auto_top_k,
    classic_script,
    json_for_script,
    pack_arrays,
    png_bytes,
    unpack_arrays,
)
from labkit.models import GPT, GPTConfig, Seq2Seq, Seq2SeqConfig
from labkit.viz import (
    AttentionView,
    attention_heatmap,
    attention_payload,
    attention_tensor,
    cross_attention_view,
    head_view,
    model_view,
    qk_view,
)

HOSTILE = "</script><img src=x onerror=alert(1)>"
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


def _softmax_attention(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(*shape, generator=g), dim=-1)


@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def tokens() -> list[str]:
    return ["The", HOSTILE, " cat", " &amp;", " sat", "\u2028", "\"'"]


# ---------------------------------------------------------------- payload


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    k=st.one_of(st.none(), st.integers(1, 10)),
    seed=st.integers(0, 2**16),
)
def test_payload_round_trip_keeps_float16_values_and_exactly_the_top_k(shape, k, seed):
    t = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    header, data = pack_arrays({"a": t, "b": -t}, {"a": k})
    back = unpack_arrays(json.loads(json.dumps(header)), data)  # the header survives JSON
    half = t.half().float()
    torch.testing.assert_close(back["b"], -half, rtol=0, atol=0)
    if k is None or k >= shape[-1]:
        expected = half
    else:  # kept entries: those at or above the k-th largest of their row (random floats have no ties)
        kth = t.sort(dim=-1, descending=True).values[..., k - 1 : k]
        expected = torch.where(t >= kth, half, torch.zeros_like(half))
    torch.testing.assert_close(back["a"], expected, rtol=0, atol=0)
    assert len(data) == sum(spec["nbytes"] for spec in header["arrays"].values())


def test_auto_top_k_keeps_small_attention_dense_and_fits_the_budget():
    assert auto_top_k((2, 2, 8, 8), 3_000_000) is None
    k = auto_top_k((12, 12, 256, 256), 3_000_000)
    # float16 value + uint16 index per kept weight: k is the largest that fits, not just one that does
    assert 1 <= k < 256 and 12 * 12 * 256 * k * 4 <= 3_000_000 < 12 * 12 * 256 * (k + 1) * 4


def test_12x12_heads_at_256_tokens_stay_under_5_mb_and_keep_the_strongest_weights():
    att = _softmax_attention(12, 12, 256, 256)
    view = head_view(att, [f"t{i}" for i in range(256)])
    page = view.to_html().encode("utf-8")
    assert len(page) < 5_000_000, f"{len(page):,} bytes"
    back = unpack_arrays(view.payload.header, view.payload.data)["attn"]
    # every query row keeps its largest weight, rounded to float16
    torch.testing.assert_close(back.max(-1).values, att.max(-1).values.half().float(), rtol=0, atol=0)
    assert view.payload.top_k is not None and back.count_nonzero(-1).max() <= view.payload.top_k


def test_png_writer_produces_a_valid_png_header():
    rgb = torch.randint(0, 255, (3, 5, 3), dtype=torch.uint8).numpy()
    png = png_bytes(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert int.from_bytes(png[16:20], "big") == 5 and int.from_bytes(png[20:24], "big") == 3


# ---------------------------------------------------------------- inputs


def test_activation_cache_equals_output_attentions(gpt, ids):
    out, cache = gpt.run_with_cache(ids, names=lambda n: n.endswith("hook_pattern"), output_attentions=True)
    for b in (0, 1):
        expected = torch.stack(out.attentions)[:, b]
        torch.testing.assert_close(attention_tensor(cache, batch_index=b), expected)
        torch.testing.assert_close(attention_tensor(out, batch_index=b), expected)
        torch.testing.assert_close(attention_tensor(out.attentions, batch_index=b), expected)
        # [batch, layer, head, q, k]
        torch.testing.assert_close(attention_tensor(torch.stack(out.attentions, 1), batch_index=b), expected)
    torch.testing.assert_close(attention_tensor(expected[0, 1]), expected[0:1, 1:2])  # [q, k] -> [1, 1, q, k]


def test_hugging_face_output_attentions_tuple():
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = "eager"  # the explicit path returns the weights
    hf = GPT2Model(cfg).eval()
    out = hf(torch.randint(0, 40, (1, 6)), output_attentions=True)
    expected = torch.stack(out.attentions)[:, 0]
    torch.testing.assert_close(attention_tensor(out), expected)
    view = head_view(out.attentions, list("abcdef"), layer=1, head=3)
    assert view.payload.shape == (2, 4, 6, 6)
    torch.testing.assert_close(unpack_arrays(view.payload.header, view.payload.data)["attn"], expected.half().float())


@pytest.fixture(scope="module")
def seq2seq_run():
    torch.manual_seed(0)
    model = Seq2Seq(
        Seq2SeqConfig(
            src_vocab_size=30,
            tgt_vocab_size=30,
            n_layer=1,
            n_decoder_layer=2,
            n_head=2,
            n_embd=16,
            n_inner=32,
            dropout=0.0,
        )
    ).eval()
    src, tgt = torch.randint(2, 30, (1, 5)), torch.randint(2, 30, (1, 4))
    out, cache = model.run_with_cache(
        src,
        decoder_input_ids=tgt,
        output_attentions=True,
        names=lambda n: n.endswith(("hook_pattern", "hook_q", "hook_k")),
    )
    return out, cache


def test_cross_attention_from_cache_and_output(seq2seq_run):
    out, cache = seq2seq_run
    expected = torch.stack(out.cross_attentions)[:, 0]  # [layer, head, tgt, src]
    src, tgt = [f"s{i}" for i in range(5)], [f"t{i}" for i in range(4)]
    for source in (cache, out):
        view = cross_attention_view(source, src, tgt, layer=1)
        assert view.payload.query_tokens == tgt and view.payload.key_tokens == src
        torch.testing.assert_close(view.attention, expected)
    torch.testing.assert_close(attention_tensor(cache, stack="encoder"), torch.stack(out.encoder_attentions)[:, 0])
    with pytest.raises(InvalidInputError, match="several stacks.*stack="):
        attention_tensor(cache)
    with pytest.raises(InvalidInputError, match="got 3 query tokens"):
        cross_attention_view(cache, src, tgt[:3])


def test_qk_view_carries_the_cached_vectors_and_matches_the_pattern(gpt, ids, tokens):
    _, cache = gpt.run_with_cache(ids, names=lambda n: n.endswith(("hook_q", "hook_k", "hook_pattern")))
    view = qk_view(cache, tokens, layer=1, head=1, batch_index=1)
    arrays = unpack_arrays(view.payload.header, view.payload.data)
    torch.testing.assert_close(arrays["q"][0, 0], cache["blocks.1.attn.hook_q"][1, :, 1].half().float())
    torch.testing.assert_close(arrays["k"][0, 0], cache["blocks.1.attn.hook_k"][1, :, 1].half().float())
    torch.testing.assert_close(arrays["attn"][0, 0], cache.pattern(1)[1, 1].half().float())
    assert view.payload.layer_ids == [1] and view.payload.head_ids == [1]
    assert view.note == ""  # learned positions: softmax(q.k/sqrt(d)) is the model's pattern


def test_qk_view_notes_rotary_models_and_maps_grouped_kv_heads():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=50, block_size=32, n_layer=1, n_head=4, n_kv_head=2, n_embd=32, positions="rotary")
    ).eval()
    with torch.no_grad():  # sharper attention, so rotating q and k visibly changes the pattern
        model.blocks[0].attn.q_proj.weight.mul_(6)
        model.blocks[0].attn.k_proj.weight.mul_(6)
    _, cache = model.run_with_cache(
        torch.randint(0, 50, (1, 9)), names=lambda n: n.endswith(("hook_q", "hook_k", "hook_pattern"))
    )
    view = qk_view(cache, layer=0, head=3)
    k = unpack_arrays(view.payload.header, view.payload.data)["k"][0, 0]
    torch.testing.assert_close(k, cache["blocks.0.attn.hook_k"][0, :, 1].half().float())  # head 3 reads kv head 1
    assert "rotary" in view.note


# ---------------------------------------------------------------- escaping and offline output


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self._attrs: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._attrs = dict(attrs)
        elif tag == "img":
            raise AssertionError("an <img> element reached the HTML")

    def handle_data(self, data):
        if self._attrs is not None:
            self.scripts.append((self._attrs, data))
            self._attrs = None


def _all_views(gpt, ids, tokens) -> list[AttentionView]:
    _, cache = gpt.run_with_cache(ids, names=lambda n: n.endswith(("hook_pattern", "hook_q", "hook_k")))
    return [
        head_view(cache, tokens, title=HOSTILE),
        model_view(cache, tokens),
        qk_view(cache, tokens, layer=1),
        attention_heatmap(cache, tokens, layer=1, head=1),
        cross_attention_view(_softmax_attention(1, 2, 3, 7), tokens, [HOSTILE, "a", "b"]),
    ]


def test_hostile_token_text_stays_text_in_html_svg_and_plain(gpt, ids, tokens):
    for view in _all_views(gpt, ids, tokens):
        bundle = view._repr_mimebundle_()
        assert set(bundle) == {"text/html", "text/plain", "image/svg+xml"}
        for mime, text in bundle.items():
            assert "<img" not in text and "</script><img" not in text, mime
        page = bundle["text/html"]
        assert page.count("</script>") == 2  # only the two script tags the view writes itself
        parser = _Scripts()
        parser.feed(page)
        (data_attrs, data), (code_attrs, code) = parser.scripts
        assert data_attrs == {"type": "application/json", "class": "labkit-attn-data"} and "src" not in code_attrs
        spec = json.loads(data)  # escapes decode back to the exact token text
        assert HOSTILE in spec["k_tokens"] + spec["q_tokens"] and tokens[5] in spec["k_tokens"] + spec["q_tokens"]
        svg = ET.fromstring(bundle["image/svg+xml"])  # well-formed XML, token labels as text nodes
        texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
        if view.payload.shape[2] * 8 <= 480:
            assert any(t and t.startswith("</script><img") for t in texts)
        assert HOSTILE.replace("<", "\\u003c").replace(">", "\\u003e") in bundle["text/plain"]


def _without_base64(text: str) -> str:
    # long base64 runs (payload, embedded PNG) can spell anything by chance; judge the rest
    return re.sub(r"[A-Za-z0-9+/=]{60,}", "", text)


def test_no_url_of_any_kind_in_any_output(gpt, ids, tokens, tmp_path):
    big = head_view(_softmax_attention(2, 2, 80, 80))  # large enough for the embedded-PNG fallback
    for view in _all_views(gpt, ids, tokens) + [big]:
        bundle = view._repr_mimebundle_()
        page = view.save_html(tmp_path / "page.html").read_text(encoding="utf-8")
        for mime, text in [*bundle.items(), ("page", page)]:
            rest = _without_base64(text).replace(SVG_NS, "").lower()  # the SVG namespace is a name, never fetched
            for bad in ("http:", "https:", "cdn", "//unpkg", "require(", 'src="'):
                assert bad not in rest, f"{bad!r} in {mime}"
    assert "data:image/png;base64," in big.to_svg()


def test_views_get_unique_ids_and_pages_are_complete(tmp_path):
    view = head_view(_softmax_attention(1, 2, 4, 4))
    ids = {re.search(r'id="(labkit-attn-[0-9a-f]+)"', view.to_html())[1] for _ in range(3)}
    assert len(ids) == 3
    page = view.save_html(tmp_path / "v.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>") and "<style>" in page


def test_heatmap_figure_matches_the_selected_head(tokens):
    att = _softmax_attention(2, 3, 7, 7)
    fig = attention_heatmap(att, tokens, layer=1, head=2).to_figure()
    torch.testing.assert_close(torch.tensor(fig.data[0].z, dtype=torch.float32), att[1, 2])
    assert all("<" not in t for t in fig.layout.xaxis.ticktext)


def test_classic_script_has_no_module_syntax_left():
    code = classic_script("attention.js")
    assert not re.search(r"^\s*(export|import)\b", code, re.M) and "const __default" in code
    assert "\\u003c/script" in json_for_script(HOSTILE)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a: head_view(a, ["x"] * 5), "got 5 key tokens but the attention has 6"),
        (lambda a: head_view(a, "abcdef"), "list of strings"),
        (lambda a: head_view(a, layer=2), r"^layer must be an integer in \[0, 1\], got 2; the attention has 2 layers$"),
        (
            lambda a: head_view(a, head=3),
            r"^head must be an integer in \[0, 2\] \(or None\), got 3; the attention has 3 heads",
        ),
        (lambda a: attention_heatmap(a, head=-1), r"^head must be an integer in \[0, 2\] \(or None\), got -1"),
        (lambda a: head_view(a.log()), r"must lie in \[0, 1\].*hook_pattern"),
        (lambda a: head_view(a.unsqueeze(0), batch_index=1), "batch_index 1 is out of range"),
        (lambda a: attention_payload(a, top_k=0), r"^top_k must be an integer >= 1 \(or None\), got 0; or 'auto'"),
        (lambda a: head_view(a[0, 0, 0]), "must be"),  # a single row [k] is not attention
        (lambda a: head_view({"blocks.0.hook_resid_post": a}), "hook_pattern"),
    ],
)
def test_bad_inputs_raise_one_clear_line(call, message):
    att = _softmax_attention(2, 3, 6, 6)
    with pytest.raises(InvalidInputError, match=message) as err:
        call(att)
    assert "\n" not in str(err.value)


def test_nan_is_rejected_with_its_position():
    att = _softmax_attention(2, 3, 6, 6)
    att[1, 2, 3, 4] = float("nan")
    with pytest.raises(InvalidInputError, match=r"NaN or inf.*\[1, 2, 3, 4\]"):
        head_view(att)


def test_qk_view_names_the_missing_hooks_and_how_to_capture_them(gpt, ids):
    _, cache = gpt.run_with_cache(ids, names=lambda n: n.endswith("hook_pattern"))
    with pytest.raises(InvalidInputError, match=r"blocks\.1\.attn\.hook_q, blocks\.1\.attn\.hook_k.*run_with_cache"):
        qk_view(cache, layer=1)
    _, full = gpt.run_with_cache(ids, names=lambda n: n.endswith(("hook_q", "hook_k", "hook_pattern")))
    with pytest.raises(
        InvalidInputError, match=r"^head must be an integer in \[0, 1\] \(or None\), got 5; the attention has 2 heads"
    ):
        qk_view(full, head=5)
    with pytest.raises(InvalidInputError, match=r"layer 7 is not in the cache; cached layers: \[0, 1\]"):
        qk_view(full, layer=7)


def test_missing_front_end_file_names_both_folders():
    with pytest.raises(MissingSourceError, match="no-such.js.*widgets"):
        asset_text("no-such.js")
    with pytest.raises(InvalidInputError, match="bare file name"):
        asset_text("../attention.js")
