"""Shared front-end helpers: one `el()` in widgets/dom.js, inlined once into what anywidget and static pages load."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.errors import InvalidInputError
from labkit.frontend import asset_text, classic_script, module_text
from labkit.frontend import assets as assets_module

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"
MODULES = sorted(p.name for p in WIDGETS.glob("*.js") if p.name != "dom.js")
NODE = shutil.which("node")


def test_el_is_written_once_and_every_module_that_uses_it_imports_it():
    defined = [p.name for p in WIDGETS.glob("*.js") if re.search(r"^(export )?function el\(", p.read_text(), re.M)]
    assert defined == ["dom.js"]
    for name in MODULES:
        src = asset_text(name)
        if re.search(r"\bel\(", src):
            assert re.search(r'^import \{[^}]*\bel\b[^}]*\} from "\./dom\.js";', src, re.M), name


@pytest.mark.parametrize("name", MODULES)
def test_module_text_is_self_contained_with_the_shared_helpers_once(name):
    esm = module_text(name)
    assert not re.search(r"^\s*import[\s{(*]", esm, re.M), "anywidget loads _esm from a string: no imports left"
    uses_dom = "./dom.js" in asset_text(name)
    assert esm.count("function el(") == (1 if uses_dom else 0)
    assert not re.search(r"^export function el\(", esm, re.M)  # the helper is not re-exported by the widget
    if uses_dom:
        dom = re.sub(r"^export\s+", "", asset_text("dom.js"), flags=re.M)
        assert esm.startswith("// ---- from dom.js") and dom.rstrip() in esm
    code = classic_script(name)
    assert code.count("function el(") == esm.count("function el(") and not re.search(r"^export\s", code, re.M)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_every_inlined_module_and_classic_script_parses(tmp_path):
    # an ES module with a duplicate `el` or a stray import would be a SyntaxError here (parsed, not run)
    files = []
    for name in MODULES:
        files.append(tmp_path / f"{name}.mjs")
        files[-1].write_text(module_text(name), encoding="utf-8")
        files.append(tmp_path / f"{name}.classic.js")
        files[-1].write_text("(function(){\n" + classic_script(name) + "\n})();\n", encoding="utf-8")
    parse = (
        "const vm = require('vm'), fs = require('fs');"
        "for (const f of process.argv.slice(1)) { const src = fs.readFileSync(f, 'utf8');"
        "  try { f.endsWith('.mjs') ? new vm.SourceTextModule(src) : new vm.Script(src); }"
        "  catch (e) { console.error(f + ': ' + e); process.exitCode = 1; } }"
    )
    done = subprocess.run(
        [NODE, "--experimental-vm-modules", "--no-warnings", "-e", parse, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_name_the_shared_file_does_not_export_is_one_clear_error(monkeypatch):
    files = {
        "w.js": 'import { el, nope } from "./dom.js";\nexport default {};\n',
        "dom.js": "export function el() {}\n",
        "deep.js": 'import { el } from "./dom.js";\nexport function x() {}\n',
        "v.js": 'import { x } from "./deep.js";\n',
    }
    monkeypatch.setattr(assets_module, "asset_text", files.__getitem__)
    with pytest.raises(InvalidInputError, match="w.js imports nope from dom.js, which does not export it"):
        module_text.__wrapped__("w.js")
    with pytest.raises(InvalidInputError, match="deep.js is imported by v.js, so it must not import other files"):
        module_text.__wrapped__("v.js")


def test_every_widget_ships_its_module_with_the_shared_helpers_inlined():
    # anywidget evaluates `_esm` from a string (a blob: URL in a static report): a sibling import left in it
    # cannot resolve there, and the widget draws nothing ("Failed to resolve module specifier ./dom.js")
    import importlib
    import pkgutil

    import anywidget

    import labkit.widgets

    widgets = []
    for info in pkgutil.iter_modules(labkit.widgets.__path__):
        module = importlib.import_module(f"labkit.widgets.{info.name}")
        widgets += [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, anywidget.AnyWidget)]
    shipped = {w.__name__: w._esm for w in widgets if w is not anywidget.AnyWidget and isinstance(w._esm, str)}
    assert len(shipped) >= 8, sorted(shipped)
    for name, esm in shipped.items():
        assert not re.search(r"^\s*import[\s{(*]", esm, re.M), f"{name}._esm still imports a file; use module_text()"
