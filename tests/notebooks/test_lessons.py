"""Every lesson in notebooks/: committed clean, one documented typed signature, a lesson's shape.

The lessons themselves execute under nbval (`pytest notebooks/`, part of the suite), and lesson 01
also through `labkit run` in test_lesson_01.py.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from labkit.notebooks import read_parameters
from labkit.notebooks.gallery import describe, lesson_paths

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
LESSONS = lesson_paths(NOTEBOOKS)


def test_the_ten_lessons_are_there():
    assert [p.stem.split("_")[0] for p in LESSONS] == [f"{i:02d}" for i in range(1, 11)]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_is_clean_documented_and_typed(lesson):
    nb = nbformat.read(lesson, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit lessons without outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a lesson opens with its title"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0], "exactly one parameters cell, the first code cell"
    params = read_parameters(lesson)
    assert params, "a lesson declares its parameters"
    for p in params:
        assert p.help, f"parameter {p.name!r} needs a help comment"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p.name)
    title, summary = describe(lesson)
    assert title and summary, "the gallery needs a title and a one-line summary"
    source = "\n".join(c.source for c in code)
    assert not re.search(r"https?://", source), "lessons work offline: no hub, no CDN"
