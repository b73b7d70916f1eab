"""The conversion cache on real files: hit, miss, stale source, damaged entry, concurrent processes, kill -9, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("gguf")
pytest.importorskip("transformers")

import labkit.models.model_cache as model_cache  # noqa: E402
import labkit.models.pretrained as pretrained  # noqa: E402
from labkit.cli import main as labkit_main  # noqa: E402
from labkit.errors import MissingSourceError, UnknownNameError  # noqa: E402
from labkit.models import GPT, cached_models, clear_model_cache, load_pretrained  # noqa: E402
from labkit.models.model_cache import cache_root, read_entry  # noqa: E402


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _entry(cache_dir: Path) -> Path:
    entries = [p for p in (cache_dir / "models").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1, entries
    return entries[0]


def _no_conversion(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("converted although the cache holds a current entry")

    monkeypatch.setattr(pretrained, "convert_gguf", refuse)
    monkeypatch.setattr(pretrained, "convert_folder", refuse)


def test_miss_writes_an_entry_and_hit_reads_it_without_converting(tiny_sources, cache_dir, monkeypatch, capsys, texts):
    tok, hf, gguf_path, _, _ = tiny_sources
    cold, cold_tok = load_pretrained(gguf_path, progress=False)
    entry = _entry(cache_dir)
    assert sorted(f.name for f in entry.iterdir()) == [
        "config.json",
        "manifest.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer.labkit.json",
    ]
    assert [(e.name, e.state, e.arch) for e in cached_models()] == [(entry.name, "ok", "gpt")]
    _no_conversion(monkeypatch)
    warm, warm_tok = load_pretrained(gguf_path, progress=False)
    assert capsys.readouterr().err == ""  # a hit says nothing
    assert isinstance(warm, GPT) and _same_weights(cold, warm) and warm.config == cold.config
    assert warm.lm_head.weight is warm.wte.weight or not warm.config.tie_embeddings
    ids = torch.tensor([tok.encode(texts[1])])
    with torch.no_grad():
        torch.testing.assert_close(warm(ids).logits, hf(ids).logits, atol=1e-5, rtol=1e-5)
    for text in texts[:3]:
        assert warm_tok.encode(text) == cold_tok.encode(text) == tok.encode(text)
    assert warm_tok.special_tokens == cold_tok.special_tokens and warm_tok.chat_template == cold_tok.chat_template


def test_stale_source_is_detected_and_converted_again(
    tiny_sources, cache_dir, tmp_path, capsys, texts, write_gguf, make_llama
):
    tok, hf, _, _, _ = tiny_sources
    path = write_gguf(tmp_path / "model.gguf", hf, tok)
    load_pretrained(path, progress=False)
    other = make_llama(tok.vocab_size, seed=1)
    write_gguf(path, other, tok)  # same path, new weights
    capsys.readouterr()
    model, _ = load_pretrained(path, progress=False)
    err = capsys.readouterr().err
    assert "is stale" in err and len(err.strip().splitlines()) == 1
    ids = torch.tensor([tok.encode(texts[0])])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, other(ids).logits, atol=1e-5, rtol=1e-5)
    assert [e.state for e in cached_models()] == ["ok"]  # replaced in place, one entry


def test_a_new_conversion_version_makes_old_entries_stale(tiny_sources, cache_dir, monkeypatch, capsys):
    gguf_path = tiny_sources[2]
    load_pretrained(gguf_path, progress=False)
    monkeypatch.setattr(model_cache, "CONVERSION_VERSION", model_cache.CONVERSION_VERSION + 1)
    assert [e.state for e in cached_models()] == ["stale"]
    capsys.readouterr()
    load_pretrained(gguf_path, progress=False)
    assert "is stale" in capsys.readouterr().err
    assert [e.state for e in cached_models()] == ["ok"]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


DAMAGES = {
    "weight bytes overwritten": lambda e: _flip_byte(
        e / "model.safetensors", (e / "model.safetensors").stat().st_size // 2
    ),
    "weights truncated": lambda e: os.truncate(e / "model.safetensors", 1000),
    "weights deleted": lambda e: (e / "model.safetensors").unlink(),
    "tokenizer edited": lambda e: _flip_byte(e / "tokenizer.json", 40),
    "manifest garbled": lambda e: (e / "manifest.json").write_text("{not json"),
    "config edited": lambda e: (e / "config.json").write_text(
        (e / "config.json").read_text().replace('"n_layer": 2', '"n_layer": 3')
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_entry_is_rebuilt_not_loaded(tiny_sources, cache_dir, damage, capsys, texts):
    gguf_path = tiny_sources[2]
    good, good_tok = load_pretrained(gguf_path, progress=False)
    DAMAGES[damage](_entry(cache_dir))
    assert [e.state for e in cached_models()] in (["ok"], ["damaged"])  # list checks the manifest only
    capsys.readouterr()
    model, tok = load_pretrained(gguf_path, progress=False)
    err = capsys.readouterr().err.strip()
    assert "is damaged" in err and len(err.splitlines()) == 1, err
    assert _same_weights(good, model) and tok.encode(texts[2]) == good_tok.encode(texts[2])
    read_entry(_entry(cache_dir), None)  # the rebuilt entry verifies
    load_pretrained(gguf_path, progress=False)
    assert capsys.readouterr().err == ""


_WORKER = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path
    import torch
    from labkit.models import load_pretrained

    source, go = sys.argv[1], Path(sys.argv[2])
    while not go.exists():  # start together: every process is imported and waiting
        time.sleep(0.005)
    model, tok = load_pretrained(source, progress=True)
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode()); digest.update(t.contiguous().numpy().tobytes())
    print(digest.hexdigest(), len(tok.encode("The cat sat")))
    """
)


def _digest(model: torch.nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_processes_loading_at_once_convert_once_and_leave_one_whole_entry(
    tiny_sources, cache_dir, tmp_path, write_gguf, make_llama
):
    tok, hf, _, _, _ = tiny_sources
    big = make_llama(tok.vocab_size, seed=3)
    path = write_gguf(tmp_path / "shared.gguf", big, tok, quantize="Q8_0")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(8)  # let every process import torch and labkit and reach the barrier
    go.touch()
    results = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-800:] for _, err in results]
    reference = _digest(pretrained.convert_gguf(path, progress=False)[0])
    assert {out.split()[0] for out, _ in results} == {reference}
    converted = [err for _, err in results if "converting shared.gguf" in err]
    assert len(converted) == 1, [err[-300:] for _, err in results]  # the lock let exactly one convert
    assert any("waiting for another process" in err for _, err in results)  # and the others really did overlap
    entry = _entry(cache_dir)
    assert not [p for p in entry.parent.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    model, _ = read_entry(entry, None)
    assert _digest(model) == reference


@pytest.mark.slow
def test_a_conversion_killed_midway_leaves_no_torn_entry(tiny_sources, cache_dir, tmp_path, write_gguf, make_llama):
    tok, _, _, _, _ = tiny_sources
    path = write_gguf(tmp_path / "killed.gguf", make_llama(tok.vocab_size, seed=4), tok, quantize="Q8_0")
    go = tmp_path / "go"
    go.touch()
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(path), str(go)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while proc.poll() is None and not (cache_dir / "models").is_dir() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # somewhere between the lock and the rename
    proc.wait()
    entries = [p for p in (cache_dir / "models").iterdir() if p.is_dir() and not p.name.startswith(".")]
    for entry in entries:  # either nothing was renamed into place, or a whole entry was
        read_entry(entry, None)
    model, _ = load_pretrained(path, progress=False)
    assert _digest(model) == _digest(pretrained.convert_gguf(path, progress=False)[0])


def test_hf_folder_source_is_cached_and_equals_the_object_conversion(tiny_sources, cache_dir, monkeypatch):
    tok, hf, _, _, hf_dir = tiny_sources
    from_folder = GPT.from_hf(hf_dir)
    assert _same_weights(from_folder, GPT.from_hf(hf))
    assert from_folder.config.eos_token_id == tok.eos_id  # from tokenizer_config.json's eos_token
    _no_conversion(monkeypatch)
    model, folder_tok = load_pretrained(hf_dir)
    assert _same_weights(model, from_folder)
    assert folder_tok.eos_id == tok.eos_id and folder_tok.chat_template is not None


def test_from_hf_on_a_live_model_copies_its_weights(tiny_sources):
    hf = tiny_sources[1]
    model = GPT.from_hf(hf)
    before = hf.model.embed_tokens.weight.detach().clone()
    with torch.no_grad():
        model.wte.weight.add_(1.0)
    assert torch.equal(hf.model.embed_tokens.weight, before)  # the transformers model keeps its own weights


def test_cache_false_converts_without_writing(tiny_sources, cache_dir):
    load_pretrained(tiny_sources[2], cache=False, progress=False)
    assert not (cache_dir / "models").exists()


def test_an_unwritable_cache_still_loads_with_a_notice(tiny_sources, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LABKIT_CACHE", str(blocker))
    model, _ = load_pretrained(tiny_sources[2], progress=False)
    assert isinstance(model, GPT)
    assert "converting without caching" in capsys.readouterr().err


def test_cli_lists_and_clears_entries(tiny_sources, cache_dir, capsys):
    load_pretrained(tiny_sources[2], progress=False)
    load_pretrained(tiny_sources[3], progress=False)
    assert labkit_main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    names = [e.name for e in cached_models()]
    assert len(names) == 2 and all(n in out for n in names) and out.count(" ok ") == 2
    assert labkit_main(["cache", "clear", "no-such-entry"]) == 2
    assert "no cached model named 'no-such-entry'" in capsys.readouterr().err
    assert labkit_main(["cache", "clear", names[0]]) == 0
    assert [e.name for e in cached_models()] == names[1:]
    assert labkit_main(["cache", "clear"]) == 0
    assert cached_models() == [] and "removed 1 cached model" in capsys.readouterr().out
    with pytest.raises(UnknownNameError):
        clear_model_cache(["gone"])


def test_hub_names_resolve_through_the_local_hub_cache(tiny_sources, cache_dir, tmp_path, monkeypatch):
    """A real huggingface_hub cache layout (refs/main -> snapshot folder), read with the network forbidden."""
    hf_dir = tiny_sources[4]
    hub = tmp_path / "hub"
    snapshot = hub / "models--someone--tiny-llama" / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    for f in hf_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (hub / "models--someone--tiny-llama" / "refs").mkdir()
    (hub / "models--someone--tiny-llama" / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    model, tok = load_pretrained("hf:someone/tiny-llama")
    assert _same_weights(model, GPT.from_hf(hf_dir)) and tok is not None
    assert any(e.name.startswith("tiny-llama-") for e in cached_models())
    start = time.time()
    with pytest.raises(MissingSourceError, match="hf:someone/not-here"):
        load_pretrained("hf:someone/not-here")
    assert time.time() - start < 10


def test_cache_root_is_the_one_the_vendored_files_use():
    from labkit.frontend import vendor_dir

    assert vendor_dir().parent == cache_root()


def test_bad_sources_fail_in_one_line_before_any_work(tmp_path):
    with pytest.raises(MissingSourceError, match="smollm2-135m"):
        load_pretrained("smolm2")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a .gguf file"):
        load_pretrained(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="source must be"):
        load_pretrained(42)
    with pytest.raises(ValueError, match="True or False"):
        load_pretrained("smollm2-135m", cache="yes")
    (tmp_path / "bad.gguf").write_bytes(b"GGML" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a GGUF file"):
        load_pretrained(tmp_path / "bad.gguf")
    (tmp_path / "short.gguf").write_bytes(b"GGUF\x03\0\0\0" + b"\x05" + b"\0" * 3)
    with pytest.raises(ValueError, match="truncated"):
        load_pretrained(tmp_path / "short.gguf")
