"""labkit's GGUF reader against the gguf package's reader and dequantizers, on files the gguf package writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from labkit.errors import InvalidInputError  # noqa: E402
from labkit.models.gguf_file import read_gguf  # noqa: E402

TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0"]  # Q5_0 takes the gguf-package fallback


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A GGUF file with one [3, 96] matrix per type, plus metadata of every value kind."""
    path = tmp_path_factory.mktemp("gguf") / "types.gguf"
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_uint32("test.u32", 7)
    w.add_int64("test.i64", -5)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.flag", True)
    w.add_string("test.text", "naïve 東京")
    w.add_array("test.ints", [1, 2, 3])
    w.add_array("test.words", ["a", "", "ü b"])
    for name in TYPES:
        x = rng.standard_normal((3, 96)).astype(np.float32) * 3
        q = getattr(gguf.GGMLQuantizationType, name)
        if name == "F32":
            w.add_tensor(name, x)
        else:
            w.add_tensor(name, gguf.quants.quantize(x, q), raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_metadata_matches_what_was_written(written):
    with read_gguf(written) as f:
        md = f.metadata
        assert (md["test.u32"], md["test.i64"], md["test.f32"], md["test.flag"]) == (7, -5, 0.25, True)
        assert md["test.text"] == "naïve 東京" and md["test.ints"] == [1, 2, 3] and md["test.words"] == ["a", "", "ü b"]
        assert md["general.architecture"] == "llama"
        assert [(t.name, t.shape) for t in f.tensors.values()] == [(n, (3, 96)) for n in TYPES]


@pytest.mark.parametrize("name", TYPES)
def test_every_type_dequantizes_exactly_like_the_gguf_package(written, name):
    reference = {t.name: t for t in gguf.GGUFReader(str(written)).tensors}[name]
    expected = torch.from_numpy(np.asarray(gguf.quants.dequantize(reference.data, reference.tensor_type), np.float32))
    with read_gguf(written) as f:
        got = f.tensor(name)
    assert got.dtype == torch.float32 and got.shape == (3, 96)
    assert torch.equal(got, expected.reshape(3, 96))


def test_bad_files_raise_one_line(tmp_path, written):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(InvalidInputError, match="not a GGUF file"):
        read_gguf(bad)
    data = written.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 50])  # tensor data cut short
    with pytest.raises(InvalidInputError, match="truncated"):
        read_gguf(cut)
    cut.write_bytes(data[:200])  # header cut short
    with pytest.raises(InvalidInputError, match="truncated"):
        read_gguf(cut)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_gguf(tmp_path / "missing.gguf")
