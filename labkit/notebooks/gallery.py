"""The gallery: every lesson executed with its defaults into an offline page, plus an index page.

Runs are cached by a hash of the notebook's bytes, its default parameters and
the labkit version, so rebuilding after editing one lesson re-executes only
that lesson. Lessons run in parallel (each its own papermill process).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.checks import check_output_dir
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
    thumbnail: str = ""  # a data: URL (first image output of the lesson, or a numbered placeholder)


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
        prose = re.sub(r"[*_`]", "", prose)
        sentence = re.split(r"(?<=[.!?])\s", prose, maxsplit=1)[0] if prose else ""
        return title, sentence
    return notebook.stem, ""


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
    force: bool = False,
    cell_timeout: float | None = None,
    timeout: float | None = None,
) -> GalleryResult:
    """Lesson folder in, `GalleryResult` out: `<output_dir>/<lesson>.html` per lesson and `index.html`.

    only: lesson stems or numbers ("01", "03_train_gpt") to build; the index lists every lesson built so far.
    workers: lessons executed at once (default: CPU cores). force: ignore the cache.
    cell_timeout / timeout: as for `run_notebook`, per lesson.
    """
    from concurrent.futures import ThreadPoolExecutor

    lessons = lesson_paths(notebooks_dir, only)
    if not lessons:
        raise InvalidInputError(f"no lesson notebooks (NN_name.ipynb) in {str(notebooks_dir)!r}")
    out = check_output_dir("output_dir", output_dir)
    (out / CACHE_DIR).mkdir(parents=True, exist_ok=True)
    todo, entries = [], {}
    for nb in lessons:
        key = cache_key(nb)
        stamp = out / CACHE_DIR / f"{nb.stem}.json"
        page = out / f"{nb.stem}.html"
        meta = json.loads(stamp.read_text()) if stamp.is_file() else {}
        if not force and meta.get("key") == key and meta.get("ok") and page.is_file():
            entries[nb.stem] = meta
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
        spec["threads"] = max(1, (os.cpu_count() or 1) // workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_build_one, todo))
    for spec, res in zip(todo, results):
        stem = Path(spec["notebook"]).stem
        page = out / f"{stem}.html"
        if res["html"]:
            shutil.copyfile(res["html"], page)
            shutil.copyfile(res["ipynb"], out / f"{stem}.ipynb")
        thumb = _thumbnail(Path(res["ipynb"])) if Path(res["ipynb"]).is_file() else None
        meta = {
            "key": spec["key"],
            "ok": res["ok"],
            "error": res["error"],
            "duration_s": round(res["duration_s"], 1),
            "thumbnail": thumb,
        }
        (out / CACHE_DIR / f"{stem}.json").write_text(json.dumps(meta))
        entries[stem] = meta

    gallery_entries = []
    for nb in lesson_paths(notebooks_dir):
        meta = entries.get(nb.stem)
        if meta is None:
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
                cached=nb.stem not in {Path(s["notebook"]).stem for s in todo},
                error=meta.get("error"),
                page_bytes=page.stat().st_size if page.is_file() else 0,
                duration_s=meta.get("duration_s") or 0.0,
                thumbnail=meta.get("thumbnail") or _placeholder(nb.stem.split("_")[0]),
            )
        )
    index = write_index(gallery_entries, out / "index.html")
    return GalleryResult(index_path=index, entries=gallery_entries)


def write_index(entries: list[GalleryEntry], path: Path) -> Path:
    """Gallery entries in, an offline index page (thumbnail, title, one-line summary, status) out."""
    cards = []
    for e in entries:
        status = "" if e.ok else f"<p class='failed'>failed: {html.escape(e.error or 'see the page')}</p>"
        size = f"{e.page_bytes / 1e6:.1f} MB" + (" — over the 10 MB limit" if e.page_bytes > PAGE_LIMIT_BYTES else "")
        link = html.escape(e.page.name) if e.page else "#"
        cards.append(
            f"<a class='card' href='{link}'><img alt='' src='{e.thumbnail}'>"
            f"<h2>{html.escape(e.title)}</h2><p>{html.escape(e.summary)}</p>"
            f"<p class='meta'>{html.escape(e.name)} · {e.duration_s:.0f} s · {size}</p>{status}</a>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>labkit gallery</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;background:#fafafa}"
        ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1em}"
        ".card{display:block;background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em;color:inherit;"
        "text-decoration:none}.card img{width:100%;height:140px;object-fit:contain;background:#f3f5f8}"
        ".card h2{font-size:1.05em;margin:.5em 0}.meta{color:#777;font-size:.85em}.failed{color:#b00}"
        "</style></head><body><h1>labkit gallery</h1>"
        f"<p>{len(entries)} lessons, each executed with its default parameters; every page works offline.</p>"
        "<div class='grid'>" + "\n".join(cards) + "</div></body></html>"
    )
    path.write_text(safe_text(page), encoding="utf-8")
    return path
