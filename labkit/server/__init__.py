"""labkit.server: a small HTTP API (FastAPI + uvicorn) over a trained language model; `labkit serve` runs it."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    "create_app": "app",
    "serve": "app",
    "ServerLimits": "app",
    "RequestError": "app",
    "parse_request": "app",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
