"""Can this machine reach the Hugging Face Hub? Asked in about a second, before a hub download starts.

Without a network, `datasets` and `huggingface_hub` retry with back-off for about 25 s before they give up.
`require_hub(what, local=...)` answers first: it resolves the hub's host and opens one TCP connection
(through the HTTPS proxy when one is set), both within `PROBE_TIMEOUT_S`, and raises one clear
MissingSourceError naming the offline ways out when that fails. With HF_HUB_OFFLINE=1 (or
HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE) it does nothing: the libraries then read only their cache and
fail fast on their own. An answer is remembered for `CACHE_S` seconds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from urllib.parse import urlsplit

from labkit.errors import MissingSourceError

__all__ = [
    "PROBE_TIMEOUT_S",
    "hub_endpoint",
    "offline_mode",
    "hub_unreachable_reason",
    "require_hub",
    "require_hub_for_dataset",
]

PROBE_TIMEOUT_S = 1.0  # DNS and TCP connect together; a reachable hub answers in well under this
CACHE_S = 30.0
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_answers: dict[tuple[str, int], tuple[float, str | None]] = {}


def hub_endpoint() -> str:
    """The hub's base URL: HF_ENDPOINT when set (a mirror), else https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def offline_mode() -> bool:
    """True when the user has told the Hugging Face libraries to stay offline (HF_HUB_OFFLINE=1 and friends)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARIABLES)


def _target() -> tuple[str, int, str]:
    """(host, port, what it is) of the first hop: the HTTPS proxy when one applies, else the hub itself."""
    url = urlsplit(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    bypass = any(
        p.strip() and (host == p.strip().lstrip(".") or host.endswith("." + p.strip().lstrip(".")))
        for p in no_proxy.split(",")
    )
    names = (
        ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
        if url.scheme == "https"
        else ("http_proxy", "HTTP_PROXY")
    )
    proxy = next((os.environ[n] for n in names if os.environ.get(n)), None)
    if proxy and not bypass and no_proxy.strip() != "*":
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if p.hostname:
            return p.hostname, p.port or 8080, f"the proxy {p.hostname}:{p.port or 8080}"
    return host, port, host


def _probe(host: str, port: int, timeout: float) -> str | None:
    """Resolve and connect within `timeout` seconds (DNS can hang, so it runs in a daemon thread); the reason or None."""
    result: list[str | None] = []

    def attempt() -> None:
        deadline = time.monotonic() + timeout
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result.append(f"cannot resolve {host} ({exc.strerror or type(exc).__name__})")
            return
        last = "no address"
        for family, kind, proto, _, address in infos:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(left)
                    sock.connect(address)
                result.append(None)
                return
            except OSError as exc:
                last = exc.strerror or type(exc).__name__
        result.append(f"cannot connect to {host}:{port} ({last})")

    worker = threading.Thread(target=attempt, daemon=True, name="labkit-hub-probe")
    worker.start()
    worker.join(timeout)
    if not result:
        return f"no answer from {host}:{port} within {timeout:g} s"
    return result[0]


def hub_unreachable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the hub (or the proxy in front of it) accepts a connection within `timeout` s, else why not."""
    host, port, _ = _target()
    now = time.monotonic()
    cached = _answers.get((host, port))
    if cached is not None and now - cached[0] < CACHE_S:
        return cached[1]
    reason = _probe(host, port, timeout)
    _answers[(host, port)] = (time.monotonic(), reason)
    return reason


def require_hub(what: str, *, local: str) -> None:
    """Return when `what` (e.g. "'hf:imdb'") can be fetched from the hub; else one clear error, in about a second.

    local: the offline alternative for this kind of thing, shown in the message (e.g. "a local folder saved with
    save_pretrained()"). Does nothing in offline mode (the libraries then use only their cache).
    """
    if offline_mode():
        return
    reason = hub_unreachable_reason()
    if reason is not None:
        raise MissingSourceError(
            f"{what} needs the Hugging Face Hub at {hub_endpoint()}, which this machine cannot reach ({reason}); "
            f"if it is already in your Hugging Face cache, set HF_HUB_OFFLINE=1 and run again, or use {local}"
        )


# `datasets` builders that read local files and never ask the hub (load_dataset("text", data_files=...))
DATASETS_LOCAL_BUILDERS = frozenset(
    {
        "text",
        "csv",
        "json",
        "parquet",
        "arrow",
        "pandas",
        "xml",
        "sql",
        "generator",
        "webdataset",
        "imagefolder",
        "audiofolder",
    }
)


def require_hub_for_dataset(name: str) -> None:
    """A `datasets` name in, nothing out when it is local (a builder such as "text", or a path) or the hub answers;
    else the one-line error of `require_hub`."""
    if name in DATASETS_LOCAL_BUILDERS or os.path.exists(name):
        return
    require_hub(
        f"'hf:{name}'",
        local="a local file instead: load_corpus('my.txt'), or load_corpus('hf:text', data_files='my.txt')",
    )
