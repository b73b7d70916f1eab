"""Tokenizers built on Hugging Face `tokenizers`: train (char, byte-level BPE, WordPiece), load, encode, explain.

A labkit `Tokenizer` wraps a `tokenizers.Tokenizer` (`.backend`) and adds what lessons need: named
special-token roles (`pad_id`, `eos_id`, ...), ids in and out as plain lists or tensors, an HF-style
`__call__` that pads a batch into tensors, and `explain(text)`, the probe the tokenizer explorer draws.

Kinds:
- "char": one token per Unicode character seen in training (a BPE model without merges); unseen
  characters become `<unk>`. Special tokens `<pad> <unk> <bos> <eos> <mask> <cls> <sep>` (ids 0-6),
  then the characters in code-point order.
- "bpe": GPT-2 style byte-level BPE (ByteLevel pre-tokenizer without prefix space, all 256 bytes in
  the alphabet), so every string round-trips. Same special tokens as "char".
- "wordpiece": BERT style (BertNormalizer, BertPreTokenizer, "##" continuations). Special tokens
  `[PAD] [UNK] [CLS] [SEP] [MASK]`; the bos/eos roles are aliases of [CLS]/[SEP], so models that ask
  for `bos_id`/`eos_id` get BERT's sequence markers.
- "pretrained": any `tokenizer.json` read by `load_tokenizer`, roles inferred from the usual names.

`add_special_tokens=True` wraps a text in bos ... eos (char, bpe) or [CLS] ... [SEP] (wordpiece).

Saving: `save(path)` writes a standard `tokenizer.json` (readable by `tokenizers.Tokenizer.from_file`
and transformers) plus a sidecar `<stem>.labkit.json` next to it with the kind and the roles, because
`tokenizer.json` has no room for extra keys. Without the sidecar, `load_tokenizer` infers the roles.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import tokenizers
import torch
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from labkit.checks import check_bool, check_int
from labkit.data._tokenizer_probe import TokenInfo, explain
from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

__all__ = ["Tokenizer", "TokenInfo", "train_tokenizer", "load_tokenizer"]

ROLES = ("pad", "unk", "bos", "eos", "mask", "cls", "sep")
KINDS = ("char", "bpe", "wordpiece", "pretrained")
_ANGLE = {
    "pad": "<pad>",
    "unk": "<unk>",
    "bos": "<bos>",
    "eos": "<eos>",
    "mask": "<mask>",
    "cls": "<cls>",
    "sep": "<sep>",
}
DEFAULT_SPECIAL_TOKENS = {
    "char": _ANGLE,
    "bpe": _ANGLE,
    # Dict order is id order: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, as in BERT's own layout.
    "wordpiece": {
        "pad": "[PAD]",
        "unk": "[UNK]",
        "cls": "[CLS]",
        "sep": "[SEP]",
        "mask": "[MASK]",
        "bos": "[CLS]",
        "eos": "[SEP]",
    },
}
# Names pretrained files use for each role, most specific first (RoBERTa's <s> is both bos and cls).
_ROLE_NAMES = {
    "pad": ("[PAD]", "<pad>", "<|pad|>", "<|padding|>"),
    "unk": ("[UNK]", "<unk>", "<|unk|>", "<|unknown|>"),
    "bos": ("<bos>", "<s>", "<|startoftext|>", "<|begin_of_text|>", "<|endoftext|>"),
    "eos": ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>"),
    "mask": ("[MASK]", "<mask>", "<|mask|>"),
    "cls": ("[CLS]", "<cls>", "<s>"),
    "sep": ("[SEP]", "<sep>", "</s>"),
}
DEFAULT_VOCAB_SIZE = 8000
_BYTE_ALPHABET = 256
_SIDECAR_SUFFIX = ".labkit.json"


def _role_id(role: str) -> property:
    def get(self: Tokenizer) -> int | None:
        token = self.special_tokens.get(role)
        return None if token is None else self.backend.token_to_id(token)

    return property(get, doc=f"Id of the {role} token, or None when this tokenizer has no {role} role.")


class Tokenizer:
    """A `tokenizers.Tokenizer` (`.backend`) plus its kind and special-token roles; see the module docstring."""

    pad_id = _role_id("pad")
    unk_id = _role_id("unk")
    bos_id = _role_id("bos")
    eos_id = _role_id("eos")
    mask_id = _role_id("mask")
    cls_id = _role_id("cls")
    sep_id = _role_id("sep")

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        kind: str = "pretrained",
        special_tokens: Mapping[str, str] | None = None,
        chat_template: str | None = None,
    ):
        """Wrap a backend. kind: "char", "bpe", "wordpiece" or "pretrained". special_tokens: role -> token (None: infer).

        chat_template: a chat model's Jinja template, used by `apply_chat_template` (None: not a chat tokenizer).
        """
        if not isinstance(backend, tokenizers.Tokenizer):
            raise InvalidInputError(f"backend must be a tokenizers.Tokenizer, got {type(backend).__name__}")
        if kind not in KINDS:
            raise UnknownNameError(
                f"unknown tokenizer kind {kind!r}; {close_matches(kind, KINDS)} choose one of {', '.join(KINDS)}"
            )
        if chat_template is not None and not isinstance(chat_template, str):
            raise InvalidInputError(
                f"chat_template must be a Jinja template string or None, got {type(chat_template).__name__}"
            )
        self.backend = backend
        self.kind = kind
        self.chat_template = chat_template
        roles = _infer_roles(backend) if special_tokens is None else _check_roles(special_tokens)
        # A role whose token is not in the vocabulary would give ids of None everywhere; drop it.
        self.special_tokens: dict[str, str] = {r: t for r, t in roles.items() if backend.token_to_id(t) is not None}
        added = backend.get_added_tokens_decoder()
        self.special_ids: frozenset[int] = frozenset(
            [backend.token_to_id(t) for t in self.special_tokens.values()]
            + [i for i, tok in added.items() if tok.special]
        )

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (valid ids are 0 .. vocab_size - 1)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """A string in, its token ids out. add_special_tokens: wrap in bos/eos ([CLS]/[SEP] for wordpiece)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"encode expects a str, got {type(text).__name__}; use encode_batch for a list")
        return self.backend.encode(_utf8(text, "encode"), add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Iterable[str], add_special_tokens: bool = False) -> list[list[int]]:
        """A list of strings in, a list of id lists out (encoded in parallel by tokenizers)."""
        texts = _str_list(texts, "encode_batch")
        # encode_batch_fast skips offset tracking, which ids do not need (tokenizers >= 0.21).
        fast = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        return [e.ids for e in fast(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        """Ids (a list or a 1-D tensor/array) in, text out. skip_special_tokens: drop <pad>, <eos>, ... from the text."""
        return self.backend.decode(self._id_list(ids), skip_special_tokens=skip_special_tokens)

    def decode_batch(self, batch: Any, skip_special_tokens: bool = False) -> list[str]:
        """A list of id sequences (or a 2-D tensor) in, one string per row out."""
        rows = batch.tolist() if hasattr(batch, "tolist") else list(batch)
        return self.backend.decode_batch([self._id_list(r) for r in rows], skip_special_tokens=skip_special_tokens)

    def __call__(
        self,
        texts: str | Iterable[str],
        padding: bool | str = True,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
        add_special_tokens: bool = True,
        padding_side: str = "right",
    ) -> dict[str, Any]:
        """Texts in, {"input_ids", "attention_mask"} out (LongTensors [batch, seq]), like a transformers tokenizer.

        padding: True/"longest" pads to the longest text, "max_length" to max_length, False pads nothing.
        truncation: cut each text to max_length ids (special tokens included). return_tensors: "pt" or None
        (lists). add_special_tokens: wrap texts as `encode` does. padding_side: "right" or "left".
        """
        single = isinstance(texts, str)
        batch = _str_list([texts] if single else texts, "__call__")
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise InvalidInputError(f"padding={padding!r} is not supported; use True, False, 'longest' or 'max_length'")
        if return_tensors not in ("pt", None):
            raise InvalidInputError(f"return_tensors={return_tensors!r} is not supported; use 'pt' or None")
        if padding_side not in ("right", "left"):
            raise InvalidInputError(f"padding_side={padding_side!r} must be 'right' or 'left'")
        if truncation or padding == "max_length":
            check_int("max_length", max_length, fix="truncating or padding to max_length needs one")
        saved = self.backend.truncation
        if truncation:  # tokenizers keeps room for the special tokens, as transformers does
            self.backend.enable_truncation(max_length)
        try:
            ids = [e.ids for e in self.backend.encode_batch(batch, add_special_tokens=add_special_tokens)]
        finally:
            if truncation:
                self.backend.enable_truncation(**saved) if saved else self.backend.no_truncation()
        width = max((len(s) for s in ids), default=0)
        if padding == "max_length":
            width = max(width, max_length)
        no_pad = padding in (False, "do_not_pad")
        if no_pad and return_tensors == "pt" and len({len(s) for s in ids}) > 1:
            raise InvalidInputError("texts encode to different lengths; pass padding=True to get one tensor")
        pad = self.pad_id
        if pad is None and not no_pad and any(len(s) < width for s in ids):
            raise InvalidInputError(
                "this tokenizer has no pad token; train it with a 'pad' special token or pass padding=False"
            )
        rows, masks = [], []
        for s in ids:
            fill = 0 if no_pad else width - len(s)
            rows.append(s + [pad] * fill if padding_side == "right" else [pad] * fill + s)
            masks.append([1] * len(s) + [0] * fill if padding_side == "right" else [0] * fill + [1] * len(s))
        if return_tensors == "pt":
            return {
                "input_ids": torch.tensor(rows, dtype=torch.long).reshape(len(rows), width),
                "attention_mask": torch.tensor(masks, dtype=torch.long).reshape(len(rows), width),
            }
        return {"input_ids": rows[0] if single else rows, "attention_mask": masks[0] if single else masks}

    def token_to_id(self, token: str) -> int | None:
        """A token string in, its id out (None when it is not in the vocabulary)."""
        return self.backend.token_to_id(token)

    def id_to_token(self, id: int) -> str | None:
        """An id in, its token string out (None when out of range)."""
        return self.backend.id_to_token(int(id))

    def get_vocab(self) -> dict[str, int]:
        """The whole vocabulary, added tokens included, as {token: id}."""
        return self.backend.get_vocab(with_added_tokens=True)

    def explain(self, text: str, add_special_tokens: bool = False) -> list[TokenInfo]:
        """A string in, one TokenInfo (id, token, text span, BPE merges) per token out: the explorer's data.

        Offsets are character offsets into `text`; for "char" and "bpe" the `text` fields concatenate back
        to `text`. add_special_tokens: include the inserted bos/eos ([CLS]/[SEP]) with start == end.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"explain expects a str, got {type(text).__name__}")
        return explain(self, _utf8(text, "explain"), add_special_tokens=add_special_tokens)

    def apply_chat_template(
        self, messages: Any, add_generation_prompt: bool = False, tokenize: bool = False, **variables: Any
    ) -> str | list[int]:
        """A conversation ([{"role": "user", "content": "Hi"}, ...]) in, the chat model's prompt text (or ids) out.

        add_generation_prompt: end with the start of the assistant's turn, so generation writes the reply.
        tokenize: return token ids instead of text. variables: extra template variables. Rendered like
        transformers' `apply_chat_template` (see `labkit.data.chat`); the special tokens in the text are
        encoded as their single ids.
        """
        from labkit.data.chat import render_chat

        if self.chat_template is None:
            raise InvalidInputError(
                "this tokenizer has no chat template; load a chat model's tokenizer (e.g. labkit.models.load_pretrained"
                "('smollm2-135m')) or set tokenizer.chat_template"
            )
        text = render_chat(
            self.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            special_tokens=self.special_tokens,
            **variables,
        )
        return self.encode(text) if tokenize else text

    def save(self, path: str | Path) -> Path:
        """Write `tokenizer.json` (+ the `.labkit.json` sidecar) and return the json path.

        path: a file ending in ".json", or a folder (created if needed) that receives `tokenizer.json`.
        """
        path = Path(path)
        file = path if path.suffix == ".json" else path / "tokenizer.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(file))
        meta = {"format": "labkit-tokenizer", "version": 1, "kind": self.kind, "special_tokens": self.special_tokens}
        if self.chat_template is not None:
            meta["chat_template"] = self.chat_template
        _sidecar(file).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        return file

    def _id_list(self, ids: Any) -> list[int]:
        if getattr(ids, "ndim", 1) != 1:  # tensors and numpy arrays
            raise InvalidInputError(
                f"decode expects a 1-D tensor of ids, got shape {tuple(ids.shape)}; use decode_batch for 2-D"
            )
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        # numpy's and Python's integers alike (a row of an int64 array); bool is an int subclass, not an id
        wrong = next((i for i in ids if isinstance(i, bool) or not isinstance(i, numbers.Integral)), None)
        if wrong is not None:
            raise InvalidInputError(
                f"token ids must be integers, got {wrong!r}; pass ids from encode() or a LongTensor"
            )
        ids = [int(i) for i in ids]
        if ids:
            low, high = min(ids), max(ids)
            if low < 0 or high >= self.vocab_size:
                bad = low if low < 0 else high
                raise InvalidInputError(f"id {bad} is outside this tokenizer's vocabulary 0..{self.vocab_size - 1}")
        return ids


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str, where: str) -> str:
    """The text back when UTF-8 can hold it; a lone surrogate (undecodable bytes) gets one clear error instead of
    the Rust library's "TextInputSequence must be str"."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise InvalidInputError(
            f"{where}: the text holds a lone surrogate {found.group()!r} at character {found.start()} (bytes that were "
            "not valid UTF-8); read the file with encoding='utf-8', errors='replace', or fix its encoding"
        )
    return text


def _sidecar(file: Path) -> Path:
    return file.with_name(file.stem + _SIDECAR_SUFFIX)


def _str_list(texts: Any, where: str) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError(f"{where} expects a list of strings, got one string; wrap it as [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(f"{where}: texts[{i}] is a {type(t).__name__}, not a str")
        _utf8(t, f"{where}: texts[{i}]")
    return texts


def _check_roles(special_tokens: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(special_tokens, Mapping):
        raise InvalidInputError(
            f"special_tokens must be a dict role -> token such as {{'eos': '<eos>'}}, got {type(special_tokens).__name__}"
        )
    for role, token in special_tokens.items():
        if role not in ROLES:
            raise UnknownNameError(
                f"unknown special-token role {role!r}; {close_matches(role, ROLES)} roles are {', '.join(ROLES)}"
            )
        if not isinstance(token, str) or not token:
            raise InvalidInputError(f"special token for role {role!r} must be a non-empty str, got {token!r}")
    return dict(special_tokens)


def _infer_roles(backend: tokenizers.Tokenizer) -> dict[str, str]:
    roles = {}
    for role, names in _ROLE_NAMES.items():
        found = next((n for n in names if backend.token_to_id(n) is not None), None)
        if found is not None:
            roles[role] = found
    return roles


def _stream(texts: Iterable[str] | str) -> Iterator[str]:
    """Validate a corpus lazily: fail on an empty corpus before training, on a non-str item when it arrives."""
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (bytes, Mapping)) or not isinstance(texts, Iterable):
        raise InvalidInputError(f"texts must be a str or an iterable of str, got {type(texts).__name__}")
    items = iter(texts)

    def check(i: int, text: Any) -> str:
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] is a {type(text).__name__}, not a str; pass strings only")
        return _utf8(text, f"texts[{i}]")

    head: list[str] = []
    for i, text in enumerate(items):  # peek up to the first non-empty text
        head.append(check(i, text))
        if text:
            break
    else:
        raise InvalidInputError(
            "the corpus is empty (no texts, or only empty strings); pass at least one non-empty text"
        )

    def rest() -> Iterator[str]:
        yield from head
        for j, text in enumerate(items, start=len(head)):
            yield check(j, text)

    return rest()


def _post_processor(kind: str, roles: dict[str, str], backend: tokenizers.Tokenizer) -> Any:
    first, last = (roles.get("cls"), roles.get("sep")) if kind == "wordpiece" else (roles.get("bos"), roles.get("eos"))
    if first is None and last is None:
        return None
    head, tail = ([f"{first}:0"] if first else []), ([last] if last else [])
    single = head + ["$A:0"] + [f"{t}:0" for t in tail]
    pair = single + ["$B:1"] + [f"{t}:1" for t in tail]
    specials = [(t, backend.token_to_id(t)) for t in dict.fromkeys(x for x in (first, last) if x)]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def train_tokenizer(
    texts: Iterable[str] | str,
    kind: str = "bpe",
    vocab_size: int | None = None,
    special_tokens: Mapping[str, str] | None = None,
    min_frequency: int = 2,
    lowercase: bool = False,
    show_progress: bool = False,
) -> Tokenizer:
    """A corpus in, a trained Tokenizer out (kinds explained in the module docstring).

    texts: a string or any iterable of strings (a generator is streamed, never held as a list).
    kind: "char", "bpe" or "wordpiece". vocab_size: the most ids to use, special tokens included
    (default: 8000 for bpe/wordpiece, the whole alphabet for char). special_tokens: role -> token
    ({"pad", "unk", "bos", "eos", "mask", "cls", "sep"}); when given, exactly these roles exist
    (char and wordpiece need "unk"). min_frequency: a merge must occur this often (bpe, wordpiece).
    lowercase: lowercase before tokenizing (then decode no longer returns the original case).
    show_progress: tokenizers' progress bar.
    """
    trainable = ("char", "bpe", "wordpiece")
    if kind not in trainable:
        raise UnknownNameError(
            f"unknown tokenizer kind {kind!r}; {close_matches(kind, trainable)} choose one of {', '.join(trainable)}"
        )
    roles = dict(DEFAULT_SPECIAL_TOKENS[kind]) if special_tokens is None else _check_roles(special_tokens)
    if kind in ("char", "wordpiece") and "unk" not in roles:
        raise InvalidInputError(
            f"kind={kind!r} needs an 'unk' special token for unseen text; add 'unk' to special_tokens"
        )
    specials = list(dict.fromkeys(roles.values()))
    check_int("vocab_size", vocab_size, allow_none=True, fix="None picks the default")
    if kind != "char" and vocab_size is None:
        vocab_size = DEFAULT_VOCAB_SIZE
    if kind == "bpe" and vocab_size < _BYTE_ALPHABET + len(specials):
        raise InvalidInputError(
            f"vocab_size={vocab_size} is smaller than byte-level BPE's alphabet "
            f"({_BYTE_ALPHABET} bytes + {len(specials)} special tokens); use at least {_BYTE_ALPHABET + len(specials)}"
        )
    if kind == "wordpiece" and vocab_size <= len(specials):
        raise InvalidInputError(
            f"vocab_size={vocab_size} leaves no room beside {len(specials)} special tokens; use a larger vocab_size"
        )
    check_int("min_frequency", min_frequency, low=0)
    check_bool("lowercase", lowercase)
    check_bool("show_progress", show_progress)
    stream = _stream(texts)

    if kind == "char":
        backend = _train_char(stream, roles, specials, vocab_size, lowercase)
    elif kind == "bpe":
        backend = tokenizers.Tokenizer(models.BPE())  # no unk: every byte is in the alphabet
        if lowercase:
            backend.normalizer = normalizers.Lowercase()
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        backend.train_from_iterator(stream, trainer)
    else:
        backend = tokenizers.Tokenizer(models.WordPiece(unk_token=roles["unk"], continuing_subword_prefix="##"))
        backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            continuing_subword_prefix="##",
            show_progress=show_progress,
        )
        backend.train_from_iterator(stream, trainer)
        if backend.get_vocab_size() > vocab_size:  # the trainer keeps the whole alphabet whatever vocab_size says
            raise InvalidInputError(
                f"vocab_size={vocab_size} is smaller than this corpus's WordPiece alphabet "
                f"({backend.get_vocab_size()} symbols with '##' forms and specials); use a larger vocab_size"
            )
    processor = _post_processor(kind, roles, backend)
    if processor is not None:
        backend.post_processor = processor
    return Tokenizer(backend, kind, roles)


def _train_char(
    stream: Iterator[str], roles: dict[str, str], specials: list[str], vocab_size: int | None, lowercase: bool
) -> tokenizers.Tokenizer:
    normalizer = normalizers.Lowercase() if lowercase else None
    alphabet: set[str] = set()
    for text in stream:
        alphabet.update(normalizer.normalize_str(text) if normalizer else text)
    chars = sorted(alphabet - set(specials))
    if vocab_size is not None and vocab_size < len(chars) + len(specials):
        raise InvalidInputError(
            f"vocab_size={vocab_size} is smaller than the alphabet ({len(chars)} characters + "
            f"{len(specials)} special tokens); use at least {len(chars) + len(specials)} or None"
        )
    vocab = {token: i for i, token in enumerate(specials + chars)}
    # BPE without merges = one token per character, with <unk> for characters never seen in training.
    backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=roles["unk"]))
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.decoder = decoders.Fuse()  # join characters without the spaces the default decoder inserts
    backend.add_special_tokens(specials)
    return backend


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A `tokenizer.json` file (or a folder holding one, e.g. MiniLM's model folder) in, a Tokenizer out.

    Padding and truncation that the file turns on are turned off (lessons compare token counts).
    Kind and roles come from the labkit sidecar when there is one, otherwise kind is "pretrained" and
    the roles come from the folder's `special_tokens_map.json` and the usual names ([PAD], <s>, ...).
    """
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        found = sorted(p.name for p in path.glob("*.json")) if path.is_dir() else []
        hint = f" (found {', '.join(found)}; pass the file itself)" if found else ""
        raise MissingSourceError(
            f"no tokenizer file at {file}{hint}; save one with Tokenizer.save or pass a tokenizer.json"
        )
    try:
        backend = tokenizers.Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception with a parser message
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"{file} is not a tokenizers tokenizer.json ({reason})") from None
    backend.no_padding()
    backend.no_truncation()
    sidecar = _sidecar(file)
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        return Tokenizer(
            backend, meta.get("kind", "pretrained"), meta.get("special_tokens", {}), meta.get("chat_template")
        )
    roles = _infer_roles(backend)
    config = _read_json(file.parent / "tokenizer_config.json")  # transformers: roles and the chat template
    roles.update(_special_tokens_map(file.parent / "special_tokens_map.json", backend))
    roles.update(_roles_from(config, backend))
    return Tokenizer(backend, "pretrained", roles, _chat_template(file.parent, config))


def _read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the tokenizer itself loaded; a broken side file only costs us its hints
    return data if isinstance(data, dict) else {}


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    """The chat template of a transformers folder: `chat_template.jinja`, else tokenizer_config.json's entry."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _special_tokens_map(file: Path, backend: tokenizers.Tokenizer) -> dict[str, str]:
    """Roles from a transformers `special_tokens_map.json` ({"pad_token": "[PAD]" or {"content": ...}})."""
    return _roles_from(_read_json(file), backend)


def _roles_from(data: dict[str, Any], backend: tokenizers.Tokenizer) -> dict[str, str]:
    """Roles from transformers' {"eos_token": "</s>" or {"content": ...}, ...} entries."""
    roles = {}
    for role in ROLES:
        value = data.get(f"{role}_token")
        token = value.get("content") if isinstance(value, dict) else value
        if isinstance(token, str) and backend.token_to_id(token) is not None:
            roles[role] = token
    return roles
