"""Tensors -> compact binary for the browser: float16 arrays, optional top-k pruning, and a tiny PNG writer.

Attention for a 12-layer x 12-head model at 256 tokens is 9.4 M numbers: as JSON text that is
hundreds of MB, as float16 bytes 19 MB, and pruned to the top 20 weights per query row 3 MB.
A payload is one `bytes` blob plus a small JSON-able header that says where each array lives:

    header = {"format": "labkit-arrays/1",
              "arrays": {name: {"shape": [...], "top_k": None | k, "offset": bytes, "nbytes": bytes}}}

Dense arrays are float16 little-endian in C order. A pruned array of shape [..., K] keeps the k largest
values of every last-axis row: first all indices (uint16, [..., k]) then all values (float16, [..., k]).
Every element is 2 bytes, so every offset is even and the browser can read it with a DataView.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Mapping

import numpy as np
import torch

from labkit.checks import check_int
from labkit.errors import InvalidInputError

__all__ = ["FORMAT", "pack_arrays", "unpack_arrays", "auto_top_k", "to_base64", "png_bytes", "weight_colors"]

FORMAT = "labkit-arrays/1"
_MAX_INDEX = 65535  # indices travel as uint16


def _float16_le(t: torch.Tensor) -> bytes:
    return t.detach().to("cpu", torch.float16).contiguous().numpy().astype("<f2", copy=False).tobytes()


def auto_top_k(shape: tuple[int, ...], max_bytes: int) -> int | None:
    """Array shape [..., K] and a byte budget in, None (dense fits) or the largest k per row that fits out."""
    n = int(np.prod(shape))
    if 2 * n <= max_bytes:
        return None
    rows = n // shape[-1]
    # 4 bytes per kept weight: a uint16 index and a float16 value
    return max(1, min(shape[-1], max_bytes // (4 * rows)))


def pack_arrays(
    arrays: Mapping[str, torch.Tensor], top_k: Mapping[str, int | None] | None = None
) -> tuple[dict, bytes]:
    """{name: tensor} (and optional {name: k}) in, (header dict, bytes) out; see the module docstring for the layout.

    arrays: float tensors of any shape. top_k: per array, None keeps every value, k keeps the k largest per
    last-axis row (k >= row length keeps them all, densely).
    """
    top_k = dict(top_k or {})
    header: dict = {"format": FORMAT, "arrays": {}}
    chunks: list[bytes] = []
    offset = 0
    for name, t in arrays.items():
        t = torch.as_tensor(t).detach().to("cpu", torch.float32)
        k = top_k.get(name)
        check_int(f"top_k for {name!r}", k, allow_none=True)
        if t.dim() == 0:
            raise InvalidInputError(f"array {name!r} must have at least one dimension, got a scalar")
        if k is not None and k >= t.shape[-1]:
            k = None
        if k is None:
            blob = _float16_le(t)
        else:
            if t.shape[-1] - 1 > _MAX_INDEX:
                raise InvalidInputError(
                    f"array {name!r} has rows of {t.shape[-1]} entries; pruning supports at most {_MAX_INDEX + 1}"
                )
            values, indices = torch.topk(t, k, dim=-1)
            idx = indices.to(torch.int32).numpy().astype("<u2").tobytes()
            blob = idx + _float16_le(values)
        header["arrays"][name] = {"shape": list(t.shape), "top_k": k, "offset": offset, "nbytes": len(blob)}
        chunks.append(blob)
        offset += len(blob)
    return header, b"".join(chunks)


def unpack_arrays(header: dict, data: bytes) -> dict[str, torch.Tensor]:
    """(header, bytes) from `pack_arrays` in, {name: float32 tensor} out (pruned entries come back as 0)."""
    if header.get("format") != FORMAT:
        raise InvalidInputError(f"payload format {header.get('format')!r} is not {FORMAT!r}; build it with pack_arrays")
    out = {}
    for name, spec in header["arrays"].items():
        shape, k, off = tuple(spec["shape"]), spec["top_k"], spec["offset"]
        raw = data[off : off + spec["nbytes"]]
        if len(raw) != spec["nbytes"]:
            raise InvalidInputError(f"payload is truncated: array {name!r} needs {spec['nbytes']} bytes at {off}")
        if k is None:
            out[name] = torch.from_numpy(np.frombuffer(raw, "<f2").astype(np.float32).reshape(shape))
            continue
        rows = int(np.prod(shape[:-1]))
        idx = np.frombuffer(raw[: 2 * rows * k], "<u2").astype(np.int64).reshape(rows, k)
        val = np.frombuffer(raw[2 * rows * k :], "<f2").astype(np.float32).reshape(rows, k)
        dense = np.zeros((rows, shape[-1]), np.float32)
        np.put_along_axis(dense, idx, val, axis=1)
        out[name] = torch.from_numpy(dense.reshape(shape))
    return out


def to_base64(data: bytes) -> str:
    """Bytes in, ASCII base64 text out (for embedding in static HTML)."""
    return base64.b64encode(data).decode("ascii")


def weight_colors(m: np.ndarray) -> np.ndarray:
    """Weights [h, w] in [0, 1] in, RGB uint8 [h, w, 3] out: white for 0, deep blue for 1 (prints well)."""
    w = np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0)[..., None]
    white, blue = np.array([255, 255, 255], np.float32), np.array([8, 48, 107], np.float32)
    return np.rint(white + (blue - white) * np.sqrt(w)).astype(np.uint8)  # sqrt: small weights stay visible


def png_bytes(rgb: np.ndarray) -> bytes:
    """RGB uint8 [height, width, 3] in, the bytes of a PNG file out (no imaging library needed)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidInputError(f"png_bytes needs a uint8 [height, width, 3] array, got {rgb.dtype} {rgb.shape}")
    h, w, _ = rgb.shape
    # each scanline starts with filter byte 0 (none)
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
