"""Executed notebook in, one self-contained HTML page out (renders with no network).

nbconvert's JupyterLab template is used through `templates/report.html.j2`,
which drops the CDN scripts (require.js, MathJax, mermaid, the widget
manager) and adds a header with the run's parameters, timing and, after a
failure, a banner linking to the failing cell, which is highlighted.

Widgets: when the executed notebook displays widgets whose state the run saved
(nbclient stores it in `metadata.widgets`), the page inlines, once, require.js
and the Jupyter widget manager (`@jupyter-widgets/html-manager`'s
`embed-amd.js`, from labkit's vendor cache) and, for anywidget-based widgets,
anywidget's AMD module from this environment. The widget views then render
from the saved state in a browser with no network (Python callbacks do not
run). The manager (3.6 MB of JavaScript) travels gzip + base64 (1.2 MB) and a
small script unpacks it with the browser's DecompressionStream. Pages without
displayed widgets get none of it.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import warnings
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, MissingSourceError
from labkit.frontend import (
    SOURCE_MAP,
    MathsPlaceholders,
    anywidget_module_path,
    inline_js,
    json_for_script,
    safe_text,
)

TEMPLATES = Path(__file__).parent / "templates"
FAILED_TAG = "labkit-failed"
# The start of plotly.js's bundle as the notebook renderer inlines it; used to keep one copy per page.
_PLOTLY_BUNDLE = re.compile(r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v[\s\S]*?</script>")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Modules the html manager carries itself; "anywidget" is added from this environment when a widget uses it.
_BUILTIN_WIDGET_MODULES = {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}
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


def widget_state(nb: Any) -> dict[str, Any]:
    """An executed notebook in, the widget models its run saved out (model id -> model); {} when none."""
    saved = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE)
    state = saved.get("state") if isinstance(saved, Mapping) else None
    return dict(state) if isinstance(state, Mapping) else {}


def _drawable_views(nb: Any, state: Mapping[str, Any]) -> int:
    """Count the widget outputs whose model the run saved (nbconvert shows the others' static fallback)."""
    views = (out.get("data", {}).get(WIDGET_VIEW) for cell in nb.cells for out in cell.get("outputs", []))
    return sum(1 for view in views if isinstance(view, Mapping) and view.get("model_id") in state)


# Runs the packed scripts in page order: base64 -> gunzip (the browser's DecompressionStream) -> <script>.
# The manager renders on the window's load event, or at once when it arrives after it, so late is fine.
_UNPACK = """(function () {
  var chain = Promise.resolve();
  document.querySelectorAll('script[data-labkit-packed]').forEach(function (box) {
    chain = chain.then(function () {
      var bytes = Uint8Array.from(atob(box.textContent.trim()), function (c) { return c.charCodeAt(0); });
      return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
    }).then(function (code) {
      var script = document.createElement('script');
      script.textContent = code;
      document.head.appendChild(script);
    });
  });
  chain.catch(function (err) { console.error('labkit: could not unpack the widget manager', err); });
}());"""


@lru_cache(maxsize=4)
def _packed(text: str) -> str:
    """JavaScript source in, gzip + base64 text out (deterministic: no timestamp in the gzip header)."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def widget_manager_scripts(modules: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The widget modules a page uses in, the inline scripts that render its widgets offline out.

    modules: the `model_module`/`view_module` names in the saved state; "anywidget" adds anywidget's module.
    Returns dicts, in page order, with `name`, `attrs` (extra attributes of the script tag), `code` and
    `packed`: require.js; the Jupyter widget manager (embed-amd.js, 3.6 MB) packed as gzip + base64
    (1.2 MB; `packed=True`, `code` is the base64 text) and run by the final "unpack" script; anywidget as
    the AMD module "anywidget" when needed. Plain `code` is already safe inside <script>.
    Raises MissingSourceError when a vendored file is missing (fix: labkit vendor fetch).
    """
    from labkit.frontend import vendor_text

    scripts: list[dict[str, Any]] = [
        {"name": "require.js", "attrs": "", "code": inline_js(vendor_text("require.js")), "packed": False},
        # The manager loads modules it does not carry from a CDN; "./" keeps any such attempt on the
        # page's own folder, so an unknown widget fails visibly instead of calling the network.
        {
            "name": "embed-amd.js",
            "attrs": ' data-jupyter-widgets-cdn="./"',
            "code": _packed(SOURCE_MAP.sub("", vendor_text("embed-amd.js"))),
            "packed": True,
        },
    ]
    if "anywidget" in modules:
        # anywidget's file is an anonymous define(); a local `define` gives it the module name "anywidget",
        # which is what its models ask the manager for.
        source = anywidget_module_path().read_text(encoding="utf-8")
        code = (
            "(function () {\nvar define = function (deps, factory) { return window.define('anywidget', deps, factory); };\n"
            f"define.amd = window.define.amd;\n{source}\n}}());"
        )
        scripts.append({"name": "anywidget", "attrs": "", "code": inline_js(code), "packed": False})
    scripts.append({"name": "unpack", "attrs": "", "code": _UNPACK, "packed": False})
    return scripts


def _page_widgets(nb: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Decide what the page needs for its widgets: (manager scripts, state as script-safe JSON), or ([], None).

    The template writes the state itself with every `<`, `>` and `&` escaped (nbconvert's own escaping
    leaves `<!--` and `<img` from token text raw inside the script).
    """
    state = widget_state(nb)
    if not _drawable_views(nb, state):
        nb.get("metadata", {}).pop("widgets", None)  # state that no output displays would be dead weight
        return [], None
    modules = {
        str(m.get(key, "")) for m in state.values() if isinstance(m, Mapping) for key in ("model_module", "view_module")
    } - {""}
    unknown = modules - _BUILTIN_WIDGET_MODULES - {"anywidget"}
    if unknown:
        warnings.warn(
            f"widgets from {', '.join(sorted(unknown))} need their own front-end module, which the offline "
            "report does not carry; they show as empty boxes there",
            stacklevel=3,
        )
    return widget_manager_scripts(modules), json_for_script(nb.metadata["widgets"][WIDGET_STATE])


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

    widget_scripts, widget_state_json = _page_widgets(nb)  # before nbconvert: it may drop `nb`'s saved state
    maths = MathsPlaceholders()  # nbconvert would leave formulas as $...$ text: KaTeX typesets them offline
    maths.protect_notebook(nb)
    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATES)])
    exporter.template_file = "report.html.j2"
    resources = {
        "labkit_run": run,
        "labkit_widget_scripts": widget_scripts,
        "labkit_widget_state": widget_state_json,
        "metadata": {"name": run["title"]},
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = maths.restore(_keep_one_plotly_bundle(body))
    remote = _REMOTE_SRC.search(body)
    if remote:  # a notebook output that loads from the network would render blank offline
        body = _REMOTE_SRC.sub("<!-- labkit: removed a network script/link; the report must render offline -->", body)
    out = Path(html_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(safe_text(body), encoding="utf-8")
    return out
