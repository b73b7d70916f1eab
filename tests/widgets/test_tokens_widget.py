"""TokenizerExplorer without a kernel: typing (setting `text`) re-tokenizes in Python and pushes the token lists."""

from __future__ import annotations

from functools import cache

import pytest

from labkit.data.tokenizer import train_tokenizer
from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, module_text
from labkit.widgets.tokens import MAX_TEXT, TokenizerExplorer

HOSTILE = "</script><img src=x onerror=alert(1)>"


@cache
def _toks():
    corpus = ["the cat sat on the mat. the dog sat on the log."] * 30
    return {"bpe": train_tokenizer(corpus, kind="bpe", vocab_size=300), "char": train_tokenizer(corpus, kind="char")}


def test_runs_follow_the_text_trait():
    toks = _toks()
    w = TokenizerExplorer(toks, text="the cat")
    assert w.names == ["bpe", "char"]
    assert [r["n_tokens"] for r in w.runs] == [len(toks["bpe"].encode("the cat")), 7]
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names="runs")
    w.text = "the dog sat on the log"  # what the page's text box does
    assert len(seen) == 1
    assert [t["id"] for t in w.runs[0]["tokens"]] == toks["bpe"].encode("the dog sat on the log")
    assert w.counts() == {"bpe": len(toks["bpe"].encode(w.text)), "char": len(w.text)}
    assert "".join(t["text"] for t in w.runs[1]["tokens"]) == w.text
    w.add_special_tokens = True
    assert w.runs[0]["tokens"][0]["token"] == "<bos>" and w.runs[0]["tokens"][-1]["token"] == "<eos>"
    assert w.to_view().runs[0].n_tokens == w.runs[0]["n_tokens"]


def test_list_of_tokenizers_and_trait_metadata():
    toks = _toks()
    w = TokenizerExplorer([toks["bpe"], toks["char"]], text="")
    assert w.names == [f"bpe {toks['bpe'].vocab_size}", f"char {toks['char'].vocab_size}"]
    assert all(r["n_tokens"] == 0 for r in w.runs)
    synced = set(w.traits(sync=True))
    assert {"text", "runs", "names", "add_special_tokens", "title"} <= synced
    assert all(w.trait_metadata(n, "help") for n in ("text", "runs", "names"))
    assert w._esm == module_text("tokens.js") and "export default" in w._esm and w._css == asset_text("tokens.css")


def test_errors_are_one_line_and_leave_the_state():
    toks = _toks()
    w = TokenizerExplorer(toks["char"], text="abc")
    with pytest.raises(InvalidInputError, match="at most 100,000"):
        w.text = "x" * (MAX_TEXT + 1)
    assert w.text == "abc" and w.runs[0]["n_tokens"] == 3
    with pytest.raises(InvalidInputError, match="not a labkit Tokenizer"):
        TokenizerExplorer({"a": "nope"})
    with pytest.raises(InvalidInputError, match=r"^max_tokens must be an integer >= 1, got 0$"):
        TokenizerExplorer(toks, max_tokens=0)


def test_hostile_text_in_the_fallbacks():
    w = TokenizerExplorer(_toks(), text=HOSTILE)
    data, _ = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "<img" not in data["image/svg+xml"] + data["text/plain"]
    assert data["image/svg+xml"].startswith("<svg")
