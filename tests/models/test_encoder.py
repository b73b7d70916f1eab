"""Encoder: parity with transformers' BERT classes (random init), heads, hooks, presets and bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.models import Encoder, EncoderConfig
from labkit.models.outputs import ModelOutput

transformers = pytest.importorskip("transformers")

VOCAB = 99


def hf_config(**overrides):
    base = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=40,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
        attn_implementation="eager",
    )
    base.update(overrides)
    return transformers.BertConfig(**base)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (3, 13), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0  # right padding
    attention_mask[2, 4:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 6:] = 1
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


def twins(cls_name: str):
    torch.manual_seed(0)
    hf = getattr(transformers, cls_name)(hf_config()).eval()
    # Random biases and LayerNorm affine parameters, so parity covers every weight (HF inits them to 0/1).
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf, Encoder.from_hf(hf).eval()


def test_bert_model_hidden_states_and_attentions_match_transformers():
    hf, ours = twins("BertModel")
    assert ours.config.head is None and ours.config.pooler
    b = batch()
    ref = hf(**b, output_attentions=True)
    out = ours(**b, output_attentions=True)
    assert isinstance(out, ModelOutput)
    keep = b["attention_mask"].bool()
    assert (out.hidden_states - ref.last_hidden_state)[keep].abs().max() <= 1e-5
    assert (out.hidden_states - ref.last_hidden_state).abs().max() <= 1e-5  # padded rows too
    assert len(out.attentions) == 2
    for mine, theirs in zip(out.attentions, ref.attentions):
        assert mine.shape == (3, 4, 13, 13)
        assert (mine - theirs).abs().max() <= 1e-5
        assert mine[2, :, :, 4:].abs().max() == 0  # padded keys get no attention
    torch.testing.assert_close(ours.pool(out.hidden_states), ref.pooler_output, atol=1e-5, rtol=0)


def test_masked_lm_logits_and_loss_match_transformers():
    hf, ours = twins("BertForMaskedLM")
    assert ours.config.head == "mlm" and not ours.config.pooler
    b = batch(1)
    labels = torch.full_like(b["input_ids"], -100)
    labels[:, 2] = b["input_ids"][:, 2]
    labels[0, 5] = 7
    ref = hf(**b, labels=labels)
    out = ours(**b, labels=labels)
    assert (out.logits - ref.logits).abs().max() <= 1e-5
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=0)


def test_sequence_classification_logits_and_loss_match_transformers():
    hf, ours = twins("BertForSequenceClassification")
    assert ours.config.head == "classification" and ours.config.num_labels == 3
    b = batch(2)
    labels = torch.tensor([0, 2, 1])
    ref = hf(**b, labels=labels)
    out = ours(**b, labels=labels)
    assert out.logits.shape == (3, 3)
    assert (out.logits - ref.logits).abs().max() <= 1e-5
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", ["mlm", "classification", None])
def test_to_hf_round_trip_gives_the_same_outputs(head):
    torch.manual_seed(3)
    ours = Encoder(
        EncoderConfig.preset(
            "encoder-tiny",
            vocab_size=VOCAB,
            head=head,
            num_labels=4,
            dropout=0.0,
            attn_dropout=0.0,
            classifier_dropout=0.0,
        )
    ).eval()
    hf = ours.to_hf()
    b = batch(3)
    ref = hf(**b)
    out = ours(**b)
    if head is None:
        assert (out.hidden_states - ref.last_hidden_state).abs().max() <= 1e-5
    else:
        assert (out.logits - ref.logits).abs().max() <= 1e-5
    back = Encoder.from_hf(hf).eval()
    torch.testing.assert_close(back(**b).hidden_states, out.hidden_states, atol=1e-6, rtol=0)


def test_from_hf_reads_a_saved_folder(tmp_path):
    hf, _ = twins("BertForMaskedLM")
    hf.save_pretrained(tmp_path)
    ours = Encoder.from_hf(tmp_path).eval()
    b = batch(4)
    assert (ours(**b).logits - hf(**b).logits).abs().max() <= 1e-5


def test_fast_path_equals_explicit_path_and_patterns_are_distributions():
    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=VOCAB, head=None)).eval()
    b = batch(5)
    fast = model(**b).hidden_states
    slow = model(**b, output_attentions=True)
    torch.testing.assert_close(slow.hidden_states, fast, atol=1e-5, rtol=0)
    for pattern in slow.attentions:
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]), atol=1e-5, rtol=0)
    _, cache = model.run_with_cache(**b)
    names = model.hook_names()
    assert "blocks.0.attn.hook_pattern" in names and "hook_embed" in names
    torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"], slow.attentions[1], atol=1e-6, rtol=0)


def test_bert_base_preset_has_exactly_bert_base_parameter_count():
    with torch.device("meta"):
        ours = Encoder(EncoderConfig.preset("bert-base", head=None))
        theirs = transformers.BertModel(transformers.BertConfig())
        mlm = Encoder(EncoderConfig.preset("bert-base", head="mlm", pooler=False))
        theirs_mlm = transformers.BertForMaskedLM(transformers.BertConfig())
    count = sum(p.numel() for p in ours.parameters())
    assert count == 109_482_240 == sum(p.numel() for p in theirs.parameters())
    assert sum(p.numel() for p in mlm.parameters()) == sum(p.numel() for p in theirs_mlm.parameters())


def test_mlm_loss_decreases_when_training_a_tiny_encoder():
    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=20, dropout=0.0, attn_dropout=0.0))
    x = torch.arange(2, 18).repeat(8, 1)  # every row the same: the masked token is predictable from position
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        g = torch.Generator().manual_seed(step)
        masked = torch.rand(x.shape, generator=g) < 0.2
        labels = torch.where(masked, x, torch.full_like(x, -100))
        loss = model(torch.where(masked, torch.ones_like(x), x), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_presets_round_trip_through_json():
    assert {"bert-tiny", "minilm-l6", "bert-base"} <= set(EncoderConfig.presets())
    for name in EncoderConfig.presets():
        cfg = EncoderConfig.preset(name)
        assert cfg.arch == "encoder"
        assert EncoderConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg


def test_bad_inputs_raise_one_clear_error(tmp_path):
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=VOCAB, block_size=16)).eval()
    with pytest.raises(UnknownNameError, match="bert-tiny"):
        EncoderConfig.preset("bert-tinny")
    with pytest.raises(InvalidInputError, match="17.*block_size=16"):
        model(torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(InvalidInputError, match=f"token id {VOCAB}"):
        model(torch.tensor([[1, VOCAB]]))
    with pytest.raises(InvalidInputError, match="token_type_ids"):
        model(torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))
    with pytest.raises(InvalidInputError, match="attention_mask"):
        model(torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 1, 1]]))
    with pytest.raises(UnknownNameError, match="classification"):
        EncoderConfig(head="clasification")
    with pytest.raises(InvalidInputError, match="divisible"):
        EncoderConfig(n_embd=30, n_head=4)
    gpt2 = transformers.GPT2Model(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(InvalidInputError, match="gpt2.*BertModel") as err:
        Encoder.from_hf(gpt2)
    assert "\n" not in str(err.value)
    gpt2.save_pretrained(tmp_path)
    with pytest.raises(InvalidInputError, match="gpt2"):
        Encoder.from_hf(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        Encoder.from_hf(tmp_path / "nowhere")


def test_pretraining_heads_shapes_and_loss_match_bert_for_pretraining():
    """MLM + NSP on the same weights as transformers' BertForPreTraining: both heads' logits and the summed loss."""
    hf, ours = twins("BertForPreTraining")
    assert ours.config.head == "pretraining" and ours.config.pooler
    b = batch(4)
    labels = torch.full_like(b["input_ids"], -100)
    labels[:, 3] = b["input_ids"][:, 3]
    labels[1, 7] = 11
    nsp = torch.tensor([0, 1, 1])
    ref = hf(**b, labels=labels, next_sentence_label=nsp)
    out = ours(**b, labels=labels, next_sentence_label=nsp)
    assert out.logits.shape == ref.prediction_logits.shape == (3, 13, VOCAB)
    assert out.seq_relationship_logits.shape == ref.seq_relationship_logits.shape == (3, 2)
    assert (out.logits - ref.prediction_logits).abs().max() <= 1e-5
    assert (out.seq_relationship_logits - ref.seq_relationship_logits).abs().max() <= 1e-5
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=0)
    # the loss is the sum of the two objectives, each a plain cross-entropy
    mlm_only = ours(**b, labels=labels).loss
    nsp_only = torch.nn.functional.cross_entropy(out.seq_relationship_logits, nsp)
    torch.testing.assert_close(out.loss, mlm_only + nsp_only, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours(**b, next_sentence_label=nsp).loss, nsp_only, atol=1e-6, rtol=0)


def test_pretraining_encoder_round_trips_through_to_hf(tmp_path):
    torch.manual_seed(5)
    config = EncoderConfig.preset("encoder-tiny", vocab_size=VOCAB, head="pretraining", dropout=0.0, attn_dropout=0.0)
    ours = Encoder(config).eval()
    hf = ours.to_hf()
    assert type(hf).__name__ == "BertForPreTraining"
    b = batch(5)
    ref, out = hf(**b), ours(**b)
    assert (out.logits - ref.prediction_logits).abs().max() <= 1e-5
    assert (out.seq_relationship_logits - ref.seq_relationship_logits).abs().max() <= 1e-5
    hf.save_pretrained(tmp_path)  # a saved BertForPreTraining folder loads back with both heads
    again = Encoder.from_hf(tmp_path).eval()
    assert again.config.head == "pretraining"
    assert torch.equal(again(**b).seq_relationship_logits, out.seq_relationship_logits)


def test_next_sentence_label_errors_name_the_fix():
    torch.manual_seed(0)
    b = batch(6)
    mlm = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=VOCAB, head="mlm"))
    with pytest.raises(InvalidInputError, match="head='pretraining'"):
        mlm(**b, next_sentence_label=torch.tensor([0, 1, 0]))
    both = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=VOCAB, head="pretraining"))
    with pytest.raises(InvalidInputError, match=r"shape \[batch\]"):
        both(**b, next_sentence_label=torch.tensor([0, 1]))
    with pytest.raises(InvalidInputError, match="pooler=True"):
        EncoderConfig.preset("encoder-tiny", head="pretraining", pooler=False)
