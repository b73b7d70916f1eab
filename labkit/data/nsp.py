"""Next-sentence prediction data: documents in, sentence pairs (half true next sentences, half random) out.

BERT's second pretraining objective asks, for a pair of segments A and B, whether B is the sentence that
follows A in the same document (label 0, "is next") or a sentence drawn from another document (label 1,
"random"); the labels follow transformers' `next_sentence_label`. `next_sentence_pairs` builds the pairs
from a list of documents (each a text or a list of sentences), seeded; `NextSentenceDataset` encodes them
as `[CLS] A [SEP] B [SEP]` with segment ids 0 for A and 1 for B, ready for `MLMCollator` (which masks the
tokens and passes `token_type_ids` and `next_sentence_label` through) and an Encoder with
`head="pretraining"`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError

__all__ = ["SentencePair", "split_at_sentence_ends", "next_sentence_pairs", "NextSentenceDataset", "IS_NEXT", "RANDOM"]

IS_NEXT, RANDOM = 0, 1  # transformers' BertForPreTraining: 0 = B continues A, 1 = B is a random sentence

# A sentence ends at . ! or ? (optionally followed by closing quotes or brackets) before whitespace; line breaks
# (paragraphs, headlines) end one too. A simple rule: abbreviations such as "Mr. Smith" split in two.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n+\s*")


class SentencePair(NamedTuple):
    """One NSP example: segments `a` and `b`, `label` (0 = b follows a, 1 = b is random) and where they came from."""

    a: str
    b: str
    label: int  # IS_NEXT (0) or RANDOM (1)
    doc_a: int  # index of the document that `a` comes from
    doc_b: int  # index of the document that `b` comes from (== doc_a exactly when label is IS_NEXT)


def split_at_sentence_ends(text: str) -> list[str]:
    """A text in, its sentences out: split after . ! ? and at line breaks; empty pieces dropped."""
    if not isinstance(text, str):
        raise InvalidInputError(f"split_at_sentence_ends takes a string, got {type(text).__name__}")
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _as_documents(documents: Any) -> list[list[str]]:
    if isinstance(documents, str):
        raise InvalidInputError("documents is one string; pass a list of documents (texts or lists of sentences)")
    texts = getattr(documents, "texts", documents)  # a labkit Corpus: one document per text
    docs = []
    for i, doc in enumerate(texts):
        if isinstance(doc, str):
            docs.append(split_at_sentence_ends(doc))
        elif isinstance(doc, Sequence) and all(isinstance(s, str) for s in doc):
            docs.append([s for s in doc if s.strip()])
        else:
            raise InvalidInputError(
                f"document {i} is a {type(doc).__name__}; each document must be a text or a list of sentences"
            )
    return docs


def next_sentence_pairs(
    documents: Any,
    *,
    random_fraction: float = 0.5,
    max_pairs: int | None = None,
    seed: int = 0,
) -> list[SentencePair]:
    """Documents in, NSP pairs out: one pair per consecutive sentence pair, `random_fraction` of them with a random B.

    documents: a list of texts (split with `split_at_sentence_ends`), a list of lists of sentences, or a labkit Corpus.
    random_fraction: share of pairs whose B is replaced by a sentence of another document (BERT: 0.5); the
        count is exact, round(random_fraction * number of pairs), so a half is a half.
    max_pairs: keep this many pairs, drawn at random (before the labels are assigned); None keeps all.
    seed: the pairs kept, which become random and the random sentences are a function of it.
    Needs at least two documents with sentences (a random B must come from another document) and one
    document with two sentences.
    """
    check_float("random_fraction", random_fraction, low=0, high=1, fix="BERT uses 0.5")
    check_int("max_pairs", max_pairs, allow_none=True)
    check_int("seed", seed, low=None)
    docs = _as_documents(documents)
    positions = [(d, i) for d, sents in enumerate(docs) for i in range(len(sents) - 1)]
    if not positions:
        raise InvalidInputError(
            "no document has two sentences, so there is no true next sentence; pass longer documents"
        )
    rng = random.Random(seed)
    if max_pairs is not None and max_pairs < len(positions):
        positions = sorted(rng.sample(positions, max_pairs))
    n_random = round(random_fraction * len(positions))
    donors = [d for d, sents in enumerate(docs) if sents]
    if n_random and len(donors) < 2:
        raise InvalidInputError(
            "random next sentences come from another document, but only one document has sentences; "
            "pass at least two documents or random_fraction=0"
        )
    make_random = set(rng.sample(range(len(positions)), n_random))
    pairs = []
    for k, (d, i) in enumerate(positions):
        a = docs[d][i]
        if k in make_random:
            other = rng.choice(donors[:-1])  # uniform over the other documents: skip d by shifting past it
            other = donors[-1] if other == d else other
            pairs.append(SentencePair(a, rng.choice(docs[other]), RANDOM, d, other))
        else:
            pairs.append(SentencePair(a, docs[d][i + 1], IS_NEXT, d, d))
    return pairs


def _fit_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Trim the longer of the two segments, one token at a time from its end, until both fit in `budget` tokens."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


class NextSentenceDataset:
    """NSP pairs and a tokenizer in, items {"input_ids", "token_type_ids", "next_sentence_label"} out.

    pairs: `SentencePair`s (from `next_sentence_pairs`) or (a, b, label) triples. tokenizer: a labkit Tokenizer
    with [CLS] and [SEP] (e.g. WordPiece from `train_tokenizer(kind="wordpiece")`). max_length: tokens per
    item including the three special tokens; longer pairs lose tokens from the end of the longer segment
    (BERT's "longest first"). Items carry no `labels`: `MLMCollator` adds the masked-LM ones.
    """

    def __init__(self, pairs: Sequence[Any], tokenizer: Any, max_length: int = 128) -> None:
        check_int("max_length", max_length, low=5, fix="a pair needs [CLS] A [SEP] B [SEP], at least 5 tokens")
        pairs = list(pairs)
        if not pairs:
            raise InvalidInputError("NextSentenceDataset got no pairs; build some with next_sentence_pairs(documents)")
        cls_id, sep_id = getattr(tokenizer, "cls_id", None), getattr(tokenizer, "sep_id", None)
        if cls_id is None or sep_id is None:
            raise InvalidInputError(
                "the tokenizer has no [CLS]/[SEP] tokens; train one with train_tokenizer(texts, kind='wordpiece')"
            )
        labels = [int(p[2]) for p in pairs]
        if any(x not in (IS_NEXT, RANDOM) for x in labels):
            raise InvalidInputError("pair labels must be 0 (B follows A) or 1 (B is random)")
        enc_a = tokenizer.encode_batch([p[0] for p in pairs], add_special_tokens=False)
        enc_b = tokenizer.encode_batch([p[1] for p in pairs], add_special_tokens=False)
        self.input_ids, self.token_type_ids = [], []
        for a, b in zip(enc_a, enc_b):
            a, b = _fit_pair(a, b, max_length - 3)
            ids = [cls_id, *a, sep_id, *b, sep_id]
            self.input_ids.append(torch.tensor(ids, dtype=torch.long))
            self.token_type_ids.append(torch.tensor([0] * (len(a) + 2) + [1] * (len(b) + 1), dtype=torch.long))
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.pairs = pairs
        self.pad_id = getattr(tokenizer, "pad_id", None)  # Batches reads it to pad with PadCollator

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[index],
            "token_type_ids": self.token_type_ids[index],
            "next_sentence_label": self.labels[index],
        }

    def __repr__(self) -> str:
        share = float(self.labels.float().mean()) if len(self) else 0.0
        return f"NextSentenceDataset({len(self)} pairs, {share:.0%} random)"
