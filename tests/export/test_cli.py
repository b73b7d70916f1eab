"""`labkit export` end to end in a real subprocess: onnx (with --quantize int8), hf and safetensors from a saved
model and from a training run; bad input gets one line on stderr and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from labkit.export import OnnxModel, load_model, save_model  # noqa: E402

pytestmark = pytest.mark.slow  # each call starts a Python that imports torch and the exporter


def labkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def saved(trained_gpt, bpe_tokenizer, tmp_path_factory):
    return save_model(trained_gpt, tmp_path_factory.mktemp("cli") / "model", bpe_tokenizer)


def test_onnx_with_int8_check(saved, trained_gpt, bpe_tokenizer, tmp_path):
    result = labkit("export", str(saved), "--format", "onnx", "--quantize", "int8", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "int8 check: perplexity" in result.stdout and "bound 5 %" in result.stdout
    runner = OnnxModel(tmp_path / "out" / "model.onnx")
    assert "MatMulInteger" in {n.op_type for n in _ops(runner)}
    ids = torch.tensor([bpe_tokenizer.encode("To be, or not to be")])
    with torch.no_grad():
        ref = trained_gpt(ids).logits.numpy()
    assert (runner.logits(ids).argmax(-1) == ref.argmax(-1)).mean() >= 0.8
    assert (tmp_path / "out" / "tokenizer.json").is_file()


def test_onnx_with_weight_only_int8(saved, trained_gpt, bpe_tokenizer, tmp_path):
    result = labkit("export", str(saved), "--format", "onnx", "--quantize", "int8-weights", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "int8 check: perplexity" in result.stdout
    runner = OnnxModel(tmp_path / "out" / "model.onnx")
    ops = {n.op_type for n in _ops(runner)}
    assert "MatMulNBits" in ops and "MatMulInteger" not in ops
    ids = torch.tensor([bpe_tokenizer.encode("To be, or not to be")])
    with torch.no_grad():
        ref = trained_gpt(ids).logits.numpy()
    assert (runner.logits(ids).argmax(-1) == ref.argmax(-1)).all()


def _ops(runner: OnnxModel) -> list:
    import onnx

    return list(onnx.load(str(runner.path)).graph.node)


def test_onnx_with_cache_matches_pytorch(saved, trained_gpt, tmp_path):
    result = labkit("export", str(saved), "--format", "onnx", "--with-cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "model-onnx"  # the default: <checkpoint>-<format> in the working folder
    assert f"wrote {out.name}/" in result.stdout
    runner = OnnxModel(out / "model.onnx")
    ids = torch.randint(0, trained_gpt.config.vocab_size, (2, 9))
    with torch.no_grad():
        ref = trained_gpt(ids).logits.numpy()
    assert runner.spec["with_cache"] and np.abs(runner.logits(ids) - ref).max() <= 1e-4


@pytest.mark.parametrize("fmt", ["hf", "safetensors"])
def test_hf_and_safetensors_from_a_training_run(trained_gpt, bpe_tokenizer, tmp_path, fmt):
    from labkit.training import train

    # a real training run folder (checkpoints + tokenizer beside them) is what most people export
    run = tmp_path / "run"
    ids = torch.tensor([bpe_tokenizer.encode(" ".join(["The cat sat on the mat."] * 30))[:64]]).view(4, 16)
    model = load_model(save_model(trained_gpt, tmp_path / "start")).model.train()
    batches = [{"input_ids": ids, "labels": ids}] * 2
    train(model, batches, steps=2, lr=1e-4, checkpoint_dir=run, checkpoint_every=2, progress=False)
    bpe_tokenizer.save(run / "tokenizer.json")
    result = labkit("export", str(run), "--format", fmt, "--dtype", "bfloat16", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    ids = torch.randint(0, model.config.vocab_size, (1, 12))
    with torch.no_grad():
        ref = model.eval()(ids).logits
    if fmt == "hf":
        import transformers

        hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
        with torch.no_grad():
            got = hf(ids).logits
        assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2"
        assert transformers.AutoTokenizer.from_pretrained(out)("The cat", add_special_tokens=False)[
            "input_ids"
        ] == bpe_tokenizer.encode("The cat")
    else:
        loaded = load_model(out)
        with torch.no_grad():
            got = loaded.model(ids).logits
        assert loaded.tokenizer is not None
    assert (got - ref).abs().max() / ref.abs().max() <= 0.05  # bfloat16 weights: close, not equal


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing-folder", "--format", "onnx"], "labkit: error: no model at 'missing-folder'"),
        (["{saved}", "--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
        (["{lstm}", "--format", "hf"], "transformers has no model class for a LSTMLM"),
        (["{seq2seq}", "--format", "onnx"], "cannot export a Seq2Seq; supported models are GPT, Encoder, LSTMLM"),
        (["{saved}", "--format", "hf", "--quantize", "int8"], "--quantize int8 applies to --format onnx"),
        (["{saved}"], "the following arguments are required: --format"),
    ],
)
def test_bad_input_is_one_line_with_exit_status_2(saved, tmp_path, args, message):
    from labkit.models import LSTMLM, LSTMConfig, Seq2Seq, Seq2SeqConfig

    places = {"saved": str(saved)}
    if "{lstm}" in args:
        places["lstm"] = str(save_model(LSTMLM(LSTMConfig.preset("lstm-tiny")), tmp_path / "lstm"))
    if "{seq2seq}" in args:
        places["seq2seq"] = str(save_model(Seq2Seq(Seq2SeqConfig.preset("transformer-tiny")), tmp_path / "s2s"))
    result = labkit("export", *[a.format(**places) for a in args], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
