"""Collators: padding matches Hugging Face's collators, masks mark exactly the real tokens, and BERT masking
follows 15% / 80-10-10 statistically while never touching special or padding positions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.data.collators import MLMCollator, PadCollator, mask_tokens
from labkit.errors import InvalidInputError

PAD, MASK, VOCAB = 0, 4, 1000
SPECIAL = frozenset({0, 1, 2, 3, 4})  # pad, unk, cls, sep, mask

sequences = st.lists(st.lists(st.integers(5, 99), min_size=0, max_size=12), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def hf_tokenizer():
    """A Hugging Face fast tokenizer over a WordLevel vocabulary whose [PAD] is id 0."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i for i in range(2, 100)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


@settings(max_examples=30, deadline=None)
@given(
    seqs=sequences.filter(lambda s: any(s)),
    side=st.sampled_from(["right", "left"]),
    multiple=st.sampled_from([None, 4, 8]),
)
def test_pad_collator_matches_transformers(hf_tokenizer, seqs, side, multiple):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    hf_tokenizer.padding_side = side
    ours = PadCollator(PAD, padding_side=side, pad_to_multiple_of=multiple)
    items = [{"input_ids": s} for s in seqs]
    theirs = DataCollatorWithPadding(hf_tokenizer, pad_to_multiple_of=multiple, return_tensors="pt")(items)
    got = ours(items)
    assert got.keys() == theirs.keys()
    for key in got:
        assert torch.equal(got[key], theirs[key].long()), key
    # Sources and targets of different lengths: labels are padded with -100 to their own longest item.
    pairs = [{"input_ids": s, "labels": list(reversed(s)) + [7]} for s in seqs]
    theirs = DataCollatorForSeq2Seq(hf_tokenizer, pad_to_multiple_of=multiple, return_tensors="pt")(pairs)
    got = ours(pairs)
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(got[key], theirs[key].long()), key


@settings(max_examples=50, deadline=None)
@given(seqs=sequences, side=st.sampled_from(["right", "left"]))
def test_attention_mask_marks_exactly_the_real_tokens(seqs, side):
    batch = PadCollator(PAD, padding_side=side)([{"input_ids": s, "labels": s} for s in seqs])
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == mask.shape == labels.shape == (len(seqs), max(len(s) for s in seqs))
    for row, seq in enumerate(seqs):
        assert mask[row].sum().item() == len(seq)
        assert ids[row][mask[row].bool()].tolist() == seq
        assert (ids[row][~mask[row].bool()] == PAD).all() and (labels[row][~mask[row].bool()] == -100).all()
        real = torch.nonzero(mask[row]).view(-1).tolist()
        width = ids.size(1)
        assert real == (list(range(len(seq))) if side == "right" else list(range(width - len(seq), width)))


def test_scalar_labels_stack_and_decoder_inputs_get_their_own_mask():
    batch = PadCollator(9)(
        [
            {"input_ids": [5, 6, 7], "decoder_input_ids": [1, 2], "labels": torch.tensor(1), "text": "a"},
            {"input_ids": [5], "decoder_input_ids": [1, 2, 3, 4], "labels": torch.tensor(0), "text": "b"},
        ]
    )
    assert batch["labels"].tolist() == [1, 0]
    assert batch["decoder_input_ids"].tolist() == [[1, 2, 9, 9], [1, 2, 3, 4]]
    assert batch["decoder_attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]] and batch["text"] == ["a", "b"]
    own = PadCollator(0)([{"input_ids": [3, 4], "attention_mask": [1, 0]}, {"input_ids": [3], "attention_mask": [1]}])
    assert own["attention_mask"].tolist() == [[1, 0], [1, 0]]  # an item's own mask is padded, not rebuilt


@pytest.mark.parametrize(
    "make, call, match",
    [
        (lambda: PadCollator(-1), None, "pad_id"),
        (lambda: PadCollator(0, padding_side="middle"), None, "padding_side"),
        (lambda: PadCollator(0, pad_to_multiple_of=0), None, "pad_to_multiple_of"),
        (lambda: PadCollator(0), [], "empty"),
        (lambda: PadCollator(0), [{"input_ids": [1]}, {"labels": [1]}], "different keys"),
        (lambda: PadCollator(0), [[1, 2]], "dict items"),
    ],
)
def test_pad_collator_errors(make, call, match):
    with pytest.raises(InvalidInputError, match=match):
        collator = make()
        collator(call)


def _stream(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Random ordinary ids with special tokens sprinkled in, as a real MLM batch looks."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, cols), generator=g)
    specials = torch.tensor(sorted(SPECIAL))
    spots = torch.rand(rows, cols, generator=g) < 0.1
    ids[spots] = specials[torch.randint(len(specials), (int(spots.sum()),), generator=g)]
    return ids


def test_mlm_masking_follows_15_percent_and_80_10_10():
    ids = _stream(400, 560, seed=0)
    eligible = ~torch.isin(ids, torch.tensor(sorted(SPECIAL)))
    n_eligible = int(eligible.sum())
    assert n_eligible > 200_000
    masked, labels = mask_tokens(
        ids, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, pad_id=PAD, generator=torch.Generator().manual_seed(1)
    )
    chosen = labels != -100
    assert abs(int(chosen.sum()) / n_eligible - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen]) and not (chosen & ~eligible).any()
    n = int(chosen.sum())
    to_mask = (masked == MASK) & chosen
    changed = (masked != ids) & (masked != MASK) & chosen
    kept = (masked == ids) & chosen  # includes the rare random draw that equals the original id (p = 1/995)
    assert abs(int(to_mask.sum()) / n - 0.8) < 0.01
    assert abs(int(changed.sum()) / n - 0.1) < 0.01
    assert abs(int(kept.sum()) / n - 0.1) < 0.01
    assert not torch.isin(masked[changed], torch.tensor(sorted(SPECIAL))).any()  # random ids are ordinary tokens
    random_ids = masked[changed]
    assert (
        random_ids.min() >= 5 and random_ids.max() < VOCAB and len(random_ids.unique()) > 900
    )  # spread over the vocabulary
    assert torch.equal(masked[~chosen], ids[~chosen])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 30),
    seed=st.integers(0, 2**31),
    p=st.floats(0.0, 1.0),
    use_mask=st.booleans(),
)
def test_mlm_never_touches_special_or_padding_positions(rows, cols, seed, p, use_mask):
    ids = _stream(rows, cols, seed)
    ids[:, 0] = 2  # [CLS]
    before = ids.clone()
    attention = (
        (torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)) < 0.8).long() if use_mask else None
    )
    masked, labels = mask_tokens(
        ids,
        mask_id=MASK,
        vocab_size=VOCAB,
        special_ids=SPECIAL - {PAD, MASK},
        pad_id=PAD,
        probability=p,
        generator=torch.Generator().manual_seed(seed),
        attention_mask=attention,
    )
    assert torch.equal(ids, before)  # input untouched
    protected = torch.isin(ids, torch.tensor(sorted(SPECIAL)))
    if attention is not None:
        protected |= attention == 0
    assert (labels[protected] == -100).all() and torch.equal(masked[protected], ids[protected])
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(masked[~chosen], ids[~chosen])
    if p == 1.0:
        assert torch.equal(chosen, ~protected)
    if p == 0.0:
        assert not chosen.any()


def test_mask_tokens_is_deterministic_by_generator_and_validates():
    ids = _stream(4, 50, seed=3)

    def run(s):
        return mask_tokens(
            ids, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, generator=torch.Generator().manual_seed(s)
        )

    assert all(torch.equal(a, b) for a, b in zip(run(7), run(7)))
    assert not torch.equal(run(7)[1], run(8)[1])
    with pytest.raises(InvalidInputError, match="mask_id"):
        mask_tokens(ids, mask_id=VOCAB, vocab_size=VOCAB)
    with pytest.raises(InvalidInputError, match="probability"):
        mask_tokens(ids, mask_id=MASK, vocab_size=VOCAB, probability=1.5)
    with pytest.raises(InvalidInputError, match="integer"):
        mask_tokens(ids.float(), mask_id=MASK, vocab_size=VOCAB)
    with pytest.raises(InvalidInputError, match="ordinary tokens"):
        mask_tokens(torch.tensor([[1, 2]]), mask_id=0, vocab_size=3, special_ids={1, 2})


def _tokenizer_like() -> SimpleNamespace:
    return SimpleNamespace(pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL)


def test_mlm_collator_pads_masks_and_resumes_by_state():
    items = [{"input_ids": [2] + list(range(10, 10 + n)) + [3], "labels": 1} for n in (5, 30, 12, 1)]
    collator = MLMCollator(_tokenizer_like(), probability=0.5, seed=3)
    batch = collator(items)
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and batch["input_ids"].shape == (4, 32)
    pads = batch["attention_mask"] == 0
    assert (batch["labels"][pads] == -100).all() and (batch["input_ids"][pads] == PAD).all()
    assert (batch["labels"][:, 0] == -100).all()  # [CLS] is never a target
    assert (batch["labels"] != -100).any()
    sequence = [collator(items) for _ in range(4)]
    assert not torch.equal(sequence[0]["labels"], sequence[1]["labels"])  # a new mask per batch
    fresh = MLMCollator(_tokenizer_like(), probability=0.5, seed=3)
    fresh.load_state_dict(json.loads(json.dumps({"seed": 3, "calls": 3})))
    assert torch.equal(fresh(items)["input_ids"], sequence[2]["input_ids"])
    explicit = MLMCollator(PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, probability=0.5, seed=3)
    assert torch.equal(explicit(items)["labels"], batch["labels"])
    with pytest.raises(InvalidInputError, match="seed"):
        fresh.load_state_dict({"seed": 4, "calls": 0})
    with pytest.raises(InvalidInputError, match="mask_id"):
        MLMCollator(PAD)
    with pytest.raises(InvalidInputError, match="pad"):
        MLMCollator(SimpleNamespace(pad_id=None, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL))


def test_mlm_batch_trains_an_encoder():
    from labkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    model = Encoder(EncoderConfig.preset("encoder-tiny", vocab_size=VOCAB))
    items = [{"input_ids": [2] + list(range(10 + n, 30 + n)) + [3]} for n in range(8)]
    batch = MLMCollator(_tokenizer_like(), seed=0, probability=0.3)(items)
    out = model(**batch)
    chosen = batch["labels"] != -100
    manual = torch.nn.functional.cross_entropy(out.logits[chosen], batch["labels"][chosen])
    torch.testing.assert_close(out.loss, manual)
