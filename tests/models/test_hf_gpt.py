"""GPT-2 interop: random-init transformers GPT2LMHeadModel and labkit's GPT agree on logits and attention."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from labkit.errors import InvalidInputError, MissingSourceError  # noqa: E402
from labkit.models import GPT, GPTConfig  # noqa: E402


def _hf_gpt2(tie: bool = True):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=97,
        n_positions=40,
        n_embd=32,
        n_layer=2,
        n_head=4,
        tie_word_embeddings=tie,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def pair():
    hf = _hf_gpt2()
    return hf, GPT.from_hf(hf)


def test_logits_and_attentions_match_transformers(pair):
    hf, model = pair
    ids = torch.randint(0, 97, (2, 15))
    with torch.no_grad():
        ref = hf(ids, output_attentions=True)
        out = model(ids, output_attentions=True)
        fast = model(ids)
        _, cache = model.run_with_cache(ids, names=lambda n: n.endswith("hook_pattern"))
    assert (out.logits - ref.logits).abs().max() <= 1e-5
    assert (fast.logits - ref.logits).abs().max() <= 1e-5
    for layer in range(2):
        assert (out.attentions[layer] - ref.attentions[layer]).abs().max() <= 1e-6
        assert (cache.pattern(layer) - ref.attentions[layer]).abs().max() <= 1e-6


def test_loss_matches_transformers(pair):
    hf, model = pair
    ids = torch.randint(0, 97, (2, 11))
    labels = ids.clone()
    labels[0, :4] = -100
    with torch.no_grad():
        assert abs(hf(ids, labels=labels).loss.item() - model(ids, labels=labels).loss.item()) < 1e-5


def test_left_padded_batch_matches_transformers_on_real_tokens(pair):
    hf, model = pair
    ids = torch.randint(0, 97, (2, 8))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, position_ids=pos).logits
        out = model(ids, attention_mask=mask).logits
    real = mask.bool()
    assert (out[real] - ref[real]).abs().max() <= 1e-5


@pytest.mark.parametrize("tie", [True, False])
def test_to_hf_round_trip(tie):
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=97, block_size=40, n_layer=2, n_head=4, n_embd=32, tie_embeddings=tie)).eval()
    hf = model.to_hf()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    ids = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-5
    back = GPT.from_hf(hf)
    assert back.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


def test_from_hf_folder(tmp_path):
    hf = _hf_gpt2(tie=False)
    hf.save_pretrained(tmp_path / "gpt2")
    model = GPT.from_hf(tmp_path / "gpt2")
    ids = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        assert (model(ids).logits - hf(ids).logits).abs().max() <= 1e-5
    assert not model.config.tie_embeddings


def test_wrong_architecture_and_sources_raise_clear_errors(tmp_path):
    bert = transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    with pytest.raises(InvalidInputError, match="'bert'.*GPT2LMHeadModel, LlamaForCausalLM"):
        GPT.from_hf(bert)
    bert.save_pretrained(tmp_path / "bert")
    with pytest.raises(InvalidInputError, match="'bert'"):
        GPT.from_hf(tmp_path / "bert")
    with pytest.raises(MissingSourceError, match="config.json"):
        GPT.from_hf(tmp_path / "nothing")
    with pytest.raises(InvalidInputError, match="transformers model"):
        GPT.from_hf(42)
    with pytest.raises(InvalidInputError, match="LM head"):
        GPT.from_hf(transformers.GPT2Model(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)))
    odd = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16, norm="rmsnorm"))
    with pytest.raises(InvalidInputError, match="norm='rmsnorm'"):
        odd.to_hf()
