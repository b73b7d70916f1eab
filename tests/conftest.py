"""Fixtures shared across the test packages: one torch thread; the lessons executed once per session."""

from __future__ import annotations

import os
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
# pytest-timeout counts a session fixture's set-up against the first test that needs it: every lesson's run
# happens there, so the tests that use the lesson fixtures carry this limit instead of the suite's 900 s.
LESSON_SUITE_TIMEOUT = pytest.mark.timeout(3600)
LESSON_TIMES = pytest.StashKey[dict]()  # "defaults" / "smallest" -> {"wall": s, lesson: s}: printed at the end


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LESSON_TIMES] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if {"lesson_gallery", "smallest_runs"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(LESSON_SUITE_TIMEOUT)


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
def wanted_lessons(request):
    """`wanted_lessons("fixture")`: the lessons this session's selected tests using that fixture need (None: all)."""
    return lambda fixture: _lessons_wanted(request.session, fixture)


@pytest.fixture(scope="session")
def lesson_times(pytestconfig) -> dict:
    """Where the lesson fixtures record their runs' seconds (printed in the terminal summary)."""
    return pytestconfig.stash[LESSON_TIMES]


@pytest.fixture(scope="session")
def lesson_gallery(wanted_lessons, lesson_times, tmp_path_factory):
    """The lessons this session tests, each executed ONCE at its defaults into the gallery; a `GalleryResult`.

    `build_gallery` runs them through `labkit run`'s runner (papermill on this interpreter), as many at once as
    there are cores with the cores split between them, and writes per lesson the executed notebook
    (`<lesson>.ipynb`), the offline page (`<lesson>.html`), a screenshot thumbnail, and the index. Every check
    at the defaults (the run raised nothing, the views are displayed, the formulas typeset, the page renders
    offline in Chromium) reads these files instead of running the lesson again.

    LABKIT_LESSON_GALLERY=DIR keeps the gallery in DIR between sessions, so a lesson whose notebook did not
    change is not run again (the gallery's cache key: notebook bytes, defaults, labkit version; library code is
    NOT in it, so leave this unset in CI and after changing labkit itself).
    """
    from labkit.notebooks import build_gallery

    kept = os.environ.get("LABKIT_LESSON_GALLERY")
    out = Path(kept) if kept else tmp_path_factory.mktemp("lesson-gallery")
    start = time.perf_counter()
    result = build_gallery(LESSONS_DIR, out, only=wanted_lessons("lesson_gallery"), timeout=LESSON_TIMEOUT_S)
    lesson_times["defaults"] = {e.name: e.duration_s for e in result.entries if not e.cached}
    lesson_times["defaults"]["wall"] = time.perf_counter() - start
    return result


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
