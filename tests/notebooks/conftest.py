"""Fixtures for runner, sweep and gallery tests: tiny lesson notebooks written into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest


def write_lesson(
    folder: Path,
    name: str = "lesson",
    *,
    params: str,
    cells: list[str],
    title: str = "A tiny lesson",
    intro: str = "It multiplies two numbers. Then it records the product.",
) -> Path:
    """Write a notebook with a markdown intro, a `parameters` cell and `cells`; return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\n{intro}"))
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in cells)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(name="write_lesson")
def write_lesson_fixture():
    """The `write_lesson(folder, name, params=..., cells=[...])` helper."""
    return write_lesson
