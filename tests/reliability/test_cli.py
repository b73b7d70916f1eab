"""Item 5 of the hardening issue: `labkit` exits 2 with one line for usage errors and refused input, 1 with one
line (no traceback) for failures while running, shows the traceback only under --debug, and `collect` skips
and lists unreadable notebooks. Runs `labkit.cli.main` in process (what the console script calls) and, once,
the installed `labkit` command itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import main

LESSON = Path(__file__).resolve().parents[2] / "notebooks" / "01_tokenization.ipynb"


def _run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse ends usage errors with SystemExit(2)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "truncated.ipynb").write_text('{"cells": [')
    executed = {
        "cells": [],
        "metadata": {"labkit": {"notebook": "demo", "parameters": {"lr": 0.1}, "ok": True, "duration_s": 1.0}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (runs / "good.ipynb").write_text(json.dumps(executed))
    return tmp_path


USAGE = [
    (["bogus"], "invalid choice"),
    (["run"], "required: notebook"),
    (["sweep", str(LESSON)], "needs a parameter given more than once"),
    (["sweep", str(LESSON), "-p", "lr"], "expected 2 arguments"),
    (["data", "fetch"], "needs a corpus name"),
    (["data"], "required"),
    (["run", str(LESSON), "--cell-timeout", "abc"], "invalid float value"),
    (["run", "nope.ipynb"], "does not exist"),
    (["run", "afile"], "is not a notebook"),
    (["run", str(LESSON), "-o", "afile"], "output_dir 'afile' is a file"),
    (["run", str(LESSON), "-p", "nosuch", "1"], "unknown parameter 'nosuch'"),
    (["run", str(LESSON), "-p", "vocab_size", "abc"], "expects int"),
    (["run", str(LESSON), "-p", "sample_text", "caf\udce9"], "is not valid UTF-8"),
    (["run", str(LESSON), "-f", "missing.yaml"], "does not exist"),
    (["run", str(LESSON), "--cell-timeout", "-1"], "cell_timeout must be a finite number > 0"),
    (["collect", "afile"], "not a readable notebook"),
    (["collect", "missing"], "does not exist"),
    (["collect", "runs", "--csv", "runs"], "is a folder, not a file"),
    (["collect", "runs", "--csv", "afile/out.csv"], "'afile' is a file"),
    (["bench", "--json", "runs"], "is a folder, not a file"),
    (["params", "afile"], "not a readable notebook"),
    (["data", "fetch", "nosuchcorpus"], "unknown corpus"),
    (["vendor", "fetch", "nosuch"], "unknown vendored file"),
    (["gallery", "--notebooks", "afile"], "lesson folder 'afile'"),
]


@pytest.mark.parametrize("argv,match", USAGE, ids=[" ".join(a)[:60] for a, _ in USAGE])
def test_usage_errors_exit_2_with_one_line(capsys, files, argv, match):
    code, _, err = _run(capsys, *argv)
    assert code == 2, err
    line = _one_line(err)
    assert match in line and line.startswith("labkit")


def test_a_runtime_failure_exits_1_in_one_line_and_debug_shows_the_traceback(capsys, files, monkeypatch):
    import labkit.notebooks

    def broken(directory):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(labkit.notebooks, "collect", broken)
    code, _, err = _run(capsys, "collect", "runs")
    assert code == 1
    line = _one_line(err)
    assert "OSError" in line and "Input/output error" in line and "--debug" in line
    with pytest.raises(OSError, match="Input/output error"):
        main(["collect", "runs", "--debug"])
    with pytest.raises(OSError):
        main(["--debug", "collect", "runs"])


def test_collect_skips_and_lists_unreadable_notebooks(capsys, files):
    code, out, err = _run(capsys, "collect", "runs")
    assert code == 0
    assert "demo" in out and "param.lr" in out
    assert "skipped 1 unreadable notebook" in err and "truncated.ipynb" in err and "NotJSONError" in err


def test_the_installed_command_exits_2_for_usage_and_never_prints_a_traceback(files):
    labkit = shutil.which("labkit") or str(Path(sys.executable).with_name("labkit"))
    for argv in (["sweep", str(LESSON)], ["collect", "afile"], ["run", str(LESSON), "-o", "afile"]):
        done = subprocess.run([labkit, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert _one_line(done.stderr)
