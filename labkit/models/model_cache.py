"""The conversion cache: a pretrained source converted once into a labkit folder, read back in about a second.

Layout: `$LABKIT_CACHE/models/<name>-<id>/` (root `~/.cache/labkit` by default, the root labkit's vendored
front-end files use too), one folder per source, holding `config.json` (the labkit config), `model.safetensors`
(float32, as converted), `tokenizer.json` with its `tokenizer.labkit.json` sidecar (roles, chat template), and
`manifest.json`: labkit's conversion version, the source's fingerprint (per file: size, modification time and a
SHA-256 of its first MiB, where headers live) and each cached file's size and CRC-32.

Reading an entry checks all of it: a fingerprint that no longer matches the source (the file was replaced or
labkit's conversion changed) is *stale*, a missing, short or corrupted file is *damaged*; either way one line
on stderr says so and the source is converted again. Writes are atomic: an entry is written into a
temporary folder beside it and renamed into place, so a reader never sees half an entry. A lock file
serialises conversions of the same source across processes (the second waits, then reads the first's result).
Files are not fsynced: a power cut can leave a short or zeroed file, which the CRC check reads as damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["CONVERSION_VERSION", "CachedModel", "cache_root", "cached_models", "clear_model_cache", "load_or_convert"]

CONVERSION_VERSION = 1  # bump when a conversion's output changes: every older entry then reads as stale
HEAD_BYTES = 1 << 20  # fingerprint: hash this much of each source file (headers, vocabularies) besides size and mtime
_CHUNK = 32 << 20  # CRC-32 granularity of cached files
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def cache_root() -> Path:
    """Return labkit's cache root: `$LABKIT_CACHE`, else `~/.cache/labkit` (converted models go in `models/`)."""
    return Path(os.environ.get("LABKIT_CACHE") or Path.home() / ".cache" / "labkit")


def _models_dir() -> Path:
    return cache_root() / "models"


@dataclass(frozen=True)
class CachedModel:
    """One cache entry as `labkit cache list` shows it."""

    name: str  # folder name under $LABKIT_CACHE/models
    path: Path
    source: str  # what was converted (a file or folder path)
    arch: str  # "gpt" or "encoder"
    size_bytes: int
    state: str  # "ok", "stale" (source changed or gone, or an older conversion), "damaged"


class _Damaged(Exception):
    """An entry that cannot be trusted; the message says why."""


def fingerprint(files: list[Path]) -> dict[str, Any]:
    """Source files in, {path: [size, mtime_ns, sha256 of the first MiB]} plus the conversion version out."""
    out: dict[str, Any] = {"conversion_version": CONVERSION_VERSION, "files": {}}
    for f in files:
        st = f.stat()
        with open(f, "rb") as fh:
            head = hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()
        out["files"][str(f)] = [st.st_size, st.st_mtime_ns, head]
    return out


def entry_dir(key: str, label: str) -> Path:
    """A source's identity (its resolved path and target) and a readable label in, its entry folder out."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in label.lower())[:48].strip("-.") or "model"
    return _models_dir() / f"{slug}-{digest}"


def _notice(message: str) -> None:
    print(f"labkit: {message}", file=sys.stderr, flush=True)


def load_or_convert(
    key: str,
    label: str,
    files: list[Path],
    convert: Callable[[], tuple[torch.nn.Module, Any]],
    *,
    source: str = "",
    use_cache: bool = True,
) -> tuple[torch.nn.Module, Any]:
    """Read the cached conversion of a source, or run `convert()` and cache its (model, tokenizer).

    key: the source's identity (resolved path and target). label: a readable name for the entry folder.
    files: the source files whose fingerprint decides whether the entry is current. convert: builds
    (model, tokenizer or None) from the source. source: where it came from, as `labkit cache list` shows it.
    use_cache: False converts without reading or writing the cache.
    """
    if not use_cache:
        return convert()
    folder = entry_dir(key, label)
    wanted = fingerprint(files)
    reason = None
    if folder.exists():
        try:
            return read_entry(folder, wanted)
        except _Damaged as exc:
            reason = str(exc)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _notice(f"cannot write the model cache at {folder.parent} ({exc.strerror}); converting without caching")
        return convert()
    with _lock(folder):
        if folder.exists():  # another process may have converted it while this one waited
            try:
                model_tok = read_entry(folder, wanted)
            except _Damaged as exc:
                reason = reason or str(exc)
            else:
                return model_tok
        if reason:
            _notice(f"cached conversion {folder.name} is {reason}; converting {label} again")
        model, tokenizer = convert()
        try:
            write_entry(folder, model, tokenizer, wanted, source=source or key)
        except OSError as exc:
            _notice(f"could not cache the conversion of {label} ({exc}); it will be converted again next time")
    return model, tokenizer


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<entry>.lock` (POSIX flock; elsewhere only the atomic rename protects)."""
    try:
        import fcntl
    except ImportError:  # Windows: two processes may both convert; the rename keeps the entry whole
        yield
        return
    with open(folder.with_name(f".{folder.name}.lock"), "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _notice(f"waiting for another process converting {folder.name}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---- writing -----------------------------------------------------------------------------------------------------


def write_entry(folder: Path, model: torch.nn.Module, tokenizer: Any, fp: dict[str, Any], source: str) -> None:
    """Write model, tokenizer and manifest into a temporary folder, then rename it to `folder` (replacing a bad one)."""
    from safetensors.torch import save_file

    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        (tmp / "config.json").write_text(json.dumps(asdict(model.config), indent=2), encoding="utf-8")
        tensors, seen = {}, set()
        for name, t in model.state_dict(keep_vars=True).items():
            if id(t) in seen:  # a tied matrix is stored once, under its first name
                continue
            seen.add(id(t))
            tensors[name] = t.detach().contiguous()
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save(tmp)
        files = {}
        for f in sorted(tmp.iterdir()):
            files[f.name] = {"size": f.stat().st_size, "crc32": _crc32_file(f)}  # one CRC per _CHUNK bytes
        manifest = {
            "format": "labkit-converted-model",
            "arch": model.config.arch,
            "source": source,
            "fingerprint": fp,
            "files": files,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace(tmp: Path, folder: Path) -> None:
    """Rename `tmp` to `folder`; a bad entry already there is first renamed aside (readers never see a mix)."""
    if folder.exists():
        trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError:
        if not folder.is_dir():  # without a lock (no fcntl) another process may have renamed its own copy first
            raise


def _crc32_file(path: Path) -> list[int]:
    crcs = []
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crcs.append(zlib.crc32(chunk))
    return crcs


# ---- reading -----------------------------------------------------------------------------------------------------


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise _Damaged("damaged (no readable manifest.json)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "labkit-converted-model":
        raise _Damaged("damaged (manifest.json is not a labkit manifest)")
    return manifest


def _check_file(folder: Path, name: str, meta: dict[str, Any]) -> None:
    path = folder / name
    try:
        size = path.stat().st_size
    except OSError:
        raise _Damaged(f"damaged ({name} is missing)") from None
    if size != meta.get("size"):
        raise _Damaged(f"damaged ({name} has {size:,} bytes, the manifest says {meta.get('size')})")
    if _crc32_file(path) != meta.get("crc32"):
        raise _Damaged(f"damaged ({name} fails its CRC-32 check)")


def read_entry(folder: Path, wanted: dict[str, Any] | None = None) -> tuple[torch.nn.Module, Any]:
    """An entry folder (and the source's current fingerprint) in, (model, tokenizer or None) out; raises _Damaged."""
    from labkit.models.materialize import build_model

    manifest = _manifest(folder)
    if wanted is not None and manifest.get("fingerprint") != wanted:
        raise _Damaged("stale (the source or labkit's conversion changed)")
    files = manifest.get("files") or {}
    if "model.safetensors" not in files or "config.json" not in files:
        raise _Damaged("damaged (the manifest lists no model)")
    for name, meta in files.items():
        if name != "model.safetensors":
            _check_file(folder, name, meta)
    raw = _read_verified(folder / "model.safetensors", files["model.safetensors"])
    state = _tensors(raw, folder.name)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cls, config_cls = _model_class(config.get("arch"))
    try:
        model = build_model(cls, config_cls(**config), state, where=f"cache entry {folder.name}")
    except (InvalidInputError, TypeError) as exc:
        raise _Damaged(f"damaged ({exc})") from None
    tokenizer = None
    if "tokenizer.json" in files:
        from labkit.data import load_tokenizer

        tokenizer = load_tokenizer(folder / "tokenizer.json")
    return model, tokenizer


def _read_verified(path: Path, meta: dict[str, Any]) -> torch.Tensor:
    """A cached weights file in, its bytes (uint8 tensor) out, CRC-checked chunk by chunk while it is read.

    The bytes go into uninitialised memory (no zero-filling first); each chunk's CRC-32 runs on a worker
    thread (zlib releases the GIL) while the next chunk is read, so checking costs little beyond the read.
    """
    from concurrent.futures import ThreadPoolExecutor

    try:
        size = path.stat().st_size
    except OSError:
        raise _Damaged("damaged (model.safetensors is missing)") from None
    if size != meta.get("size"):
        raise _Damaged(f"damaged (model.safetensors has {size:,} bytes, the manifest says {meta.get('size')})")
    buf = torch.empty(size, dtype=torch.uint8)
    view = memoryview(buf.numpy())
    with open(path, "rb") as fh, ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        for start in range(0, size, _CHUNK):
            part, done = view[start : start + _CHUNK], 0
            while done < len(part):
                n = fh.readinto(part[done:])
                if not n:
                    raise _Damaged("damaged (model.safetensors is shorter than it was)")
                done += n
            futures.append(pool.submit(zlib.crc32, part))
        crcs = [f.result() for f in futures]
    if crcs != meta.get("crc32"):
        raise _Damaged("damaged (model.safetensors fails its CRC-32 check)")
    return buf


def _tensors(raw: torch.Tensor, where: str) -> dict[str, torch.Tensor]:
    """A whole safetensors file in memory (uint8) in, its tensors as views of that memory (no copy) out."""
    try:
        n = int.from_bytes(raw[:8].numpy().tobytes(), "little")
        header = json.loads(raw[8 : 8 + n].numpy().tobytes())
        start, out = 8 + n, {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = _DTYPES[info["dtype"]]
            begin, end = info["data_offsets"]
            part = raw[start + begin : start + end]
            if (start + begin) % dtype.itemsize:  # a misaligned tensor gets its own aligned copy
                part = part.clone()
            out[name] = part.view(dtype).view(info["shape"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise _Damaged(f"damaged (model.safetensors does not parse: {exc})") from None
    return out


def _model_class(arch: Any) -> tuple[type, type]:
    if arch == "gpt":
        from labkit.models.gpt import GPT, GPTConfig

        return GPT, GPTConfig
    if arch == "encoder":
        from labkit.models.encoder import Encoder, EncoderConfig

        return Encoder, EncoderConfig
    raise _Damaged(f"damaged (config.json names architecture {arch!r})")


# ---- listing and clearing ----------------------------------------------------------------------------------------


def cached_models() -> list[CachedModel]:
    """Every entry under `$LABKIT_CACHE/models`, with its source, size and state ("ok", "stale", "damaged")."""
    root = _models_dir()
    out = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        try:
            manifest = _manifest(folder)
        except _Damaged:
            out.append(CachedModel(folder.name, folder, "?", "?", size, "damaged"))
            continue
        fp = manifest.get("fingerprint") or {}
        files = [Path(p) for p in (fp.get("files") or {})]
        try:
            state = "ok" if fingerprint(files) == fp else "stale"
        except OSError:
            state = "stale"  # the source is gone
        out.append(
            CachedModel(folder.name, folder, str(manifest.get("source")), str(manifest.get("arch")), size, state)
        )
    return out


def clear_model_cache(names: list[str] | None = None) -> list[str]:
    """Remove the named entries (None: every entry); return the names removed.

    Clearing everything also removes what interrupted conversions left behind (hidden `.tmp-*` folders more
    than an hour old). Vendored front-end files elsewhere under the cache root are not touched.
    """
    root = _models_dir()
    entries = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} if root.is_dir() else {}
    if names:
        unknown = [n for n in names if n not in entries]
        if unknown:
            hint = close_matches(unknown[0], entries)
            raise UnknownNameError(
                f"no cached model named {unknown[0]!r}; {hint + ' ' if hint else ''}see `labkit cache list`"
            )
    removed = []
    for name in names or sorted(entries):
        trash = root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
        os.rename(entries[name], trash)  # readers see the entry whole or not at all
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(name)
    if not names and root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".trash-")) and time.time() - p.stat().st_mtime > 3600:
                shutil.rmtree(p, ignore_errors=True)
    return removed
