"""The flagship lesson, notebooks/01_tokenization.ipynb: its signature, and a real `labkit run` with small parameters."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit.notebooks import read_parameters

LESSON = Path(__file__).resolve().parents[2] / "notebooks" / "01_tokenization.ipynb"
SECTIONS = [
    "1. The corpus",
    "2. Cleaning: deciding which texts count as the same",
    "3. Three tokenizers",
    "4. Explore: your sentence through every tokenizer",
    "5. Vocabulary size against sequence length",
    "6. Beyond the Latin alphabet",
    "7. Batches: padding and the attention mask",
    "8. A glimpse of augmentation",
    "Exercises",
    "Summary",
]


def test_lesson_is_committed_clean_with_a_documented_signature():
    nb = nbformat.read(LESSON, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the lesson without outputs"
    params = {p.name: p for p in read_parameters(LESSON)}
    assert {"corpus", "vocab_size", "sample_text", "max_chars", "compare_pretrained"} <= set(params)
    assert params["corpus"].default == "shakespeare" and params["vocab_size"].type == "int"
    assert all(p.help for p in params.values()), "every parameter needs a help comment"


def test_lesson_rejects_a_mistyped_parameter_before_any_kernel(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "run", str(LESSON), "-p", "vocab_size", "lots", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "labkit: error: parameter 'vocab_size' expects int, got 'lots'"
    assert not list(tmp_path.iterdir())


@pytest.mark.notebook
def test_lesson_runs_into_an_offline_report_with_every_section(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit",
            "run",
            str(LESSON),
            "-p",
            "max_chars",
            "200000",
            "-p",
            "vocab_size",
            "500",
            "-p",
            "sample_text",
            "Wherefore art thou Romeo? 🌹",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = nbformat.read(tmp_path / "01_tokenization.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = (tmp_path / "01_tokenization.html").read_text()
    for section in SECTIONS:
        assert section in html, section
    assert "tokens per 1,000 characters" in html and "MiniLM (pretrained)" in html
    assert 'class="labkit-clean"' in html and "labkit-tok" in html  # the cleaning table and a token view
    assert "Wherefore art thou Romeo?" in html  # the parameter reached the kernel and the header
    assert len(re.findall(r"\* plotly\.js v\d", html)) == 1 and html.count("Plotly.newPlot(") == 1
    assert not re.search(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    # the vocabulary-size parameter changed what was trained: the BPE row reports 500 tokens
    text = json.dumps([o.get("data", {}).get("text/plain", "") or o.get("text", "") for o in outputs])
    assert text.count("correct:") == 3  # every exercise's self-check ran and passed
    assert re.search(r"bpe\s+500\b", text)
