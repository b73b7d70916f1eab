"""Widgets in the offline HTML report: real papermill runs in, the page's inlined manager and state checked.

The browser side (the widgets actually drawing in Chromium with the network blocked) is in
tests/browser/test_static.py; these tests need no browser.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit.errors import MissingSourceError
from labkit.frontend import vendor_text
from labkit.notebooks import run_notebook
from labkit.notebooks.report import (
    WIDGET_STATE,
    WIDGET_VIEW,
    anywidget_module_path,
    export_html,
    inline_js,
    widget_manager_scripts,
)

REMOTE = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)
HOSTILE = "</script><img src=x onerror=alert(1)>"
INLINE = re.compile(r'<script\b[^>]*\bdata-labkit-inline="([^"]+)"')
# nbconvert re-serializes the page (BeautifulSoup), which sorts attributes: match them in any order
PACKED = re.compile(
    r'<script\b(?=[^>]*\btype="application/gzip\+base64")[^>]*\bdata-labkit-packed\b[^>]*>'
    r"\s*([A-Za-z0-9+/=]+)\s*</script>"
)
STATE_SCRIPT = re.compile(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.S)
VIEW_SCRIPT = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">(.*?)</script>', re.S)
NODE = shutil.which("node")


def _lesson(folder: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("n: int = 3  # a number")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Widgets"), params, *map(nbformat.v4.new_code_cell, cells)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lesson.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def widget_run(tmp_path_factory):
    """One real run of a lesson that displays an IntSlider and an AttentionWidget whose tokens include a hostile one."""
    folder = tmp_path_factory.mktemp("widgets")
    path = _lesson(
        folder,
        [
            "import ipywidgets as W\nW.IntSlider(value=n + 4, description='slide')",
            "import torch\nfrom labkit.widgets.attention import AttentionWidget\ntorch.manual_seed(0)\n"
            f"toks = ['The', {HOSTILE!r}, ' cat']\n"
            "AttentionWidget(torch.softmax(torch.randn(1, 2, 3, 3), -1), toks, view='head')",
        ],
    )
    result = run_notebook(path, {}, folder / "out")
    assert result.ok, result.error
    return result


@pytest.mark.notebook
def test_widget_page_inlines_manager_anywidget_and_state_once(widget_run):
    html = widget_run.html_path.read_text(encoding="utf-8")
    executed = nbformat.read(widget_run.notebook_path, as_version=4)
    saved = executed.metadata["widgets"][WIDGET_STATE]["state"]
    # the inline scripts, in load order, each exactly once; the manager packed (gzip + base64), unpacked in the page
    assert INLINE.findall(html) == ["require.js", "embed-amd.js", "anywidget", "unpack"]
    assert html.count(inline_js(vendor_text("require.js"))) == 1
    (packed,) = PACKED.findall(html)
    manager = gzip.decompress(base64.b64decode(packed)).decode()
    assert manager == re.sub(r"^//# sourceMappingURL=\S*$", "", vendor_text("embed-amd.js"), flags=re.M)
    assert html.count(inline_js(anywidget_module_path().read_text(encoding="utf-8"))[:2000]) == 1
    assert "window.define('anywidget', deps, factory)" in html
    assert len(html) < 2_500_000  # 3.6 MB of manager travel as 1.2 MB
    # the page's state is the run's state, and every displayed view points into it
    (state_text,) = STATE_SCRIPT.findall(html)
    page_state = json.loads(state_text)["state"]
    assert page_state == json.loads(json.dumps(saved))
    views = [json.loads(v)["model_id"] for v in VIEW_SCRIPT.findall(html)]
    modules = {page_state[m]["model_name"] for m in views}
    assert len(views) == 2 and modules == {"IntSliderModel", "AnyModel"}
    slider = next(page_state[m]["state"] for m in views if page_state[m]["model_name"] == "IntSliderModel")
    assert slider["value"] == 7 and slider["description"] == "slide"
    # nothing that reaches the network, and the hostile token only as escaped text
    assert not REMOTE.search(html), REMOTE.search(html)
    assert "removed a network" not in html
    assert HOSTILE not in html and "<img src=x" not in html
    attention = next(page_state[m]["state"] for m in views if page_state[m]["model_name"] == "AnyModel")
    assert HOSTILE in attention["tokens"]  # intact in the state, for the widget to show with textContent


@pytest.mark.notebook
def test_page_without_widgets_gets_no_manager(tmp_path):
    path = _lesson(
        tmp_path, ["print('plain', n)", "import ipywidgets as W\nhidden = W.IntSlider()  # created, never shown"]
    )
    result = run_notebook(path, {}, tmp_path / "out")
    assert result.ok, result.error
    executed = nbformat.read(result.notebook_path, as_version=4)
    assert executed.metadata["widgets"][WIDGET_STATE]["state"]  # the run saved the hidden slider's state ...
    html = result.html_path.read_text(encoding="utf-8")
    assert "plain 3" in html
    assert not INLINE.search(html) and WIDGET_STATE not in html  # ... which the page does not carry
    assert "requirejs" not in html and "@jupyter-widgets/html-manager" not in html
    assert len(html) < 1_000_000


def _executed_notebook(tmp_path: Path, outputs: list[dict], state: dict) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w", execution_count=1)
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [cell]
    nb.metadata["widgets"] = {WIDGET_STATE: {"version_major": 2, "version_minor": 0, "state": state}}
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    return path


def _slider_state(value: int) -> dict:
    return {
        "model_name": "IntSliderModel",
        "model_module": "@jupyter-widgets/controls",
        "model_module_version": "2.0.0",
        "state": {"value": value},
    }


def test_view_whose_model_was_not_saved_falls_back_to_its_static_output(tmp_path):
    svg = '<svg xmlns="http://www.w3.org/2000/svg" class="lk-fallback"><text>static</text></svg>'
    view = {"version_major": 2, "version_minor": 0, "model_id": "gone"}
    path = _executed_notebook(
        tmp_path,
        [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {WIDGET_VIEW: view, "image/svg+xml": svg, "text/plain": "w"},
            }
        ],
        {"other": _slider_state(1)},
    )
    html = export_html(path, tmp_path / "page.html").read_text(encoding="utf-8")
    (b64,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)  # the SVG, not an empty widget box
    assert base64.b64decode(b64).decode() == svg
    assert not VIEW_SCRIPT.search(html) and not INLINE.search(html) and WIDGET_STATE not in html


def test_widgets_from_unknown_modules_warn_and_never_load_from_a_cdn(tmp_path):
    model = {"model_name": "FigureModel", "model_module": "bqplot", "model_module_version": "^0.6", "state": {}}
    view = {"version_major": 2, "version_minor": 0, "model_id": "fig"}
    path = _executed_notebook(
        tmp_path, [{"output_type": "display_data", "metadata": {}, "data": {WIDGET_VIEW: view}}], {"fig": model}
    )
    with pytest.warns(UserWarning, match="bqplot"):
        html = export_html(path, tmp_path / "page.html").read_text(encoding="utf-8")
    assert INLINE.findall(html) == ["require.js", "embed-amd.js", "unpack"]  # no anywidget module: no model uses it
    # the manager would otherwise fetch bqplot from jsdelivr; the page points it at its own folder
    assert re.search(
        r'<script\b[^>]*data-jupyter-widgets-cdn="\./"[^>]*data-labkit-inline="embed-amd.js"|'
        r'<script\b[^>]*data-labkit-inline="embed-amd.js"[^>]*data-jupyter-widgets-cdn="\./"',
        html,
    )


def test_missing_front_end_files_raise_one_line_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingSourceError, match="labkit vendor fetch"):
        widget_manager_scripts()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "no-env"))
    monkeypatch.setattr("jupyter_core.paths.jupyter_path", lambda *parts: [str(tmp_path / "nowhere")])
    with pytest.raises(MissingSourceError, match="reinstall anywidget") as err:
        anywidget_module_path()
    assert "\n" not in str(err.value)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_inline_js_keeps_the_meaning_of_strings_templates_and_regexes():
    source = (
        'const a = "</script><img src=x>", b = `<!-- </SCRIPT >`, c = /x<!--y/.test("x<!--y");\n'
        "// a comment with </script> in it\n"
        "console.log(JSON.stringify([a, b, c]));\n//# sourceMappingURL=gone.js.map\n"
    )
    safe = inline_js(source)
    assert "</script" not in safe.lower() and "<!--" not in safe and "sourceMappingURL" not in safe
    got = subprocess.run([NODE, "-e", safe], capture_output=True, text=True, timeout=60)
    want = subprocess.run([NODE, "-e", source], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == json.loads(want.stdout) == ["</script><img src=x>", "<!-- </SCRIPT >", True]
