"""Parameter sweeps: run one notebook over a grid of parameter values, in parallel, and compare the results.

Every combination is validated against the notebook's typed `parameters` cell
before the first kernel starts. Each run is its own papermill process with its
own kernel and Jupyter runtime folder (so parallel kernels never share
connection files); runs that die while their kernel starts are retried.
Locally a thread pool drives those processes; with `executor="dask"` the runs
are tasks on a Dask cluster (a `LocalCluster` when no scheduler address is
given; remote workers need the notebook and output folder on a shared path).
The results go through `collect()` into one table and one offline HTML page.
"""

from __future__ import annotations

import html
import itertools
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.checks import check_output_dir
from labkit.errors import InvalidInputError, UnknownNameError, close_matches
from labkit.frontend import safe_text
from labkit.notebooks.parameters import read_parameters, validate_parameters

EXECUTORS = ("local", "dask")
# Messages of a kernel that failed while starting (a port or start-up race), worth one more try.
_STARTUP_FAILURES = ("Kernel died before replying", "Address already in use", "kernel_info", "Kernel didn't respond")


@dataclass
class SweepResult:
    """What a sweep produced: the table of parameters and metrics, the comparison page, the run folders."""

    table: Any  # pandas DataFrame, one row per run (see labkit.notebooks.results.collect)
    report_path: Path
    csv_path: Path
    run_dirs: list[Path] = field(default_factory=list)
    failed: int = 0
    duration_s: float = 0.0


def expand_grid(grid: Mapping[str, Sequence[Any] | Any]) -> list[dict[str, Any]]:
    """{"lr": [1e-3, 3e-4], "n_layer": [2, 4]} in, the 4 combinations (first name varies slowest) out.

    A list or tuple holds a parameter's values; anything else (a number, a string) is one value, read as
    `labkit run` reads it, so "1,2,3" stays one value (a `list[int]` parameter's, say).
    """
    axes: dict[str, list[Any]] = {}
    for name, values in grid.items():
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise InvalidInputError(
                f"sweep parameter {name!r} has an empty value list; give values like {{{name!r}: [1, 2]}}"
            )
        axes[name] = values
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one grid point (a plain dict, so it pickles to Dask workers); retry a kernel start-up failure."""
    from labkit.notebooks.runner import run_notebook

    for attempt in range(3):
        result = run_notebook(
            spec["notebook"],
            spec["parameters"],
            spec["output_dir"],
            cell_timeout=spec.get("cell_timeout"),
            timeout=spec.get("timeout"),
            threads=spec.get("threads"),
        )
        if result.ok or not any(m in (result.error or "") for m in _STARTUP_FAILURES):
            break
        time.sleep(0.5 * (attempt + 1))
    return {
        "ok": result.ok,
        "notebook_path": str(result.notebook_path),
        "error": result.error,
        "duration_s": result.duration_s,
    }


def _execute(specs: list[dict[str, Any]], executor: str, scheduler: str | None, workers: int) -> list[dict[str, Any]]:
    if executor == "local":
        from labkit.notebooks.runner import run_in_threads

        return run_in_threads(_run_one, specs, workers)
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            return client.gather(client.map(_run_one, specs, pure=False))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            return client.gather(client.map(_run_one, specs, pure=False))


def sweep(
    notebook: str | os.PathLike,
    grid: Mapping[str, Sequence[Any] | Any],
    output_dir: str | os.PathLike | None = None,
    *,
    fixed: Mapping[str, Any] | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    cell_timeout: float | None = None,
    timeout: float | None = None,
) -> SweepResult:
    """Notebook and a grid of parameter values in, `SweepResult` (table, comparison page, run folders) out.

    grid: name -> list of values (a single value is one point); every combination runs once.
    output_dir: where `run-000/`, ... and `sweep.csv` / `sweep.html` go (default: `sweeps/<notebook stem>`).
    fixed: parameters set the same way for every run.
    executor: "local" (parallel processes on this machine) or "dask" (a Dask cluster).
    scheduler: a Dask scheduler address such as "tcp://10.0.0.5:8786" (executor="dask"; default: a LocalCluster).
    workers: parallel runs (default: the number of CPU cores, at most the number of runs).
    cell_timeout / timeout: as for `run_notebook`, per run.
    """
    src = Path(notebook)
    if executor not in EXECUTORS:
        raise UnknownNameError(
            f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)} {close_matches(executor, EXECUTORS)}".rstrip()
        )
    if scheduler and executor != "dask":
        raise InvalidInputError("a scheduler address needs executor='dask'; pass --executor dask")
    declared = read_parameters(src)
    points = expand_grid(grid)
    fixed = dict(fixed or {})
    overlap = sorted(set(fixed) & {name for point in points[:1] for name in point})
    if overlap:
        raise InvalidInputError(f"parameter {overlap[0]!r} is both swept and fixed; give it once")
    # validate every combination before any kernel starts
    runs = [validate_parameters(declared, {**fixed, **point}) for point in points]
    out = check_output_dir("output_dir", output_dir if output_dir is not None else Path("sweeps") / src.stem)
    workers = max(1, min(workers or os.cpu_count() or 1, len(runs)))
    specs = []
    for i, values in enumerate(runs):
        run_dir = out / f"run-{i:03d}"
        specs.append(
            {
                "notebook": str(src.resolve()),
                "parameters": values,
                "output_dir": str(run_dir.resolve()),
                "cell_timeout": cell_timeout,
                "timeout": timeout,
                # local runs share this machine's cores; Dask workers keep their own settings
                "threads": max(1, (os.cpu_count() or 1) // workers) if executor == "local" else None,
            }
        )
    start = time.perf_counter()
    results = _execute(specs, executor, scheduler, workers)
    duration = time.perf_counter() - start

    from labkit.notebooks.results import collect

    table = collect([r["notebook_path"] for r in results if Path(r["notebook_path"]).is_file()])
    swept = list(points[0]) if points else []
    csv_path = out / "sweep.csv"
    table.to_csv(csv_path, index=False)
    report = write_sweep_report(
        table,
        swept,
        out / "sweep.html",
        title=f"Sweep of {src.stem}",
        errors=[r["error"] for r in results if r["error"]],
    )
    return SweepResult(
        table=table,
        report_path=report,
        csv_path=csv_path,
        run_dirs=[Path(s["output_dir"]) for s in specs],
        failed=sum(not r["ok"] for r in results),
        duration_s=duration,
    )


def write_sweep_report(
    table: Any, swept: list[str], path: Path, *, title: str, errors: list[str] | None = None
) -> Path:
    """Table of runs in, one offline HTML page out: the table plus, per recorded metric, a plot against the
    first swept parameter (one line per value of the second). plotly.js is inlined once."""
    import plotly.graph_objects as go
    import plotly.io as pio

    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(table)} runs; {int((~table['ok'].astype(bool)).sum()) if len(table) else 0} failed.</p>",
    ]
    for err in errors or []:
        parts.append(f"<p class='error'>{html.escape(err)}</p>")
    parts.append(table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}", escape=True))
    metrics = [c for c in table.columns if c.startswith("metric.")] if len(table) else []
    first_plot = True
    if swept and metrics:
        x_col = f"param.{swept[0]}"
        group_col = f"param.{swept[1]}" if len(swept) > 1 else None
        for metric in metrics:
            if not all(isinstance(v, (int, float)) for v in table[metric].dropna()):
                continue
            fig = go.Figure()
            groups = table.groupby(group_col, sort=True) if group_col else [(None, table)]
            for key, rows in groups:
                rows = rows.sort_values(x_col)
                fig.add_trace(
                    go.Scatter(
                        x=rows[x_col],
                        y=rows[metric],
                        mode="lines+markers",
                        name=f"{swept[1]}={key}" if group_col else metric.removeprefix("metric."),
                    )
                )
            fig.update_layout(
                title=f"{metric.removeprefix('metric.')} vs {swept[0]}",
                xaxis_title=swept[0],
                yaxis_title=metric.removeprefix("metric."),
                height=380,
            )
            if table[x_col].map(lambda v: isinstance(v, (int, float))).all() and (table[x_col] > 0).all():
                values = sorted(set(table[x_col]))
                if len(values) > 2 and values[-1] / values[0] >= 100:
                    fig.update_xaxes(type="log")
            parts.append(pio.to_html(fig, include_plotlyjs=first_plot, full_html=False))
            first_plot = False
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui,sans-serif;margin:2em}}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".error{color:#b00}</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    path.write_text(safe_text(page), encoding="utf-8")
    return path
