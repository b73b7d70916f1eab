"""Sweeps: the grid is validated before any kernel starts, runs execute in parallel (local and Dask)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from labkit.cli import main
from labkit.errors import InvalidInputError, UnknownNameError
from labkit.notebooks import sweep
from labkit.notebooks.parameters import group_cli_values
from labkit.notebooks.sweep import expand_grid

PARAMS = "a: int = 2  # first factor\nb: float = 0.5  # second factor"
CELLS = ["import labkit\nlabkit.record('product', a * b)"]


def test_expand_grid_orders_and_keeps_strings_whole():
    assert expand_grid({"a": ["1", "2"], "b": [0.5]}) == [{"a": "1", "b": 0.5}, {"a": "2", "b": 0.5}]
    assert len(expand_grid({"a": [1, 2, 3], "b": [1, 2]})) == 6
    assert expand_grid({"w": "1,2", "b": 3}) == [{"w": "1,2", "b": 3}]  # one value, as `labkit run -p w 1,2` reads it
    with pytest.raises(InvalidInputError, match="empty value list"):
        expand_grid({"a": []})


def test_a_bad_value_anywhere_in_the_grid_fails_before_any_run(tmp_path, write_lesson):
    nb = write_lesson(tmp_path, params=PARAMS, cells=CELLS)
    with pytest.raises(InvalidInputError, match="parameter 'a' expects int, got 'x'"):
        sweep(nb, {"a": ["1", "x"]}, tmp_path / "out")
    with pytest.raises(UnknownNameError, match="unknown parameter 'c'"):
        sweep(nb, {"c": [1, 2]}, tmp_path / "out")
    with pytest.raises(UnknownNameError, match="unknown executor"):
        sweep(nb, {"a": [1]}, tmp_path / "out", executor="ray")
    assert not list((tmp_path / "out").glob("run-*")) if (tmp_path / "out").exists() else True


def test_p_reads_one_value_in_run_and_sweep(tmp_path, write_lesson, capsys):
    nb = write_lesson(tmp_path, params=PARAMS, cells=CELLS)
    assert group_cli_values([("a", "1"), ("b", "0.5"), ("a", "3")]) == {"a": ["1", "3"], "b": ["0.5"]}
    # a run takes one value per name; a sweep needs some name given more than once; neither starts a kernel
    for argv, message in [
        (["run", str(nb), "-p", "a", "1", "-p", "a", "3"], "-p a is given 2 times; a run takes one value"),
        (["sweep", str(nb), "-p", "a", "1"], "labkit sweep needs a parameter given more than once"),
        (["sweep", str(nb), "-p", "a", "1,3", "-p", "a", "5"], "parameter 'a' expects int, got '1,3'"),
    ]:
        assert main([*argv, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_local_sweep_runs_the_grid_and_writes_one_report(tmp_path, write_lesson):
    nb = write_lesson(tmp_path, params=PARAMS + "\nw: list[int] = [1]  # widths", cells=CELLS)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit",
            "sweep",
            str(nb),
            "-p",
            "a",
            "1",
            "-p",
            "a",
            "3",
            "-p",
            "b",
            "0.5",
            "-p",
            "b",
            "2",
            "-p",
            "w",
            "2,5",
            "-o",
            str(tmp_path / "sw"),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    import pandas as pd

    table = pd.read_csv(tmp_path / "sw" / "sweep.csv")
    got = sorted(zip(table["param.a"], table["param.b"], table["metric.product"]))
    assert got == [(1, 0.5, 0.5), (1, 2.0, 2.0), (3, 0.5, 1.5), (3, 2.0, 6.0)]
    assert set(table["param.w"]) == {"[2, 5]"}  # a name given once is fixed, its value read as `labkit run` reads it
    page = (tmp_path / "sw" / "sweep.html").read_text()
    assert page.count("plotly.js v") == 1 and "product vs a" in page
    assert not re.search(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)  # offline


@pytest.mark.slow
def test_dask_executor_gives_the_same_table(tmp_path, write_lesson):
    pytest.importorskip("dask.distributed")
    nb = write_lesson(tmp_path, params=PARAMS, cells=CELLS)
    result = sweep(nb, {"a": [1, 2]}, tmp_path / "dk", fixed={"b": 3.0}, executor="dask", workers=2)
    assert result.failed == 0
    assert sorted(result.table["metric.product"]) == [3.0, 6.0]
