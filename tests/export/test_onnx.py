"""ONNX export: onnx.checker passes and onnxruntime (CPU) matches PyTorch for GPT (with and without the KV cache),
Encoder and LSTMLM on random inputs of several batch and sequence sizes; greedy decoding agrees for 50 tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from labkit.errors import InvalidInputError, MissingSourceError  # noqa: E402
from labkit.export import OnnxModel, read_onnx_spec, to_onnx  # noqa: E402
from labkit.generation import generate  # noqa: E402
from labkit.models import LSTMLM, Encoder, EncoderConfig, LSTMConfig, Seq2Seq, Seq2SeqConfig  # noqa: E402

from .conftest import tiny_llama  # noqa: E402

TOL = 1e-4
SHAPES = [(1, 1), (1, 17), (3, 9), (5, 64)]  # dynamic batch and sequence: sizes other than the export's (2, 5)


@pytest.fixture(scope="module")
def gpt_files(gpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-gpt")
    return {
        "plain": to_onnx(gpt, folder / "gpt.onnx"),
        "cache": to_onnx(gpt, folder / "gpt-cache.onnx", with_cache=True, attentions=True),
    }


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def test_gpt_files_pass_the_checker_and_carry_their_spec(gpt, gpt_files):
    for name, path in gpt_files.items():
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        spec = read_onnx_spec(path)
        assert spec["kind"] == "gpt" and spec["config"]["n_layer"] == gpt.config.n_layer
        assert spec["with_cache"] is (name == "cache")
    graph = onnx.load(str(gpt_files["cache"])).graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    assert inputs == ["input_ids"] + [f"past.{i}.{n}" for i in range(2) for n in ("key", "value")]
    assert outputs == ["logits"] + [f"present.{i}.{n}" for i in range(2) for n in ("key", "value")] + ["attentions"]
    ids_shape = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert ids_shape == ["batch", "sequence"]


@pytest.mark.parametrize("batch, seq", SHAPES)
def test_gpt_logits_match_pytorch(gpt, gpt_files, batch, seq):
    ids = torch.randint(0, gpt.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(seq))
    with torch.no_grad():
        ref = gpt(ids, output_attentions=True)
    assert _max_diff(OnnxModel(gpt_files["plain"]).logits(ids), ref.logits) <= TOL
    out = OnnxModel(gpt_files["cache"]).run(input_ids=ids, **OnnxModel(gpt_files["cache"]).empty_state(batch))
    assert _max_diff(out["logits"], ref.logits) <= TOL
    assert _max_diff(out["attentions"], torch.stack(ref.attentions)) <= TOL
    assert out["present.0.key"].shape == (batch, 4, seq, 8)


def test_gpt_cache_steps_match_a_full_pass(gpt, gpt_files):
    """Prompt pass then one token at a time through the exported cache == one PyTorch pass over everything."""
    runner = OnnxModel(gpt_files["cache"])
    ids = torch.randint(0, gpt.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = gpt(ids).logits.numpy()
    logits, state = runner.step(ids[:, :12])
    got = [logits]
    for t in range(12, 20):
        logits, state = runner.step(ids[:, t : t + 1], state)
        got.append(logits)
    assert _max_diff(np.concatenate(got, axis=1), ref) <= TOL
    assert state["past.1.value"].shape[2] == 20


@pytest.mark.parametrize("which", ["plain", "cache"])
def test_greedy_generation_through_onnxruntime_equals_labkit(gpt, gpt_files, which):
    prompt = torch.randint(0, gpt.config.vocab_size, (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = generate(gpt, prompt, 50, temperature=0.0)
    theirs = OnnxModel(gpt_files[which]).greedy(prompt, 50)
    assert theirs.shape == (1, 56)
    assert theirs[0].tolist() == ours[0].tolist()
    assert len(set(theirs[0, 6:].tolist())) > 1  # the model is not stuck on one token: the check means something


def test_llama_layout_exports_with_grouped_query_cache(bpe_tokenizer, tmp_path):
    model = tiny_llama(bpe_tokenizer.vocab_size)
    path = to_onnx(model, tmp_path / "llama.onnx", with_cache=True)
    runner = OnnxModel(path)
    ids = torch.randint(0, model.config.vocab_size, (2, 15), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(ids).logits.numpy()
    first, state = runner.step(ids[:, :10])
    second, state = runner.step(ids[:, 10:], state)
    assert _max_diff(np.concatenate([first, second], axis=1), ref) <= TOL
    assert state["past.0.key"].shape == (2, 2, 15, 8)  # two key/value heads, not four


@pytest.mark.parametrize("head", ["mlm", "classification", None])
def test_encoder_logits_match_pytorch(tmp_path, head):
    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=120, head=head, num_labels=3)).eval()
    path = to_onnx(model, tmp_path / "encoder.onnx", attentions=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    runner = OnnxModel(path)
    for batch, seq in [(1, 3), (4, 21)]:
        ids = torch.randint(0, 120, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[0, seq // 2 :] = 0  # padding in the first row
        types = torch.zeros(batch, seq, dtype=torch.long)
        with torch.no_grad():
            ref = model(ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
        out = runner.run(input_ids=ids, attention_mask=mask, token_type_ids=types)
        first = ref.logits if ref.logits is not None else ref.hidden_states
        assert _max_diff(out[runner.output_names[0]], first) <= TOL
        assert _max_diff(out["attentions"], torch.stack(ref.attentions)) <= TOL


@pytest.mark.parametrize("with_cache", [False, True])
def test_lstm_logits_and_greedy_match_pytorch(tmp_path, with_cache):
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=70, n_layer=2, hidden_size=48, n_embd=32, dropout=0.0)).eval()
    path = to_onnx(model, tmp_path / "lstm.onnx", with_cache=with_cache)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    runner = OnnxModel(path)
    for batch, seq in [(1, 1), (3, 33)]:
        ids = torch.randint(0, 70, (batch, seq))
        with torch.no_grad():
            ref = model(ids).logits
        assert _max_diff(runner.logits(ids), ref) <= TOL
    prompt = torch.randint(0, 70, (1, 4))
    with torch.no_grad():
        ours = generate(model, prompt, 50, temperature=0.0)
    assert runner.greedy(prompt, 50)[0].tolist() == ours[0].tolist()


def test_bad_input_is_refused_in_one_line(gpt, tmp_path):
    torch.manual_seed(0)
    s2s = Seq2Seq(Seq2SeqConfig.preset("transformer-tiny"))
    with pytest.raises(InvalidInputError, match="cannot export a Seq2Seq; supported models are GPT, Encoder, LSTMLM"):
        to_onnx(s2s, tmp_path / "s2s.onnx")
    with pytest.raises(InvalidInputError, match="must end in .onnx"):
        to_onnx(gpt, tmp_path / "gpt.bin")
    encoder = Encoder(EncoderConfig.preset("encoder-tiny"))
    with pytest.raises(InvalidInputError, match="no cache"):
        to_onnx(encoder, tmp_path / "e.onnx", with_cache=True)
    with pytest.raises(MissingSourceError, match="no ONNX file"):
        OnnxModel(tmp_path / "missing.onnx")
    assert not list(tmp_path.iterdir())  # refused before any file was written
