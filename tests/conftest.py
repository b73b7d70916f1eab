"""Fixtures shared across the test packages: one torch thread; the lessons executed once per session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny-tensor tests on one torch thread: extra threads only contend on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the lessons, run once per session

LESSONS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
# A lesson that hangs fails after this long (the target is <= 90 s; a loaded machine is many times slower).
LESSON_TIMEOUT_S = 1200
# pytest-timeout counts a session fixture's set-up against the first test that needs it: every lesson's run
# happens there, so the tests that use the lesson fixtures carry this limit instead of the suite's 900 s.
LESSON_SUITE_TIMEOUT = pytest.mark.timeout(3600)
LESSON_TIMES = pytest.StashKey[dict]()  # "defaults" / "smallest" -> {"wall": s, lesson: s}: printed at the end


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LESSON_TIMES] = {}


LESSON_FIXTURES = ("lesson_gallery", "smallest_runs")  # the order their readers run in, after every other test


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the lesson tests with their long timeout and move them to the end, the gallery's readers first.

    The lessons execute in a child process from the first test on (`lesson_jobs`); everything else runs meanwhile.
    """

    def rank(item: pytest.Item) -> int:
        used = [i for i, name in enumerate(LESSON_FIXTURES) if name in getattr(item, "fixturenames", ())]
        return used[0] + 1 if used else 0

    for item in items:
        if rank(item):
            item.add_marker(LESSON_SUITE_TIMEOUT)
    items.sort(key=rank)  # stable: the order within each group is kept


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """Print how long each lesson ran (the suite's largest part), so a slow lesson shows up in every CI log."""
    times = {kind: runs for kind, runs in config.stash.get(LESSON_TIMES, {}).items() if len(runs) > 1}
    if not times:  # nothing ran (or every lesson came from a kept gallery)
        return
    write = terminalreporter.write_line
    terminalreporter.section("lesson runs (seconds; lessons run in parallel, so the walls are what they cost)")
    lessons = sorted({name for runs in times.values() for name in runs if name != "wall"})
    write(f"{'lesson':32} " + " ".join(f"{kind:>9}" for kind in times))
    for name in lessons:
        write(f"{name:32} " + " ".join(f"{times[k].get(name, float('nan')):9.1f}" for k in times))
    write(f"{'wall':32} " + " ".join(f"{times[k]['wall']:9.1f}" for k in times))


def _lessons_wanted(session: pytest.Session, fixture: str) -> list[str] | None:
    """The lesson stems that the session's selected tests using `fixture` are parametrized with; None: all."""
    stems: set[str] = set()
    for item in session.items:
        if fixture not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        lesson = callspec.params.get("lesson") if callspec else None
        if lesson is None:
            return None  # a test over every lesson (the gallery index)
        stems.add(Path(str(lesson)).stem)
    return sorted(stems)


@pytest.fixture(scope="session")
def lesson_times(pytestconfig) -> dict:
    """Where the lesson fixtures record their runs' seconds (printed in the terminal summary)."""
    return pytestconfig.stash[LESSON_TIMES]


@dataclass
class LessonJobs:
    """The child process (tests/lesson_jobs.py) that runs this session's lessons, and where it reports."""

    process: subprocess.Popen
    folder: Path  # spec.json, stderr.log, a report per phase (gallery.json, smallest.json); smallest/<lesson>/
    gallery_out: Path | None

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, phase: str) -> dict:
        """The report of one phase ("gallery", "smallest"), once the child has written it."""
        report = self.folder / f"{phase}.json"
        while not report.is_file():
            if self.process.poll() is not None and not report.is_file():
                log = (self.folder / "stderr.log").read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(
                    f"the lesson runs' process exited ({self.process.returncode}) without its {phase} report:\n"
                    + log[-4000:]
                )
            time.sleep(0.5)
        return json.loads(report.read_text(encoding="utf-8"))

    def stop(self) -> None:
        """Stop the child and the kernels it started (SIGTERM: it stops its runs; SIGKILL if it has not in 30 s)."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _smallest_params(session: pytest.Session) -> dict[str, dict[str, str]]:
    """lesson -> its SMALLEST parameters (as typed on the command line), for the selected tests that need them."""
    wanted = _lessons_wanted(session, "smallest_runs")
    users = [item for item in session.items if "smallest_runs" in getattr(item, "fixturenames", ())]
    if not users:
        return {}
    table = users[0].module.SMALLEST  # tests/notebooks/test_lessons.py keeps the table beside its tests
    return {stem: {k: str(v) for k, v in table[stem].items()} for stem in (wanted or sorted(table))}


@pytest.fixture(scope="session", autouse=True)
def lesson_jobs(request, private_model_cache, tmp_path_factory):
    """Start this session's lesson runs (tests/lesson_jobs.py) in a child process with the first test.

    It builds the gallery (each lesson the session tests at its defaults), then runs each at its SMALLEST
    parameters; the tests that read them run last (`pytest_collection_modifyitems`), by when most are done.
    LABKIT_LESSON_GALLERY=DIR keeps the gallery in DIR between sessions, so a lesson whose notebook did not
    change is not run again (the gallery's cache key: notebook bytes, defaults, labkit version; library code is
    NOT in it, so leave this unset in CI and after changing labkit itself).
    """
    gallery = _lessons_wanted(request.session, "lesson_gallery")
    smallest = _smallest_params(request.session)
    if gallery == [] and not smallest:
        yield None
        return
    folder = tmp_path_factory.mktemp("lesson-jobs")
    gallery_out = None
    if gallery != []:
        kept = os.environ.get("LABKIT_LESSON_GALLERY")
        gallery_out = Path(kept) if kept else folder / "gallery"
    spec = {
        "notebooks": str(LESSONS_DIR),
        "timeout": LESSON_TIMEOUT_S,
        "gallery": {"out": str(gallery_out), "only": gallery} if gallery_out else None,
        "smallest": {"out": str(folder / "smallest"), "params": smallest} if smallest else None,
    }
    (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    script = Path(__file__).with_name("lesson_jobs.py")
    cmd = [sys.executable, str(script), str(folder / "spec.json"), str(folder)]
    with open(folder / "stderr.log", "wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True
        )
    jobs = LessonJobs(process=process, folder=folder, gallery_out=gallery_out)
    yield jobs
    jobs.stop()  # the session ended early (-x, Ctrl-C): leave no lesson running


@pytest.fixture(autouse=True)
def share_the_cores_with_the_lessons(lesson_jobs):
    """While the lessons run beside the tests, a test computes on one thread (its kernels and subprocesses too).

    Two-thread math next to busy processes spins instead of working: a test that takes 4 s alone took 44 s so.
    """
    if lesson_jobs is None or not lesson_jobs.running():
        yield
        return
    threads, saved = torch.get_num_threads(), {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    torch.set_num_threads(1)
    os.environ.update(dict.fromkeys(saved, "1"))
    yield
    torch.set_num_threads(threads)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def lesson_gallery(lesson_jobs, lesson_times):
    """The lessons this session tests, each executed ONCE at its defaults into the gallery; a `GalleryResult`.

    `build_gallery` runs them (in the `lesson_jobs` child process) through `labkit run`'s runner, as many at
    once as there are cores with the cores split between them, and writes per lesson the executed notebook
    (`<lesson>.ipynb`), the offline page (`<lesson>.html`), a screenshot thumbnail, and the index. Every check
    at the defaults (the run raised nothing, the views are displayed, the formulas typeset, the page renders
    offline in Chromium) reads these files instead of running the lesson again.
    """
    from labkit.notebooks import read_gallery

    report = lesson_jobs.wait("gallery")
    lesson_times["defaults"] = dict(report["fresh"]) | {"wall": report["wall"]}
    return read_gallery(LESSONS_DIR, lesson_jobs.gallery_out, fresh=set(report["fresh"]))


@pytest.fixture(scope="session")
def smallest_runs(lesson_jobs, lesson_times) -> dict:
    """The lessons this session tests, each run ONCE at its SMALLEST parameters through `run_notebook` (`labkit
    run`'s parameter path: typed values, papermill's injected cell); lesson -> `RunResult`."""
    from labkit.notebooks import RunResult

    report = lesson_jobs.wait("smallest")
    runs = {}
    for stem, fields in report["runs"].items():
        for key in ("notebook_path", "html_path"):
            fields[key] = Path(fields[key]) if fields[key] else None
        runs[stem] = RunResult(**fields)
    lesson_times["smallest"] = {name: r.duration_s for name, r in runs.items()} | {"wall": report["wall"]}
    return runs


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory):
    """Point $LABKIT_CACHE at a session folder, so conversions made by tests never land in the user's cache.

    Everything else under the real cache root (vendored front-end files, downloaded corpora) is linked in,
    so tests still find it; kernels started by notebook tests inherit the variable.
    """
    import os
    from pathlib import Path

    real = Path(os.environ.get("LABKIT_CACHE") or Path.home() / ".cache" / "labkit")
    root = tmp_path_factory.mktemp("labkit-cache")
    for child in real.iterdir() if real.is_dir() else []:
        if child.name != "models":
            (root / child.name).symlink_to(child, target_is_directory=child.is_dir())
    saved = os.environ.get("LABKIT_CACHE")
    os.environ["LABKIT_CACHE"] = str(root)
    yield root
    if saved is None:
        os.environ.pop("LABKIT_CACHE", None)
    else:
        os.environ["LABKIT_CACHE"] = saved
