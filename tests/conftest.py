"""Fixtures shared across the test packages: one torch thread; the lessons executed once per session."""

from __future__ import annotations

import os
import threading
import time
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
# pytest-timeout counts a session fixture's set-up against the first test that needs it: the wait for the
# lesson runs happens there, so the tests that use the lesson fixtures carry this limit instead of the suite's.
LESSON_SUITE_TIMEOUT = pytest.mark.timeout(3600)
LESSON_FIXTURES = ("lesson_gallery", "smallest_runs")
LESSON_TIMES = pytest.StashKey[dict]()  # "defaults" / "smallest" -> {"wall": s, lesson: s}: printed at the end
LESSONS_WANTED = pytest.StashKey[dict]()  # fixture -> lesson stems its selected tests need; "params" -> SMALLEST


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LESSON_TIMES] = {}
    config.stash[LESSONS_WANTED] = {}


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: only the tests that will run count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Record which lessons the selected tests need, and move the tests that read lesson runs to the end.

    The lessons run in the background from the first test on (see `LessonRuns`); the later their readers
    come, the more of that work is done when they ask for it.
    """
    readers, others = [], []
    for item in items:
        if set(LESSON_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(LESSON_SUITE_TIMEOUT)
            readers.append(item)
        else:
            others.append(item)
    items[:] = others + readers
    wanted = config.stash[LESSONS_WANTED]
    for fixture in LESSON_FIXTURES:
        wanted[fixture] = _lessons_wanted(readers, fixture)
    smallest = [item for item in readers if "smallest_runs" in item.fixturenames]
    # the SMALLEST parameters live beside the tests that use them (tests/notebooks/test_lessons.py)
    wanted["params"] = getattr(smallest[0].module, "SMALLEST", {}) if smallest else {}


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """Print how long each lesson ran (the suite's largest part), so a slow lesson shows up in every CI log."""
    times = {kind: runs for kind, runs in config.stash.get(LESSON_TIMES, {}).items() if len(runs) > 1}
    if not times:  # nothing ran (or every lesson came from a kept gallery)
        return
    write = terminalreporter.write_line
    terminalreporter.section(
        "lesson runs (seconds; in the background beside the other tests, the wall from first start to last end)"
    )
    lessons = sorted({name for runs in times.values() for name in runs if name != "wall"})
    write(f"{'lesson':32} " + " ".join(f"{kind:>9}" for kind in times))
    for name in lessons:
        write(f"{name:32} " + " ".join(f"{times[k].get(name, float('nan')):9.1f}" for k in times))
    write(f"{'wall':32} " + " ".join(f"{times[k]['wall']:9.1f}" for k in times))


def pytest_unconfigure(config: pytest.Config) -> None:
    runs = LessonRuns.current
    if runs is not None:  # an interrupted session: start no further lesson
        runs.cancel()


def _lessons_wanted(items: list[pytest.Item], fixture: str) -> list[str] | None:
    """The lesson stems that the tests in `items` using `fixture` are parametrized with; None: all of them."""
    stems: set[str] = set()
    for item in items:
        if fixture not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        lesson = callspec.params.get("lesson") if callspec else None
        if lesson is None:
            return None  # a test over every lesson (the gallery index)
        stems.add(Path(str(lesson)).stem)
    return sorted(stems)


class LessonRuns:
    """The session's lesson runs, done by background threads while the other tests run.

    The lessons are the suite's largest part (minutes of CPU on a 2-core machine), and most other tests keep
    only one core busy. So one runner starts with the first test and runs one lesson at a time on one torch
    thread; the tests that read lesson runs come last (see `pytest_collection_modifyitems`), and when the
    first of them asks for a result, more runners join until every core runs a lesson. Jobs, in this order:
    each wanted lesson at its defaults into one gallery folder (`build_gallery`, one lesson a call), then
    each at its SMALLEST parameters (`run_notebook`, `labkit run`'s parameter path).
    """

    current: LessonRuns | None = None

    def __init__(self, gallery_dir: Path, smallest_dir: Path, wanted: dict) -> None:
        from concurrent.futures import Future

        from labkit.notebooks.gallery import lesson_paths

        self.gallery_dir, self.smallest_dir = gallery_dir, smallest_dir

        def stems(fixture: str) -> list[str]:  # [] when no selected test uses the fixture; None: every lesson
            only = wanted.get(fixture, [])
            return [p.stem for p in lesson_paths(LESSONS_DIR, only)] if only != [] else []

        self.defaults, self.smallest = stems("lesson_gallery"), stems("smallest_runs")
        self.params = wanted.get("params", {})
        self._jobs = [("defaults", s) for s in self.defaults] + [("smallest", s) for s in self.smallest]
        self.futures: dict[tuple[str, str], Future] = {job: Future() for job in self._jobs}
        self.spans: dict[tuple[str, str], tuple[float, float]] = {}  # job -> (start, end), perf_counter
        self._lock = threading.Lock()
        self._runners: list[threading.Thread] = []
        self._boosted = False
        self._cancelled = False

    def start(self, runners: int) -> None:
        """Run with at least `runners` background threads (never more than there are jobs)."""
        with self._lock:
            while len(self._runners) < min(runners, len(self.futures)):
                thread = threading.Thread(target=self._work, name=f"lesson-runner-{len(self._runners)}", daemon=True)
                self._runners.append(thread)
                thread.start()

    def result(self, job: tuple[str, str]):
        """Wait for one job's result; the first caller brings in a runner per core."""
        self._boosted = True
        self.start(os.cpu_count() or 1)
        return self.futures[job].result()

    def cancel(self) -> None:
        self._cancelled = True
        for future in self.futures.values():
            future.cancel()

    def _work(self) -> None:
        while not self._cancelled:
            with self._lock:
                if not self._jobs:
                    return
                job = self._jobs.pop(0)
                # one thread per lesson while the other tests run; at the end the cores split between runners
                busy = min(len(self._runners), len(self._jobs) + 1)
                threads = max(1, (os.cpu_count() or 1) // busy) if self._boosted else 1
            future = self.futures[job]
            if not future.set_running_or_notify_cancel():
                continue
            start = time.perf_counter()
            try:
                future.set_result(self._run(job, threads))
            except BaseException as exc:  # the reader re-raises it
                future.set_exception(exc)
            self.spans[job] = (start, time.perf_counter())

    def _run(self, job: tuple[str, str], threads: int):
        from labkit.notebooks import build_gallery, run_notebook

        kind, stem = job
        if kind == "defaults":
            return build_gallery(
                LESSONS_DIR, self.gallery_dir, only=[stem], workers=1, threads=threads, timeout=LESSON_TIMEOUT_S
            )
        params = {k: str(v) for k, v in self.params[stem].items()}  # as typed on the command line
        return run_notebook(
            LESSONS_DIR / f"{stem}.ipynb", params, self.smallest_dir / stem, timeout=LESSON_TIMEOUT_S, threads=threads
        )

    def times(self, kind: str) -> dict[str, float]:
        """Lesson -> seconds of its run, and "wall": first start to last end, for the jobs of `kind` that ran."""
        spans = {stem: span for (k, stem), span in self.spans.items() if k == kind}
        if not spans:
            return {}
        wall = max(end for _, end in spans.values()) - min(start for start, _ in spans.values())
        return {stem: end - start for stem, (start, end) in spans.items()} | {"wall": wall}


@pytest.fixture(scope="session", autouse=True)
def lesson_runs(private_model_cache, pytestconfig, tmp_path_factory):
    """The background lesson runs of this session (`LessonRuns`); started here, at the first test, so that the
    kernels inherit the test environment (the private model cache).

    LABKIT_LESSON_GALLERY=DIR keeps the gallery in DIR between sessions, so a lesson whose notebook did not
    change is not run again at its defaults (the gallery's cache key: notebook bytes, defaults, labkit
    version; library code is NOT in it, so leave this unset in CI and after changing labkit itself).
    """
    kept = os.environ.get("LABKIT_LESSON_GALLERY")
    gallery = Path(kept) if kept else tmp_path_factory.mktemp("lesson-gallery")
    runs = LessonRuns(gallery, tmp_path_factory.mktemp("smallest"), pytestconfig.stash[LESSONS_WANTED])
    LessonRuns.current = runs
    runs.start(1)
    yield runs
    runs.cancel()
    LessonRuns.current = None


@pytest.fixture(scope="session")
def lesson_times(pytestconfig) -> dict:
    """Where the lesson fixtures record their runs' seconds (printed in the terminal summary)."""
    return pytestconfig.stash[LESSON_TIMES]


@pytest.fixture(scope="session")
def lesson_gallery(lesson_runs, lesson_times):
    """The lessons this session tests, each executed ONCE at its defaults into the gallery; a `GalleryResult`.

    Each lesson ran through `labkit run`'s runner (papermill on this interpreter) in the background
    (`lesson_runs`), which wrote per lesson the executed notebook (`<lesson>.ipynb`), the offline page
    (`<lesson>.html`) and a screenshot thumbnail; here the index is written over all of them. Every check at
    the defaults (the run raised nothing, the views are displayed, the formulas typeset, the page renders
    offline in Chromium) reads these files instead of running the lesson again.
    """
    from labkit.notebooks.gallery import GalleryResult, write_index

    entries = []
    for stem in lesson_runs.defaults:
        result = lesson_runs.result(("defaults", stem))
        entries.append(next(e for e in result.entries if e.name == stem))
    index = write_index(entries, lesson_runs.gallery_dir / "index.html")
    lesson_times["defaults"] = lesson_runs.times("defaults")
    return GalleryResult(index_path=index, entries=entries)


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
