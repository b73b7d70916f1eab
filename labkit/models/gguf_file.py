"""Read a GGUF file (llama.cpp's model format): metadata and tensor table in one pass, tensors dequantized in torch.

GGUF layout (version 2 and 3, little-endian): magic "GGUF", version, tensor count, metadata count; the
metadata as typed key/value pairs; one entry per tensor (name, dims with the fastest-moving first, type,
offset); then, aligned to `general.alignment` (32 by default), the tensor data. The reader maps the file and
parses the header with `struct` (the `gguf` package parses every string of a 49k-token vocabulary into its own
numpy array, which takes seconds); tensor bytes stay in the mapped file until `tensor()` dequantizes them.

Dequantized in torch: F32, F16, BF16, Q8_0, Q4_0, Q4_1 (what the packaged SmolLM2 file and most small
models use). Other block formats (the K-quants, ...) go through the `gguf` package's numpy reference, when
it is installed. `tests/models/test_gguf_file.py` checks every torch path against that reference.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.errors import InvalidInputError, MissingSourceError

__all__ = ["GGUFFile", "GGUFTensor", "read_gguf", "QTYPE_NAMES"]

_MAGIC = b"GGUF"
# metadata value types -> struct format (8: string, 9: array are handled apart)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY = {0: "u1", 1: "i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}
QTYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K"}
QTYPE_NAMES.update({11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"})
# block formats labkit dequantizes itself: type -> (values per block, bytes per block)
_BLOCKS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18), 3: (32, 20)}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor's entry: name, torch shape (slowest dimension first), GGUF type id, absolute byte offset."""

    name: str
    shape: tuple[int, ...]
    qtype: int
    offset: int

    @property
    def type_name(self) -> str:
        """The ggml type's name ("Q4_1", "F32", ...)."""
        return QTYPE_NAMES.get(self.qtype, f"type {self.qtype}")


@dataclass
class GGUFFile:
    """A parsed GGUF file: `metadata` (key -> value), `tensors` (name -> GGUFTensor); `tensor(name)` reads one."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, GGUFTensor]
    _map: Any = field(default=None, repr=False)

    def tensor(self, name: str) -> torch.Tensor:
        """A tensor's name in, its values dequantized to a new float32 tensor of its torch shape out."""
        info = self.tensors[name]
        count = int(np.prod(info.shape)) if info.shape else 1
        block = _BLOCKS.get(info.qtype)
        if block is None:
            return _reference_dequantize(self, info, count)
        per, nbytes = block
        if count % per:
            raise InvalidInputError(f"{self.path.name}: tensor {name} has {count} values, not a multiple of {per}")
        raw = np.frombuffer(self._map, dtype=np.uint8, count=count // per * nbytes, offset=info.offset)
        return _dequantize(torch.from_numpy(raw.copy()), info.qtype, count).reshape(info.shape)

    def close(self) -> None:
        """Release the file mapping (tensors already read stay valid)."""
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Cursor:
    """Reads little-endian values from the mapped header, one after another."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        except struct.error:
            raise InvalidInputError(f"{self.path} ends inside its GGUF header; the file is truncated") from None
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        n = self.unpack("Q")
        if self.pos + n > len(self.buf):
            raise InvalidInputError(f"{self.path} ends inside its GGUF header; the file is truncated")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def strings(self, count: int) -> list[str]:
        # a vocabulary holds ~50k strings: one tight loop instead of a call per string
        buf, pos, size, out = self.buf, self.pos, len(self.buf), []
        length = struct.Struct("<Q").unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise InvalidInputError(f"{self.path} ends inside its GGUF header; the file is truncated")
            (n,) = length(buf, pos)
            pos += 8
            out.append(buf[pos : pos + n].decode("utf-8", errors="replace"))
            pos += n
        if pos > size:
            raise InvalidInputError(f"{self.path} ends inside its GGUF header; the file is truncated")
        self.pos = pos
        return out

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item, count = self.unpack("I"), self.unpack("Q")
            if item in _NUMPY:  # numeric arrays in one read
                arr = np.frombuffer(self.buf, dtype=_NUMPY[item], count=count, offset=self.pos)
                self.pos += arr.nbytes
                return arr.tolist()
            if item == 8:
                return self.strings(count)
            return [self.value(item) for _ in range(count)]
        raise InvalidInputError(f"{self.path}: unknown GGUF metadata type {vtype}; is it a GGUF file?")


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    """A .gguf file in, a `GGUFFile` (metadata, tensor table, mapped data) out; raises one clear line on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise MissingSourceError(f"GGUF file {str(path)!r} does not exist; pass the path of a .gguf file")
    with open(path, "rb") as fh:
        if fh.read(4) != _MAGIC:
            raise InvalidInputError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    cur = _Cursor(mm, path)
    cur.pos = 4
    version = cur.unpack("I")
    if version not in (2, 3):
        mm.close()
        raise InvalidInputError(f"{path} is GGUF version {version}; labkit reads versions 2 and 3")
    n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack("I"))
    entries = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.unpack("Q") for _ in range(cur.unpack("I"))]
        entries.append((name, tuple(reversed(dims)), cur.unpack("I"), cur.unpack("Q")))
    align = int(metadata.get("general.alignment", 32))
    start = cur.pos + (-cur.pos % align)
    tensors = {name: GGUFTensor(name, shape, qtype, start + off) for name, shape, qtype, off in entries}
    for t in tensors.values():
        per, nbytes = _BLOCKS.get(t.qtype, (1, 0))
        if t.offset + int(np.prod(t.shape)) // per * nbytes > len(mm):
            mm.close()
            raise InvalidInputError(f"{path} is truncated: tensor {t.name} runs past the end of the file")
    return GGUFFile(path, version, metadata, tensors, mm)


def _dequantize(raw: torch.Tensor, qtype: int, count: int) -> torch.Tensor:
    """Raw block bytes (uint8) in, float32 values out (the formula of each ggml block type)."""
    if qtype == 0:
        return raw.view(torch.float32).clone()
    if qtype == 1:
        return raw.view(torch.float16).float()
    if qtype == 30:
        return raw.view(torch.bfloat16).float()
    per, nbytes = _BLOCKS[qtype]
    blocks = raw.view(-1, nbytes)
    d = blocks[:, :2].contiguous().view(torch.float16).float()  # [blocks, 1] scale
    if qtype == 8:  # Q8_0: x = d * q, q int8
        q = blocks[:, 2:].contiguous().view(torch.int8).float()
        return (d * q).reshape(count)
    if qtype == 2:  # Q4_0: x = d * (nibble - 8); low nibbles are values 0..15 of the block, high ones 16..31
        qs = blocks[:, 2:]
        q = torch.cat([qs & 0x0F, qs >> 4], dim=1).float() - 8.0
        return (d * q).reshape(count)
    # Q4_1: x = d * nibble + m
    m = blocks[:, 2:4].contiguous().view(torch.float16).float()
    qs = blocks[:, 4:]
    q = torch.cat([qs & 0x0F, qs >> 4], dim=1).float()
    return (d * q + m).reshape(count)


def _reference_dequantize(file: GGUFFile, info: GGUFTensor, count: int) -> torch.Tensor:
    try:
        import gguf
    except ImportError:
        raise MissingSourceError(
            f"{file.path.name}: tensor {info.name} is {info.type_name}, which labkit reads through the gguf "
            "package; run: pip install gguf"
        ) from None
    qtype = gguf.GGMLQuantizationType(info.qtype)
    per, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    raw = np.frombuffer(file._map, dtype=np.uint8, count=count // per * nbytes, offset=info.offset)
    values = gguf.quants.dequantize(raw.reshape(-1, nbytes), qtype)
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(info.shape)
