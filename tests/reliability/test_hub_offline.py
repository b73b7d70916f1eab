"""Item 6 of the hardening issue: an `hf:` name without a network fails in under 2 s (not after ~25 s of
retries) with one line naming HF_HUB_OFFLINE=1 and a local file. The hub address is pointed at places that
cannot answer (a closed local port, a name that cannot resolve, an address that drops packets), so the test
never depends on this machine's network."""

from __future__ import annotations

import socket
import time

import pytest

from labkit.data import hub, load_corpus
from labkit.errors import MissingSourceError

pytest.importorskip("datasets")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free, and nothing listens once the socket is closed


@pytest.fixture(autouse=True)
def _no_cached_answers(monkeypatch):
    monkeypatch.setattr(hub, "_answers", {})
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "endpoint",
    [
        lambda: f"http://127.0.0.1:{_closed_port()}",  # refused at once
        lambda: "https://labkit-hub-test.invalid",  # .invalid never resolves (RFC 6761)
        lambda: "https://192.0.2.1",  # TEST-NET-1: never routed; packets vanish, only the timeout ends it
    ],
    ids=["refused", "unresolvable", "blackhole"],
)
def test_hf_name_without_network_fails_fast_naming_the_offline_ways(monkeypatch, tmp_path, endpoint):
    monkeypatch.setenv("HF_ENDPOINT", endpoint())
    started = time.perf_counter()
    with pytest.raises(MissingSourceError) as err:
        load_corpus("hf:imdb", cache_dir=str(tmp_path))
    elapsed = time.perf_counter() - started
    message = str(err.value)
    assert elapsed < 2.0, elapsed
    assert "\n" not in message and "'hf:imdb'" in message and "HF_HUB_OFFLINE=1" in message
    assert "load_corpus('my.txt')" in message  # the local alternative


def test_offline_mode_and_local_builders_skip_the_probe(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(hub, "_probe", lambda *a: calls.append(a) or "unreachable")
    path = tmp_path / "notes.txt"
    path.write_text("one\ntwo\n")
    assert load_corpus("hf:text", data_files=str(path), cache_dir=str(tmp_path / "c")).texts == ["one", "two"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.require_hub("'hf:imdb'", local="a file")  # the library reads only its cache then: nothing to probe
    assert calls == []


def test_a_proxy_is_probed_instead_of_the_hub(monkeypatch):
    seen = []
    monkeypatch.setattr(hub, "_probe", lambda host, port, timeout: seen.append((host, port)) or None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    hub.require_hub("x", local="y")
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    monkeypatch.setattr(hub, "_answers", {})
    hub.require_hub("x", local="y")
    assert seen == [("proxy.example", 3128), ("huggingface.co", 443)]
