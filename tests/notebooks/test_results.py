"""labkit.record inside a real papermill run, the metadata the runner writes, and collect() across runs."""

from __future__ import annotations

import subprocess
import sys

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


def test_failed_run_marks_the_failing_cell_in_the_ipynb(tmp_path, write_lesson):
    nb = write_lesson(
        tmp_path, params=PARAMS, cells=["labkit_value = a", "raise RuntimeError('boom at step 3')", "print('never')"]
    )
    result = run_notebook(nb, {}, tmp_path / "out")
    assert not result.ok and "boom at step 3" in result.error
    executed = nbformat.read(result.notebook_path, as_version=4)
    tagged = [c.source for c in executed.cells if "labkit-failed" in c.metadata.get("tags", [])]
    assert tagged == ["raise RuntimeError('boom at step 3')"]  # exactly the failing cell, not the ones after it
    assert executed.metadata["labkit"]["ok"] is False
    assert collect(tmp_path / "out")["ok"].tolist() == [False]


def test_record_validates_name_and_value():
    assert labkit.record("loss", 1.5) == 1.5  # outside a kernel it still returns the value
    with pytest.raises(InvalidInputError, match="record name"):
        labkit.record("bad name", 1)
    with pytest.raises(InvalidInputError, match="got a object"):
        labkit.record("thing", object())


def test_collect_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(MissingSourceError, match="does not exist"):
        collect(tmp_path / "nope")
