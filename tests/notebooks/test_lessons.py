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


# The smallest parameters of each lesson: every code path runs, in seconds. (Defaults run under nbval.)
SMALLEST = {
    "01_tokenization": {
        "max_chars": 50_000,
        "vocab_size": 300,
        "korean_verses": 200,
        "sweep_sizes": "270,400",
        "compare_pretrained": False,
    },
    "02_attention_from_scratch": {"text": "a b a", "n_positions": 8, "causal": True, "layer": 5, "head": 11},
    "03_train_gpt_shakespeare": {
        "preset": "gpt-nano",
        "steps": 20,
        "eval_every": 10,
        "sample_chars": 20,
        "block_size": 32,
    },
    "04_generation_and_sampling": {"max_new_tokens": 4, "num_beams": 2},
    "05_bert_mlm_and_sentiment": {
        "preset": "encoder-tiny",
        "vocab_size": 500,
        "mlm_steps": 5,
        "finetune_steps": 5,
        "max_length": 16,
        "minilm_baseline": False,
    },
    "06_lora_fine_tuning": {"pretrain_steps": 5, "finetune_steps": 5, "ranks": "[1, 2]"},
    "07_translation": {"steps": 5, "n_test": 3, "num_beams": 2, "max_chars": 40, "vocab_size": 300},
    "08_embeddings": {"n_texts": 20, "max_chars": 80},
    "09_inside_a_pretrained_model": {"load_smollm2": False},
    "10_lstm_vs_transformer": {"steps": 5, "block_size": 32, "copy_steps": 5, "copy_length": 4},
}


def test_every_lesson_has_a_smallest_parameter_set():
    assert set(SMALLEST) == {p.stem for p in LESSONS}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_under_labkit_run_at_its_smallest_parameters(lesson, tmp_path):
    from labkit.notebooks import run_notebook

    result = run_notebook(lesson, {k: str(v) for k, v in SMALLEST[lesson.stem].items()}, tmp_path, timeout=600)
    assert result.ok, result.error
    html = result.html_path.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert result.html_path.stat().st_size <= 10 * 1024 * 1024  # the gallery's page limit
