"""A labkit Tokenizer in, the plain-JSON spec the page's JavaScript tokenizer (`widgets/tokenizer.js`) runs on out.

The spec holds exactly what encoding needs: the vocabulary by id, the special tokens that are split out first,
the unknown-token id, the BPE merges and the normalizer options. Only the pipelines `train_tokenizer` builds are
accepted ("char", byte-level "bpe", "wordpiece"); anything else raises one clear error, because a page whose
ids differ from Python's would silently show a different model.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from typing import Any

from labkit.errors import InvalidInputError

__all__ = ["tokenizer_spec"]


def _refuse(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"the page's JavaScript tokenizer runs labkit's char, bpe and wordpiece tokenizers; this one has {what}; "
        "train one with labkit.data.train_tokenizer"
    )


def _lowercase_only(normalizer: dict[str, Any] | None) -> bool:
    if normalizer is None:
        return False
    if normalizer.get("type") == "Lowercase":
        return True
    raise _refuse(f"a {normalizer.get('type')} normalizer")


def _ranges(cps: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


@cache
def bert_tables() -> dict[str, list[list[int]]]:
    """Non-ASCII punctuation and the format characters BERT's clean-up removes, as the installed `tokenizers` sees them.

    Its Unicode tables are older than a browser's, so the page gets these sets explicitly instead of
    trusting `\\p{P}` / `\\p{Cf}`: both are read off the library itself (candidates from Python's tables).
    """
    from tokenizers import normalizers, pre_tokenizers

    cats = {"P": [], "Cf": []}
    for cp in range(0x80, 0x110000):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "P":
            cats["P"].append(cp)
        elif cat == "Cf":
            cats["Cf"].append(cp)
    words = pre_tokenizers.BertPreTokenizer().pre_tokenize_str("".join(f"x{chr(cp)}x " for cp in cats["P"]))
    punct = sorted(cats["P"][a // 4] for _, (a, b) in words if a % 4 == 1 and b - a == 1)
    clean = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
    )
    removed = [cp for cp in cats["Cf"] if clean.normalize_str(f"a{chr(cp)}b") == "ab"]
    return {"punct": _ranges(punct), "format": _ranges(removed)}


def tokenizer_spec(tokenizer: Any) -> dict[str, Any]:
    """A labkit Tokenizer (kind "char", "bpe" or "wordpiece") in, the JSON-able spec for `makeTokenizer` out."""
    backend = getattr(tokenizer, "backend", None)
    if backend is None:
        raise InvalidInputError(f"expected a labkit Tokenizer, got {type(tokenizer).__name__}")
    data = json.loads(backend.to_str())
    model, pre = data["model"], data.get("pre_tokenizer")
    vocab_map = backend.get_vocab(with_added_tokens=True)
    vocab = [""] * len(vocab_map)
    for token, i in vocab_map.items():
        if i >= len(vocab):
            raise _refuse("non-contiguous token ids")
        vocab[i] = token
    added = []
    for tok in data.get("added_tokens", []):
        if tok.get("normalized") or tok.get("lstrip") or tok.get("rstrip") or tok.get("single_word"):
            raise _refuse(f"an added token {tok['content']!r} with matching options")
        added.append([tok["content"], tok["id"]])
    unk_token = model.get("unk_token")
    unk = vocab_map.get(unk_token) if unk_token else None
    spec: dict[str, Any] = {"vocab": vocab, "added": added, "unk": unk}
    if model["type"] == "BPE":
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("byte_fallback"):
            raise _refuse("BPE prefixes, suffixes or byte fallback")
        merges = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in model.get("merges", [])]
        lowercase = _lowercase_only(data.get("normalizer"))
        if pre is None and not merges:
            spec.update(kind="char", lowercase=lowercase)
        elif (
            pre is not None
            and pre.get("type") == "ByteLevel"
            and not pre.get("add_prefix_space")
            and pre.get("use_regex", True)
        ):
            spec.update(kind="bpe", lowercase=lowercase, merges=merges)
        else:
            raise _refuse(f"pre-tokenizer {pre and pre.get('type')!r} with {len(merges)} merges")
    elif model["type"] == "WordPiece":
        norm = data.get("normalizer") or {}
        if norm.get("type") != "BertNormalizer" or (pre or {}).get("type") != "BertPreTokenizer":
            raise _refuse(f"normalizer {norm.get('type')!r} and pre-tokenizer {(pre or {}).get('type')!r}")
        spec.update(
            kind="wordpiece",
            bert={k: norm.get(k) for k in ("clean_text", "handle_chinese_chars", "strip_accents", "lowercase")},
            prefix=model.get("continuing_subword_prefix", "##"),
            max_chars=model.get("max_input_chars_per_word", 100),
            **bert_tables(),
        )
        if unk is None:
            raise _refuse("no unknown token")
    else:
        raise _refuse(f"a {model['type']} model")
    return spec
