"""Does augmentation help? `compare_augmentations(...)` trains one text classifier per (augmentation, seed).

Each run starts from the weights `make_model()` builds after `torch.manual_seed(seed)` and sees batches in
the order `seed` draws, so for a given seed every augmentation starts from the same model: the runs are
paired, and the per-seed difference from the baseline is a fairer comparison than two separate means.
Augmentation is offline, as in EDA (Wei & Zou 2019): the training set gets `copies` augmented versions of
every sentence, drawn from the transform reseeded with the run's seed (`labkit.data.reseeded`), with the
original label; a baseline (`None`) trains on the originals only, for the same number of steps.

The score is whatever `metric(y_true, y_pred) -> float` you pass (training knows nothing about metrics;
`labkit.evaluation.precision_recall_f1(...).f1` is the usual one), computed on the untouched validation set.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from labkit.checks import check_int
from labkit.data import Batches, ClassificationDataset, PadCollator, reseeded
from labkit.errors import InvalidInputError
from labkit.training.history import History
from labkit.training.trainer import train

__all__ = ["AugmentationRun", "AugmentationExperiment", "compare_augmentations", "augment_texts"]

Transform = Callable[[str], str]


def augment_texts(
    texts: Sequence[str], labels: Sequence[int], transform: Transform | None, copies: int = 1, seed: int = 0
) -> tuple[list[str], list[int]]:
    """Texts and labels in, the originals followed by `copies` augmented versions of each (same labels) out.

    transform: text -> text (reseeded with `seed` first, so the result depends only on its arguments), or None
    for the originals alone. copies: augmented versions per text (EDA uses 1-16; more for smaller sets).
    """
    check_int("copies", copies, low=0, fix="it counts augmented versions per sentence")
    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels):
        raise InvalidInputError(f"got {len(texts)} texts but {len(labels)} labels; give one label per text")
    if transform is None or copies == 0:
        return texts, labels
    fresh = reseeded(transform, seed)
    out_texts, out_labels = list(texts), list(labels)
    for _ in range(copies):
        out_texts += [fresh(t) for t in texts]
        out_labels += labels
    return out_texts, out_labels


@dataclass
class AugmentationRun:
    """One trained classifier: its augmentation's name, seed, validation score, predictions and training History."""

    name: str
    seed: int
    score: float
    y_pred: list[int] = field(repr=False)
    n_train: int  # training sentences, augmented copies included
    seconds: float
    history: History = field(repr=False)
    examples: list[str] = field(default_factory=list, repr=False)  # the first augmented sentences this run saw


@dataclass
class AugmentationExperiment:
    """`compare_augmentations`' result: every run, the validation labels and the metric's name."""

    runs: list[AugmentationRun]
    y_true: list[int] = field(repr=False)
    metric_name: str = "score"
    baseline: str | None = None  # the name whose transform was None (the paired comparisons' reference)

    @property
    def names(self) -> list[str]:
        """The augmentations, in the order given."""
        return list(dict.fromkeys(r.name for r in self.runs))

    @property
    def seeds(self) -> list[int]:
        """The seeds, in the order given."""
        return list(dict.fromkeys(r.seed for r in self.runs))

    def scores(self, name: str) -> list[float]:
        """An augmentation's name in, its validation scores (one per seed, in seed order) out."""
        if name not in self.names:
            raise InvalidInputError(f"no augmentation named {name!r}; the experiment ran {', '.join(self.names)}")
        return [r.score for r in self.runs if r.name == name]

    def table(self) -> Any:
        """A pandas DataFrame with one row per run: augmentation, seed, the score, training sentences, seconds."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "augmentation": r.name,
                    "seed": r.seed,
                    self.metric_name: r.score,
                    "training sentences": r.n_train,
                    "seconds": r.seconds,
                }
                for r in self.runs
            ]
        )

    def summary(self) -> Any:
        """A pandas DataFrame, one row per augmentation: mean, std (n - 1), min, max over seeds, and the paired
        difference from the baseline (mean and std of score - baseline score, seed by seed) when there is one."""
        import pandas as pd

        rows = {}
        base = self.scores(self.baseline) if self.baseline is not None else None
        for name in self.names:
            scores = self.scores(name)
            row = {
                "mean": statistics.fmean(scores),
                "std": statistics.stdev(scores) if len(scores) > 1 else math.nan,
                "min": min(scores),
                "max": max(scores),
                "seeds": len(scores),
            }
            if base is not None:
                diffs = [s - b for s, b in zip(scores, base)]
                row["mean diff vs " + self.baseline] = statistics.fmean(diffs)
                row["std diff"] = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")


def _predict(model: nn.Module, dataset: ClassificationDataset, collate: PadCollator) -> list[int]:
    model.eval()
    preds = []
    with torch.no_grad():
        for batch in Batches(dataset, batch_size=256, shuffle=False, collate_fn=collate):
            batch.pop("labels")
            device = next(model.parameters()).device
            preds.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.argmax(-1).cpu())
    return torch.cat(preds).tolist()


def compare_augmentations(
    make_model: Callable[[], nn.Module],
    tokenizer: Any,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    val_texts: Sequence[str],
    val_labels: Sequence[int],
    augmentations: Mapping[str, Transform | None],
    *,
    metric: Callable[[list[int], list[int]], float],
    metric_name: str = "score",
    seeds: Sequence[int] = (0, 1, 2),
    copies: int = 1,
    steps: int = 100,
    batch_size: int = 32,
    max_length: int = 64,
    lr: float = 1e-3,
    **train_options: Any,
) -> AugmentationExperiment:
    """A classifier factory, a tokenizer, a split and named augmentations in, an `AugmentationExperiment` out.

    make_model: () -> a fresh classifier whose output has `.logits` [batch, classes] and `.loss` given labels
        (an `Encoder` with head="classification"); called once per run after `torch.manual_seed(seed)`.
    tokenizer: a labkit Tokenizer (anything `ClassificationDataset` accepts).
    augmentations: name -> transform text -> text (e.g. `RandomSwap(1)`, a `Compose`), or None for the baseline.
    metric: (y_true, y_pred) -> float on the validation set; metric_name labels it in tables and views.
    seeds: one run per seed and augmentation. copies: augmented versions of each training sentence.
    steps, batch_size, max_length, lr and any other option (warmup, weight_decay, device, ...) go to `train`.
    """
    if not callable(make_model):
        raise InvalidInputError(f"make_model must be a function that builds a model, got {type(make_model).__name__}")
    if not callable(metric):
        raise InvalidInputError(
            "metric must be a function (y_true, y_pred) -> float, e.g. "
            "lambda y, p: labkit.evaluation.precision_recall_f1(y, p, average='macro').f1"
        )
    if not isinstance(augmentations, Mapping) or not augmentations:
        raise InvalidInputError(
            "augmentations must be a non-empty dict name -> transform (None for the baseline), "
            "e.g. {'none': None, 'swap': RandomSwap(1)}"
        )
    bad = next((n for n, t in augmentations.items() if t is not None and not callable(t)), None)
    if bad is not None:
        raise InvalidInputError(f"augmentation {bad!r} is not a callable text -> text; pass a transform or None")
    baselines = [n for n, t in augmentations.items() if t is None]
    if len(baselines) > 1:
        raise InvalidInputError(f"augmentations {baselines} are all None; keep one baseline")
    seeds = list(seeds)
    if not seeds:
        raise InvalidInputError("seeds is empty; pass at least one seed, e.g. seeds=(0, 1, 2)")
    for s in seeds:
        check_int("seed", s, low=None, fix="seeds are integers")
    if len(set(seeds)) != len(seeds):
        raise InvalidInputError(f"seeds {seeds} repeat a seed; a repeated seed repeats the same run")
    check_int("copies", copies, low=0, fix="it counts augmented versions per sentence")
    check_int("steps", steps)
    for key in ("progress", "seed"):
        if key in train_options:
            raise InvalidInputError(f"{key} is set by compare_augmentations itself; leave it out")
    val_set = ClassificationDataset(val_texts, val_labels, tokenizer, max_length=max_length)
    num_labels = max(max(train_labels), max(val_set.labels.tolist())) + 1
    collate = PadCollator(tokenizer.pad_id)
    y_true = val_set.labels.tolist()
    runs = []
    for seed in seeds:
        for name, transform in augmentations.items():
            start = time.perf_counter()
            texts, labels = augment_texts(train_texts, train_labels, transform, copies=copies, seed=seed)
            dataset = ClassificationDataset(texts, labels, tokenizer, max_length=max_length, num_labels=num_labels)
            torch.manual_seed(seed)
            model = make_model()
            batches = Batches(dataset, batch_size=batch_size, seed=seed, collate_fn=collate)
            history = train(model, batches, steps=steps, lr=lr, seed=seed, progress=False, **train_options)
            y_pred = _predict(model, val_set, collate)
            score = float(metric(y_true, y_pred))
            examples = texts[len(train_texts) : len(train_texts) + 3]
            runs.append(
                AugmentationRun(name, seed, score, y_pred, len(texts), time.perf_counter() - start, history, examples)
            )
    return AugmentationExperiment(runs, y_true, metric_name, baselines[0] if baselines else None)
