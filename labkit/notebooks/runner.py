"""Run a parameterized notebook: validate -> parameterize -> execute (papermill) -> write .ipynb + HTML.

Parameters are checked against the notebook's `parameters` cell before any
kernel starts, so a typo fails in well under a second. Execution runs in a
child `papermill` process on a kernel that uses this very interpreter
(`sys.executable`), so the run sees the same packages as the caller, and a
whole-run `timeout` can stop the process group cleanly. Plotly figures are
rendered for static HTML through the `PLOTLY_RENDERER` environment variable,
which plotly reads when the notebook imports it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.checks import check_float, check_output_dir
from labkit.errors import InvalidInputError, MissingSourceError
from labkit.notebooks.parameters import read_parameters, validate_parameters

# mimetype keeps the interactive figure for Jupyter; notebook adds HTML + plotly.js for the static report
PLOTLY_RENDERER = "plotly_mimetype+notebook"
CURRENT_KERNEL = "labkit-current"
# papermill processes this process is running (each leads its own process group, kernel included)
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


@dataclass
class RunResult:
    """What a run produced: success flag, executed notebook, HTML report, one-line error and wall time."""

    ok: bool
    notebook_path: Path
    html_path: Path | None
    error: str | None
    duration_s: float
    parameters: dict[str, Any] = field(default_factory=dict)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send sig to a papermill process and its kernel (a grandchild in the same process group), if still there."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # already gone
        pass


def _stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> str:
    """Stop a run this thread owns: SIGTERM, SIGKILL after grace_s; returns its stderr, read meanwhile (a full
    pipe would otherwise keep papermill from exiting)."""
    _signal_group(proc, signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        _, stderr = proc.communicate()
    return stderr or ""


def stop_running_notebooks(grace_s: float = 10.0) -> int:
    """Stop every notebook run of this process that is in progress (papermill and kernel); how many were running.

    For a caller that runs notebooks in worker threads (`build_gallery`, `sweep`) and is interrupted in its
    main thread: each stopped run returns from `run_notebook` as a failed run, and nothing keeps computing.
    Runs still there grace_s seconds after SIGTERM get SIGKILL. (The threads that own the runs read their
    output; this function only signals and waits.)
    """
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(proc.poll() is None for proc in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in running:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
    return len(running)


def run_in_threads(fn: Any, items: list[Any], workers: int) -> list[Any]:
    """`[fn(item) for item in items]` on `workers` threads, where fn runs notebooks: on Ctrl-C (or any error in
    the caller's thread) the runs not started are cancelled and those in progress stopped, then it re-raises."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            stop_running_notebooks()
            raise


def _write_current_kernelspec(root: Path) -> None:
    """Write a kernelspec named `labkit-current` that launches ipykernel with this interpreter."""
    spec_dir = root / "kernels" / CURRENT_KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (labkit run)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def _read_executed(path: Path) -> Any:
    """The executed notebook papermill wrote, as a NotebookNode, or None when there is none (or an aborted write)."""
    import nbformat

    if not path.is_file():
        return None
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 (papermill died while writing it: the stderr line says why)
        return None


def _failure_summary(nb: Any) -> str | None:
    """Return 'ErrorName: message' of the first failing cell recorded in an executed notebook."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = str(out.get("evalue", "")).strip().splitlines()
                return f"{out.get('ename', 'Error')}: {first[0] if first else ''}".rstrip(": ")
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "papermill failed without a message"


def run_notebook(
    path: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | os.PathLike = "runs",
    *,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    timeout: float | None = None,
    title: str | None = None,
    threads: int | None = None,
) -> RunResult:
    """Notebook path and parameter values in, `RunResult` out (executed .ipynb and HTML report written).

    path: the parameterized notebook (.ipynb with one `parameters` cell).
    parameters: name -> value; strings are converted to the declared types ("1e-3" -> 0.001).
    output_dir: folder for `<stem>.ipynb` and `<stem>.html` (created if missing).
    kernel_name: a registered kernelspec; by default a kernel running this Python interpreter.
    cell_timeout: seconds one cell may run before the run fails.
    timeout: seconds the whole execution may run before it is stopped.
    title: the report's title (default: the notebook's stem).
    threads: CPU threads the kernel's math libraries may use (OMP_NUM_THREADS); parallel runs (sweeps, the
        gallery) split the cores between them, since oversubscribed runs are many times slower.
    """
    from labkit.notebooks.report import export_html

    src = Path(path)
    if src.suffix != ".ipynb":
        raise InvalidInputError(f"{str(src)!r} is not a notebook; pass a .ipynb file")
    if not src.is_file():
        raise MissingSourceError(f"notebook {str(src)!r} does not exist; check the path")
    for name, value in (("cell_timeout", cell_timeout), ("timeout", timeout)):
        check_float(name, value, low=0, low_open=True, allow_none=True, fix="give seconds, or None for no limit")
    declared = read_parameters(src)
    values = validate_parameters(declared, dict(parameters or {}))
    effective = {**{p.name: p.default for p in declared}, **values}  # what the run actually used

    out_dir = check_output_dir("output_dir", output_dir)
    nb_out = out_dir / f"{src.stem}.ipynb"
    html_out = out_dir / f"{src.stem}.html"
    if nb_out.resolve() == src.resolve():
        raise InvalidInputError(
            f"output_dir {str(out_dir)!r} would overwrite the source notebook; choose another folder"
        )
    nb_out.unlink(missing_ok=True)  # a stale notebook from an earlier run must not pass for this one

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labkit-run-") as tmp:
        env = dict(os.environ)
        env["PLOTLY_RENDERER"] = PLOTLY_RENDERER
        env["PYTHONUNBUFFERED"] = "1"
        if threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, int(threads)))
        # a private runtime dir per run: parallel runs (sweeps, the gallery) never share connection files
        env["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        kernel = kernel_name
        if kernel is None:
            _write_current_kernelspec(Path(tmp))
            env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [tmp, env.get("JUPYTER_PATH")]))
            kernel = CURRENT_KERNEL
        # a UTF-8 parameter file (JSON is YAML): escaped astral characters on the command line would reach
        # papermill's YAML reader as lone surrogates, which cannot be written back into the notebook
        params_file = Path(tmp) / "parameters.yaml"
        params_file.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "papermill",
            str(src),
            str(nb_out),
            "-k",
            kernel,
            "--language",
            "python",
            "-f",
            str(params_file),
            "--cwd",
            str(src.parent.resolve()),
            "--no-progress-bar",
            "--no-log-output",
        ]
        if cell_timeout is not None:
            cmd += ["--execution-timeout", str(int(max(1, round(cell_timeout))))]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            _, stderr = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            stderr = _stop_group(proc)
            timed_out = True
        except BaseException:  # Ctrl-C (its own session does not get the terminal's SIGINT): leave no kernel running
            _stop_group(proc)
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    duration = time.perf_counter() - start

    # the executed notebook is read once here; its records, the failure tag and the report all come from it
    executed = _read_executed(nb_out)
    error: str | None = None
    if timed_out:
        error = f"TimeoutError: the run exceeded timeout={timeout} s and was stopped"
    elif proc.returncode != 0 and cell_timeout is not None and "CellTimeoutError" in (stderr or ""):
        # nbclient interrupts the kernel, so the notebook itself only records a KeyboardInterrupt
        error = f"TimeoutError: a cell ran longer than cell_timeout={cell_timeout} s"
    elif proc.returncode != 0:
        error = (_failure_summary(executed) if executed is not None else None) or _last_line(stderr or "")
    ok = error is None
    if executed is None:  # papermill failed before writing a notebook (e.g. no such kernel)
        return RunResult(False, nb_out, None, error or "papermill wrote no notebook", duration, values)
    import nbformat

    from labkit.notebooks.report import mark_failed_cell
    from labkit.notebooks.results import add_run_metadata

    add_run_metadata(executed, notebook=src.stem, parameters=effective, ok=ok, duration_s=duration, error=error)
    if error:
        mark_failed_cell(executed)  # the .ipynb marks the cell the report's banner links to
    nbformat.write(executed, nb_out)
    export_html(
        nb_out,
        html_out,
        title=title or src.stem,
        parameters=effective,
        duration_s=duration,
        error=error,
        notebook=executed,
    )
    return RunResult(ok, nb_out, html_out, error, duration, values)
