"""perplexity(): token-weighted, against Hugging Face's GPT-2 loss and by-hand sums over unpadded sequences."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labkit.errors import InvalidInputError
from labkit.evaluation.perplexity import PerplexityResult, perplexity
from labkit.models import GPT, LSTMLM, GPTConfig, LSTMConfig, Seq2Seq, Seq2SeqConfig

VOCAB = 61


@pytest.fixture(scope="module")
def gpt_pair():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    return model, model.to_hf().eval()


def _padded(seqs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-pad sequences into a batch with attention_mask and labels (-100 on padding)."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = s, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def test_equals_exp_of_transformers_gpt2_loss(gpt_pair):
    model, hf = gpt_pair
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (3, 20))
    with torch.no_grad():
        ref = hf(input_ids=ids, labels=ids).loss.item()
    ours = perplexity(model, [{"input_ids": ids, "labels": ids}])
    assert isinstance(ours, PerplexityResult)
    assert ours.tokens == 3 * 19  # the causal shift drops the first token of each row
    assert ours.loss == pytest.approx(ref, rel=1e-5)
    assert ours.perplexity == pytest.approx(math.exp(ref), rel=1e-5)
    # the same function accepts the Hugging Face model itself
    assert float(perplexity(hf, [{"input_ids": ids, "labels": ids}])) == pytest.approx(math.exp(ref), rel=1e-5)


def test_padding_and_unequal_batches_are_token_weighted(gpt_pair):
    model, hf = gpt_pair
    torch.manual_seed(2)
    seqs = [torch.randint(0, VOCAB, (n,)) for n in (3, 12, 7, 2, 16, 5)]
    batches = [_padded(seqs[:1]), _padded(seqs[1:4]), _padded(seqs[4:])]
    # by hand: each sequence alone (no padding) through transformers, NLL summed, divided by the target count
    with torch.no_grad():
        nll = sum(hf(input_ids=s[None], labels=s[None]).loss.item() * (len(s) - 1) for s in seqs)
        batch_means = [hf(**b).loss.item() for b in batches]
    tokens = sum(len(s) - 1 for s in seqs)
    result = perplexity(model, batches)
    assert result.tokens == tokens and result.batches == 3
    assert result.loss == pytest.approx(nll / tokens, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(nll / tokens), rel=1e-5)
    # averaging per-batch mean losses would give a different (wrong) answer on these batches
    assert abs(sum(batch_means) / len(batch_means) - result.loss) > 1e-3
    # without labels a causal batch scores input_ids where attention_mask is 1: the same result
    unlabeled = [{k: v for k, v in b.items() if k != "labels"} for b in batches]
    assert perplexity(hf, unlabeled).loss == pytest.approx(result.loss, rel=1e-5)


def test_max_batches_and_training_flags_restored(gpt_pair):
    model, _ = gpt_pair
    torch.manual_seed(3)
    batches = [_padded([torch.randint(0, VOCAB, (n,))]) for n in (4, 6, 9)]
    model.train()
    model.blocks[0].eval()  # a mixed state must come back exactly as it was
    flags = [m.training for m in model.modules()]
    try:
        stream = iter(batches)
        first_two = perplexity(model, stream, max_batches=2)
        assert [m.training for m in model.modules()] == flags
        assert next(stream) is batches[2]  # the third batch was not consumed
    finally:
        model.eval()
    assert first_two.batches == 2 and first_two.tokens == 3 + 5
    assert first_two.loss == pytest.approx(perplexity(model, batches[:2]).loss, rel=1e-6)


def test_lstm_is_shifted_and_weighted():
    torch.manual_seed(4)
    model = LSTMLM(LSTMConfig(vocab_size=VOCAB, n_embd=16, hidden_size=24, n_layer=1, dropout=0.0)).eval()
    batches = [_padded([torch.randint(0, VOCAB, (n,)) for n in lens]) for lens in ((5, 9), (3,), (11, 2, 6))]
    nll, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            n = int((b["labels"][:, 1:] != -100).sum())
            nll, count = nll + model(**b).loss.item() * n, count + n
    result = perplexity(model, batches)
    assert result.tokens == count
    assert result.loss == pytest.approx(nll / count, rel=1e-5)


def test_seq2seq_labels_are_not_shifted():
    torch.manual_seed(5)
    model = Seq2Seq(
        Seq2SeqConfig(
            src_vocab_size=40,
            tgt_vocab_size=VOCAB,
            n_embd=32,
            n_head=2,
            n_inner=64,
            n_layer=1,
            n_decoder_layer=1,
            dropout=0.0,
            label_smoothing=0.1,
        )
    ).eval()
    batches = []
    for lens in ((4, 7), (6,)):
        tgt = _padded([torch.randint(2, VOCAB, (n,)) for n in lens])
        batches.append(
            {
                "input_ids": torch.randint(2, 40, (len(lens), 5)),
                "labels": tgt["labels"],
                "decoder_attention_mask": tgt["attention_mask"],
            }
        )
    nll, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            logits = model(**b).logits
            # plain NLL by hand: the model's own loss carries label smoothing, perplexity must not
            nll += F.cross_entropy(
                logits.reshape(-1, VOCAB), b["labels"].reshape(-1), ignore_index=-100, reduction="sum"
            ).item()
            count += int((b["labels"] != -100).sum())
    result = perplexity(model, batches)
    assert result.tokens == count == 4 + 7 + 6
    assert result.loss == pytest.approx(nll / count, rel=1e-5)


def test_bad_inputs_raise_one_clear_error(gpt_pair):
    model, _ = gpt_pair
    ids = torch.randint(0, VOCAB, (1, 5))
    with pytest.raises(InvalidInputError, match="empty"):
        perplexity(model, [])
    with pytest.raises(InvalidInputError, match="-100"):
        perplexity(model, [{"input_ids": ids, "labels": torch.full_like(ids, -100)}])
    with pytest.raises(InvalidInputError, match="max_batches"):
        perplexity(model, [{"input_ids": ids}], max_batches=0)
    with pytest.raises(InvalidInputError, match="single dict"):
        perplexity(model, {"input_ids": ids})
    with pytest.raises(InvalidInputError, match="tuple"):
        perplexity(model, [(ids, ids)])
    with pytest.raises(InvalidInputError, match="shift_labels"):
        perplexity(torch.nn.Linear(3, 3), [{"input": torch.zeros(1, 3)}])
