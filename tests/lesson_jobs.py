"""The suite's lesson runs, in a child process of pytest: `python tests/lesson_jobs.py SPEC.json OUT_DIR`.

tests/conftest.py starts this with the session's first test, so the lessons execute on the core that the
(mostly one-thread) tests leave idle; the tests that read the results run last. A process, not a thread of
pytest: tests that change os.environ (LABKIT_CACHE, thread counts) cannot reach it.

SPEC: {"notebooks": dir, "timeout": s, "gallery": {"out": dir, "only": [stems] | null} | null,
       "smallest": {"out": dir, "params": {stem: {name: value as typed}}} | null}
Phase 1 builds the gallery (every lesson at its defaults, `build_gallery`); phase 2 runs each lesson at its
SMALLEST parameters through `run_notebook` (`labkit run`'s parameter path), two at a time on 2 cores.
Each phase writes its report into OUT_DIR when it ends, so the tests of phase 1 need not wait for phase 2:
gallery.json {"fresh": {stem: s}, "wall": s}; smallest.json {"runs": {stem: RunResult fields}, "wall": s}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path


def run_gallery(notebooks: Path, spec: dict, timeout: float) -> dict:
    from labkit.notebooks import build_gallery

    start = time.perf_counter()
    result = build_gallery(notebooks, spec["out"], only=spec["only"], timeout=timeout)
    fresh = {e.name: e.duration_s for e in result.entries if not e.cached}
    return {"fresh": fresh, "wall": time.perf_counter() - start}


def run_smallest(notebooks: Path, spec: dict, timeout: float) -> dict:
    from labkit.notebooks import run_notebook
    from labkit.notebooks.runner import run_in_threads

    lessons = sorted(spec["params"])
    workers = max(1, min(os.cpu_count() or 1, len(lessons)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    out = Path(spec["out"])

    def run(stem: str) -> dict:
        result = run_notebook(
            notebooks / f"{stem}.ipynb", spec["params"][stem], out / stem, timeout=timeout, threads=threads
        )
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}

    start = time.perf_counter()
    runs = dict(zip(lessons, run_in_threads(run, lessons, workers)))
    return {"runs": runs, "wall": time.perf_counter() - start}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # pytest ending early sends SIGTERM: the runner then stops the lessons' kernels


def main(spec_path: str, out_dir: str) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    notebooks, timeout = Path(spec["notebooks"]), float(spec["timeout"])
    for phase, run in (("gallery", run_gallery), ("smallest", run_smallest)):
        if spec.get(phase):
            report = Path(out_dir) / f"{phase}.json"
            tmp = report.with_suffix(".part")
            tmp.write_text(json.dumps(run(notebooks, spec[phase], timeout)), encoding="utf-8")
            tmp.replace(report)  # a report appears whole or not at all
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
