"""Browser-test fixtures: Debian's Chromium driven by Playwright, one JupyterLab server on loopback, no network.

Every page blocks all requests that leave the machine (anything but loopback, file:, data: and blob:)
and records them, records console errors, page errors and dialogs, so a test can assert that rendering
needed none of them. One notebook holds every row of `cases.py`; JupyterLab runs it once per session and
`labkit run` exports it once per session. Screenshots go to tests/browser/artifacts/.

Without Chromium (or Python playwright) the tests skip, naming the fix; with LABKIT_REQUIRE_BROWSER=1
(CI) they fail instead. LABKIT_CHROMIUM points at another Chromium binary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
CHROMIUM = os.environ.get("LABKIT_CHROMIUM") or "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("LABKIT_REQUIRE_BROWSER") == "1"
# Measured to work in containers (ENVIRONMENT.md): no sandbox, no GPU, no background traffic.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# talks to the local Lab server only; never through an http_proxy from the environment
_LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
# Lab settings: no news/update notification over the page; start the notebook's kernel without the
# "Select Kernel" dialog; every cell in the DOM (no windowing), so locators find cells off screen.
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
}


def _load_cases() -> Any:
    # the test folder is not a package (pytest runs with --import-mode=importlib), so load the table by path
    spec = importlib.util.spec_from_file_location("labkit_browser_cases", HERE / "cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


cases = _load_cases()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes `case` once per row of the table."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])


def browser_missing() -> str | None:
    """Return why the browser tests cannot run here (no playwright, no Chromium), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Python playwright is not installed (pip install -e '.[dev]'; never `playwright install`)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM}; run scripts/install-browser.sh (or set LABKIT_CHROMIUM)"
    return None


def need_browser() -> None:
    """Skip the calling test without Chromium, or fail it when LABKIT_REQUIRE_BROWSER=1 (CI)."""
    reason = browser_missing()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(f"LABKIT_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)


def is_local(url: str) -> bool:
    """True for requests that stay on this machine: loopback HTTP/WebSocket, file:, data:, blob:."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOOPBACK


@dataclass
class WatchedPage:
    """A Playwright page with what it tried and said: blocked requests, console/page errors, dialogs."""

    page: Any
    context: Any
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def open_watched_page(browser: Any) -> WatchedPage:
    """A new page (own context, service workers off) that blocks and records every non-loopback request."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, service_workers="block")
    watch = WatchedPage(context.new_page(), context)

    def route(route: Any) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            watch.blocked.append(url)
            route.abort()

    context.route("**/*", route)
    watch.page.on("console", lambda msg: watch.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    watch.page.on("pageerror", lambda exc: watch.errors.append(f"page error: {exc}"))

    def dialog(d: Any) -> None:
        watch.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    watch.page.on("dialog", dialog)
    return watch


@dataclass
class CaseNotebook:
    """The session's notebook: its path, each case's code-cell index, and why skipped rows were left out."""

    path: Path
    index: dict[str, int]
    skipped: dict[str, str]


@dataclass
class RenderedNotebook:
    """The case notebook as a browser shows it (JupyterLab after Run All, or the static report)."""

    where: str  # "lab" or "static": names screenshots
    watch: WatchedPage
    notebook: CaseNotebook
    # case name -> "Error: message" from the executed notebook (static pages show errors as plain stderr);
    # None: look for JupyterLab's error outputs in the page instead
    cell_errors: dict[str, str] | None = None

    def cell(self, case: Any) -> Any:
        """The code cell of one case (every widget exists now: a row left out because it fails to import is a bug)."""
        if case.name in self.notebook.skipped:
            pytest.fail(f"{case.name} could not be built: {self.notebook.skipped[case.name]}", pytrace=False)
        return self.watch.page.locator(".jp-CodeCell").nth(self.notebook.index[case.name])

    def assert_renders(self, case: Any, timeout_ms: int = 30_000) -> None:
        """Assert the case's cell raised nothing and its selector is visible; keep a screenshot."""
        from playwright.sync_api import expect

        cell = self.cell(case)
        cell.scroll_into_view_if_needed()
        if self.cell_errors is not None:
            assert case.name not in self.cell_errors, (
                f"{case.name} raised in {self.where}: {self.cell_errors[case.name]}"
            )
        else:
            errors = cell.locator(ERROR_OUTPUT)
            assert errors.count() == 0, f"{case.name} raised in {self.where}: {errors.first.inner_text()[-1500:]}"
        scope = cell.frame_locator(case.frame).first if case.frame else cell
        target = scope.locator(case.selector).first
        try:
            expect(target).to_be_visible(timeout=timeout_ms)
        finally:
            self.screenshot(f"{self.where}-{case.name}", cell)

    def screenshot(self, name: str, locator: Any = None) -> Path:
        """Save a screenshot of the locator (or the whole page) as artifacts/<name>.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if locator is None:
            self.watch.page.screenshot(path=str(path), full_page=True)
        else:
            locator.screenshot(path=str(path))
        return path

    def assert_tokens_are_text(self, token: str) -> None:
        """Assert that `token` shows as text in every view of it, that no <img> came from it and no dialog opened."""
        shown = [c for c in cases.CASES if c.shows_tokens and c.name not in self.notebook.skipped]
        assert shown, "no view of the table shows the tokens: the escaping check would test nothing"
        leaf_with_text = (
            "(el, tok) => [...el.querySelectorAll('*')]"
            ".some(e => e.children.length === 0 && e.textContent.includes(tok))"
        )
        for case in shown:
            cell = self.cell(case)
            output = (
                cell.frame_locator(case.frame).first.locator("body") if case.frame else cell.locator(".jp-OutputArea")
            ).first
            assert output.evaluate(leaf_with_text, token), f"{case.name}: the token {token!r} is not shown as text"
        assert self.watch.page.locator('img[src="x"]').count() == 0
        self.watch.page.wait_for_timeout(300)  # an onerror handler would fire right after the image fails
        assert self.watch.dialogs == []

    def assert_clean(self) -> None:
        """Assert that the page needed no network and logged no errors (screenshot of the whole page kept)."""
        self.screenshot(f"{self.where}-page")
        assert self.watch.blocked == [], f"the page asked for the network: {self.watch.blocked[:5]}"
        assert self.watch.errors == [], f"the page logged errors: {self.watch.errors[:5]}"
        assert self.watch.dialogs == []


# ---------------------------------------------------------------- session fixtures


@pytest.fixture(scope="session")
def hostile_token() -> str:
    """The token text that must show as text everywhere: `</script><img src=x onerror=alert(1)>`."""
    return cases.HOSTILE


@pytest.fixture(scope="package")
def chromium_browser():
    """Debian's Chromium through Playwright (skips, or fails under LABKIT_REQUIRE_BROWSER=1, when absent).

    Package scope, not session: while Playwright's sync API runs, the main thread has a running event loop and
    any later `sync_playwright()` outside this folder (the gallery's thumbnails, other browser checks) refuses.
    """
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def case_notebook(tmp_path_factory) -> CaseNotebook:
    """The one notebook with every available row of the table, in its own folder."""
    need_browser()  # before importing every widget module for nothing
    folder = tmp_path_factory.mktemp("browser-notebook")
    skipped = {c.name: reason for c in cases.CASES if (reason := cases.unavailable(c))}
    index = cases.build_notebook(folder / "widgets.ipynb", [c for c in cases.CASES if c.name not in skipped])
    return CaseNotebook(folder / "widgets.ipynb", index, skipped)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with _LOCAL_HTTP.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer {url} within {timeout:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def lab_server(case_notebook, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 (empty token) serving the notebook's folder; yields its base URL.

    Its config, data, runtime, settings and workspace folders are temporary, its `python3` kernel is this
    interpreter, and the server's own PID is stopped at teardown (SIGTERM shuts its kernels down).
    """
    home = tmp_path_factory.mktemp("lab-home")
    kernel = home / "path" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (labkit browser tests)",
                "language": "python",
            }
        )
    )
    app_settings = home / "app-settings"
    app_settings.mkdir()
    (app_settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_PATH=str(home / "path"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={case_notebook.path.parent}",
        f"--LabApp.app_settings_dir={app_settings}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = home / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for_server(f"{base}/api/status", proc, log_path)
            yield base
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _notebook_kernels(base: str, name: str) -> tuple[list[str], dict[str, str]]:
    """(kernel ids of the notebook's sessions, kernel id -> execution state of every kernel) from the server."""
    with _LOCAL_HTTP.open(f"{base}/api/sessions", timeout=10) as response:
        sessions = json.load(response)
    with _LOCAL_HTTP.open(f"{base}/api/kernels", timeout=10) as response:
        kernels = json.load(response)
    ids = [s["kernel"]["id"] for s in sessions if s.get("kernel") and s.get("path", "").endswith(name)]
    return ids, {k["id"]: k.get("execution_state", "") for k in kernels}


def _wait_for_settled_kernel(page: Any, base: str, name: str, settle_s: float = 3.0, timeout_s: float = 120.0) -> str:
    """Wait until the notebook has one idle kernel that stays the same for `settle_s`; return its id.

    Measured: on opening, Lab sometimes starts a kernel, shuts it down and starts another seconds later;
    cells run before that swap lose their outputs (and widgets their models). Waits with
    `page.wait_for_timeout`, never `time.sleep`: the route handler that decides every request of the page
    runs only while Playwright has control, so sleeping would stall the page.
    """
    deadline = time.monotonic() + timeout_s
    current, since = None, 0.0
    while time.monotonic() < deadline:
        ids, states = _notebook_kernels(base, name)
        ok = len(ids) == 1 and len(states) == 1 and states.get(ids[0]) == "idle"
        if not ok:
            current = None
        elif ids[0] != current:
            current, since = ids[0], time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return current
        page.wait_for_timeout(500)
    raise AssertionError(f"the notebook's kernel did not settle in {timeout_s:.0f} s: sessions {ids}, kernels {states}")


def _click_run_all(page: Any) -> None:
    """Run > Run All Cells (waits until the menu item is enabled: right after loading it may not be)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(
        ".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")
    ).click(timeout=20_000)


def _run_all_until_done(page: Any, n_code: int, timeout_s: float = 180.0, stall_s: float = 6.0) -> None:
    """Run All, then wait until every code-cell prompt shows a number ("[3]:").

    Right after the page opens, Lab may still swap in the kernel it auto-starts, which drops requests
    already queued (the prompts go back to "[ ]" with nothing running); when nothing is queued or running
    for `stall_s` seconds and some cell has not run, Run All is clicked again (idempotent for this notebook).
    """
    deadline = time.monotonic() + timeout_s
    _click_run_all(page)
    clicks, last_busy = 1, time.monotonic()
    prompts: list[str] = []
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        if len(prompts) == n_code and all(re.search(r"\[\d+\]", p) for p in prompts):
            return
        if any("*" in p for p in prompts):
            last_busy = time.monotonic()
        elif time.monotonic() - last_busy > stall_s:
            if clicks >= 4:  # e.g. the set-up cell raised, which stops every Run All at the same place
                break
            _click_run_all(page)
            clicks, last_busy = clicks + 1, time.monotonic()
    raise AssertionError(f"Run All did not finish ({clicks} clicks): prompts {prompts}")


@pytest.fixture(scope="package")
def lab_notebook(chromium_browser, lab_server, case_notebook):
    """The case notebook opened in JupyterLab 4 and run with Run > Run All Cells, every prompt numbered."""
    watch = open_watched_page(chromium_browser)
    page = watch.page
    page.set_default_timeout(60_000)
    page.goto(f"{lab_server}/lab/tree/{case_notebook.path.name}?reset")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    select_kernel = page.locator(".jp-Dialog button", has_text=re.compile(r"^Select$"))
    if select_kernel.count():  # Lab asks only when the notebook's kernel is unknown
        select_kernel.first.click()
    rendered = RenderedNotebook("lab", watch, case_notebook)
    try:
        kernel = _wait_for_settled_kernel(page, lab_server, case_notebook.path.name)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        _run_all_until_done(page, n_code=len(case_notebook.index) + 2)  # parameters + setup + one per case
        ids, _ = _notebook_kernels(lab_server, case_notebook.path.name)
        assert ids == [kernel], f"the kernel changed during Run All ({kernel} -> {ids}); outputs may be stale"
    except Exception as exc:
        rendered.screenshot("lab-run-all-failed")
        raise AssertionError(
            f"{exc}; errors {watch.errors[:5]}; blocked {watch.blocked[:5]}; screenshot in {ARTIFACTS}"
        ) from None
    yield rendered
    watch.context.close()


def _cell_errors(executed_path: Path, index: dict[str, int]) -> tuple[dict[str, str], list[str]]:
    """Errors of an executed case notebook: (case name -> "Error: message", errors in the other cells)."""
    import nbformat

    code = [c for c in nbformat.read(executed_path, as_version=4).cells if c.cell_type == "code"]
    by_index = {
        i: f"{o.get('ename')}: {o.get('evalue')}"
        for i, c in enumerate(code)
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    }
    names = {i: name for name, i in index.items()}
    return (
        {names[i]: e for i, e in by_index.items() if i in names},
        [e for i, e in by_index.items() if i not in names],
    )


@pytest.fixture(scope="session")
def static_report(case_notebook, tmp_path_factory) -> Path:
    """The case notebook executed by `labkit run` (papermill) into its offline HTML report; the report's path.

    A broken row fails the run (exit 1) but not the report: its cell is tagged raises-exception, so the
    other cells still run and its own test shows the error. Any other failure stops here.
    """
    need_browser()
    out = tmp_path_factory.mktemp("report")
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "run", str(case_notebook.path), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    html, executed = out / f"{case_notebook.path.stem}.html", out / f"{case_notebook.path.stem}.ipynb"
    assert html.is_file() and executed.is_file(), f"labkit run wrote no report: {proc.stderr[-3000:]}"
    case_errors, other_errors = _cell_errors(executed, case_notebook.index)
    assert not other_errors, f"the notebook's set-up failed: {other_errors}"
    assert proc.returncode == 0 or case_errors, f"labkit run failed: {proc.stderr[-3000:]}"
    return html


@pytest.fixture(scope="package")
def static_notebook(chromium_browser, static_report, case_notebook):
    """The static report opened from file:// with the network blocked, after its load event."""
    cell_errors, _ = _cell_errors(static_report.with_suffix(".ipynb"), case_notebook.index)
    watch = open_watched_page(chromium_browser)
    watch.page.set_default_timeout(60_000)
    watch.page.goto(static_report.as_uri(), wait_until="load")
    yield RenderedNotebook("static", watch, case_notebook, cell_errors)
    watch.context.close()


@pytest.fixture(scope="package")
def watched_page(chromium_browser):
    """A factory: `watched_page()` opens a new network-blocked, error-recording page (close its `.context`)."""
    return lambda: open_watched_page(chromium_browser)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where screenshots go (kept as test artifacts, ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
