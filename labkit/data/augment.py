"""Text augmentations: a string in, a perturbed string out (Wei & Zou 2019, "EDA").

Four word-level edits, each a small callable object with its own seeded
`random.Random`, so a run is reproducible: `RandomDeletion`, `RandomSwap`,
`RandomInsertion` and `RandomReplacement`, chained with `Compose`; `reseeded` copies
a transform with a fresh seed, so an experiment can repeat it once per seed.

Words are whitespace-separated and the result is re-joined with single spaces.
EDA draws synonyms from WordNet; labkit downloads nothing, so synonyms come
from what you pass: a dict word -> alternatives, or a callable word -> list.
Without a synonym source, insertion and replacement draw words from
`vocabulary` when given, else from the sentence itself. No transform ever
turns a non-empty text into an empty one.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labkit.checks import check_float, check_int
from labkit.errors import InvalidInputError

__all__ = ["Compose", "RandomInsertion", "RandomDeletion", "RandomSwap", "RandomReplacement", "reseeded"]

Synonyms = Mapping[str, Sequence[str]] | Callable[[str], Sequence[str]] | None
SeedLike = int | random.Random | None


def _rng(seed: SeedLike) -> random.Random:
    """An int (or None) in, a new seeded Random out; a Random passes through, so transforms can share one stream."""
    if isinstance(seed, random.Random):
        return seed
    check_int("seed", seed, low=None, allow_none=True, fix="or pass a random.Random")
    return random.Random(seed)


def _check_count(n: int, name: str = "n") -> int:
    return check_int(name, n, low=0, fix="it counts edits per text")


def _check_synonyms(synonyms: Synonyms) -> Synonyms:
    if synonyms is not None and not isinstance(synonyms, Mapping) and not callable(synonyms):
        raise InvalidInputError(
            f"synonyms must be a dict word -> alternatives or a callable word -> list, got {type(synonyms).__name__}"
        )
    return synonyms


def _check_vocabulary(vocabulary: Sequence[str] | None) -> list[str] | None:
    if vocabulary is None:
        return None
    words = [w for w in vocabulary if isinstance(w, str) and w.strip()]
    if not words:
        raise InvalidInputError("vocabulary must be a non-empty list of words, or None to draw words from the sentence")
    return words


def _describe(synonyms: Synonyms) -> str:
    if synonyms is None:
        return "None"
    if isinstance(synonyms, Mapping):
        return f"<dict of {len(synonyms)} words>"
    return getattr(synonyms, "__name__", type(synonyms).__name__)


class TextTransform:
    """Base class: a string in, a string out; subclasses edit the word list in `edit`."""

    def __init__(self, seed: SeedLike = 0) -> None:
        self.seed = seed
        self.rng = _rng(seed)

    def edit(self, words: list[str]) -> list[str]:  # pragma: no cover - abstract
        """A non-empty word list in, the edited word list out (subclasses implement it)."""
        raise NotImplementedError

    def __call__(self, text: str) -> str:
        """A text in, the augmented text (words joined by single spaces) out; a text without words comes back unchanged."""
        if not isinstance(text, str):
            raise InvalidInputError(
                f"augmentations take a string, got {type(text).__name__}; map them over a list of texts"
            )
        words = text.split()
        if not words:
            return text
        return " ".join(self.edit(words))

    def _params(self) -> str:
        return ""

    def __repr__(self) -> str:
        seed = "Random(...)" if isinstance(self.seed, random.Random) else repr(self.seed)
        params = self._params()
        return f"{type(self).__name__}({params + ', ' if params else ''}seed={seed})"


class _WordSource(TextTransform):
    """Shared by insertion and replacement: where new words come from."""

    def __init__(
        self, n: int = 1, synonyms: Synonyms = None, vocabulary: Sequence[str] | None = None, seed: SeedLike = 0
    ) -> None:
        super().__init__(seed)
        self.n = _check_count(n)
        self.synonyms = _check_synonyms(synonyms)
        self.vocabulary = _check_vocabulary(vocabulary)

    def alternatives(self, word: str) -> list[str]:
        """A word in, its replacement candidates out (synonyms, else the vocabulary; never the word itself)."""
        if self.synonyms is None:
            return [w for w in self.vocabulary if w != word] if self.vocabulary is not None else []
        if isinstance(self.synonyms, Mapping):
            found = self.synonyms.get(word) or self.synonyms.get(word.lower()) or []
        else:
            found = self.synonyms(word) or []
        return [w for w in found if isinstance(w, str) and w.strip() and w != word]

    def _params(self) -> str:
        vocab = None if self.vocabulary is None else f"<{len(self.vocabulary)} words>"
        return f"n={self.n}, synonyms={_describe(self.synonyms)}, vocabulary={vocab}"


class RandomDeletion(TextTransform):
    """A text in, the text with each word deleted with probability `p` out (at least one word always survives).

    p: deletion probability per word, in [0, 1]. seed: an int or a shared random.Random.
    """

    def __init__(self, p: float = 0.1, seed: SeedLike = 0) -> None:
        super().__init__(seed)
        check_float("p", p, low=0, high=1, fix="EDA uses 0.1")
        self.p = float(p)

    def edit(self, words: list[str]) -> list[str]:
        kept = [w for w in words if self.rng.random() >= self.p]
        return kept if kept else [self.rng.choice(words)]  # EDA keeps one random word rather than return nothing

    def _params(self) -> str:
        return f"p={self.p}"


class RandomSwap(TextTransform):
    """A text in, the text with two distinct word positions swapped `n` times out (same words, new order).

    n: number of swaps. seed: an int or a shared random.Random.
    """

    def __init__(self, n: int = 1, seed: SeedLike = 0) -> None:
        super().__init__(seed)
        self.n = _check_count(n)

    def edit(self, words: list[str]) -> list[str]:
        words = list(words)
        if len(words) < 2:
            return words
        for _ in range(self.n):
            i, j = self.rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
        return words

    def _params(self) -> str:
        return f"n={self.n}"


class RandomInsertion(_WordSource):
    """A text in, the text with `n` new words inserted at random positions out.

    Each new word is a synonym of a random word of the text (EDA tries up to 10 words to find one that has
    synonyms, then gives up for that insertion); without `synonyms` it is a random `vocabulary` word, or
    without a vocabulary a random word of the text itself.
    n: insertions. synonyms: dict word -> alternatives, or callable word -> list. vocabulary: words to draw from.
    seed: an int or a shared random.Random.
    """

    def _new_word(self, words: list[str]) -> str | None:
        if self.synonyms is None:
            return self.rng.choice(self.vocabulary if self.vocabulary is not None else words)
        for _ in range(10):
            options = self.alternatives(self.rng.choice(words))
            if options:
                return self.rng.choice(options)
        return None

    def edit(self, words: list[str]) -> list[str]:
        words = list(words)
        for _ in range(self.n):
            new = self._new_word(words)
            if new is not None:
                words.insert(self.rng.randint(0, len(words)), new)
        return words


class RandomReplacement(_WordSource):
    """A text in, the text with up to `n` words replaced out (each position at most once).

    With `synonyms`, up to `n` randomly chosen words that have synonyms are replaced by one of them (EDA's
    synonym replacement; words without synonyms stay). Without `synonyms`, `n` random positions get a random
    `vocabulary` word, or without a vocabulary a different word of the text itself.
    n: replacements. synonyms: dict word -> alternatives, or callable word -> list. vocabulary: words to draw from.
    seed: an int or a shared random.Random.
    """

    def edit(self, words: list[str]) -> list[str]:
        words = list(words)
        positions = list(range(len(words)))
        self.rng.shuffle(positions)
        done = 0
        for i in positions:
            if done >= self.n:
                break
            if self.synonyms is None and self.vocabulary is None:
                options = [w for w in words if w != words[i]]
            else:
                options = self.alternatives(words[i])
            if options:
                words[i] = self.rng.choice(options)
                done += 1
        return words


class Compose:
    """Transforms in, one transform applying them in order out: `Compose([RandomSwap(), RandomDeletion(0.1)])(text)`."""

    def __init__(self, transforms: Sequence[Callable[[str], str]]) -> None:
        transforms = list(transforms)
        bad = next((t for t in transforms if not callable(t)), None)
        if bad is not None:
            raise InvalidInputError(f"Compose takes callables text -> text, got {type(bad).__name__}")
        self.transforms = transforms

    def __call__(self, text: str) -> str:
        """A text in, the text after every transform out."""
        for transform in self.transforms:
            text = transform(text)
        return text

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def reseeded(transform: Callable[[str], str], seed: int) -> Callable[[str], str]:
    """A transform and a seed in, a deep copy whose every `TextTransform` (also inside `Compose`) draws from one new
    `random.Random(seed)` out; the original and its random stream are untouched.

    The same (transform, seed) always gives the same augmentations, whatever the original has drawn before.
    Other callables are deep-copied as they are (they keep whatever randomness they bring).
    """
    check_int("seed", seed, low=None, fix="pass an integer seed")
    if not callable(transform):
        raise InvalidInputError(f"reseeded takes a callable text -> text, got {type(transform).__name__}")
    fresh = copy.deepcopy(transform)
    rng = random.Random(seed)
    todo: list[Any] = [fresh]
    while todo:
        item = todo.pop()
        if isinstance(item, TextTransform):
            item.seed, item.rng = seed, rng
        elif isinstance(item, Compose):
            todo.extend(item.transforms)
    return fresh
