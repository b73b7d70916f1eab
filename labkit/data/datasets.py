"""Datasets and batch iterators: token streams and labelled texts in, dicts of tensors out.

Language modelling: `LMBlocks` (contiguous windows of a token stream, packed by
default) and `RandomBlockBatches` (nanoGPT's random windows). Supervised:
`ClassificationDataset` and `Seq2SeqDataset`. `Batches` turns any map-style
dataset into a deterministic, resumable epoch iterator, and `train_val_split`
splits streams without leakage and example lists by seed.

Resumability contract (the trainer relies on it): every iterator here has a
JSON-serialisable `state_dict()`; a fresh iterator built with the same arguments
and given that state yields exactly the batches the original would have yielded next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from labkit.checks import check_bool, check_float, check_int
from labkit.data.collators import _auto_collate, _mix
from labkit.errors import InvalidInputError

__all__ = ["LMBlocks", "RandomBlockBatches", "ClassificationDataset", "Seq2SeqDataset", "Batches", "train_val_split"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _token_stream(ids: Any, name: str = "ids") -> torch.Tensor:
    """A 1-d list / numpy array / tensor of token ids in, a contiguous CPU LongTensor out."""
    try:
        tensor = ids if isinstance(ids, torch.Tensor) else torch.as_tensor(np.asarray(ids))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be a 1-d sequence of token ids, got {type(ids).__name__} ({exc})"
        ) from None
    if tensor.dim() != 1 or tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise InvalidInputError(
            f"{name} must be a 1-d sequence of integer token ids, got shape {tuple(tensor.shape)} dtype {tensor.dtype}; "
            "flatten it or join the documents first"
        )
    if tensor.numel() and int(tensor.min()) < 0:
        raise InvalidInputError(
            f"{name} holds a negative token id ({int(tensor.min())}); token ids must be >= 0 (is -100 padding in there?)"
        )
    return tensor.detach().to("cpu", torch.long).contiguous()


def _check_block_size(block_size: Any, n_tokens: int) -> None:
    """Raise one line when `block_size` is not positive or leaves no room in a stream of `n_tokens`."""
    check_int("block_size", block_size)
    if block_size + 1 > n_tokens:
        raise InvalidInputError(
            f"block_size {block_size} is larger than the data ({n_tokens} tokens); use a smaller block_size or more text"
            if block_size > n_tokens
            else f"block_size {block_size} needs at least {block_size + 1} tokens but the data has {n_tokens}; "
            "use a smaller block_size or more text"
        )


def _to_device(batch: dict[str, Any], device: torch.device | None) -> dict[str, Any]:
    """Move every tensor of a batch to `device`; pinned host memory lets the copy to a GPU overlap compute."""
    if device is None:
        return batch
    pin = device.type == "cuda" and torch.cuda.is_available()
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.pin_memory().to(device, non_blocking=True) if pin else value.to(device)
        out[key] = value
    return out


def train_val_split(
    data: Any, val_fraction: float = 0.1, seed: int = 0, contiguous: bool | None = None
) -> tuple[Any, Any]:
    """A token stream or a sequence of examples in, (train, val) out; deterministic by `seed`.

    data: a 1-d token tensor / numpy array / list of ints (a stream), or a list, tuple, tensor of
    examples or map-style dataset. val_fraction: share of the data in val, in (0, 1).
    seed: shuffles the examples (ignored by contiguous splits).
    contiguous: True takes the last `val_fraction` as val (the default for streams: overlapping
    blocks cannot leak across the boundary); False draws a seeded random subset (default for examples).
    Lists and tuples come back as lists, tensors and arrays as tensors/arrays, datasets as `torch.utils.data.Subset`.
    """
    check_float(
        "val_fraction",
        val_fraction,
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        fix="0.1 keeps a tenth for validation",
    )
    is_array = isinstance(data, (torch.Tensor, np.ndarray))
    if is_array:
        stream = data.ndim == 1
    elif isinstance(data, (list, tuple)):
        stream = len(data) > 0 and all(_is_int(x) for x in data)
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        stream = False
    else:
        raise InvalidInputError(
            f"train_val_split needs a token stream or a sequence of examples, got {type(data).__name__}"
        )
    n = len(data)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise InvalidInputError(
            f"{n} items are too few to split with val_fraction={val_fraction}; provide at least 2 (and many more in practice)"
        )
    if contiguous is None:
        contiguous = stream
    if contiguous:
        train_idx, val_idx = range(0, n - n_val), range(n - n_val, n)
        if is_array or isinstance(data, (list, tuple)):
            seq = list(data) if isinstance(data, tuple) else data
            return seq[: n - n_val], seq[n - n_val :]
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        train_idx, val_idx = order[n_val:], order[:n_val]  # shuffled order, like sklearn's train_test_split
    if isinstance(data, torch.Tensor):
        return data[torch.tensor(train_idx, dtype=torch.long)], data[torch.tensor(val_idx, dtype=torch.long)]
    if isinstance(data, np.ndarray):
        return data[np.asarray(train_idx, dtype=np.int64)], data[np.asarray(val_idx, dtype=np.int64)]
    if isinstance(data, (list, tuple)):
        return [data[i] for i in train_idx], [data[i] for i in val_idx]
    from torch.utils.data import Subset

    return Subset(data, list(train_idx)), Subset(data, list(val_idx))


class LMBlocks:
    """A 1-d token stream in, a map-style dataset of windows out: item i -> {"input_ids": [block_size], "labels": [block_size]}.

    ids: the stream (list, numpy array or tensor; stored as a LongTensor). block_size: window length.
    stride: distance between window starts; default block_size (packed, non-overlapping). A smaller
    stride overlaps windows (more examples, repeated tokens). Tokens after the last full window are dropped.
    labels equal input_ids: the model shifts them (Hugging Face convention).
    """

    def __init__(self, ids: Any, block_size: int, stride: int | None = None) -> None:
        self.ids = _token_stream(ids)
        _check_block_size(block_size, len(self.ids))
        stride = block_size if stride is None else stride
        check_int("stride", stride, fix="the default (block_size) packs blocks")
        self.block_size, self.stride = int(block_size), int(stride)
        self.pad_id = None  # all items have the same length: no padding needed

    @classmethod
    def from_texts(
        cls,
        texts: str | Sequence[str],
        tokenizer: Any,
        block_size: int,
        add_eos: bool = True,
        stride: int | None = None,
    ) -> LMBlocks:
        """Documents and a tokenizer in, LMBlocks over their concatenation out (eos between documents when add_eos).

        texts: one string or a list of documents. tokenizer: anything with `encode_batch` and `eos_id`.
        add_eos: append the tokenizer's eos after each document, so the model learns where texts end.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise InvalidInputError("LMBlocks.from_texts got no texts; pass at least one document")
        eos = getattr(tokenizer, "eos_id", None)
        if add_eos and eos is None:
            raise InvalidInputError(
                "the tokenizer has no eos token; give it an eos role (train_tokenizer(..., special_tokens={..., 'eos': '<eos>'})) or pass add_eos=False"
            )
        ids: list[int] = []
        for doc in tokenizer.encode_batch(texts, add_special_tokens=False):
            ids.extend(doc)
            if add_eos:
                ids.append(eos)
        return cls(ids, block_size, stride)

    def __len__(self) -> int:
        return (len(self.ids) - self.block_size) // self.stride + 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not _is_int(index):
            raise TypeError(f"LMBlocks indices must be integers, got {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"block {index} out of range for {n} blocks")
        start = index * self.stride
        window = self.ids[start : start + self.block_size]
        return {"input_ids": window.clone(), "labels": window.clone()}

    def __repr__(self) -> str:
        return (
            f"LMBlocks({len(self.ids)} tokens, block_size={self.block_size}, stride={self.stride}, {len(self)} blocks)"
        )


class RandomBlockBatches:
    """A token stream in, an iterator of {"input_ids", "labels"} batches [batch_size, block_size] at random offsets out.

    ids: the stream. block_size: window length T; windows start anywhere in [0, len - T].
    batch_size: windows per batch. seed: batch k depends only on (seed, k), drawn with this object's own
    torch.Generator. device: where batches go; on a GPU the stream is copied there once and windows
    are gathered on the device. steps: stop after this many batches (None: forever).
    `state_dict()`/`load_state_dict()` resume exactly at the next batch.
    """

    def __init__(
        self,
        ids: Any,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        device: str | torch.device | None = None,
        steps: int | None = None,
    ) -> None:
        stream = _token_stream(ids)
        _check_block_size(block_size, len(stream))
        check_int("batch_size", batch_size)
        check_int("steps", steps, low=0, allow_none=True)
        check_int("seed", seed, low=None)
        self.block_size, self.batch_size, self.seed, self.steps = int(block_size), int(batch_size), int(seed), steps
        self.device = torch.device(device) if device is not None else None
        self.ids = stream if self.device is None else stream.to(self.device)
        # unfold is a view [n_windows, T] over the stream: one gather builds the whole batch, no Python loop.
        self._windows = self.ids.unfold(0, self.block_size, 1)
        self._generator = torch.Generator()
        self.served = 0

    def offsets(self, step: int) -> torch.Tensor:
        """Batch number in, the window start positions [batch_size] of that batch out (pure function of seed and step)."""
        self._generator.manual_seed(_mix(self.seed, step))
        return torch.randint(len(self._windows), (self.batch_size,), generator=self._generator)

    def __iter__(self) -> RandomBlockBatches:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.steps is not None and self.served >= self.steps:
            raise StopIteration
        x = self._windows[self.offsets(self.served).to(self.ids.device)]
        self.served += 1
        return {"input_ids": x, "labels": x.clone()}

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("RandomBlockBatches without steps= is endless and has no length; pass steps=N")
        return self.steps

    def state_dict(self) -> dict[str, Any]:
        """Return {"seed", "served", "block_size", "batch_size"}: JSON-serialisable, enough to resume exactly."""
        return {"seed": self.seed, "served": self.served, "block_size": self.block_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a `state_dict()`; refuses a state saved with other settings (its batches would differ)."""
        for key in ("seed", "block_size", "batch_size"):
            if state.get(key) != getattr(self, key):
                raise InvalidInputError(
                    f"state has {key}={state.get(key)!r} but this iterator has {key}={getattr(self, key)!r}; rebuild it with the saved settings"
                )
        self.served = int(state["served"])

    def __repr__(self) -> str:
        return (
            f"RandomBlockBatches({len(self.ids)} tokens, block_size={self.block_size}, batch_size={self.batch_size}, "
            f"seed={self.seed}, steps={self.steps}, served={self.served})"
        )


def _truncate(ids: list[int], max_length: int, keep_tail: frozenset[int]) -> list[int]:
    """Cut `ids` to `max_length`, keeping trailing special tokens such as [SEP] or eos at the end."""
    if len(ids) <= max_length:
        return ids
    tail = 0
    while tail < len(ids) and tail < max_length - 1 and ids[len(ids) - 1 - tail] in keep_tail:
        tail += 1
    return ids[: max_length - tail] + (ids[len(ids) - tail :] if tail else [])


class ClassificationDataset:
    """Texts, integer labels and a tokenizer in, items {"input_ids": [len], "labels": scalar long} out.

    texts: the examples. labels: class ids in [0, num_labels). tokenizer: anything with `encode_batch`,
    `pad_id` and `special_ids`. max_length: longest encoding kept (trailing special tokens survive the cut).
    add_special_tokens: let the tokenizer add [CLS]/[SEP]. num_labels: number of classes (default max(labels) + 1).
    Texts are encoded eagerly, once, with `encode_batch` (fast, and errors surface at construction).
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        tokenizer: Any,
        max_length: int = 128,
        add_special_tokens: bool = True,
        num_labels: int | None = None,
    ) -> None:
        if isinstance(texts, str):  # list("ab") would make one example per letter
            raise InvalidInputError("texts is a single string; pass a list with one text per example")
        texts, labels = list(texts), [x.item() if hasattr(x, "item") else x for x in labels]
        if len(texts) != len(labels):
            raise InvalidInputError(f"got {len(texts)} texts but {len(labels)} labels; give one label per text")
        if not texts:
            raise InvalidInputError("ClassificationDataset got no texts; pass at least one example")
        bad = next((x for x in labels if not _is_int(x) or x < 0), None)
        if bad is not None:
            raise InvalidInputError(
                f"labels must be non-negative integer class ids, got {bad!r}; map class names to 0..num_labels-1"
            )
        max_length = check_int("max_length", max_length)
        self.num_labels = max(labels) + 1 if num_labels is None else num_labels
        if not _is_int(self.num_labels) or max(labels) >= self.num_labels:
            raise InvalidInputError(
                f"label {max(labels)} is outside [0, num_labels={self.num_labels!r}); raise num_labels or fix the labels"
            )
        special = frozenset(getattr(tokenizer, "special_ids", ()) or ())
        encoded = tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        self.input_ids = [torch.tensor(_truncate(list(ids), max_length, special), dtype=torch.long) for ids in encoded]
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.texts = texts
        self.pad_id = getattr(tokenizer, "pad_id", None)  # Batches reads it to pad with PadCollator

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}

    def __repr__(self) -> str:
        return f"ClassificationDataset({len(self)} examples, num_labels={self.num_labels})"


class Seq2SeqDataset:
    """Source and target texts plus tokenizer(s) in, items {"input_ids": source ids, "labels": target ids} out.

    Sources end with the source eos (when the tokenizer has one); targets end with the target eos and
    start without bos: the model's `shift_right` puts `decoder_start_token_id` in front, so give the
    model `Seq2SeqConfig(**dataset.config_overrides())` (bos as start token, the target pad id).
    sources, targets: parallel texts. src_tokenizer: encodes sources. tgt_tokenizer: encodes targets
    (default: the source tokenizer, i.e. a joint vocabulary). max_source_length, max_target_length:
    longest encodings kept, eos included. Encoded eagerly with `encode_batch`.
    """

    def __init__(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        src_tokenizer: Any,
        tgt_tokenizer: Any = None,
        max_source_length: int = 128,
        max_target_length: int = 128,
    ) -> None:
        if isinstance(sources, str) or isinstance(targets, str):  # list("ab") would make one pair per letter
            raise InvalidInputError(
                "sources and targets must be lists of texts, got a single string; wrap it in a list"
            )
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise InvalidInputError(
                f"got {len(sources)} sources but {len(targets)} targets; the texts must be parallel"
            )
        if not sources:
            raise InvalidInputError("Seq2SeqDataset got no sentence pairs; pass at least one")
        max_source_length = check_int("max_source_length", max_source_length)
        max_target_length = check_int("max_target_length", max_target_length)
        tgt_tokenizer = src_tokenizer if tgt_tokenizer is None else tgt_tokenizer
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        tgt_eos = getattr(tgt_tokenizer, "eos_id", None)
        if tgt_eos is None:
            raise InvalidInputError(
                "the target tokenizer has no eos token; give it an eos role (train_tokenizer(..., special_tokens={..., 'eos': '<eos>'})) so the decoder learns to stop"
            )
        src_eos = getattr(src_tokenizer, "eos_id", None)
        self.input_ids = [
            self._encode(ids, src_eos, max_source_length)
            for ids in src_tokenizer.encode_batch(sources, add_special_tokens=False)
        ]
        self.labels = [
            self._encode(ids, tgt_eos, max_target_length)
            for ids in tgt_tokenizer.encode_batch(targets, add_special_tokens=False)
        ]
        self.sources, self.targets = sources, targets
        self.pad_id = getattr(src_tokenizer, "pad_id", None)  # source padding (labels pad with -100)

    @staticmethod
    def _encode(ids: Sequence[int], eos: int | None, max_length: int) -> torch.Tensor:
        ids = list(ids)
        if eos is None:
            return torch.tensor(ids[:max_length], dtype=torch.long)
        return torch.tensor(ids[: max_length - 1] + [eos], dtype=torch.long)

    def config_overrides(self) -> dict[str, int]:
        """Return Seq2SeqConfig fields matching this data: vocabulary sizes, target pad id, decoder start id (bos, else eos)."""
        tgt = self.tgt_tokenizer
        start = tgt.bos_id if getattr(tgt, "bos_id", None) is not None else tgt.eos_id
        pad = tgt.pad_id if getattr(tgt, "pad_id", None) is not None else 0
        return {
            "src_vocab_size": int(self.src_tokenizer.vocab_size),
            "tgt_vocab_size": int(tgt.vocab_size),
            "pad_token_id": int(pad),
            "decoder_start_token_id": int(start),
        }

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}

    def __repr__(self) -> str:
        return f"Seq2SeqDataset({len(self)} pairs)"


class Batches:
    """A map-style dataset in, a deterministic and resumable iterator of batches out; each `iter()` runs (the rest of) one epoch.

    dataset: anything with `__len__` and `__getitem__`. batch_size: items per batch.
    shuffle: a new order each epoch, drawn from a generator seeded by (seed, epoch). seed: see shuffle.
    collate_fn: items -> batch; default stacks equal-length dict items, or pads with PadCollator when the
    dataset has a `pad_id`. drop_last: skip the last, smaller batch. device: where batches go (pinned,
    non-blocking copies to a GPU).
    `epoch` counts finished epochs; `state_dict()` records (epoch, position), and a loop that stops early
    (or a fresh Batches given that state) resumes at exactly the next batch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        drop_last: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise InvalidInputError(
                f"Batches needs a map-style dataset (len and indexing), got {type(dataset).__name__}"
            )
        check_int("batch_size", batch_size)
        check_int("seed", seed, low=None)
        check_bool("shuffle", shuffle)  # shuffle="no" is truthy: it would shuffle
        check_bool("drop_last", drop_last)
        if len(dataset) == 0:
            raise InvalidInputError("the dataset is empty (0 items); pass at least one example")
        if drop_last and len(dataset) < batch_size:
            raise InvalidInputError(
                f"dataset of {len(dataset)} items gives no batch of {batch_size}; use a smaller batch_size or drop_last=False"
            )
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, int(batch_size), bool(shuffle), int(seed)
        self.drop_last = drop_last
        self.collate_fn = collate_fn if collate_fn is not None else _auto_collate(getattr(dataset, "pad_id", None))
        self.device = torch.device(device) if device is not None else None
        self.epoch = 0
        self.position = 0  # batches already served in the current epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> list[int]:
        """Epoch number in, the item order of that epoch out (a seeded permutation, or 0..n-1 without shuffle)."""
        n = len(self.dataset)
        if not self.shuffle:
            return list(range(n))
        return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch))).tolist()

    def _roll_over(self) -> None:
        if self.position >= len(self):
            self.epoch += 1
            self.position = 0

    def __iter__(self) -> Iterator[Any]:
        self._roll_over()
        order = self.order(self.epoch)
        while self.position < len(self):
            start = self.position * self.batch_size
            items = [self.dataset[i] for i in order[start : start + self.batch_size]]
            batch = self.collate_fn(items)
            self.position += 1  # counted before yielding: a state saved after receiving batch k resumes at k + 1
            yield _to_device(batch, self.device) if isinstance(batch, dict) else batch
        self._roll_over()

    def state_dict(self) -> dict[str, Any]:
        """Return {"epoch", "position", "seed", "batch_size", "num_items"} (+ the collate_fn's state when it has one)."""
        epoch, position = (self.epoch + 1, 0) if self.position >= len(self) else (self.epoch, self.position)
        state: dict[str, Any] = {
            "epoch": epoch,
            "position": position,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "num_items": len(self.dataset),
        }
        if hasattr(self.collate_fn, "state_dict"):
            state["collate_fn"] = self.collate_fn.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a `state_dict()`: the next batch is the one that followed when the state was saved."""
        current = {"seed": self.seed, "batch_size": self.batch_size, "num_items": len(self.dataset)}
        for key, value in current.items():
            if state.get(key) != value:
                raise InvalidInputError(
                    f"state has {key}={state.get(key)!r} but these Batches have {key}={value!r}; rebuild them with the saved data and settings"
                )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if "collate_fn" in state and hasattr(self.collate_fn, "load_state_dict"):
            self.collate_fn.load_state_dict(state["collate_fn"])

    def __repr__(self) -> str:
        return (
            f"Batches({len(self.dataset)} items, batch_size={self.batch_size}, shuffle={self.shuffle}, seed={self.seed}, "
            f"epoch={self.epoch}, position={self.position}/{len(self)})"
        )
