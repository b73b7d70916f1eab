"""The four "looking inside" views: specs carry the records' values, hostile token text stays text, pages are offline,
the SVG parses, the PNG decodes to the grid's colours, and the page's colour scales equal Python's (run in node)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.data.tokenizer import Tokenizer, train_tokenizer
from labkit.errors import LabkitError
from labkit.interpret import (
    activation_patching,
    attention_rollout,
    attribute,
    logit_lens,
    neuron_activations,
    neuron_logit_effect,
)
from labkit.models import GPT, GPTConfig
from labkit.viz import attribution_view, logit_lens_view, neuron_view, patching_view
from labkit.viz.interpret_base import diverging_colors, sequential_colors

HOSTILE = "</script><img src=x onerror=alert(1)>"
NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "interpret.js"


@cache
def _setup():
    corpus = ["the cat sat on the mat. the dog sat on the log."] * 20
    base = train_tokenizer(corpus, kind="bpe", vocab_size=300)
    base.backend.add_tokens([HOSTILE])  # a vocabulary entry that is itself markup
    tok = Tokenizer(base.backend, "bpe", base.special_tokens)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=3, n_embd=24)).eval()
    ids = tok.encode("the cat " + HOSTILE + " sat on")
    assert tok.decode([ids[2]]).strip() == HOSTILE or HOSTILE in [tok.decode([i]) for i in ids]
    return tok, model, ids


@cache
def _views():
    tok, model, ids = _setup()
    lens = logit_lens(model, ids, tokenizer=tok, target="next")
    attrs = [attribute(model, ids, tokenizer=tok, steps=10), attention_rollout(model, ids, tokenizer=tok)]
    acts = neuron_activations(model, ["the cat " + HOSTILE, "the dog sat"], layer=1, tokenizer=tok)
    n = acts.strongest(1)[0][0]
    effect = neuron_logit_effect(model, 1, n, tokenizer=tok)
    corrupted = list(ids)
    corrupted[1] = tok.encode(" dog")[0]
    patch = activation_patching(model, ids, corrupted, hook="head_out", by="head_pos", answer=3, wrong=4, tokenizer=tok)
    return {
        "lens": (logit_lens_view(lens, title=HOSTILE), lens),
        "attr": (attribution_view(attrs, labels=["IG", HOSTILE]), attrs),
        "neuron": (neuron_view(acts, n, effect=effect, title=HOSTILE), acts),
        "patch": (patching_view(patch, title=HOSTILE), patch),
    }


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self._open = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._open = [dict(attrs), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._open is not None:
            self.scripts.append(tuple(self._open))
            self._open = None


def _png_size_and_pixels(data: bytes) -> tuple[int, int, np.ndarray]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    return w, h, raw[:, 1:].reshape(h, w, 3)


@pytest.mark.parametrize("kind", ["lens", "attr", "neuron", "patch"])
def test_hostile_text_stays_text_and_the_page_is_offline(kind, tmp_path):
    view, _ = _views()[kind]
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain", "image/svg+xml", "image/png"}
    for mime in ("text/html", "text/plain", "image/svg+xml"):
        assert "<img" not in bundle[mime], mime
    page = bundle["text/html"]
    assert page.count("</script>") == 2
    parser = _Scripts()
    parser.feed(page)
    (data_attrs, data), (code_attrs, _) = parser.scripts
    assert data_attrs == {"type": "application/json", "class": "labkit-look-data"} and "src" not in code_attrs
    spec = json.loads(data)
    assert spec == json.loads(json.dumps(view.spec())) and spec["kind"] == kind
    assert HOSTILE in json.dumps(spec, ensure_ascii=False)  # the token itself, as data
    svg = ET.fromstring(bundle["image/svg+xml"])
    texts = "".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "</script><img" in texts or "<img" not in bundle["image/svg+xml"]
    w, h, pixels = _png_size_and_pixels(__import__("base64").b64decode(bundle["image/png"]))
    colors = view.colors()
    assert (h, w) == (colors.shape[0] * 12, colors.shape[1] * 12)
    assert np.array_equal(pixels[::12, ::12], colors)
    saved = view.save_html(tmp_path / "v.html").read_text(encoding="utf-8")
    rest = re.sub(r"[A-Za-z0-9+/=]{60,}", "", saved).replace('xmlns="http://www.w3.org/2000/svg"', "").lower()
    for bad in ("http:", "https:", "cdn", 'src="'):
        assert bad not in rest


def test_specs_carry_the_records_values():
    views = _views()
    lens_view, lens = views["lens"]
    spec = lens_view.spec()
    assert spec["top_tokens"] == lens.top_tokens and spec["labels"] == ["emb", "1", "2"]
    assert np.allclose(spec["top_probs"], lens.top_probs.numpy(), atol=1e-4)
    assert spec["target_probs"][0][-1] is None and spec["target_ranks"] == lens.target_ranks.tolist()
    attr_view, attrs = views["attr"]
    rows = attr_view.spec()["rows"]
    assert [r["label"] for r in rows] == ["IG", HOSTILE]
    assert np.allclose(rows[0]["scores"], attrs[0].scores.numpy(), atol=1e-6) and rows[0]["relative_error"] is not None
    assert "% of the gap" in rows[0]["caption"] and rows[1]["method"] == "attention_rollout"
    neuron_view_, acts = views["neuron"]
    ns = neuron_view_.spec()
    top = acts.top_contexts(ns["neuron"], k=8)
    assert [c["activation"] for c in ns["contexts"]] == pytest.approx([c.activation for c in top], abs=1e-4)
    assert ns["promoted"] and ns["texts"][0]["tokens"] == acts.tokens[0]
    patch_view, patch = views["patch"]
    ps = patch_view.spec()
    assert ps["dims"] == ["layer", "pos", "head"] and np.allclose(ps["recovered"], patch.recovered.numpy(), atol=1e-4)
    assert ps["rows"] == ["L0", "L1"] and ps["cols"] == ["H0", "H1", "H2"]
    assert np.array_equal(patch_view.colors(), diverging_colors(patch.recovered.numpy()[::-1, -1], 1.0))


def test_plain_summaries_name_what_matters():
    views = _views()
    assert "LogitLensView: 3 depths" in views["lens"][0].summary()
    assert "sum of attributions" in views["attr"][0].summary()
    assert "promotes:" in views["neuron"][0].summary()
    assert "head_out by layer x pos x head" in views["patch"][0].summary()


def test_views_refuse_the_wrong_records_in_one_line():
    views = _views()
    for call, words in [
        (lambda: logit_lens_view(views["attr"][1][0]), "logit_lens_view draws a LogitLens"),
        (lambda: logit_lens_view(views["lens"][1], color_by="hue"), "color_by must be one of"),
        (lambda: attribution_view([]), "attribution_view draws Attribution records"),
        (lambda: attribution_view(views["attr"][1], labels=["one"]), "got 1 labels for 2 rows"),
        (lambda: neuron_view(views["neuron"][1], 10_000), "MLP units"),
        (lambda: patching_view(views["lens"][1]), "patching_view draws a PatchingResult"),
    ]:
        with pytest.raises(LabkitError) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_page_colour_scales_equal_pythons():
    values = [-1.5, -1.0, -0.4, -0.01, 0.0, 0.2, 0.5, 1.0, 3.0]
    code = (
        f"import {{ diverging, sequential, visible }} from {json.dumps(MODULE.as_uri())};\n"
        f"const v = {json.dumps(values)};\n"
        "console.log(JSON.stringify({d: v.map(diverging), s: v.map(sequential), w: visible(' Paris\\n'), n: sequential(null)}));"
    )
    done = subprocess.run([NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    parse = lambda css: [int(x) for x in re.findall(r"\d+", css)]  # noqa: E731
    assert [parse(c) for c in out["d"]] == diverging_colors(np.array(values), 1.0).tolist()
    assert [parse(c) for c in out["s"]] == sequential_colors(np.array(values)).tolist()
    assert out["w"] == "\u00b7Paris\u21b5" and parse(out["n"]) == [235, 235, 235]
