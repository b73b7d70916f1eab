"""Item 4 of the hardening issue: every page writer survives any Python string. Lone surrogates (which UTF-8
cannot encode) show as U+FFFD, every token keeps its place and id, and the page's element ids still match
the script that mounts them. Hypothesis draws the text, with surrogates and markup characters made common."""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.frontend import json_for_script, plain_token, safe_text
from labkit.viz import head_view
from labkit.viz.tokens import TokenRun, TokenView

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
ANY_CHAR = st.one_of(SURROGATES, st.characters(exclude_categories=["Cs"]), st.sampled_from("<>&\"'/\\\u2028\u2029 \n"))
TEXT = st.text(ANY_CHAR, max_size=12)
HOSTILE = ["\ud800", "a\udcffb", "\udfff</script><img src=x>", "\ud83d\ude00", "&amp;\u2028", ""]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _utf8_page(text: str) -> str:
    """The page must be UTF-8 all the way (what a browser or an editor reads) and hold no surrogate."""
    text.encode("utf-8")
    assert not re.search("[\ud800-\udfff]", text)
    return text


def _mounted_id(page: str, prefix: str) -> None:
    ids = re.findall(rf'id="({prefix}[0-9a-f]+)"', page)
    assert ids and all(f'"{i}"' in page.split(f'id="{i}"', 1)[1] for i in ids)  # mountStatic(..., "<the same id>")


@given(st.text(ANY_CHAR, max_size=40))
def test_safe_text_replaces_exactly_the_surrogates(text):
    out = safe_text(text)
    assert len(out) == len(text)  # one character for one: positions (and ids) never move
    for a, b in zip(text, out):
        assert b == ("\ufffd" if 0xD800 <= ord(a) <= 0xDFFF else a)
    json.loads(json_for_script(text)) == out  # noqa: B015
    assert json.loads(json_for_script([text]))[0] == out and json.loads(plain_token(text)) == out


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=6), TEXT)
def test_attention_views_survive_any_token_text(tmp_path, tokens, title):
    n = len(tokens)
    attn = torch.softmax(torch.randn(1, 2, n, n, generator=torch.Generator().manual_seed(n)), -1)
    view = head_view(attn, tokens, title=title)
    page = _utf8_page(view.save_html(tmp_path / "attn.html").read_text(encoding="utf-8"))
    data = re.search(r'class="labkit-attn-data">(.*?)</script>', page, re.S).group(1)
    spec = json.loads(data)
    assert spec["k_tokens"] == [safe_text(t) for t in tokens] and spec["title"] == safe_text(title)
    _mounted_id(page, "labkit-attn-")
    bundle = view._repr_mimebundle_()
    for text in bundle.values():
        _utf8_page(text)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 10**6), TEXT, TEXT), min_size=1, max_size=8), TEXT, TEXT)
def test_token_views_keep_every_id_and_position(tmp_path, records, name, title):
    tokens = [
        {"id": i, "token": tok, "text": text, "start": k, "end": k + 1, "merges": [tok], "special": False}
        for k, (i, tok, text) in enumerate(records)
    ]
    view = TokenView("".join(t["text"] for t in tokens), [TokenRun(name, "bpe", 10**6, len(tokens), 10, tokens)], title)
    page = _utf8_page(view.save_html(tmp_path / "tok.html").read_text(encoding="utf-8"))
    spec = json.loads(re.search(r'class="labkit-tok-data">(.*?)</script>', page, re.S).group(1))
    got = spec["runs"][0]["tokens"]
    assert [t["id"] for t in got] == [i for i, _, _ in records]
    assert [t["token"] for t in got] == [safe_text(tok) for _, tok, _ in records]
    assert [t["text"] for t in got] == [safe_text(text) for _, _, text in records]
    _mounted_id(page, "labkit-tok-")
    _utf8_page(view.summary())
    _utf8_page(view.to_svg())


@SETTINGS
@given(st.lists(TEXT, min_size=2, max_size=5), TEXT)
def test_walkthrough_cleaning_and_projector_pages_survive_any_text(tmp_path, tokens, title):
    from labkit.data import Cleaner
    from labkit.models.gpt import GPT, GPTConfig
    from labkit.viz import attention_walkthrough, cleaning_view, project

    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ids = torch.arange(len(tokens))[None]
    walk = attention_walkthrough(model, ids, tokens=tokens, title=title)
    _utf8_page(walk.save_html(tmp_path / "walk.html").read_text(encoding="utf-8"))
    clean = cleaning_view(Cleaner(["nfkc", "whitespace"]), tokens, title=title)
    _utf8_page(clean.save_html(tmp_path / "clean.html").read_text(encoding="utf-8"))
    _utf8_page(clean.summary())
    coords = project(torch.randn(len(tokens), 4, generator=torch.Generator().manual_seed(1)), "pca")
    _utf8_page(coords.to_svg(tokens=tokens))


@pytest.mark.parametrize("text", HOSTILE)
def test_the_notebook_report_survives_a_lone_surrogate(tmp_path, text):
    # a notebook is JSON, and JSON may spell a lone surrogate as an escape: the report must still be written
    from labkit.notebooks.report import export_html

    cell = {"cell_type": "markdown", "metadata": {}, "source": f"token: {text}"}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "run.ipynb"
    path.write_text(json.dumps(nb), encoding="ascii")  # ensure_ascii: "\ud800" stays an escape in the file
    out = export_html(path, tmp_path / "run.html", title=f"run {text}")
    page = _utf8_page(out.read_text(encoding="utf-8"))
    assert "token:" in page
    if safe_text(text) != text:
        assert "\ufffd" in page  # shown as the replacement character, not dropped
