"""Class imbalance on the data side: make a split with a controlled imbalance, and resample a skewed one.

`imbalanced_split(labels, ratio, minority=1)` keeps the indices of a subset in which the minority class has
`ratio` times as many examples as the largest other class (ratio in (0, 1]; 1 keeps the classes as they are
relative to each other, 0.1 leaves one minority example per ten majority ones). `resample(labels, "oversample")`
returns indices in which every class is as frequent as the largest (minority examples repeated) and
`"undersample"` as frequent as the smallest (majority examples dropped). `Subset(dataset, indices)` is the
dataset those indices select, still padded by `Batches` and still carrying its `labels`. All draws are seeded.
The loss-side treatment, class-weighted cross-entropy, is in `labkit.training` (`class_weights`,
`WeightedCrossEntropy`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import torch

from labkit.checks import check_choice, check_float, check_int
from labkit.errors import InvalidInputError

__all__ = ["imbalanced_split", "resample", "Subset", "STRATEGIES"]

STRATEGIES = ("oversample", "undersample")


def _labels(labels: Any) -> list[int]:
    if isinstance(labels, str):
        raise InvalidInputError("labels is a string; pass one integer class id per example")
    labels = getattr(labels, "labels", labels)  # a dataset or Corpus that carries its labels
    if isinstance(labels, torch.Tensor):
        labels = labels.tolist()
    if labels is None:
        raise InvalidInputError("these examples carry no labels; pass a list of class ids")
    out = []
    for x in labels:
        if isinstance(x, bool) or not isinstance(x, int) or x < 0:
            raise InvalidInputError(f"labels must be non-negative integer class ids, got {x!r}")
        out.append(int(x))
    if not out:
        raise InvalidInputError("labels is empty; pass one class id per example")
    return out


def _by_class(labels: list[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        groups.setdefault(y, []).append(i)
    return groups


def imbalanced_split(labels: Any, ratio: float, *, minority: int = 1, seed: int = 0) -> list[int]:
    """Class ids in, sorted indices of a subset in which class `minority` is `ratio` times the largest other class.

    labels: one class id per example (a list, tensor, or a dataset/Corpus with `.labels`).
    ratio: minority count / largest other class count, in (0, 1]. The other classes keep all their examples
        when the minority class has enough; otherwise they are cut in proportion, so the ratio still holds.
        The minority class keeps at least one example. minority: the class to shrink. seed: which examples stay.
    """
    ratio = check_float("ratio", ratio, low=0, high=1, low_open=True, fix="0.1 keeps one minority example per ten")
    check_int("minority", minority, low=0)
    check_int("seed", seed, low=None)
    groups = _by_class(_labels(labels))
    if minority not in groups:
        raise InvalidInputError(
            f"minority class {minority} does not occur in the labels (classes: {sorted(groups)}); pick one of them"
        )
    others = {c: idx for c, idx in groups.items() if c != minority}
    if not others:
        raise InvalidInputError(f"every label is {minority}; an imbalance needs a second class")
    available = len(groups[minority])
    largest = max(len(idx) for idx in others.values())
    # Enough minority examples: the others stay whole. Too few: the largest other class is cut to the size whose
    # ratio the whole minority class matches, and every other class in the same proportion.
    target_largest = largest if max(1, round(ratio * largest)) <= available else min(largest, round(available / ratio))
    rng = random.Random(seed)
    keep: list[int] = []
    kept_largest = 0
    for _, idx in sorted(others.items()):
        n = max(1, math.floor(len(idx) * target_largest / largest + 1e-9))
        keep += rng.sample(idx, n)
        kept_largest = max(kept_largest, n)
    n_minority = min(available, max(1, round(ratio * kept_largest)))
    keep += rng.sample(groups[minority], n_minority)
    return sorted(keep)


def resample(labels: Any, strategy: str = "oversample", *, seed: int = 0) -> list[int]:
    """Class ids in, indices (shuffled) in which every class occurs equally often out.

    strategy: "oversample" (every class drawn up to the largest class's count: all its examples, then
        random repeats) or "undersample" (every class cut to the smallest class's count, without repeats).
    seed: which examples are repeated or dropped, and the order.
    """
    check_choice("strategy", strategy, STRATEGIES)
    check_int("seed", seed, low=None)
    groups = _by_class(_labels(labels))
    rng = random.Random(seed)
    sizes = [len(idx) for idx in groups.values()]
    target = max(sizes) if strategy == "oversample" else min(sizes)
    out: list[int] = []
    for _, idx in sorted(groups.items()):
        if target <= len(idx):
            out += rng.sample(idx, target)
        else:  # every example once, the rest drawn with replacement
            out += idx + [rng.choice(idx) for _ in range(target - len(idx))]
    rng.shuffle(out)
    return out


class Subset:
    """A dataset and indices in, the dataset of those items out (repeats allowed); keeps `pad_id` and `labels`.

    dataset: anything with `__len__` and `__getitem__` (a ClassificationDataset, say). indices: positions in it.
    """

    def __init__(self, dataset: Any, indices: Any) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise InvalidInputError(
                f"Subset needs a map-style dataset (len and indexing), got {type(dataset).__name__}"
            )
        self.dataset, self.indices = dataset, [int(i) for i in indices]
        bad = next((i for i in self.indices if not 0 <= i < len(dataset)), None)
        if bad is not None:
            raise InvalidInputError(f"index {bad} is outside the dataset of {len(dataset)} items")
        if not self.indices:
            raise InvalidInputError("Subset got no indices; select at least one item")
        self.pad_id = getattr(dataset, "pad_id", None)  # Batches pads with it
        self.num_labels = getattr(dataset, "num_labels", None)
        labels = getattr(dataset, "labels", None)
        self.labels = None if labels is None else torch.as_tensor(labels)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def class_counts(self) -> dict[int, int]:
        """{class id: number of items} of this subset (needs a dataset with `labels`)."""
        if self.labels is None:
            raise InvalidInputError("the dataset has no labels to count")
        return dict(sorted(Counter(self.labels.tolist()).items()))

    def __repr__(self) -> str:
        counts = f", classes {self.class_counts()}" if self.labels is not None else ""
        return f"Subset({len(self)} of {len(self.dataset)} items{counts})"
