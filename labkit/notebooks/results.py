"""Results of runs: `record()` a metric inside a notebook, `collect()` parameters and metrics across runs.

`labkit.record(name, value)` displays a small output with its own MIME type
(`application/vnd.labkit.record+json`) next to a readable `text/plain` line.
The output travels inside the executed notebook like any other, so it needs
no side channel; after execution the runner copies every record into the
notebook's metadata (`metadata.labkit.records`), where `collect()` reads it
together with the run's parameters, status and wall time.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, MissingSourceError

RECORD_MIME = "application/vnd.labkit.record+json"
METADATA_KEY = "labkit"

# Values recorded outside a kernel (plain Python), so a script can call record() too.
_LOCAL_RECORDS: dict[str, Any] = {}


def _json_value(name: str, value: Any) -> Any:
    """Return `value` as plain JSON (numbers, str, bool, None, lists and dicts of those) or raise one clear error."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # 0-d tensors and numpy scalars
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN/inf
    if isinstance(value, (list, tuple)):
        return [_json_value(name, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(name, v) for k, v in value.items()}
    raise InvalidInputError(
        f"record({name!r}, ...) got a {type(value).__name__}; record numbers, strings, booleans or lists/dicts of them"
    )


def record(name: str, value: Any) -> Any:
    """Name and value in, the value back out; stores the metric in the executed notebook's metadata.

    name: a short identifier such as "val_loss" (letters, digits, `_`, `-`, `.`).
    value: a number (0-d tensors and numpy scalars are converted), string, boolean, or a list/dict of those.
    Recording the same name twice keeps the last value.
    """
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-." for c in name):
        raise InvalidInputError(f"record name {name!r} must be a non-empty identifier such as 'val_loss'")
    clean = _json_value(name, value)
    _LOCAL_RECORDS[name] = clean
    try:  # inside a kernel, the output carries the record into the executed notebook
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return value
    if get_ipython() is not None:
        display({RECORD_MIME: {name: clean}, "text/plain": f"{name} = {clean!r}"}, raw=True)
    return value


def records_from_outputs(nb: Any) -> dict[str, Any]:
    """Executed notebook (nbformat node) in, every `record()`ed name -> value out (last one wins)."""
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RECORD_MIME in data:
                payload = data[RECORD_MIME]
                found.update(json.loads(payload) if isinstance(payload, str) else dict(payload))
    return found


def _as_dict(meta: Any) -> dict[str, Any]:
    return json.loads(json.dumps(meta)) if meta is not None else {}


def read_run(nb_path: str | os.PathLike) -> dict[str, Any]:
    """Executed notebook path in, one flat row out: notebook, ok, duration, `param.*` and `metric.*` columns."""
    import nbformat

    path = Path(nb_path)
    nb = nbformat.read(path, as_version=4)
    meta = _as_dict(nb.metadata.get(METADATA_KEY))
    params = meta.get("parameters") or _as_dict(nb.metadata.get("papermill", {}).get("parameters"))
    records = meta.get("records") or records_from_outputs(nb)
    row: dict[str, Any] = {
        "notebook": meta.get("notebook", path.stem),
        "run": str(path),
        "ok": meta.get("ok"),
        "duration_s": meta.get("duration_s"),
    }
    row.update({f"param.{k}": v for k, v in params.items()})
    row.update({f"metric.{k}": v for k, v in records.items()})
    return row


def collect(directory: str | os.PathLike | Iterable[str | os.PathLike]) -> Any:
    """Folder of runs (searched recursively for executed .ipynb) or a list of paths in, a pandas DataFrame out.

    One row per run: `notebook`, `run` (path), `ok`, `duration_s`, then `param.<name>` for every
    parameter and `metric.<name>` for every value recorded with `labkit.record`.
    Notebooks without papermill or labkit metadata (sources, not runs) are skipped, and so are files that
    cannot be read as notebooks (truncated, not JSON): `table.attrs["unreadable"]` lists those as
    (path, reason) pairs. One file passed on its own must be readable (else InvalidInputError).
    """
    import pandas as pd

    if isinstance(directory, (str, os.PathLike)):
        root = Path(directory)
        if not root.exists():
            raise MissingSourceError(
                f"{str(root)!r} does not exist; pass the output folder of `labkit run` or `labkit sweep`"
            )
        paths = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        )
    else:
        paths = [Path(p) for p in directory]
    rows, unreadable = [], []
    for path in paths:
        try:
            row = read_run(path)
        except Exception as exc:  # nbformat raises JSON, validation, decoding and OS errors alike
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''}"
            if isinstance(directory, (str, os.PathLike)) and Path(directory).is_file():
                raise InvalidInputError(
                    f"{str(path)!r} is not a readable notebook ({reason}); pass an executed .ipynb or a folder of runs"
                ) from None
            unreadable.append((str(path), reason))
            continue
        if row["ok"] is None and not any(k.startswith(("param.", "metric.")) for k in row):
            continue  # an unexecuted source notebook
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["unreadable"] = unreadable
    return table


def finalize_executed_notebook(
    nb_path: str | os.PathLike,
    *,
    notebook: str,
    parameters: dict[str, Any],
    ok: bool,
    duration_s: float,
    error: str | None,
    failed_tag: str,
) -> None:
    """Write the run's parameters, status, timing and records into the executed notebook's metadata, and tag
    the failing cell (`failed_tag`) so the .ipynb marks it as the HTML report does."""
    import nbformat

    from labkit import __version__

    path = Path(nb_path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata[METADATA_KEY] = {
        "notebook": notebook,
        "parameters": _json_value("parameters", dict(parameters)),
        "ok": ok,
        "duration_s": round(duration_s, 3),
        "error": error,
        "records": records_from_outputs(nb),
        "labkit_version": __version__,
    }
    if error:
        from labkit.notebooks.report import failed_cell

        failed = failed_cell(nb)
        if failed is not None:
            tags = failed[1].setdefault("metadata", {}).setdefault("tags", [])
            if failed_tag not in tags:
                tags.append(failed_tag)
    nbformat.write(nb, path)
