"""labkit.record inside a real papermill run, the metadata the runner writes, and collect() across runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import labkit
from labkit.errors import InvalidInputError, MissingSourceError
from labkit.notebooks import collect, run_notebook

PARAMS = "a: int = 2  # first factor\nb: float = 0.5  # second factor"
CELLS = [
    "import labkit\nimport torch\nlabkit.record('product', torch.tensor(a * b))",
    "labkit.record('label', f'{a}x{b}')\nlabkit.record('product', a * b * 1.0)",
]


def test_records_land_in_metadata_and_collect_builds_one_table(tmp_path, write_lesson):
    nb = write_lesson(tmp_path, params=PARAMS, cells=CELLS)
    for a, b in [(2, 0.5), (3, 4.0)]:
        result = run_notebook(nb, {"a": str(a), "b": b}, tmp_path / "runs" / f"a{a}")
        assert result.ok, result.error
    executed = nbformat.read(tmp_path / "runs" / "a3" / "lesson.ipynb", as_version=4)
    meta = executed.metadata["labkit"]
    assert meta["records"] == {"product": 12.0, "label": "3x4.0"}
    assert meta["parameters"] == {"a": 3, "b": 4.0} and meta["ok"] is True and meta["duration_s"] > 0

    table = collect(tmp_path / "runs").sort_values("param.a")
    assert list(table["param.a"]) == [2, 3]
    assert list(table["metric.product"]) == [1.0, 12.0]  # the last record of a name wins
    assert list(table["ok"]) == [True, True]
    assert collect(tmp_path).shape[0] == 2  # the unexecuted source notebook is skipped

    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "collect", str(tmp_path / "runs"), "--csv", str(tmp_path / "t.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert {"param.a", "param.b", "metric.product", "metric.label"} <= set(header)


def test_failed_run_marks_the_failing_cell_in_the_ipynb(tmp_path, write_lesson, monkeypatch):
    nb = write_lesson(
        tmp_path, params=PARAMS, cells=["labkit_value = a", "raise RuntimeError('boom at step 3')", "print('never')"]
    )
    reads: list[Path] = []
    real_read = nbformat.read
    monkeypatch.setattr(nbformat, "read", lambda path, *a, **k: reads.append(Path(path)) or real_read(path, *a, **k))
    result = run_notebook(nb, {}, tmp_path / "out")
    monkeypatch.undo()
    assert not result.ok and "boom at step 3" in result.error
    # error summary, records, failure tag and HTML report all come from one reading of the executed notebook
    assert reads.count(result.notebook_path) == 1
    executed = nbformat.read(result.notebook_path, as_version=4)
    tagged = [c for c in executed.cells if "labkit-failed" in c.metadata.get("tags", [])]
    assert [c.source for c in tagged] == ["raise RuntimeError('boom at step 3')"]  # not the cells after it
    html = result.html_path.read_text(encoding="utf-8")
    assert f'href="#cell-id={tagged[0].id}"' in html  # the report's banner links to the cell the .ipynb marks
    assert executed.metadata["labkit"]["ok"] is False
    assert collect(tmp_path / "out")["ok"].tolist() == [False]


def test_importing_results_loads_no_ipython():
    # record() runs inside kernels and plain scripts alike: IPython is imported only when a kernel displays
    code = "import sys, labkit.notebooks.results; print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_record_validates_name_and_value():
    assert labkit.record("loss", 1.5) == 1.5  # outside a kernel it still returns the value
    with pytest.raises(InvalidInputError, match="record name"):
        labkit.record("bad name", 1)
    with pytest.raises(InvalidInputError, match="got a object"):
        labkit.record("thing", object())


def test_collect_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(MissingSourceError, match="does not exist"):
        collect(tmp_path / "nope")
