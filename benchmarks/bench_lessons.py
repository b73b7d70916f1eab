"""Wall time of the lesson suite under `labkit run`: every lesson at its defaults, one after another.

Each lesson goes through `labkit.notebooks.run_notebook` exactly as `labkit run notebooks/NN.ipynb -o DIR`
does (kernel start, papermill execution, the offline HTML report), so a figure here is what a student waits
for. The lessons run one at a time with the whole machine; `labkit gallery` runs them in parallel instead.
Target: all the lessons together in at most 10 minutes on a 2-core CPU, each in at most 90 s.

Usage: python benchmarks/bench_lessons.py [--only 03 05] [--out DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from labkit.bench import machine_info
from labkit.errors import LabkitError
from labkit.notebooks import run_notebook
from labkit.notebooks.gallery import lesson_paths

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="lesson numbers or names (default: all)")
    parser.add_argument(
        "--out", default=None, help="where the executed notebooks and reports go (default: a temporary folder)"
    )
    parser.add_argument("--json", default=None, help="also write the timings here")
    args = parser.parse_args(argv)
    try:
        lessons = lesson_paths(ROOT / "notebooks", only=args.only)
    except LabkitError as exc:  # an unknown lesson name: one line, before any kernel starts
        parser.error(str(exc))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="labkit-lessons-"))
    rows = []
    start = time.perf_counter()
    for path in lessons:
        result = run_notebook(path, output_dir=out)
        rows.append({"lesson": path.stem, "ok": result.ok, "seconds": result.duration_s, "error": result.error})
        print(
            f"{path.stem:34} {'ok ' if result.ok else 'FAILED'} {result.duration_s:7.1f} s"
            + (f"  {result.error}" if result.error else ""),
            flush=True,
        )
    total = time.perf_counter() - start
    print(f"{'all ' + str(len(rows)) + ' lessons':34} {total:10.1f} s ({total / 60:.1f} min); outputs in {out}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine_info(), "total_s": total, "lessons": rows}, fh, indent=2)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
