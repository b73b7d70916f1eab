"""The layering rule in docs/architecture.md, enforced: imports only point down the table, never at private names.

The table is read from the docs page itself, so the picture a newcomer reads and the rule the suite checks
cannot drift apart. Each test also proves it can fail, by running its checker on a planted violation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import labkit

PACKAGE = Path(labkit.__file__).resolve().parent
REPO = PACKAGE.parent
DOC = REPO / "docs" / "architecture.md"
WIDGET_LIBS = ("ipywidgets", "anywidget", "traitlets", "IPython")


def read_layers(text: str) -> dict[str, int]:
    """The docs page's text in, {package name: layer} out (from the table between the layers markers)."""
    block = re.search(r"<!-- layers:begin -->(.*?)<!-- layers:end -->", text, re.S)
    assert block, "docs/architecture.md lost its <!-- layers:begin/end --> table"
    layers: dict[str, int] = {}
    for row in block.group(1).splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for name in re.findall(r"`([\w]+)`", cells[1]):
                assert name not in layers, f"{name} appears twice in the layers table"
                layers[name] = int(cells[0])
    return layers


LAYERS = read_layers(DOC.read_text(encoding="utf-8"))


def owner(path: Path) -> str:
    """A source file in, the package that owns it out (labkit/viz/x.py -> viz; labkit/cli.py -> cli; benchmarks/*)."""
    if path.is_relative_to(REPO / "benchmarks"):
        return "benchmarks"
    rel = path.relative_to(PACKAGE).parts
    if len(rel) == 1:
        return "labkit" if rel[0] == "__init__.py" else rel[0][:-3]
    return rel[0]


def imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) for every absolute import in a parsed file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: use absolute imports (from labkit.x import y)"
            found.append((node.module or "", [a.name for a in node.names], node.lineno))
    return found


def target(module: str) -> str | None:
    """'labkit.viz.attention' -> 'viz'; 'labkit' -> 'labkit'; a non-labkit module -> None."""
    parts = module.split(".")
    if parts[0] != "labkit":
        return None
    return parts[1] if len(parts) > 1 else "labkit"


def layering_violations(source: str, pkg: str) -> list[str]:
    """Source of a module in package `pkg` in, its imports that run up (or sideways on) the table out."""
    level = 0 if pkg == "labkit" else LAYERS[pkg]
    bad = []
    for module, names, line in imports(ast.parse(source)):
        dep = target(module)
        if dep is None or dep == pkg:
            continue
        if dep == "labkit":  # `from labkit import __version__`: only dunders come from the root
            if any(not n.startswith("__") for n in names):
                bad.append(f"line {line}: from labkit import {', '.join(names)} (import the subpackage instead)")
            continue
        if dep not in LAYERS:
            bad.append(f"line {line}: {module} belongs to no layer; add {dep!r} to the table in docs/architecture.md")
        elif LAYERS[dep] >= level:
            bad.append(f"line {line}: {pkg} (layer {level}) imports {module} (layer {LAYERS[dep]})")
    return bad


def private_violations(source: str, pkg: str) -> list[str]:
    """Source of a module in package `pkg` in, its imports of another package's private modules or names out."""
    bad = []
    for module, names, line in imports(ast.parse(source)):
        dep = target(module)
        if dep is None or dep == pkg:
            continue
        private_module = any(p.startswith("_") and not p.startswith("__") for p in module.split(".")[1:])
        private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private_module or private_names:
            bad.append(f"line {line}: from {module} import {', '.join(names)}")
    return bad


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))


def test_every_package_has_a_layer():
    packages = {owner(p) for p in sources()} - {"labkit"}
    assert not packages - set(LAYERS), (
        f"add these to the layers table in docs/architecture.md: {sorted(packages - set(LAYERS))}"
    )


def test_imports_point_down_the_layers_table():
    offenders = [
        f"{p.relative_to(REPO)} {v}" for p in sources() for v in layering_violations(p.read_text("utf-8"), owner(p))
    ]
    assert not offenders, "imports that run back up the layering table:\n" + "\n".join(offenders)


def test_no_module_imports_another_packages_private_names():
    offenders = [
        f"{p.relative_to(REPO)} {v}" for p in sources() for v in private_violations(p.read_text("utf-8"), owner(p))
    ]
    assert not offenders, "give these a public name in their package instead:\n" + "\n".join(offenders)


def test_below_widgets_nothing_imports_a_widget_library():
    offenders = []
    for p in sources():
        pkg = owner(p)
        if pkg != "labkit" and LAYERS[pkg] >= LAYERS["widgets"]:
            continue
        for module, _, line in imports(ast.parse(p.read_text("utf-8"))):
            if module.split(".")[0] in WIDGET_LIBS:
                offenders.append(f"{p.relative_to(REPO)}:{line} imports {module}")
    assert not offenders, "only labkit.widgets and the layers above it may import widget libraries:\n" + "\n".join(
        offenders
    )


@pytest.mark.parametrize(
    ("pkg", "source", "expected"),
    [
        ("models", "from labkit.viz import head_view\n", "models (layer 3) imports labkit.viz (layer 5)"),
        (
            "training",
            "import labkit.generation.decoding\n",
            "training (layer 4) imports labkit.generation.decoding (layer 4)",
        ),
        (
            "data",
            "def f():\n    from labkit.widgets import TokenizerExplorer\n",
            "data (layer 2) imports labkit.widgets",
        ),
        ("viz", "from labkit import widgets\n", "from labkit import widgets"),
    ],
)
def test_the_layering_check_catches_a_planted_back_arrow(pkg, source, expected):
    assert any(expected in v for v in layering_violations(source, pkg))
    assert not layering_violations("from labkit.errors import InvalidInputError\nimport torch\n", pkg)


def test_the_private_check_catches_a_planted_side_door():
    assert private_violations("from labkit.frontend.assets import _EXPORT\n", "widgets")
    assert private_violations("from labkit.viz._internal import x\n", "widgets")
    assert not private_violations("from labkit.viz._internal import x\n", "viz")  # inside its own package: fine
    assert not private_violations("from labkit import __version__\nfrom labkit.frontend import asset_text\n", "cli")


def test_the_table_reader_reads_layers_in_order():
    assert read_layers("<!-- layers:begin -->\n| 0 | `a`, `b` | x |\n| 3 | `c` | y |\n<!-- layers:end -->") == {
        "a": 0,
        "b": 0,
        "c": 3,
    }
    assert (
        LAYERS["data"]
        < LAYERS["models"]
        < LAYERS["training"]
        < LAYERS["viz"]
        < LAYERS["widgets"]
        < LAYERS["notebooks"]
        < LAYERS["cli"]
    )
