"""to_hf: the folder loads with transformers' from_pretrained (GPT-2, Llama, BERT classes), logits equal labkit's to
1e-5, half-precision folders store half the bytes, and AutoTokenizer gives the labkit tokenizer's ids."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from labkit.errors import InvalidInputError, UnknownNameError  # noqa: E402
from labkit.export import to_hf  # noqa: E402
from labkit.models import LSTMLM, Encoder, EncoderConfig, LSTMConfig  # noqa: E402

from .conftest import TEXTS, tiny_llama  # noqa: E402

TOL = 1e-5


def _ids(vocab: int, batch: int = 2, seq: int = 13):
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))


def test_gpt_loads_as_gpt2_with_equal_logits_and_tokenizer(gpt, bpe_tokenizer, tmp_path):
    folder = to_hf(gpt, tmp_path / "gpt2", bpe_tokenizer)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel" and hf.config.model_type == "gpt2"
    ids = _ids(gpt.config.vocab_size)
    with torch.no_grad():
        assert (hf(ids).logits - gpt(ids).logits).abs().max() <= TOL
    assert hf.config.eos_token_id == bpe_tokenizer.eos_id
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    for text in TEXTS[:3] + ["unseen wörds, 東京!"]:
        assert tok(text, add_special_tokens=False)["input_ids"] == bpe_tokenizer.encode(text)
        assert tok.decode(bpe_tokenizer.encode(text)) == bpe_tokenizer.decode(bpe_tokenizer.encode(text))
    assert tok.eos_token == "<|endoftext|>" and tok.model_max_length == gpt.config.block_size


def test_llama_layout_loads_as_llama(bpe_tokenizer, tmp_path):
    model = tiny_llama(bpe_tokenizer.vocab_size)
    folder = to_hf(model, tmp_path / "llama", bpe_tokenizer)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    assert (hf.config.num_attention_heads, hf.config.num_key_value_heads) == (4, 2)
    ids = _ids(model.config.vocab_size)
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= TOL


@pytest.mark.parametrize(
    "head, auto, cls",
    [
        ("mlm", "AutoModelForMaskedLM", "BertForMaskedLM"),
        ("classification", "AutoModelForSequenceClassification", "BertForSequenceClassification"),
        (None, "AutoModel", "BertModel"),
    ],
)
def test_encoder_loads_as_bert(tmp_path, head, auto, cls):
    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=150, head=head, num_labels=3)).eval()
    folder = to_hf(model, tmp_path / "bert")
    hf = getattr(transformers, auto).from_pretrained(folder).eval()
    assert type(hf).__name__ == cls
    ids = _ids(150)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        ref = model(ids, attention_mask=mask)
        out = hf(ids, attention_mask=mask)
    ours = ref.logits if head else ref.hidden_states
    theirs = out.logits if head else out.last_hidden_state
    assert (theirs - ours).abs().max() <= TOL


@pytest.mark.parametrize("dtype, torch_dtype", [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_half_precision_folder_is_half_the_size_and_close(gpt, tmp_path, dtype, torch_dtype):
    full = to_hf(gpt, tmp_path / "fp32")
    half = to_hf(gpt, tmp_path / dtype, dtype=dtype)
    size = {p: (p / "model.safetensors").stat().st_size for p in (full, half)}
    assert 0.45 <= size[half] / size[full] <= 0.55
    hf = transformers.AutoModelForCausalLM.from_pretrained(half, dtype=torch.float32).eval()
    ids = _ids(gpt.config.vocab_size)
    with torch.no_grad():
        ref = gpt(ids).logits
        got = hf(ids).logits
    # rounding each weight to 8 (bf16) or 11 (fp16) significant bits moves the logits by a little, not a lot
    rel = (got - ref).abs().max() / ref.abs().max()
    assert 0 < rel <= (0.05 if dtype == "bfloat16" else 0.01)
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9


def test_models_transformers_cannot_hold_are_refused(tmp_path):
    lstm = LSTMLM(LSTMConfig.preset("lstm-tiny"))
    with pytest.raises(InvalidInputError, match="transformers has no model class for a LSTMLM; export it with to_onnx"):
        to_hf(lstm, tmp_path / "lstm")
    with pytest.raises(UnknownNameError, match="dtype must be one of 'float32', 'float16', 'bfloat16', got 'int4'"):
        to_hf(lstm, tmp_path / "lstm", dtype="int4")
    assert not (tmp_path / "lstm").exists()
