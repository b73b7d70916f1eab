"""The gallery: every lesson executed with its defaults into an offline page, plus an index page.

Runs are cached by a hash of the notebook's bytes, its default parameters and
the labkit version, so rebuilding after editing one lesson re-executes only
that lesson. Lessons run in parallel (each its own papermill process).

The index shows, per lesson, a thumbnail (a screenshot of the cell tagged
`main-view`, see `labkit.notebooks.thumbnails`; without Chromium, the lesson's
first image), its title, what it teaches (the first paragraph and the bullet
list under its "learning objectives"), how long it took to run and its page size.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.checks import check_int, check_output_dir
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches
from labkit.frontend import safe_text

PAGE_LIMIT_BYTES = 10 * 1024 * 1024  # each gallery page must stay printable and mailable
CACHE_DIR = ".cache"


@dataclass
class GalleryEntry:
    """One lesson in the gallery: where its page is, whether it ran, and what the index shows."""

    name: str
    title: str
    summary: str
    page: Path | None
    ok: bool
    cached: bool
    error: str | None = None
    page_bytes: int = 0
    duration_s: float = 0.0
    thumbnail: str = ""  # a data: URL: a screenshot of the main view, else the first image, else a placeholder
    objectives: list[str] = field(default_factory=list)  # what the lesson teaches, from its objectives list


@dataclass
class GalleryResult:
    """The built gallery: its index page and one entry per lesson."""

    index_path: Path
    entries: list[GalleryEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)


def lesson_paths(notebooks_dir: str | os.PathLike = "notebooks", only: Sequence[str] | None = None) -> list[Path]:
    """Folder in, the lesson notebooks (`NN_name.ipynb`, sorted) out; `only` picks some by stem or number."""
    root = Path(notebooks_dir)
    if not root.is_dir():
        raise MissingSourceError(
            f"lesson folder {str(root)!r} does not exist; run from the project root or pass --notebooks"
        )
    lessons = sorted(p for p in root.glob("*.ipynb") if re.match(r"\d\d_", p.name))
    if not only:
        return lessons
    picked = []
    for name in only:
        match = [p for p in lessons if p.stem == name or p.stem.split("_")[0] == name or p.name == name]
        if not match:
            raise UnknownNameError(
                f"no lesson {name!r} in {str(root)!r}; {close_matches(name, [p.stem for p in lessons]) or 'see the folder for names'}"
            )
        picked += match
    return picked


def cache_key(notebook: Path) -> str:
    """Notebook in, a hash of its bytes, its default parameters and the labkit version out."""
    from labkit import __version__
    from labkit.notebooks.parameters import read_parameters

    defaults = {p.name: p.default for p in read_parameters(notebook)}
    h = hashlib.sha256(notebook.read_bytes())
    h.update(json.dumps(defaults, sort_keys=True, default=repr).encode())
    h.update(__version__.encode())
    return h.hexdigest()[:20]


def _plain(markdown: str) -> str:
    """One line of markdown in, its text without emphasis, code marks or link targets out (formulas kept as $...$)."""
    from labkit.frontend import find_formulas

    parts, last = [], 0
    for f in find_formulas(markdown):  # `_` inside a formula is TeX, not emphasis
        parts += [re.sub(r"[*_`]", "", markdown[last : f.start]), markdown[f.start : f.end]]
        last = f.end
    text = "".join(parts) + re.sub(r"[*_`]", "", markdown[last:])
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip()


def describe(notebook: Path) -> tuple[str, str]:
    """Lesson notebook in, (title, one-line summary) out: its first heading and the first sentence after it."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [ln.strip() for ln in cell.source.splitlines()]
        title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), notebook.stem)
        prose = " ".join(ln for ln in lines if ln and not ln.startswith(("#", "-", "*", "|", "1.")))
        prose = _plain(prose)
        sentence = re.split(r"(?<=[.!?])\s", prose, maxsplit=1)[0] if prose else ""
        return title, sentence
    return notebook.stem, ""


def lesson_objectives(notebook: Path, limit: int = 6) -> list[str]:
    """Lesson notebook in, the items of its learning-objectives list out (at most `limit`; [] when it has none).

    The list is the first bullet or numbered list after a line that mentions "objective" or "you will", in the
    markdown cells before the second code cell (objectives sit at the top of a lesson).
    """
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    code_seen, found, items = 0, False, []
    for cell in nb.cells:
        if cell.cell_type == "code":
            code_seen += 1
            if code_seen >= 2:
                break
            continue
        for line in cell.source.splitlines():
            stripped = line.strip()
            if not found:
                found = bool(re.search(r"objective|you will", stripped, re.I))
                continue
            item = re.match(r"(?:[-*+]|\d+[.)])\s+(.*)", stripped)
            if item:
                items.append(_plain(item.group(1)))
            elif items and stripped:
                if line.startswith((" ", "\t")):  # a wrapped item goes on
                    items[-1] += " " + _plain(stripped)
                else:
                    return items[:limit]
        if items:
            return items[:limit]
    return items[:limit]


def _thumbnail(executed: Path) -> str | None:
    """Executed notebook in, a data: URL of its first image output (PNG or SVG) out, or None."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                return "data:image/png;base64," + str(data["image/png"]).replace("\n", "")
            if "image/svg+xml" in data:
                svg = data["image/svg+xml"]
                svg = "".join(svg) if isinstance(svg, list) else svg
                return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return None


def _screenshots(pages: dict[str, Path]) -> dict[str, str]:
    """Lesson -> page in, lesson -> screenshot of its main view out; {} (with a warning) without Chromium."""
    import warnings

    from labkit.notebooks.thumbnails import screenshot_thumbnails, screenshots_unavailable

    if not pages:
        return {}
    reason = screenshots_unavailable()
    if reason:
        warnings.warn(f"gallery thumbnails are the lessons' first images: {reason}", stacklevel=3)
        return {}
    return screenshot_thumbnails(pages)


def _placeholder(number: str) -> str:
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='160' height='100'><rect width='160' height='100' "
        f"fill='#eef2f7'/><text x='80' y='62' font-size='36' text-anchor='middle' fill='#456'>{html.escape(number)}"
        "</text></svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _build_one(spec: dict[str, Any]) -> dict[str, Any]:
    from labkit.notebooks.runner import run_notebook

    result = run_notebook(
        spec["notebook"],
        {},
        spec["run_dir"],
        cell_timeout=spec.get("cell_timeout"),
        timeout=spec.get("timeout"),
        threads=spec.get("threads"),
    )
    return {
        "ok": result.ok,
        "error": result.error,
        "duration_s": result.duration_s,
        "html": str(result.html_path) if result.html_path else None,
        "ipynb": str(result.notebook_path),
    }


def build_gallery(
    notebooks_dir: str | os.PathLike = "notebooks",
    output_dir: str | os.PathLike = "gallery",
    *,
    only: Sequence[str] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    force: bool = False,
    cell_timeout: float | None = None,
    timeout: float | None = None,
) -> GalleryResult:
    """Lesson folder in, `GalleryResult` out: `<output_dir>/<lesson>.html` per lesson and `index.html`.

    only: lesson stems or numbers ("01", "03_train_gpt") to build; the index lists every lesson built so far.
    workers: lessons executed at once (default: CPU cores). threads: torch threads of each lesson's kernel
    (default: the cores split between the workers). force: ignore the cache.
    Calls on the same output_dir may run at once (for different lessons): every file is written atomically.
    cell_timeout / timeout: as for `run_notebook`, per lesson.
    """
    from labkit.notebooks.runner import run_in_threads

    workers = check_int("workers", workers, allow_none=True)
    threads = check_int("threads", threads, allow_none=True)
    lessons = lesson_paths(notebooks_dir, only)
    if not lessons:
        raise InvalidInputError(f"no lesson notebooks (NN_name.ipynb) in {str(notebooks_dir)!r}")
    out = check_output_dir("output_dir", output_dir)
    (out / CACHE_DIR).mkdir(parents=True, exist_ok=True)
    todo = []
    for nb in lessons:
        key = cache_key(nb)
        stamp = out / CACHE_DIR / f"{nb.stem}.json"
        page = out / f"{nb.stem}.html"
        meta = json.loads(stamp.read_text()) if stamp.is_file() else {}
        if not force and meta.get("key") == key and meta.get("ok") and page.is_file():
            continue
        todo.append(
            {
                "notebook": str(nb),
                "run_dir": str(out / CACHE_DIR / "runs" / nb.stem),
                "key": key,
                "cell_timeout": cell_timeout,
                "timeout": timeout,
            }
        )
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    for spec in todo:  # split the cores: oversubscribed kernels run many times slower
        spec["threads"] = threads or max(1, (os.cpu_count() or 1) // workers)
    results = run_in_threads(_build_one, todo, workers)
    built: dict[str, Path] = {}  # lesson -> its new page
    for spec, res in zip(todo, results):
        if res["html"]:
            stem = Path(spec["notebook"]).stem
            built[stem] = out / f"{stem}.html"
            shutil.copyfile(res["html"], built[stem])
            shutil.copyfile(res["ipynb"], out / f"{stem}.ipynb")
    shots = _screenshots(built)
    for spec, res in zip(todo, results):
        stem = Path(spec["notebook"]).stem
        thumb = shots.get(stem) or (_thumbnail(Path(res["ipynb"])) if Path(res["ipynb"]).is_file() else None)
        meta = {
            "key": spec["key"],
            "ok": res["ok"],
            "error": res["error"],
            "duration_s": round(res["duration_s"], 1),
            "thumbnail": thumb,
        }
        _write_atomic(out / CACHE_DIR / f"{stem}.json", json.dumps(meta))

    return read_gallery(notebooks_dir, out, fresh={Path(spec["notebook"]).stem for spec in todo})


def read_gallery(
    notebooks_dir: str | os.PathLike = "notebooks",
    output_dir: str | os.PathLike = "gallery",
    *,
    fresh: set[str] | frozenset[str] = frozenset(),
) -> GalleryResult:
    """A gallery that `build_gallery` (or `labkit gallery`, in another process) built, read back without running.

    One entry per lesson in notebooks_dir that has a record in output_dir (its run's outcome, time and
    thumbnail); the index page is rewritten from them. fresh: the lessons just executed (their entries say
    `cached=False`). Nothing is executed, so a lesson that failed stays failed here.
    """
    out = Path(output_dir)
    gallery_entries = []
    for nb in lesson_paths(notebooks_dir):
        stamp = out / CACHE_DIR / f"{nb.stem}.json"
        meta = json.loads(stamp.read_text()) if stamp.is_file() else None
        if meta is None:
            continue  # never built
        title, summary = describe(nb)
        page = out / f"{nb.stem}.html"
        gallery_entries.append(
            GalleryEntry(
                name=nb.stem,
                title=title,
                summary=summary,
                page=page if page.is_file() else None,
                ok=bool(meta.get("ok")),
                cached=nb.stem not in fresh,
                error=meta.get("error"),
                page_bytes=page.stat().st_size if page.is_file() else 0,
                duration_s=meta.get("duration_s") or 0.0,
                thumbnail=meta.get("thumbnail") or _placeholder(nb.stem.split("_")[0]),
                objectives=lesson_objectives(nb),
            )
        )
    index = write_index(gallery_entries, out / "index.html")
    return GalleryResult(index_path=index, entries=gallery_entries)


def write_index(entries: list[GalleryEntry], path: Path) -> Path:
    """Gallery entries in, an offline index page out: per lesson a thumbnail, title, what it teaches, run time, size.

    Formulas in titles, summaries and objectives are typeset offline like the pages' (KaTeX, inlined once).
    """
    from labkit.frontend import MathsPlaceholders

    maths = MathsPlaceholders()

    def text(markdown: str) -> str:
        return html.escape(maths.protect(markdown))

    cards = []
    for e in entries:
        status = "" if e.ok else f"<p class='failed'>failed: {html.escape(e.error or 'see the page')}</p>"
        size = f"{e.page_bytes / 1e6:.1f} MB" + (" — over the 10 MB limit" if e.page_bytes > PAGE_LIMIT_BYTES else "")
        link = html.escape(e.page.name) if e.page else "#"
        goals = "".join(f"<li>{text(item)}</li>" for item in e.objectives)
        cards.append(
            f"<article class='card'><a href='{link}'><img alt='{html.escape(e.name)}: main view' src='{e.thumbnail}'>"
            f"<h2>{text(e.title)}</h2></a><p>{text(e.summary)}</p>"
            + (f"<p class='teaches'>You will:</p><ul>{goals}</ul>" if goals else "")
            + f"<p class='meta'>{html.escape(e.name)} · runs in {_duration(e.duration_s)} at its defaults · "
            f"page {size}</p>{status}</article>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>labkit gallery</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;background:#fafafa}"
        ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1em}"
        ".card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em}"
        ".card a{color:inherit;text-decoration:none}.card img{width:100%;height:170px;object-fit:contain;"
        "object-position:center top;background:#f3f5f8;border:1px solid #eee}.card h2{font-size:1.1em;margin:.5em 0}"
        ".card ul{margin:.2em 0 .5em 1.2em;padding:0;font-size:.92em}.teaches{margin:.4em 0 0;font-weight:600}"
        ".meta{color:#666;font-size:.85em}.failed{color:#b00}"
        "</style></head><body><h1>labkit gallery</h1>"
        f"<p>{len(entries)} lesson{'s' if len(entries) != 1 else ''}, each executed with its default parameters; every page works offline. "
        "Run times are from this build (on a GPU the lessons' parameters scale up).</p>"
        "<div class='grid'>" + "\n".join(cards) + "</div></body></html>"
    )
    _write_atomic(path, safe_text(maths.restore(page)))
    return path


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: a reader (another build) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
