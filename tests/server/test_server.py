"""`labkit serve` as a real process on a free loopback port, spoken to over HTTP: JSON and server-sent-event
generation equal labkit's own, bad requests get one-line 4xx JSON (never a traceback), concurrent requests and a
client that leaves mid-stream leave the server healthy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from labkit.data import train_tokenizer  # noqa: E402
from labkit.export import save_model  # noqa: E402
from labkit.generation import generate  # noqa: E402
from labkit.models import GPT, GPTConfig  # noqa: E402

pytestmark = pytest.mark.slow  # starts a server process (torch import, model load)

TEXTS = [
    "The cat sat on the mat.",
    "A dog ran in the park, 42 times!",
    "To be, or not to be: that is the question.",
] * 20
CAP = 48  # --max-new-tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = train_tokenizer(TEXTS, kind="bpe", vocab_size=300, special_tokens={"unk": "<|endoftext|>"})
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=32, initializer_range=0.3
    )
    return GPT(config).eval(), tokenizer


@pytest.fixture(scope="module")
def server(model_and_tokenizer, tmp_path_factory):
    """The base URL of `labkit serve` on 127.0.0.1; the process is stopped (and its log checked) after the module."""
    model, tokenizer = model_and_tokenizer
    folder = save_model(model, tmp_path_factory.mktemp("serve") / "model", tokenizer)
    port = _free_port()
    log = folder.parent / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labkit", "serve", str(folder), "--port", str(port), "--max-new-tokens", str(CAP)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"labkit serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"labkit serve did not answer in 180 s: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    yield base
    proc.terminate()
    proc.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def _reference(model_and_tokenizer, prompt: str, n: int) -> list[int]:
    model, tokenizer = model_and_tokenizer
    ids = tokenizer.encode(prompt)
    with torch.no_grad():
        out = generate(model, [ids], n, temperature=0.0, sliding_window=True)
    return out[0, len(ids) :].tolist()


def _events(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
    return events


def test_health(client, model_and_tokenizer):
    model, _ = model_and_tokenizer
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["model"] == "GPT"
    assert body["parameters"] == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    assert body["limits"]["max_new_tokens"] == CAP and body["limits"]["max_prompt_tokens"] == 32
    assert set(body["fields"]) >= {"prompt", "max_new_tokens", "temperature", "top_k", "top_p", "stream"}


def test_json_generation_equals_labkit_greedy(client, model_and_tokenizer):
    prompt = "The cat sat"
    answer = client.post("/generate", json={"prompt": prompt, "max_new_tokens": 40, "stream": False})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # 3 prompt tokens + 40 new ones run past the 32-token context: the sliding window is exercised too
    assert body["token_ids"] == _reference(model_and_tokenizer, prompt, 40)
    assert body["text"] == model_and_tokenizer[1].decode(body["token_ids"])
    assert body["prompt_tokens"] == len(model_and_tokenizer[1].encode(prompt)) and body["finish_reason"] == "length"


def test_stream_sends_one_event_per_token(client, model_and_tokenizer):
    prompt = "A dog ran"
    with client.stream("POST", "/generate", json={"prompt": prompt, "max_new_tokens": 12}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = _events(answer.iter_lines())
    names = [name for name, _ in events]
    assert names == ["start"] + ["token"] * 12 + ["done"]
    tokens = [data for name, data in events if name == "token"]
    assert [t["id"] for t in tokens] == _reference(model_and_tokenizer, prompt, 12)
    assert [t["index"] for t in tokens] == list(range(12))
    done = events[-1][1]
    assert done["text"] == "".join(t["text"] for t in tokens) and done["tokens"] == 12


def test_seeded_sampling_is_reproducible(client):
    body = {"prompt": "To be", "max_new_tokens": 20, "temperature": 1.5, "top_k": 50, "seed": 7, "stream": False}
    first, second = (client.post("/generate", json=body).json() for _ in range(2))
    other = client.post("/generate", json={**body, "seed": 8}).json()
    assert first["token_ids"] == second["token_ids"] and first["token_ids"] != other["token_ids"]


@pytest.mark.parametrize(
    "request_kwargs, status, message",
    [
        (
            {"content": b'{"prompt": "hi"}', "headers": {"content-type": "text/plain"}},
            415,
            "Content-Type: application/json",
        ),
        ({"content": b'{"prompt": "hi"', "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"prompt": "x" * 40_000}}, 413, "request body over 32768 bytes"),
        ({"json": {"prompt": "x" * 9_000}}, 422, "prompt has 9000 characters"),
        ({"json": {"prompt": "The cat sat on the mat. " * 8}}, 422, "this model accepts at most 32"),
        ({"json": {"prompt": ""}}, 422, "prompt must be a non-empty string"),
        (
            {"json": {"prompt": "hi", "max_new_tokens": CAP + 1}},
            422,
            f"max_new_tokens must be an integer in 1 .. {CAP}",
        ),
        ({"json": {"prompt": "hi", "max_new_tokens": 0}}, 422, "max_new_tokens"),
        ({"json": {"prompt": "hi", "temperature": -1}}, 422, "temperature must be a number in [0, 10]"),
        ({"json": {"prompt": "hi", "top_p": 0}}, 422, "top_p must be a number in (0, 1]"),
        ({"json": {"prompt": "hi", "top_k": 10_000}}, 422, "top_k must be an integer in 1 .. 300"),
        ({"json": {"prompt": "hi", "seed": -1}}, 422, "seed must be a non-negative integer"),
        ({"json": {"prompt": "hi", "stream": "yes"}}, 422, "stream must be true or false"),
        ({"json": {"prompt": "hi", "temprature": 1}}, 422, "unknown field 'temprature'"),
        ({"json": ["hi"]}, 422, "the body must be a JSON object"),
    ],
)
def test_bad_requests_get_one_line_4xx(client, request_kwargs, status, message):
    answer = client.post("/generate", **request_kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert list(body) == ["error"] and message in body["error"] and "\n" not in body["error"]
    assert "Traceback" not in answer.text


def test_wrong_paths_and_methods(client):
    for answer, status in ((client.get("/nothing"), 404), (client.get("/generate"), 405)):
        assert answer.status_code == status and list(answer.json()) == ["error"]
    assert "use POST /generate or GET /health" in client.get("/nothing").json()["error"]


def test_chunked_body_over_the_limit_is_refused(client):
    def chunks():  # no Content-Length: the server must count the bytes as they arrive
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}'

    answer = client.post("/generate", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_concurrent_requests_all_answer_correctly(server, model_and_tokenizer):
    prompts = ["The cat", "A dog", "To be", "that is", "the park", "42 times"]
    results: dict[str, object] = {}

    def ask(prompt: str) -> None:
        with httpx.Client(base_url=server, timeout=120) as c:
            body = {"prompt": prompt, "max_new_tokens": 16, "stream": prompt.startswith(("A", "t"))}
            with c.stream("POST", "/generate", json=body) as answer:
                if body["stream"]:
                    results[prompt] = [d["id"] for n, d in _events(answer.iter_lines()) if n == "token"]
                else:
                    answer.read()
                    results[prompt] = answer.json()["token_ids"]

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert {p: results.get(p) for p in prompts} == {p: _reference(model_and_tokenizer, p, 16) for p in prompts}


def test_client_leaving_mid_stream_leaves_the_server_healthy(server, client, model_and_tokenizer):
    before = client.get("/health").json()["requests"]
    with httpx.Client(base_url=server, timeout=60) as leaving:
        with leaving.stream("POST", "/generate", json={"prompt": "The cat", "max_new_tokens": CAP}) as answer:
            seen = 0
            for line in answer.iter_lines():
                seen += line.startswith("event: token")
                if seen == 2:
                    break  # leave after two tokens: closing the connection cancels the stream
    deadline = time.monotonic() + 30
    while (health := client.get("/health").json()["requests"])["cancelled"] == before["cancelled"]:
        assert time.monotonic() < deadline, f"the server never noticed the client leaving: {health}"
        time.sleep(0.2)
    assert health["active"] == 0 and health["failed"] == 0
    after = client.post("/generate", json={"prompt": "The cat", "max_new_tokens": 5, "stream": False})
    assert after.json()["token_ids"] == _reference(model_and_tokenizer, "The cat", 5)


def test_serve_refuses_bad_checkpoints_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "labkit", "serve", str(tmp_path / "nothing-here")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"labkit: error: no model at {str(tmp_path / 'nothing-here')!r}; pass a folder written by save_model / "
        "GPT.save_pretrained, or a training run or checkpoint folder"
    ]
    assert not Path(tmp_path / "nothing-here").exists()
