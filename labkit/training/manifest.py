"""Checkpoint integrity: durable writes, a manifest written last, and verification before anything is loaded.

Every checkpoint folder ends with `manifest.json`: the step, the run's config and its SHA-256 hash (see
`labkit.training.options.run_config`), and the size and SHA-256 of each file. It is written after every
other file, so a folder without it is incomplete; `verify_checkpoint` re-reads each file and compares, so
a truncated, emptied or overwritten file is caught before its bytes reach a model. Files and their folder
are fsynced before the folder is renamed into place, and the run folder after, so a power loss cannot leave
an empty file that the rename already made current.

`select_checkpoint` is what loaders call: a step folder must verify; a run folder gives its newest good
checkpoint, with a note for each newer one that failed (the trainer and `load_checkpoint` turn those into a
`CheckpointWarning`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, MissingSourceError

__all__ = [
    "MANIFEST",
    "CorruptCheckpointError",
    "CheckpointWarning",
    "write_durable",
    "fsync_dir",
    "write_manifest",
    "verify_checkpoint",
    "step_dirs",
    "latest_step_dir",
    "select_checkpoint",
    "last_good_checkpoint",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "labkit-checkpoint-manifest"
STEP_DIR = re.compile(r"^step-(\d+)$")


class CorruptCheckpointError(InvalidInputError):
    """A checkpoint folder failed verification (missing, truncated or altered file); the message names which."""

    def __init__(self, message: str, path: Path | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


class CheckpointWarning(UserWarning):
    """A newer checkpoint failed verification and an older good one was used instead."""


def write_durable(path: Path, data: bytes) -> None:
    """Bytes in, written to `path` and fsynced (on disk, not only in the page cache) before returning."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (new files, renames) durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(
    folder: Path, *, step: int, config: dict[str, Any], config_hash: str, files: dict[str, bytes]
) -> None:
    """Write `folder/manifest.json` (durably) listing the step, the run config and its hash, and each file's checksum.

    files: file name -> the exact bytes written to it (hashed here, so nothing is read back from disk).
    """
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "step": int(step),
        "config_hash": config_hash,
        "config": config,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()
        },
    }
    write_durable(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))


def _fail(folder: Path, reason: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"checkpoint {os.fspath(folder)!r} failed verification: {reason}; "
        "resume from its run folder to fall back to an older checkpoint, or delete this one",
        folder,
        reason,
    )


def verify_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint folder in, its manifest dict out, after checking every listed file's size and SHA-256.

    Raises CorruptCheckpointError (one line, naming the file and what is wrong) for a missing or unreadable
    manifest, a missing, truncated or altered file, or a meta.json whose step disagrees with the manifest.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise _fail(folder, f"no {MANIFEST} (the write did not finish, or an older labkit wrote it)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
        files = manifest["files"]
        ok = manifest.get("format") == MANIFEST_FORMAT and isinstance(files, dict) and files
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail(folder, f"{MANIFEST} is unreadable ({type(exc).__name__})") from None
    if not ok:
        raise _fail(folder, f"{MANIFEST} is not a labkit checkpoint manifest")
    for name, want in sorted(files.items()):
        file = folder / name
        if "/" in name or "\\" in name or not file.is_file():
            raise _fail(folder, f"{name} is missing")
        size = file.stat().st_size
        if size != want.get("bytes"):
            raise _fail(folder, f"{name} has {size} bytes, the manifest says {want.get('bytes')}")
        if _digest(file) != want.get("sha256"):
            raise _fail(folder, f"{name} does not match its checksum (its bytes were changed)")
    try:
        meta = json.loads((folder / "meta.json").read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(folder, f"meta.json is unreadable ({type(exc).__name__})") from None
    if meta.get("step") != manifest.get("step"):
        raise _fail(folder, f"meta.json says step {meta.get('step')}, the manifest says {manifest.get('step')}")
    return manifest


def step_dirs(root: Path) -> list[Path]:
    """A run folder in, its `step-NNNNNN` folders out, oldest first."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_step_dir(root: Path) -> Path | None:
    """The step folder a run folder's `latest` file names, or None (no file, garbage, or a folder that is gone)."""
    try:
        name = (root / "latest").read_bytes().decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    candidate = root / name
    return candidate if STEP_DIR.match(name) and candidate.is_dir() else None


def _is_step_folder(path: Path) -> bool:
    return path.is_dir() and (
        (path / MANIFEST).exists() or (path / "meta.json").exists() or STEP_DIR.match(path.name) is not None
    )


def select_checkpoint(path: str | os.PathLike) -> tuple[Path, dict[str, Any], list[str]]:
    """A step folder or a run folder in, (the verified step folder, its manifest, notes on skipped ones) out.

    A step folder must pass `verify_checkpoint`. A run folder gives the step folder its `latest` names when
    that verifies, else the newest one that does; each one skipped adds a note ("step-000010 failed ...").
    Raises MissingSourceError when there is no checkpoint at all, CorruptCheckpointError when none verifies.
    """
    path = Path(path)
    if _is_step_folder(path):
        return path, verify_checkpoint(path), []
    if not path.is_dir():
        raise MissingSourceError(
            f"no checkpoint at {os.fspath(path)!r}; pass a run folder written by train(checkpoint_dir=...) "
            "or one of its step-* folders"
        )
    candidates = step_dirs(path)[::-1]
    latest = latest_step_dir(path)
    if latest is not None:
        candidates = [latest] + [c for c in candidates if c != latest]
    if not candidates:
        raise MissingSourceError(
            f"no checkpoint in {os.fspath(path)!r} (no step-* folders); pass a run folder written by "
            "train(checkpoint_dir=...)"
        )
    notes: list[str] = []
    for folder in candidates:
        try:
            manifest = verify_checkpoint(folder)
        except CorruptCheckpointError as exc:
            notes.append(f"{folder.name} failed verification ({exc.reason})")
            continue
        return folder, manifest, notes
    raise CorruptCheckpointError(
        f"no checkpoint in {os.fspath(path)!r} passes verification ({'; '.join(notes)}); "
        "delete the folder to start afresh",
        path,
        "; ".join(notes),
    )


def last_good_checkpoint(named: Path | None, run_dir: Path | None) -> Path | None:
    """The checkpoint a run last wrote and its run folder in, that checkpoint if it still verifies, else the run's
    newest one that does, else None (what an error after a NaN loss names as the place to go back to)."""
    if named is None:
        return None  # this run wrote none: an older folder there may belong to another run
    try:
        verify_checkpoint(named)
        return Path(named)
    except (CorruptCheckpointError, OSError):
        pass
    if run_dir is None:
        return None
    try:
        return select_checkpoint(run_dir)[0]
    except (CorruptCheckpointError, MissingSourceError, OSError):
        return None
