"""Executed notebook in, one self-contained HTML page out (renders with no network).

nbconvert's JupyterLab template is used through `templates/report.html.j2`,
which drops the CDN scripts (require.js, MathJax, mermaid, the widget
manager) and adds a header with the run's parameters, timing and, after a
failure, a banner linking to the failing cell, which is highlighted.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from labkit.errors import InvalidInputError, MissingSourceError

TEMPLATES = Path(__file__).parent / "templates"
FAILED_TAG = "labkit-failed"
# The start of plotly.js's bundle as the notebook renderer inlines it; used to keep one copy per page.
_PLOTLY_BUNDLE = re.compile(r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v[\s\S]*?</script>")
_REMOTE_SRC = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//[^>]*>(\s*</script>)?""", re.I)


def failed_cell(nb) -> tuple[int, Any] | None:
    """Return (index, cell) of the cell that failed or was still running when the run stopped."""
    for status in ("failed", "running"):
        for i, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("papermill", {})
            if meta.get("status") == status or (status == "failed" and meta.get("exception")):
                return i, cell
    for i, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i, cell
    return None


def _keep_one_plotly_bundle(html: str) -> str:
    """Remove repeated inline copies of plotly.js (the renderer may emit one per kernel start)."""
    seen = False

    def keep_first(match: re.Match) -> str:
        nonlocal seen
        if seen:
            return ""
        seen = True
        return match.group(0)

    return _PLOTLY_BUNDLE.sub(keep_first, html)


def export_html(
    executed_nb_path: str | os.PathLike,
    html_path: str | os.PathLike,
    title: str | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    duration_s: float | None = None,
    error: str | None = None,
) -> Path:
    """Executed .ipynb in, path of the written offline HTML report out.

    executed_nb_path: a notebook with outputs (e.g. written by `run_notebook`).
    html_path: where to write the page.
    title: the page heading (default: the notebook's file stem).
    parameters: the run's parameter values, shown in the header.
    duration_s: the run's wall time, shown in the header.
    error: the one-line failure summary; when set, a banner links to the failing cell.
    """
    import nbformat
    from nbconvert import HTMLExporter

    src = Path(executed_nb_path)
    if not src.is_file():
        raise MissingSourceError(f"executed notebook {str(src)!r} does not exist; run it first (labkit run)")
    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:
        raise InvalidInputError(f"{str(src)!r} is not a readable notebook ({type(exc).__name__})") from None

    run: dict[str, Any] = {
        "title": title or src.stem,
        "parameters": {k: repr(v) for k, v in (parameters or {}).items()},
        "duration_s": duration_s,
        "error": error,
    }
    failed = failed_cell(nb) if error else None
    if failed is not None:
        index, cell = failed
        cell.setdefault("metadata", {}).setdefault("tags", [])
        if FAILED_TAG not in cell.metadata.tags:
            cell.metadata.tags.append(FAILED_TAG)
        if not cell.get("id"):
            cell["id"] = f"cell-{index}"
        run["failed_anchor"] = f"cell-id={cell['id']}"
        count = cell.get("execution_count")
        run["failed_label"] = f"cell In [{count}]" if count else f"cell {index + 1}"

    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATES)])
    exporter.template_file = "report.html.j2"
    body, _ = exporter.from_notebook_node(nb, resources={"labkit_run": run, "metadata": {"name": run["title"]}})
    body = _keep_one_plotly_bundle(body)
    remote = _REMOTE_SRC.search(body)
    if remote:  # a notebook output that loads from the network would render blank offline
        body = _REMOTE_SRC.sub("<!-- labkit: removed a network script/link; the report must render offline -->", body)
    out = Path(html_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out
