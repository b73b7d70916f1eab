"""Tokenizer explorer view: the records are the tokenizer's own, counts are exact, hostile text stays text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data.tokenizer import Tokenizer, train_tokenizer
from labkit.errors import InvalidInputError
from labkit.frontend import classic_script
from labkit.viz.tokens import named_tokenizers, token_view, tokenize_runs, visible_whitespace

HOSTILE = "</script><img src=x onerror=alert(1)>"
NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[2] / "widgets" / "tokens.js"
CORPUS = ["the cat sat on the mat.\nthe dog sat on the log.\t"] * 40 + ["héllo wörld, tokenizers are fun 🙂"] * 20


@cache
def _toks() -> dict[str, Tokenizer]:
    bpe = train_tokenizer(CORPUS, kind="bpe", vocab_size=320)
    char = train_tokenizer(CORPUS, kind="char")
    wp = train_tokenizer(CORPUS, kind="wordpiece", vocab_size=200)
    hostile = train_tokenizer(CORPUS, kind="bpe", vocab_size=300)
    hostile.backend.add_tokens([HOSTILE])  # a vocabulary entry that is itself markup
    return {"bpe": bpe, "char": char, "wp": wp, "hostile": Tokenizer(hostile.backend, "bpe", hostile.special_tokens)}


@pytest.fixture
def toks() -> dict[str, Tokenizer]:
    return _toks()


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


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("the cat mdogl.\n\t\u00e9\u00f6🙂xyz")), max_size=60))
def test_records_equal_the_tokenizer_and_cover_the_text(text):
    tok = _toks()["bpe"]
    (run,) = tokenize_runs({"bpe": tok}, text)
    assert [t["id"] for t in run.tokens] == tok.encode(text) and run.n_tokens == len(tok.encode(text))
    assert "".join(t["text"] for t in run.tokens) == text  # byte-level BPE covers every character
    for t in run.tokens:
        assert t["text"] == text[t["start"] : t["end"]]
        if t["merges"]:  # replaying the listed merges ends in the token itself
            assert "".join(t["merges"][-1].split(" ", 1)) == t["token"]
    assert run.chars_per_token == (len(text) / run.n_tokens if run.n_tokens else 0.0)


def test_side_by_side_counts_names_and_truncation(toks):
    text = "the cat sat on the mat.\n"
    view = token_view(toks["bpe"], text, compare={"char": toks["char"], "wp": toks["wp"]})
    assert [r.name for r in view.runs] == [f"bpe {toks['bpe'].vocab_size}", "char", "wp"]
    assert [r.n_tokens for r in view.runs] == [len(toks[k].encode(text)) for k in ("bpe", "char", "wp")]
    assert view.runs[1].n_tokens == len(text) and view.runs[1].chars_per_token == 1.0
    assert view.runs[0].chars_per_token > 1.5  # BPE trained on this text compresses it
    special = token_view(toks["wp"], "the cat", add_special_tokens=True).runs[0]
    assert special.tokens[0]["token"] == "[CLS]" and special.tokens[0]["special"] and special.tokens[0]["text"] == ""
    cut = token_view(toks["char"], "abcdefgh" * 10, max_tokens=5).runs[0]
    assert cut.n_tokens == 80 and len(cut.tokens) == 5 and cut.to_dict()["truncated"]
    name = f"bpe {toks['bpe'].vocab_size}"
    assert list(named_tokenizers([toks["bpe"], toks["bpe"]])) == [name, f"{name} (2)"]


def test_hostile_token_text_stays_text_in_html_svg_and_plain(toks, tmp_path):
    text = "the " + HOSTILE + " cat\n"
    view = token_view(toks["hostile"], text, compare=toks["char"], title=HOSTILE)
    assert any(t["token"] == HOSTILE for t in view.runs[0].tokens)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain", "image/svg+xml"}
    for mime, out in bundle.items():
        assert "<img" not in out, mime
    page = bundle["text/html"]
    assert page.count("</script>") == 2
    parser = _Scripts()
    parser.feed(page)
    (data_attrs, data), (code_attrs, _) = parser.scripts
    assert data_attrs == {"type": "application/json", "class": "labkit-tok-data"} and "src" not in code_attrs
    spec = json.loads(data)
    assert spec["text"] == text and spec["title"] == HOSTILE
    assert spec["runs"][0]["tokens"] == view.runs[0].tokens
    svg = ET.fromstring(bundle["image/svg+xml"])
    texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert (
        any(t.startswith("</script><img") for t in texts) and "\u00b7" in "".join(texts) and "\u21b5" in "".join(texts)
    )
    assert HOSTILE.replace("<", "\\u003c").replace(">", "\\u003e") in bundle["text/plain"]
    saved = view.save_html(tmp_path / "tok.html").read_text(encoding="utf-8")
    rest = re.sub(r"[A-Za-z0-9+/=]{60,}", "", saved).replace('xmlns="http://www.w3.org/2000/svg"', "").lower()
    for bad in ("http:", "https:", "cdn", 'src="'):
        assert bad not in rest


def test_plain_table_lists_ids_and_merges(toks):
    text = "the cat"
    plain = token_view(toks["bpe"], text).summary()
    infos = toks["bpe"].explain(text)
    for i, info in enumerate(infos):
        assert re.search(rf"^\s+{i}\s+{info.id}\s+", plain, re.M)
    assert any(info.merges for info in infos) and json.dumps(infos[0].merges[-1]) in plain


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: token_view(t["bpe"], 42), "text must be a str, got int"),
        (lambda t: token_view("bpe", "x"), "must be a labkit Tokenizer, a list of them or a dict"),
        (lambda t: token_view({"x": object()}, "x"), "tokenizer 'x' is a object, not a labkit Tokenizer"),
        (lambda t: token_view([], "x"), "no tokenizers given"),
        (lambda t: token_view(t["bpe"], "x", max_tokens=0), r"^max_tokens must be an integer >= 1, got 0$"),
    ],
)
def test_bad_inputs_raise_one_clear_line(toks, call, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        call(toks)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_front_end_helpers_agree_with_python():
    sample = "a b\tc\nd\r e🙂"
    code = (
        f"import {{ visibleWhitespace, overlapping, mergeLines }} from {json.dumps(MODULE.as_uri())};\n"
        f"const toks = [{{start:0,end:2}},{{start:2,end:2}},{{start:2,end:5}},{{start:5,end:6}}];\n"
        f"console.log(JSON.stringify([visibleWhitespace({json.dumps(sample)}), overlapping(toks, 1, 3), "
        "overlapping(toks, 2, 2), mergeLines(['\u0120 t', 'a b'])]));"
    )
    done = subprocess.run([NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ws, hits, empty, merges = json.loads(done.stdout)
    assert ws == visible_whitespace(sample)
    assert hits == [0, 1, 2] and empty == [1, 2] and merges == ["\u0120 + t \u2192 \u0120t", "a + b \u2192 ab"]
    script = (
        "(function(){"
        + classic_script("tokens.js")
        + "\nconsole.log(typeof mountStatic, typeof __default.render);})();"
    )
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["function", "function"], done.stderr
