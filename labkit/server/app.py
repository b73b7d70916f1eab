"""A small HTTP API over a trained language model: `POST /generate` (JSON, or a server-sent-event stream) and `GET /health`.

Every bad request gets a 4xx answer with one JSON line `{"error": "..."}` naming the problem and the fix, and
nothing else; an unexpected failure gets `500 {"error": "internal error"}` (the traceback goes to the server log,
never to the client). Requests are validated before any model work: content type, body size, JSON, known
fields, value ranges, prompt length in tokens.

Concurrent requests share the model one token at a time: each new token is computed under a lock in a worker
thread, so streams interleave fairly and the event loop stays free to accept requests and notice clients that
went away. A client that disconnects mid-stream stops its generation at the next token.
"""

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from labkit.checks import check_int
from labkit.errors import InvalidInputError

__all__ = ["ServerLimits", "RequestError", "parse_request", "create_app", "serve"]

log = logging.getLogger("labkit.server")

FIELDS = {
    "prompt": "the text to continue (required)",
    "max_new_tokens": "tokens to add, 1 .. the server's cap (default 32)",
    "temperature": "0 = greedy, otherwise > 0 and <= 10 (default: greedy unless top_k/top_p is given)",
    "top_k": "sample among the k most likely tokens, 1 .. vocab size",
    "top_p": "nucleus sampling, in (0, 1]",
    "repetition_penalty": "> 0 and <= 10; 1 = off",
    "seed": "integer seed for reproducible sampling",
    "stream": "true (default): server-sent events, one per token; false: one JSON answer",
}


@dataclass
class ServerLimits:
    """What one request may ask for: body bytes, prompt characters and tokens, new tokens."""

    max_new_tokens: int = 256  # cap on max_new_tokens per request
    max_prompt_tokens: int | None = None  # None = the model's block_size (unbounded for an LSTM)
    max_prompt_chars: int = 8_000  # checked before tokenizing, so a huge prompt costs nothing
    max_body_bytes: int = 32_768  # a request body larger than this is refused with 413

    def __post_init__(self) -> None:
        check_int("max_new_tokens", self.max_new_tokens)
        check_int("max_prompt_tokens", self.max_prompt_tokens, allow_none=True)
        check_int("max_prompt_chars", self.max_prompt_chars)
        check_int("max_body_bytes", self.max_body_bytes, low=64)


@dataclass
class _Counters:
    active: int = 0
    served: int = 0
    cancelled: int = 0
    failed: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_request(body: dict[str, Any], limits: ServerLimits, vocab_size: int) -> dict[str, Any]:
    """A decoded JSON body in, the validated generation options out; a RequestError (422) names the first bad field."""
    if not isinstance(body, dict):
        raise RequestError(422, 'the body must be a JSON object such as {"prompt": "Once upon a time"}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(422, f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(422, 'prompt must be a non-empty string, e.g. {"prompt": "Once upon a time"}')
    if len(prompt) > limits.max_prompt_chars:
        raise RequestError(
            422, f"prompt has {len(prompt)} characters; this server accepts at most {limits.max_prompt_chars}"
        )
    options: dict[str, Any] = {"prompt": prompt}
    n = body.get("max_new_tokens", 32)
    if not _is_int(n) or not 1 <= n <= limits.max_new_tokens:
        raise RequestError(422, f"max_new_tokens must be an integer in 1 .. {limits.max_new_tokens}, got {n!r}")
    options["max_new_tokens"] = n
    t = body.get("temperature")
    if t is not None and (not _is_number(t) or not 0 <= t <= 10):
        raise RequestError(422, f"temperature must be a number in [0, 10] (0 = greedy), got {t!r}")
    k = body.get("top_k")
    if k is not None and (not _is_int(k) or not 1 <= k <= vocab_size):
        raise RequestError(422, f"top_k must be an integer in 1 .. {vocab_size}, got {k!r}")
    p = body.get("top_p")
    if p is not None and (not _is_number(p) or not 0 < p <= 1):
        raise RequestError(422, f"top_p must be a number in (0, 1], got {p!r}")
    rp = body.get("repetition_penalty", 1.0)
    if not _is_number(rp) or not 0 < rp <= 10:
        raise RequestError(422, f"repetition_penalty must be a number in (0, 10] (1 = off), got {rp!r}")
    seed = body.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**63):
        raise RequestError(422, f"seed must be a non-negative integer, got {seed!r}")
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise RequestError(422, f"stream must be true or false, got {stream!r}")
    options.update(temperature=t, top_k=k, top_p=p, repetition_penalty=float(rp), seed=seed, stream=stream)
    return options


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def create_app(model: nn.Module, tokenizer: Any, limits: ServerLimits | None = None) -> Any:
    """A labkit GPT or LSTMLM and its labkit Tokenizer in, the FastAPI application out (run it with uvicorn).

    limits: request limits (ServerLimits(); see its fields).
    """
    # no `from __future__ import annotations` in this module: FastAPI reads the endpoints' annotations at run
    # time, and a string "Request" naming this local import would make it a query parameter (every call a 422)
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from labkit.generation import stream as generate_stream
    from labkit.models import relayout_for_decoding

    limits = limits or ServerLimits()
    kind = type(model).__name__
    if kind not in ("GPT", "LSTMLM"):
        raise InvalidInputError(f"labkit serve runs language models (GPT, LSTMLM), got a {kind}")
    if tokenizer is None or not hasattr(tokenizer, "encode"):
        raise InvalidInputError(
            "the server needs the model's tokenizer; save it next to the weights with save_model(model, folder, tokenizer)"
        )
    config = model.config
    vocab_size = config.vocab_size
    block = getattr(config, "block_size", None) if kind == "GPT" else None
    max_prompt = limits.max_prompt_tokens or block
    model.eval()
    relayout_for_decoding(model)  # once, before any request: generate() would otherwise do it per call
    lock = asyncio.Lock()
    counters = _Counters()
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())

    app = FastAPI(title="labkit", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, message: str) -> JSONResponse:
        counters.by_status[status] = counters.by_status.get(status, 0) + 1
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: f"no such endpoint {request.url.path!r}; use POST /generate or GET /health"}
        return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid request; see GET /health for the fields")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        counters.failed += 1
        log.exception("unexpected error while serving %s", request.url.path)
        return error(500, "internal error")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": kind,
            "parameters": n_params,
            "vocab_size": vocab_size,
            "block_size": block,
            "limits": {
                "max_new_tokens": limits.max_new_tokens,
                "max_prompt_tokens": max_prompt,
                "max_prompt_chars": limits.max_prompt_chars,
                "max_body_bytes": limits.max_body_bytes,
            },
            "fields": FIELDS,
            "requests": {
                "active": counters.active,
                "served": counters.served,
                "cancelled": counters.cancelled,
                "failed": counters.failed,
                "refused": dict(sorted(counters.by_status.items())),
            },
        }

    async def read_options(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(
                415, f"send the body as JSON with Content-Type: application/json (got {ctype or 'none'!r})"
            )
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_body_bytes):
            raise RequestError(413, f"request body over {limits.max_body_bytes} bytes; send a shorter prompt")
        body = b""
        async for chunk in request.stream():  # counted as it arrives: a chunked body cannot exceed the limit either
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise RequestError(413, f"request body over {limits.max_body_bytes} bytes; send a shorter prompt")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(400, f"the body is not valid JSON ({str(exc).splitlines()[0]})") from None
        return parse_request(data, limits, vocab_size)

    def start(options: dict[str, Any]) -> tuple[Iterator[dict[str, Any]], int]:
        ids = tokenizer.encode(options["prompt"])
        if not ids:
            raise RequestError(422, "the prompt encodes to no tokens; send some text")
        if max_prompt is not None and len(ids) > max_prompt:
            raise RequestError(422, f"prompt is {len(ids)} tokens; this model accepts at most {max_prompt}")
        gen = generate_stream(
            model,
            [ids],
            options["max_new_tokens"],
            temperature=options["temperature"],
            top_k=options["top_k"],
            top_p=options["top_p"],
            repetition_penalty=options["repetition_penalty"],
            seed=options["seed"],
            tokenizer=tokenizer,
            sliding_window=block is not None,
            top_candidates=1,
        )
        return gen, len(ids)

    async def next_token(gen: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
        async with lock:  # one forward pass at a time: requests interleave token by token
            return await run_in_threadpool(next, gen, None)

    async def events(gen: Iterator[dict[str, Any]], prompt_tokens: int) -> AsyncIterator[bytes]:
        pieces, reason, count = [], "length", 0
        counters.active += 1
        finished = False
        try:
            yield _sse("start", {"prompt_tokens": prompt_tokens})
            while (info := await next_token(gen)) is not None:
                count += 1
                pieces.append(info["text"] or "")
                yield _sse("token", {"index": info["index"], "id": info["id"], "text": info["text"] or ""})
                if info["finished"]:
                    reason = "eos"
            yield _sse("done", {"text": "".join(pieces), "tokens": count, "finish_reason": reason})
            finished = True
            counters.served += 1
        except Exception:
            counters.failed += 1
            log.exception("generation failed mid-stream")
            yield _sse("error", {"error": "internal error"})
            finished = True
        finally:
            counters.active -= 1
            gen.close()
            if not finished:  # the client went away (the response was cancelled) before the last token
                counters.cancelled += 1

    @app.post("/generate")
    async def generate(request: Request) -> Any:
        options = await read_options(request)
        gen, prompt_tokens = await run_in_threadpool(start, options)
        if options["stream"]:
            return StreamingResponse(
                events(gen, prompt_tokens),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        counters.active += 1
        try:
            infos = []
            while (info := await next_token(gen)) is not None:
                infos.append(info)
        finally:
            counters.active -= 1
            gen.close()
        counters.served += 1
        return {
            "text": "".join(i["text"] or "" for i in infos),
            "token_ids": [i["id"] for i in infos],
            "prompt_tokens": prompt_tokens,
            "finish_reason": "eos" if infos and infos[-1]["finished"] else "length",
        }

    return app


def serve(
    model: nn.Module,
    tokenizer: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    log_level: str = "info",
) -> None:
    """A model and its tokenizer in; serves `create_app(...)` with uvicorn on host:port until interrupted.

    host: 127.0.0.1 (this machine only) by default; "0.0.0.0" opens the API to the network, with no
    authentication, so only do that behind a proxy you trust. port: 0 picks a free port.
    """
    check_int("port", port, low=0, high=65535)
    import uvicorn

    app = create_app(model, tokenizer, limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
