"""The kernel-free page (`labkit page`): one offline HTML file that, opened from disk in Chromium with the network
blocked, makes no network request, shows next-token candidates for typed text, and computes the same logits as
PyTorch (within 1e-4, the same top-1 token on every fixed prompt) for a model of lesson 03's size."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from .conftest import ARTIFACTS, open_watched_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE_LIMIT = 25 * 1024 * 1024  # issue 18: one file of at most 25 MB for the lesson-03 model
PROMPTS = ["To be, or not to be", "ROMEO:\nBut soft!", "a", "What light through yonder window breaks?", "zzz qqq"]
TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nROMEO:\nBut soft! what light "
    "through yonder window breaks? It is the east, and Juliet is the sun. To be, or not to be: that is the question.\n"
)


@pytest.fixture(scope="module")
def lesson_model(tmp_path_factory):
    """Lesson 03's model shape (gpt-char: 4 layers, 4 heads, 128 wide, context 64) on a character tokenizer."""
    pytest.importorskip("onnx")
    from labkit.data import train_tokenizer
    from labkit.export import save_model
    from labkit.frontend import vendor_file
    from labkit.models import GPT, GPTConfig

    from .conftest import need_browser

    need_browser()  # skips here without Chromium; fails in CI (LABKIT_REQUIRE_BROWSER=1)
    vendor_file("ort.wasm.mjs")  # a missing runtime fails here, naming `labkit vendor fetch`
    tokenizer = train_tokenizer(TEXT, kind="char", special_tokens={"unk": "<unk>"})
    torch.manual_seed(0)
    config = GPTConfig.preset("gpt-char", vocab_size=tokenizer.vocab_size, block_size=64, initializer_range=0.1)
    model = GPT(config).eval()
    folder = save_model(model, tmp_path_factory.mktemp("page") / "model", tokenizer)
    return model, tokenizer, folder


@pytest.fixture(scope="module")
def page_file(lesson_model):
    """The page, written by the `labkit page` command."""
    _, _, folder = lesson_model
    out = folder.parent / "model.html"
    result = subprocess.run(
        [sys.executable, "-m", "labkit", "page", str(folder), "-o", str(out), "--title", "Lesson 3 model"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} (") and "MB" in result.stdout
    print(result.stdout.strip())  # the page's size, reported in the test log
    return out


@pytest.fixture(scope="module")
def opened(chromium_browser, page_file):
    """The page opened from file:// with every non-local request blocked, and every request it made logged."""
    watch = open_watched_page(chromium_browser)
    requests: list[str] = []
    watch.page.on("request", lambda r: requests.append(r.url))
    watch.page.goto(page_file.as_uri(), wait_until="load")
    watch.page.wait_for_selector("#labkit-page[data-ready='true']", timeout=120_000)
    yield watch, requests
    watch.context.close()


def test_page_is_one_offline_file_under_the_limit(page_file):
    text = page_file.read_text(encoding="utf-8")
    size = page_file.stat().st_size
    assert size <= PAGE_LIMIT, f"page is {size / 1e6:.1f} MB"
    scripts = re.findall(r"<script[^>]*>", text)
    assert len(scripts) == 5  # the spec, the runtime, its WebAssembly, the model, the page's code
    assert not [tag for tag in scripts if "src=" in tag] and "<link" not in text and "<iframe" not in text


def test_page_makes_no_network_request(opened, page_file):
    watch, requests = opened
    assert watch.blocked == []
    local = {page_file.as_uri()}
    assert [u for u in requests if u not in local and not u.startswith(("blob:", "data:"))] == []
    assert watch.errors == [] and watch.dialogs == []


def test_typing_a_prompt_shows_the_models_candidates(opened, lesson_model):
    watch, _ = opened
    model, tokenizer, _ = lesson_model
    page = watch.page
    box = page.locator(".lk-prompt")
    box.fill("")
    box.type("But soft", delay=20)
    page.wait_for_function("document.querySelector('.lk-status').textContent.startsWith('8 tokens')")
    rows = page.locator(".lk-candidate")
    assert rows.count() == 10
    with torch.no_grad():
        probs = model(torch.tensor([tokenizer.encode("But soft")])).logits[0, -1].softmax(-1)
    top = probs.topk(10)
    shown = [int(rows.nth(i).get_attribute("data-id")) for i in range(10)]
    assert shown[0] == int(top.indices[0])
    assert set(shown[:3]) == set(top.indices[:3].tolist())
    first = rows.nth(0).locator(".lk-prob").inner_text()
    assert first == f"{100 * float(top.values[0]):.1f}%"
    assert page.locator(".lk-chip").count() == 8  # one attention chip per token of the typed text
    page.screenshot(path=str(ARTIFACTS / "page-candidates.png"))


def test_browser_logits_match_pytorch(opened, lesson_model):
    watch, _ = opened
    model, tokenizer, _ = lesson_model
    got = watch.page.evaluate(
        "async (prompts) => { const api = await window.labkitPage;"
        " const out = []; for (const p of prompts) out.push({ids: api.tokenizer.encode(p), logits: await api.logits(p)});"
        " return out; }",
        PROMPTS,
    )
    agree = 0
    for prompt, item in zip(PROMPTS, got):
        ids = tokenizer.encode(prompt)
        assert item["ids"] == ids  # the page's tokenizer gives Python's ids
        with torch.no_grad():
            ref = model(torch.tensor([ids[-64:]])).logits[0, -1]
        browser = torch.tensor(item["logits"], dtype=torch.float32)
        assert (browser - ref).abs().max() <= 1e-4, prompt
        agree += int(browser.argmax()) == int(ref.argmax())
    assert agree == len(PROMPTS)  # 100 % top-1 agreement


def test_generation_in_the_page_uses_the_cache_and_matches_greedy(opened, lesson_model):
    watch, _ = opened
    model, tokenizer, _ = lesson_model
    result = watch.page.evaluate(
        "async () => { const api = await window.labkitPage;"
        " return await api.generate('To be', 30, {temperature: 0, topK: 0, topP: 1}, 0); }"
    )
    from labkit.generation import generate

    ids = tokenizer.encode("To be")
    with torch.no_grad():
        ref = generate(model, [ids], 30, temperature=0.0)[0, len(ids) :].tolist()
    assert result["ids"] == ref
    timings = watch.page.evaluate("async () => (await window.labkitPage).timings")
    print(json.dumps({k: round(v, 1) for k, v in timings.items() if v is not None}))  # reported, not asserted
