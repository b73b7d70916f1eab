"""The "show your work" probe behind `Tokenizer.explain`: each token with its id, text span and BPE merges.

The tokenizer explorer draws these records. Two details make them trustworthy:

- Offsets are character offsets into the original text. Byte-level BPE can split one multi-byte
  character (an emoji, an accented letter) over several tokens; `tokenizers` then reports the same
  character span for each of them. Here the character goes to the first of those tokens and the
  others get an empty span (`text == ""`, `start == end`), so concatenating `text` over the tokens
  gives back the input exactly whenever the tokenizer covers every character (byte-level BPE, char).
- `merges` replays the model's merge list on the token's symbols, lowest rank first and leftmost on
  ties, as `tokenizers` does. Merges never cross the final token boundaries, so replaying them on
  one token alone applies exactly the merges that built it inside its word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - type hints only
    from labkit.data.tokenizer import Tokenizer

__all__ = ["TokenInfo", "explain", "merge_ranks", "replay_merges"]


@dataclass
class TokenInfo:
    """One token of `Tokenizer.explain(text)`: what it is, which slice of `text` it covers, how BPE built it."""

    id: int  # vocabulary id
    token: str  # the vocabulary entry (byte-level BPE shows bytes as printable stand-ins, e.g. "Ġthe")
    text: str  # the exact slice text[start:end] this token covers ("" for inserted special tokens)
    start: int  # character offset of the slice in text
    end: int  # end character offset (exclusive); start == end for special tokens the tokenizer inserted
    merges: list[str] = field(default_factory=list)  # BPE merges that built the token, in order: ["t h", "th e"]
    special: bool = False  # a special token ([CLS], <eos>, ...), inserted or matched in the text


def merge_ranks(tokenizer: Tokenizer) -> dict[tuple[str, str], int]:
    """A labkit Tokenizer in, its BPE merge ranks {(left, right): rank} out (empty for non-BPE models); cached."""
    cached = getattr(tokenizer, "_merge_ranks", None)
    if cached is not None:
        return cached
    model = json.loads(tokenizer.backend.to_str()).get("model", {})
    ranks: dict[tuple[str, str], int] = {}
    # Prefixes/suffixes (e.g. "</w>") change the initial symbols of a word; replaying without them would
    # invent merges, so such models show none.
    if (
        model.get("type") == "BPE"
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
    ):
        for rank, merge in enumerate(model.get("merges") or []):
            # tokenizers >= 0.20 stores [left, right]; older files store "left right".
            left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
            ranks.setdefault((left, right), rank)
    tokenizer._merge_ranks = ranks
    return ranks


def replay_merges(token: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """A token string and merge ranks in, the merges ("left right") that build it from its characters out."""
    symbols = list(token)
    applied: list[str] = []
    while len(symbols) > 1:
        candidates = [(ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
        if not candidates:
            break
        _, i = min(candidates)  # lowest rank first, leftmost on ties, like tokenizers' BPE
        applied.append(f"{symbols[i]} {symbols[i + 1]}")
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return applied


def explain(tokenizer: Tokenizer, text: str, add_special_tokens: bool = False) -> list[TokenInfo]:
    """A labkit Tokenizer and a text in, one TokenInfo per token out; see the module docstring for the rules."""
    encoding = tokenizer.backend.encode(text, add_special_tokens=add_special_tokens)
    ranks = merge_ranks(tokenizer)
    special_ids = tokenizer.special_ids
    infos: list[TokenInfo] = []
    cursor = 0
    for token_id, token, (start, end), inserted in zip(
        encoding.ids, encoding.tokens, encoding.offsets, encoding.special_tokens_mask
    ):
        if inserted:  # added by the post-processor: covers no text, sits where it was inserted
            start = end = cursor
        else:
            start = max(start, cursor)
            end = max(end, start)
            cursor = end
        special = bool(inserted) or token_id in special_ids
        merges = replay_merges(token, ranks) if ranks and not special else []
        infos.append(TokenInfo(token_id, token, text[start:end], start, end, merges, special))
    return infos
