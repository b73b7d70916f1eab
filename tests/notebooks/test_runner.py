"""`labkit run` and `run_notebook` with real papermill runs on tiny notebooks written into tmp_path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.notebooks import RunResult, export_html, run_notebook

LABKIT = [sys.executable, "-m", "labkit"]
PLOTLY_BUNDLE = re.compile(r"\* plotly\.js v\d")
REMOTE_SOURCE = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)


def _write(tmp_path: Path, *cells: str, params: str = "n: int = 3  # how many points\nlabel: str = 'hi'") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# A tiny lesson"))
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in cells)
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LABKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_bad_parameters_fail_fast_with_one_line_and_no_kernel(tmp_path):
    path = _write(tmp_path, "print(n)")
    (tmp_path / "bad.yaml").write_text("n: many\n")
    for args, message in [
        (["-p", "nn", "3"], "unknown parameter 'nn'; did you mean 'n'?"),
        (["-p", "n", "abc"], "parameter 'n' expects int, got 'abc'"),
        (["-f", "missing.yaml"], "parameter file 'missing.yaml' does not exist"),
        (["-f", "bad.yaml"], "parameter 'n' expects int, got 'many'"),
    ]:
        proc = _cli("run", str(path), *args, "-o", str(tmp_path / "out"), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0]
        assert not (tmp_path / "out" / "lesson.ipynb").exists()  # no kernel ran, nothing was written


def test_library_call_validates_before_running(tmp_path):
    path = _write(tmp_path, "print(n)")
    with pytest.raises(UnknownNameError):
        run_notebook(path, {"label2": "x"}, tmp_path / "out")
    with pytest.raises(InvalidInputError, match=r"^timeout must be a finite number > 0 \(or None\), got 0"):
        run_notebook(path, {}, tmp_path / "out", timeout=0)
    with pytest.raises(InvalidInputError, match="not a notebook"):
        run_notebook(tmp_path / "lesson.py", {}, tmp_path / "out")


def test_params_command_prints_the_signature(tmp_path):
    path = _write(tmp_path, "print(n)", params="n: int = 3  # how many points\nmode: Literal['a', 'b'] = 'a'")
    proc = _cli("params", str(path), cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["n: int = 3  # how many points", "mode: Literal['a', 'b'] = 'a'"]
    described = json.loads(_cli("params", str(path), "--json", cwd=tmp_path).stdout)
    assert described[1] == {
        "name": "mode",
        "type": "Literal['a', 'b']",
        "default": "a",
        "help": "",
        "choices": ["a", "b"],
    }


@pytest.mark.notebook
def test_successful_run_writes_notebook_and_offline_report_with_one_plotly_bundle(tmp_path):
    path = _write(
        tmp_path,
        "import plotly.graph_objects as go\ngo.Figure(go.Scatter(y=list(range(n)))).show()",
        "go.Figure(go.Bar(y=[1, 2, n])).show()\nprint('label is', label, 'n squared is', n * n)",
        "import sys\nprint('kernel python', sys.executable)",
    )
    (tmp_path / "params.yaml").write_text("label: hello\nn: 2\n")
    proc = _cli("run", str(path), "-f", "params.yaml", "-p", "n", "7", "-o", "out", cwd=tmp_path)  # -p overrides -f
    assert proc.returncode == 0, proc.stderr
    assert "out/lesson.ipynb" in proc.stdout and "out/lesson.html" in proc.stdout
    executed = nbformat.read(tmp_path / "out" / "lesson.ipynb", as_version=4)
    text = json.dumps(executed)
    assert "label is hello n squared is 49" in text
    assert f"kernel python {sys.executable}" in text  # the current environment's interpreter ran the cells
    html = (tmp_path / "out" / "lesson.html").read_text()
    assert len(PLOTLY_BUNDLE.findall(html)) == 1  # two figures, one inlined plotly.js
    assert html.count("Plotly.newPlot(") == 2
    assert not REMOTE_SOURCE.search(html), REMOTE_SOURCE.search(html)
    assert 'id="labkit-run-header"' in html and "hello" in re.search(
        r'class="labkit-parameters">(.*?)</table>', html, re.S
    ).group(1)
    assert 'id="labkit-failure-banner"' not in html


@pytest.mark.notebook
def test_failing_notebook_keeps_the_executed_notebook_and_marks_the_cell(tmp_path):
    path = _write(tmp_path, "x = n + 1", "raise ValueError(f'bad value {x}')", "print('never reached')")
    proc = _cli("run", str(path), "-o", "out", cwd=tmp_path)
    assert proc.returncode == 1
    assert "ValueError: bad value 4" in proc.stderr
    executed = nbformat.read(tmp_path / "out" / "lesson.ipynb", as_version=4)
    errors = [c for c in executed.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(errors) == 1 and "raise ValueError" in errors[0].source
    assert "never reached" not in json.dumps([c.get("outputs", []) for c in executed.cells if c.cell_type == "code"])
    html = (tmp_path / "out" / "lesson.html").read_text()
    banner = re.search(r'id="labkit-failure-banner">(.*?)</div>', html, re.S).group(1)
    anchor = re.search(r'href="#([^"]+)"', banner).group(1)
    assert "ValueError: bad value 4" in banner
    # the banner links to the failing cell, and that cell carries the highlight class
    cell_div = re.search(rf'<div[^>]*id="{re.escape(anchor)}"[^>]*>', html).group(0)
    assert "celltag_labkit-failed" in cell_div and "ValueError" in html[html.index(cell_div) :][:3000]
    assert html.count("celltag_labkit-failed") == 1 + html.count(".celltag_labkit-failed")


@pytest.mark.notebook
def test_whole_run_timeout_stops_the_kernel_and_still_reports(tmp_path):
    path = _write(tmp_path, "import time\nprint('started')", "time.sleep(60)")
    start = time.perf_counter()
    result = run_notebook(path, {}, tmp_path / "out", timeout=8)
    assert time.perf_counter() - start < 30
    assert isinstance(result, RunResult) and not result.ok and "timeout=8" in result.error
    assert result.html_path is not None and 'id="labkit-failure-banner"' in result.html_path.read_text()


def test_export_html_refuses_a_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_html(tmp_path / "nope.ipynb", tmp_path / "nope.html")


@pytest.mark.notebook
def test_cell_timeout_names_the_limit_not_the_interrupt(tmp_path):
    path = _write(tmp_path, "import time\ntime.sleep(60)")
    result = run_notebook(path, {}, tmp_path / "out", cell_timeout=2)
    assert not result.ok and result.error == "TimeoutError: a cell ran longer than cell_timeout=2 s"
    assert "celltag_labkit-failed" in result.html_path.read_text().split("</style>", 1)[-1].split("</header>", 1)[-1]


def test_astral_unicode_parameters_reach_the_kernel_intact(tmp_path):
    path = _write(tmp_path, "print(label[::-1])")
    result = run_notebook(path, {"label": "Romeo 🌹 é"}, tmp_path / "out")
    assert result.ok, result.error
    executed = nbformat.read(result.notebook_path, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "é 🌹 oemoR" in printed


def test_a_kernel_that_cannot_start_is_one_line_not_a_crash(tmp_path):
    path = _write(tmp_path, "print(n)")
    result = run_notebook(path, {}, tmp_path / "out", kernel_name="no-such-kernel-here")
    assert not result.ok
    assert "no-such-kernel-here" in result.error and "\n" not in result.error


def _alive(pid: int) -> bool:
    """True while process pid runs (a zombie waiting for its parent counts as stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


def _interrupt_when_kernels_start(cmd: list[str], pid_dir: Path, kernels: int, cwd: Path) -> tuple[int, str]:
    """Start cmd as a terminal would (Ctrl-C not ignored), press Ctrl-C once `kernels` kernels wrote their pid."""
    import signal

    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(list(pid_dir.glob("*.pid"))) < kernels and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(list(pid_dir.glob("*.pid"))) == kernels, "the kernels did not start"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.mark.notebook
def test_ctrl_c_on_labkit_run_stops_its_kernel(tmp_path):
    """papermill and its kernel run in a session of their own (so a timeout can stop the group); the terminal's
    Ctrl-C reaches only `labkit run`, which must stop them rather than leave a kernel computing."""
    pids = tmp_path / "pids"
    pids.mkdir()
    path = _write(
        tmp_path, f"import os, time\nopen(r'{pids}/' + str(os.getpid()) + '.pid', 'w').close()\ntime.sleep(120)"
    )
    code, stderr = _interrupt_when_kernels_start([*LABKIT, "run", str(path), "-o", "out"], pids, 1, tmp_path)
    assert code == 130 and "labkit: interrupted" in stderr
    kernel = int(next(pids.glob("*.pid")).stem)
    deadline = time.monotonic() + 15
    while _alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(kernel), "the kernel kept running after Ctrl-C"


@pytest.mark.notebook
def test_ctrl_c_on_labkit_gallery_stops_every_run_and_starts_no_more(tmp_path, write_lesson):
    pids = tmp_path / "pids"
    pids.mkdir()
    lessons = tmp_path / "notebooks"
    for name in ("01_a", "02_b", "03_c"):
        write_lesson(
            lessons,
            name,
            params="n: int = 1",
            cells=[f"import os, time\nopen(r'{pids}/' + str(os.getpid()) + '.pid', 'w').close()\ntime.sleep(120)"],
        )
    cmd = [*LABKIT, "gallery", "--notebooks", str(lessons), "-o", "g", "--workers", "2"]
    code, stderr = _interrupt_when_kernels_start(cmd, pids, 2, tmp_path)
    assert code == 130 and "labkit: interrupted" in stderr
    time.sleep(3)  # the third lesson, queued behind the two, must not start now
    started = [int(p.stem) for p in pids.glob("*.pid")]
    assert len(started) == 2, "a queued lesson started after Ctrl-C"
    deadline = time.monotonic() + 15
    while any(map(_alive, started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, started)), "a lesson's kernel kept running after Ctrl-C"
