"""Item 7 of the hardening issue: a view that prunes or truncates says so on the page: what it kept and how to
show everything. The review's case, a 1024-token attention view pruned to the top 5 keys per query, is opened
in a real Chromium; the other notices are checked in the HTML and SVG the views write."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from labkit.viz import head_view
from labkit.viz.tokens import TokenRun, TokenView

ATTENTION_JS = Path(__file__).resolve().parents[2] / "widgets" / "attention.js"
CHROMIUM = os.environ.get("LABKIT_CHROMIUM") or "/usr/bin/chromium"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pruned_view(n=1024, k=5):
    g = torch.Generator().manual_seed(0)
    attn = torch.softmax(torch.randn(1, 1, n, n, generator=g), -1)
    return head_view(attn, [f"t{i}" for i in range(n)], top_k=k)


def _token_view(n_tokens=50, kept=10):
    tokens = [
        {"id": i, "token": f"w{i}", "text": f"w{i} ", "start": 0, "end": 0, "merges": [], "special": False}
        for i in range(kept)
    ]
    return TokenView("x" * 100, [TokenRun("bpe 100", "bpe", 100, n_tokens, 100, tokens)])


def test_the_pruned_attention_view_says_what_it_kept_in_its_summary_and_payload():
    view = _pruned_view(n=64, k=5)
    assert view.payload.top_k == 5
    assert "pruned to the top 5 of 64 keys per query (top_k=None keeps all)" in view.summary()
    full = _pruned_view(n=64, k=None)
    assert full.payload.top_k is None and "all weights" in full.summary()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_notice_comes_from_the_payload_header():
    code = (
        f"import {{ pruningNotice }} from {json.dumps(ATTENTION_JS.as_uri())};\n"
        "const pruned = {arrays: {attn: {shape: [1, 1, 1024, 1024], top_k: 5}}};\n"
        "const dense = {arrays: {attn: {shape: [1, 1, 8, 8], top_k: null}}};\n"
        "console.log(JSON.stringify([pruningNotice(pruned), pruningNotice(dense)]));\n"
    )
    done = subprocess.run(["node", "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pruned, dense = json.loads(done.stdout)
    assert "only its 5 strongest of 1024 keys" in pruned and "top_k=None" in pruned
    assert dense == ""


def test_static_fallbacks_and_tables_say_what_they_cut():
    from labkit.data import Cleaner
    from labkit.models.gpt import GPT, GPTConfig
    from labkit.viz import attention_walkthrough, cleaning_view, project

    svg = _token_view().to_svg(max_tokens=5)
    assert "45 more tokens not drawn (the first 5 of 50" in svg and "to_svg(max_tokens=50)" in svg

    big = _pruned_view(n=100, k=None).to_svg()
    assert "100 x 100 tokens: labels hidden at this size (to_figure() shows them)" in big

    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=40, block_size=32, n_layer=1, n_head=2, n_embd=16))
    walk = attention_walkthrough(model, torch.arange(20)[None], max_tokens=6).to_html()
    assert "showing first 6 of 20 tokens" in walk and "pass max_tokens=20" in walk

    clean = cleaning_view(Cleaner(["whitespace"]), ["a  " * 200, "short"], max_chars=50).to_html()
    assert "texts longer than 50 characters are cut" in clean and "max_chars=600" in clean
    assert "are cut" not in cleaning_view(Cleaner(["whitespace"]), ["short"]).to_html()

    cloud = project(torch.randn(12000, 3, generator=torch.Generator().manual_seed(2)), "pca").to_svg()
    assert "4000 of 12000 points drawn, one in 3; projector_figure shows all" in cloud


def test_the_neuron_view_counts_the_texts_it_leaves_out():
    from labkit.data import train_tokenizer
    from labkit.interpret import neuron_activations
    from labkit.models.gpt import GPT, GPTConfig
    from labkit.viz import neuron_view

    texts = [f"text number {i}" for i in range(5)]
    tok = train_tokenizer(texts, kind="char")
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size, block_size=32, n_layer=1))
    acts = neuron_activations(model, texts, layer=0, tokenizer=tok)
    spec = neuron_view(acts, 0, max_texts=2).spec()
    assert len(spec["texts"]) == 2 and spec["n_texts"] == 5
    js = (Path(__file__).resolve().parents[2] / "widgets" / "interpret.js").read_text()
    assert "max_texts=${total}) shows all" in js  # what the page prints from n_texts


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Python playwright is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM}"
    return None


@pytest.mark.browser
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_a_reader_sees_the_notices_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    pages = {
        "attention.html": (".lk-notice", ["only its 5 strongest of 1024 keys", "top_k=None"]),
        "tokens.html": (".lk-tk-more", ["40 more tokens not shown", "max_tokens=50"]),
    }
    _pruned_view().save_html(tmp_path / "attention.html")
    _token_view().save_html(tmp_path / "tokens.html")
    from concurrent.futures import ThreadPoolExecutor

    def read_notices() -> None:
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
            try:
                page = browser.new_page()
                page.route(
                    "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
                )
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                for name, (selector, phrases) in pages.items():
                    page.goto((tmp_path / name).as_uri())
                    notice = page.locator(selector).first
                    notice.wait_for(state="visible", timeout=30_000)
                    text = notice.inner_text()
                    assert all(phrase in text for phrase in phrases), (name, text)
                assert errors == []
            finally:
                browser.close()

    # a thread of its own: Playwright's sync API refuses a thread where an event loop is running
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(read_notices).result()
