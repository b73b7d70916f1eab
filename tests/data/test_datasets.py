"""Datasets and batch iterators: windows are slices of the stream, splits are deterministic and disjoint,
iterators resume exactly, and the batches feed labkit's models through `model(**batch)`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, processors, trainers
from torch.utils.data import DataLoader

from labkit.data.collators import MLMCollator, PadCollator
from labkit.data.datasets import (
    Batches,
    ClassificationDataset,
    LMBlocks,
    RandomBlockBatches,
    Seq2SeqDataset,
    train_val_split,
)
from labkit.errors import InvalidInputError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"]
TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song",
    "we read a good book today",
    "the sun is warm and bright",
    "it rained all day long",
    "le chat dort sur le tapis",
    "un chien court dans le parc",
    "il pleut toute la journée",
]


class WordTokenizer:
    """Test adapter: a real `tokenizers` WordLevel model behind labkit's tokenizer protocol."""

    def __init__(self, texts: list[str]) -> None:
        tok = HFTokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIALS))
        ids = {name: tok.token_to_id(name) for name in SPECIALS}
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
        )
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id, self.bos_id, self.eos_id = ids.values()
        self.special_ids = frozenset(ids.values())

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=add_special_tokens)]


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer(TEXTS)


# ---------------------------------------------------------------- LMBlocks


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 300),
    block=st.integers(1, 40),
    stride=st.one_of(st.none(), st.integers(1, 50)),
    kind=st.sampled_from(["list", "numpy", "tensor"]),
)
def test_lmblocks_windows_are_slices_that_cover_the_stream(n, block, stride, kind):
    block = min(block, n - 1)
    stream = list(np.random.default_rng(n).integers(0, 1000, n))
    data = {"list": stream, "numpy": np.array(stream), "tensor": torch.tensor(stream)}[kind]
    ds = LMBlocks(data, block, stride)
    step = block if stride is None else stride
    covered = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["input_ids"].dtype == torch.long and item["input_ids"].shape == (block,)
        assert item["input_ids"].tolist() == stream[i * step : i * step + block]
        assert torch.equal(item["labels"], item["input_ids"])  # aligned: the model shifts
        covered.update(range(i * step, i * step + block))
    # Every token is in some window except a tail shorter than one stride (or the gaps of a stride > block).
    last_end = (len(ds) - 1) * step + block
    assert n - last_end < step
    if step <= block:
        assert covered == set(range(last_end))
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert torch.equal(ds[-1]["input_ids"], ds[len(ds) - 1]["input_ids"])


def test_lmblocks_items_do_not_alias_the_stream():
    ds = LMBlocks(torch.arange(10), 4)
    ds[0]["labels"][:] = -100
    assert ds.ids[:4].tolist() == [0, 1, 2, 3]


def test_block_size_larger_than_data_is_a_one_line_error():
    with pytest.raises(InvalidInputError) as err:
        LMBlocks(list(range(500)), 1024)
    assert (
        str(err.value) == "block_size 1024 is larger than the data (500 tokens); use a smaller block_size or more text"
    )
    with pytest.raises(InvalidInputError, match="block_size 1024 is larger than the data"):
        RandomBlockBatches(torch.arange(500), 1024, 2)
    for bad in (0, -3, 2.5):
        with pytest.raises(InvalidInputError, match="block_size"):
            LMBlocks(list(range(10)), bad)
    with pytest.raises(InvalidInputError, match="at least 11 tokens"):
        LMBlocks(list(range(10)), 10)
    with pytest.raises(InvalidInputError, match="1-d"):
        LMBlocks(torch.zeros(3, 4, dtype=torch.long), 2)
    with pytest.raises(InvalidInputError, match="stride"):
        LMBlocks(list(range(10)), 2, stride=0)


def test_from_texts_packs_documents_separated_by_eos(tok):
    ds = LMBlocks.from_texts(TEXTS, tok, block_size=4)
    stream = ds.ids.tolist()
    docs, current = [], []
    for t in stream:
        if t == tok.eos_id:
            docs.append(current)
            current = []
        else:
            current.append(t)
    assert current == [] and docs == [tok.encode(t) for t in TEXTS]
    assert len(ds) == len(stream) // 4
    assert LMBlocks.from_texts(TEXTS, tok, 4, add_eos=False).ids.tolist() == [i for t in TEXTS for i in tok.encode(t)]


def test_lmblocks_batch_feeds_gpt(tok):
    from labkit.models import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size, block_size=8)).eval()
    batch = next(iter(Batches(LMBlocks.from_texts(TEXTS, tok, 8), batch_size=3)))
    assert set(batch) == {"input_ids", "labels"} and batch["input_ids"].shape == (3, 8)
    out = model(**batch)
    manual = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, tok.vocab_size), batch["input_ids"][:, 1:].reshape(-1)
    )
    torch.testing.assert_close(out.loss, manual)


# ---------------------------------------------------------------- train_val_split


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 200), frac=st.floats(0.01, 0.99), seed=st.integers(0, 2**31))
def test_split_examples_is_deterministic_disjoint_and_complete(n, frac, seed):
    examples = [f"ex{i}" for i in range(n)]
    n_val = max(1, round(n * frac))
    if n_val >= n:  # nothing would be left to train on
        with pytest.raises(InvalidInputError, match="too few"):
            train_val_split(examples, frac, seed=seed)
        return
    train, val = train_val_split(examples, frac, seed=seed)
    assert (train, val) == train_val_split(examples, frac, seed=seed)
    assert not set(train) & set(val) and sorted(train + val) == sorted(examples)
    assert len(val) == n_val
    t_train, t_val = train_val_split(torch.arange(n).view(n, 1), frac, seed=seed)  # tensor of examples: same indices
    assert [f"ex{i}" for i in t_train.view(-1).tolist()] == train and [f"ex{i}" for i in t_val.view(-1).tolist()] == val


def test_split_shuffles_by_seed_and_streams_split_contiguously():
    examples = list(range(100))
    a, b = (
        train_val_split([str(i) for i in examples], 0.2, seed=0),
        train_val_split([str(i) for i in examples], 0.2, seed=1),
    )
    assert a != b
    train, val = train_val_split(examples, 0.2)  # a list of ints is a token stream: the tail is val
    assert train == examples[:80] and val == examples[80:]
    stream = torch.arange(1000)
    train, val = train_val_split(stream, 0.1, seed=123)
    assert torch.equal(torch.cat([train, val]), stream) and len(val) == 100
    shuffled_train, shuffled_val = train_val_split(stream, 0.1, contiguous=False)
    assert sorted(torch.cat([shuffled_train, shuffled_val]).tolist()) == list(range(1000))
    assert shuffled_val.tolist() != list(range(900, 1000))
    sub_train, sub_val = train_val_split(LMBlocks(stream, 10), 0.1)  # a dataset: torch Subsets
    assert len(sub_train) == 90 and len(sub_val) == 10 and not set(sub_train.indices) & set(sub_val.indices)


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, True])
def test_split_rejects_fractions_outside_open_unit_interval(frac):
    with pytest.raises(InvalidInputError, match="val_fraction"):
        train_val_split(list(range(10)), frac)


def test_split_rejects_too_little_data():
    with pytest.raises(InvalidInputError, match="too few"):
        train_val_split([7], 0.5)


# ---------------------------------------------------------------- RandomBlockBatches


def test_random_blocks_are_windows_of_the_stream_and_match_a_stack_of_slices():
    stream = torch.randint(0, 50, (300,), generator=torch.Generator().manual_seed(0))
    it = RandomBlockBatches(stream, block_size=16, batch_size=5, seed=3, steps=40)
    starts = []
    for step, batch in enumerate(it):
        offsets = it.offsets(step)
        reference = torch.stack([stream[i : i + 16] for i in offsets.tolist()])  # nanoGPT's formulation
        assert torch.equal(batch["input_ids"], reference) and torch.equal(batch["labels"], reference)
        starts += offsets.tolist()
    assert len(it) == 40 and it.served == 40 and list(it) == []
    assert 0 <= min(starts) and max(starts) <= 300 - 16
    with pytest.raises(TypeError, match="steps"):
        len(RandomBlockBatches(stream, 16, 5))


def test_random_blocks_reach_both_ends_of_the_stream():
    it = RandomBlockBatches(torch.arange(12), block_size=4, batch_size=64, seed=0, steps=4)
    starts = {row[0].item() for batch in it for row in batch["input_ids"]}
    assert starts == set(range(9))  # every start 0..len-T is drawn


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**40), k=st.integers(0, 12), m=st.integers(1, 6))
def test_random_blocks_resume_exactly(seed, k, m):
    stream = torch.arange(200) * 7 % 101
    uninterrupted = RandomBlockBatches(stream, 8, 4, seed=seed)
    expected = [next(uninterrupted)["input_ids"] for _ in range(k + m)][k:]
    first = RandomBlockBatches(stream, 8, 4, seed=seed)
    for _ in range(k):
        next(first)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = RandomBlockBatches(stream, 8, 4, seed=seed)
    resumed.load_state_dict(state)
    got = [next(resumed)["input_ids"] for _ in range(m)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_random_blocks_depend_on_seed_and_refuse_foreign_state():
    stream = torch.arange(500)
    a = next(RandomBlockBatches(stream, 8, 4, seed=0))["input_ids"]
    assert torch.equal(a, next(RandomBlockBatches(stream, 8, 4, seed=0))["input_ids"])
    assert not torch.equal(a, next(RandomBlockBatches(stream, 8, 4, seed=1))["input_ids"])
    with pytest.raises(InvalidInputError, match="batch_size"):
        RandomBlockBatches(stream, 8, 2).load_state_dict(RandomBlockBatches(stream, 8, 4).state_dict())


# ---------------------------------------------------------------- Batches


class IndexDataset:
    """Item i is {"index": i}, so a batch shows which items it holds."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"index": torch.tensor(i)}


def _indices(batches) -> list[list[int]]:
    return [b["index"].tolist() for b in batches]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), bs=st.integers(1, 9), drop_last=st.booleans(), seed=st.integers(0, 1000))
def test_each_epoch_is_a_permutation_and_epochs_differ(n, bs, drop_last, seed):
    if drop_last and n < bs:
        with pytest.raises(InvalidInputError):
            Batches(IndexDataset(n), bs, drop_last=drop_last)
        return
    batches = Batches(IndexDataset(n), bs, seed=seed, drop_last=drop_last)
    epochs = []
    for epoch in range(3):
        assert batches.epoch == epoch
        got = _indices(batches)
        assert len(got) == len(batches) == (n // bs if drop_last else -(-n // bs))
        flat = [i for b in got for i in b]
        assert len(set(flat)) == len(flat) and set(flat) <= set(range(n))
        assert len(flat) == (len(batches) * bs if drop_last else n)
        assert all(len(b) == bs for b in got[:-1])
        epochs.append(flat)
    assert batches.epoch == 3
    if n >= 8 and not drop_last:
        assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    assert (
        _indices(Batches(IndexDataset(n), bs, seed=seed, drop_last=drop_last))
        == [b for b in _chunks(epochs[0], bs)][: len(batches)]
    )


def _chunks(flat: list[int], size: int) -> list[list[int]]:
    return [flat[i : i + size] for i in range(0, len(flat), size)]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), bs=st.integers(1, 7), k=st.integers(0, 25), seed=st.integers(0, 99))
def test_batches_resume_at_exactly_the_next_batch(n, bs, k, seed):
    def stream(b: Batches, count: int) -> list[list[int]]:
        out = []
        while len(out) < count:
            for batch in b:
                out.append(batch["index"].tolist())
                if len(out) == count:
                    break
        return out

    expected = stream(Batches(IndexDataset(n), bs, seed=seed), k + 10)
    first = Batches(IndexDataset(n), bs, seed=seed)
    assert stream(first, k) == expected[:k]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = Batches(IndexDataset(n), bs, seed=seed)
    resumed.load_state_dict(state)
    assert stream(resumed, 10) == expected[k:]
    assert stream(first, 10) == expected[k:]  # the same object also continues where its loop stopped


def test_unshuffled_batches_match_torch_dataloader(tok):
    ds = ClassificationDataset(TEXTS, [i % 3 for i in range(len(TEXTS))], tok)
    collate = PadCollator(tok.pad_id)
    ours = list(Batches(ds, 4, shuffle=False, collate_fn=collate))
    theirs = list(DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_batches_resume_mlm_masks_through_collator_state(tok):
    ds = ClassificationDataset(TEXTS * 3, [0] * 27, tok)
    make = lambda: Batches(ds, 4, seed=5, collate_fn=MLMCollator(tok, seed=11, probability=0.5))  # noqa: E731
    full = make()
    expected = [b for _ in range(2) for b in full][:12]
    part = make()
    got = []
    for b in part:
        got.append(b)
        if len(got) == 5:  # stop mid-epoch
            break
    resumed = make()
    resumed.load_state_dict(json.loads(json.dumps(part.state_dict())))
    got += [b for _ in range(2) for b in resumed][:7]
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])


def test_batches_errors():
    with pytest.raises(InvalidInputError, match="batch_size"):
        Batches(IndexDataset(5), 0)
    with pytest.raises(InvalidInputError, match="map-style"):
        Batches(iter(range(3)), 2)
    with pytest.raises(InvalidInputError, match="num_items"):
        Batches(IndexDataset(5), 2).load_state_dict(Batches(IndexDataset(6), 2).state_dict())
    uneven = [{"input_ids": torch.arange(3)}, {"input_ids": torch.arange(2)}]
    with pytest.raises(InvalidInputError, match="PadCollator"):
        next(iter(Batches(uneven, 2)))


# ---------------------------------------------------------------- classification and seq2seq


def test_classification_items_and_padded_batches_feed_an_encoder(tok):
    from labkit.models import Encoder, EncoderConfig

    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2]
    ds = ClassificationDataset(TEXTS, labels, tok, max_length=5)
    assert ds.num_labels == 3 and len(ds) == 9
    for text, item in zip(TEXTS, (ds[i] for i in range(len(ds)))):
        full = tok.encode(text, add_special_tokens=True)
        expected = full if len(full) <= 5 else full[:4] + [tok.sep_id]  # truncation keeps the closing [SEP]
        assert item["input_ids"].tolist() == expected and item["labels"].dim() == 0
    batch = next(iter(Batches(ds, 4, seed=0)))  # default collate pads with the tokenizer's pad id
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and batch["labels"].shape == (4,)
    torch.manual_seed(0)
    model = Encoder(
        EncoderConfig.preset(
            "encoder-tiny", vocab_size=tok.vocab_size, head="classification", num_labels=3, pooler=True
        )
    )
    out = model(**batch)
    assert out.logits.shape == (4, 3) and torch.isfinite(out.loss)
    plain = ClassificationDataset(TEXTS, labels, tok, add_special_tokens=False)
    assert plain[0]["input_ids"].tolist() == tok.encode(TEXTS[0])


@pytest.mark.parametrize(
    "labels, match",
    [([0, 1], "2 labels"), ([0] * 8 + [-1], "non-negative"), ([0.5] * 9, "integer"), (["a"] * 9, "integer")],
)
def test_classification_rejects_bad_labels(tok, labels, match):
    with pytest.raises(InvalidInputError, match=match):
        ClassificationDataset(TEXTS, labels, tok)


def test_classification_num_labels_bound(tok):
    assert ClassificationDataset(TEXTS, [0] * 9, tok, num_labels=4).num_labels == 4
    with pytest.raises(InvalidInputError, match="num_labels"):
        ClassificationDataset(TEXTS, [0] * 8 + [3], tok, num_labels=3)


def test_seq2seq_labels_end_with_eos_and_feed_the_model(tok):
    from labkit.models import Seq2Seq, Seq2SeqConfig

    src, tgt = TEXTS[:3], TEXTS[6:9]
    ds = Seq2SeqDataset(src, tgt, tok, max_source_length=6, max_target_length=5)
    for i in range(3):
        item = ds[i]
        body = tok.encode(tgt[i])[:4]
        assert item["labels"].tolist() == body + [tok.eos_id] and item["labels"][0] != tok.bos_id
        assert item["input_ids"].tolist() == tok.encode(src[i])[:5] + [tok.eos_id]
    overrides = ds.config_overrides()
    assert overrides["decoder_start_token_id"] == tok.bos_id and overrides["pad_token_id"] == tok.pad_id
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig.preset("transformer-tiny", **overrides)).eval()
    batch = PadCollator(tok.pad_id)([ds[i] for i in range(3)])
    out = model(**batch)
    assert torch.isfinite(out.loss)
    decoder_inputs = model.shift_right(batch["labels"])
    assert (decoder_inputs[:, 0] == tok.bos_id).all()
    # The decoder sees the target without its last token; padded label positions are never targets.
    manual = torch.nn.functional.cross_entropy(
        out.logits.reshape(-1, out.logits.size(-1)), batch["labels"].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, manual)


def test_seq2seq_separate_tokenizers_and_errors(tok):
    other = WordTokenizer(["un deux trois", "quatre cinq"])
    ds = Seq2SeqDataset(["the cat"], ["un deux"], tok, other)
    assert ds[0]["labels"].tolist() == other.encode("un deux") + [other.eos_id]
    assert ds.config_overrides()["tgt_vocab_size"] == other.vocab_size
    with pytest.raises(InvalidInputError, match="parallel"):
        Seq2SeqDataset(["a", "b"], ["c"], tok)
    no_eos = WordTokenizer(["x"])
    no_eos.eos_id = None
    with pytest.raises(InvalidInputError, match="eos"):
        Seq2SeqDataset(["a"], ["b"], tok, no_eos)


def test_works_with_labkits_own_tokenizer():
    from labkit.data.tokenizer import train_tokenizer

    tok = train_tokenizer(TEXTS, kind="char")
    blocks = LMBlocks.from_texts(TEXTS, tok, block_size=16)
    assert (blocks.ids == tok.eos_id).sum() == len(TEXTS)
    ds = ClassificationDataset(TEXTS, [i % 2 for i in range(9)], tok, max_length=10)
    batch = next(iter(Batches(ds, 4, collate_fn=MLMCollator(tok, seed=0))))
    assert batch["input_ids"].shape == batch["labels"].shape == (4, 10)
    assert not torch.isin(batch["labels"], torch.tensor(sorted(tok.special_ids))).any()
    pairs = Seq2SeqDataset(TEXTS[:3], TEXTS[6:], tok)
    assert pairs[0]["labels"][-1] == tok.eos_id and pairs.config_overrides()["decoder_start_token_id"] == tok.bos_id
