"""Package-level contracts: light imports and the CLI entry point (the layering rule is in test_layering.py)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import labkit

ROOT = Path(labkit.__file__).resolve().parent
CORE = ("data", "frontend", "models", "training", "generation", "evaluation", "viz")
WIDGET_LIBS = ("ipywidgets", "anywidget", "traitlets", "IPython")
HEAVY_OPTIONAL = ("transformers", "peft", "sklearn", "sacrebleu", "rouge_score", "datasets", "dask", "umap")


def _core_modules() -> list[str]:
    names = []
    for pkg in CORE:
        names.append(f"labkit.{pkg}")
        for info in pkgutil.iter_modules([str(ROOT / pkg)]):
            names.append(f"labkit.{pkg}.{info.name}")
    return names


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top level?) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in top))
    return found


def test_heavy_optional_libraries_are_imported_lazily():
    offenders = []
    for path in ROOT.rglob("*.py"):
        for name, line, top in _imports(path):
            if top and name.split(".")[0] in HEAVY_OPTIONAL:
                offenders.append(f"{path.relative_to(ROOT.parent)}:{line} imports {name} at module level")
    assert not offenders, "import these inside the function that needs them:\n" + "\n".join(offenders)


def test_importing_every_core_module_loads_no_widget_or_heavy_library():
    modules = _core_modules() + ["labkit", "labkit.cli", "labkit.notebooks"]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in {WIDGET_LIBS + HEAVY_OPTIONAL!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_import_labkit_does_not_import_torch():
    code = "import sys, labkit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_version_and_help():
    out = subprocess.run([sys.executable, "-m", "labkit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"labkit {labkit.__version__}"
    out = subprocess.run([sys.executable, "-m", "labkit", "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "data"):
        assert command in out.stdout


def test_unknown_attribute_is_an_attribute_error():
    try:
        labkit.not_a_subpackage  # noqa: B018
    except AttributeError as exc:
        assert "not_a_subpackage" in str(exc)
    else:
        raise AssertionError("labkit.not_a_subpackage should raise AttributeError")


@pytest.mark.parametrize(
    "package, name",
    [
        ("labkit.evaluation", "perplexity"),
        ("labkit.training", "lora"),
        ("labkit.notebooks", "sweep"),
        ("labkit.export", "tokenizer_spec"),
        ("labkit.viz", "attention_by_hand"),
    ],
)
def test_a_direct_submodule_import_does_not_shadow_the_function_of_the_same_name(package, name):
    # run in a fresh interpreter: the submodule must be imported before the package export is first read
    code = (
        f"import importlib; importlib.import_module('{package}.{name}'); import {package} as p; "
        f"print(type(getattr(p, '{name}')).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "function"
