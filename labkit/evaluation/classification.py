"""Classification metrics: accuracy, precision/recall/F1, confusion matrix and a per-class report.

The definitions follow scikit-learn's exactly (same label order, same averaging,
same zero-division rules), so numbers agree with the library learners meet next;
the implementation is plain numpy so sklearn stays an optional dependency.

Inputs may be lists, numpy arrays or tensors of class ids (ints, bools or strings),
or scores/logits of shape [n, classes], which are turned into ids with argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from labkit.errors import InvalidInputError, UnknownNameError, close_matches

__all__ = ["PrecisionRecallF1", "accuracy", "precision_recall_f1", "confusion_matrix", "classification_report"]

_AVERAGES = ("macro", "micro", "weighted", "binary", None)
_NORMALIZE = ("true", "pred", "all", None)


class PrecisionRecallF1(NamedTuple):
    """Precision, recall and F1: floats for an averaged result, arrays (one per label) for average=None."""

    precision: Any  # float, or np.ndarray [labels]
    recall: Any  # float, or np.ndarray [labels]
    f1: Any  # float, or np.ndarray [labels]
    support: Any  # np.ndarray [labels] of true counts for average=None; None when averaged (as in sklearn)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """True class ids and predicted ids (or logits [n, classes]) in, fraction of exact matches out.

    y_true, y_pred: equal-length sequences, arrays or tensors of labels; 2-D scores in y_pred are argmax-ed.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def precision_recall_f1(
    y_true: Any,
    y_pred: Any,
    average: str | None = "macro",
    labels: Sequence[Any] | None = None,
    pos_label: Any = 1,
    zero_division: float = 0.0,
) -> PrecisionRecallF1:
    """True and predicted labels in, `PrecisionRecallF1` out, equal to sklearn's `precision_recall_fscore_support`.

    average: "macro" (unweighted mean over labels), "micro" (from summed counts), "weighted" (mean weighted
        by true counts), "binary" (only `pos_label`; needs at most two distinct values), None (per label).
    labels: which labels to report and in what order (default: every value in y_true or y_pred, sorted).
        Samples of other classes still count as false positives/negatives of the listed ones.
    pos_label: the positive class for average="binary".
    zero_division: value (0.0, 1.0 or nan) of a ratio whose denominator is zero; nan ones are left out of averages.
    """
    if average not in _AVERAGES:
        hint = (
            close_matches(str(average), [a for a in _AVERAGES if a]) or "choose macro, micro, weighted, binary or None"
        )
        raise UnknownNameError(f"unknown average {average!r}; {hint}")
    zero = _zero_division(zero_division)
    t, p = _pair(y_true, y_pred)
    present = _unique(np.concatenate([t, p]))
    if average == "binary":
        if len(present) > 2:
            raise InvalidInputError(
                f"average='binary' needs at most 2 classes but the labels hold {len(present)} "
                f"({_show(present)}); use average='macro', 'micro', 'weighted' or None"
            )
        if pos_label not in present.tolist() and len(present) == 2:
            raise InvalidInputError(
                f"pos_label={pos_label!r} is not one of the labels {_show(present)}; pass one of them"
            )
        labels = [pos_label]
    tp, pred, true = _counts(t, p, present if labels is None else _labels(labels))
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)
    precision = _divide(tp, pred, zero)
    recall = _divide(tp, true, zero)
    # F1 from counts, 2tp / (2tp + fp + fn), so it is defined whenever either ratio is (as sklearn computes it)
    f1 = _divide(2.0 * tp, true.astype(np.float64) + pred.astype(np.float64), zero)
    if average is None:
        return PrecisionRecallF1(precision, recall, f1, true)
    weights = true if average == "weighted" else None
    return PrecisionRecallF1(
        _nanaverage(precision, weights), _nanaverage(recall, weights), _nanaverage(f1, weights), None
    )


def confusion_matrix(
    y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None, normalize: str | None = None
) -> np.ndarray:
    """True and predicted labels in, matrix [labels, labels] out: row = true class, column = predicted class.

    labels: row/column order (default: every value in y_true or y_pred, sorted); samples whose true or
        predicted label is not listed are left out.
    normalize: None (counts, int64), "true" (rows sum to 1), "pred" (columns sum to 1) or "all" (sums to 1);
        an all-zero row or column stays 0.
    """
    if normalize not in _NORMALIZE:
        hint = close_matches(str(normalize), [n for n in _NORMALIZE if n]) or "choose 'true', 'pred', 'all' or None"
        raise UnknownNameError(f"unknown normalize {normalize!r}; {hint}")
    t, p = _pair(y_true, y_pred)
    if labels is None:
        lab = _unique(np.concatenate([t, p]))
    else:
        lab = _labels(labels)
        if not np.isin(t, lab).any():
            raise InvalidInputError(f"none of labels {_show(lab)} occurs in y_true; list at least one true class")
    k = len(lab)
    ti, pi = _positions(t, lab), _positions(p, lab)
    keep = (ti >= 0) & (pi >= 0)
    cm = np.bincount(ti[keep] * k + pi[keep], minlength=k * k).reshape(k, k).astype(np.int64)
    if normalize is None:
        return cm
    with np.errstate(all="ignore"):
        total = {"true": cm.sum(axis=1, keepdims=True), "pred": cm.sum(axis=0, keepdims=True), "all": cm.sum()}[
            normalize
        ]
        return np.nan_to_num(cm / total)


def classification_report(
    y_true: Any,
    y_pred: Any,
    labels: Sequence[Any] | None = None,
    label_names: Sequence[str] | None = None,
    zero_division: float = 0.0,
) -> Any:
    """True and predicted labels in, pandas DataFrame out: one row per class, then the averages.

    Columns: precision, recall, f1, support. Rows: one per label (named by `label_names` or the label
    itself), then "accuracy" (the micro average, which equals accuracy when every class is listed; it is
    called "micro avg" otherwise), "macro avg" and "weighted avg" - the rows of sklearn's report.
    labels: which labels, in which order (default: all, sorted). label_names: display names, one per label.
    zero_division: as in `precision_recall_f1`.
    """
    import pandas as pd

    t, p = _pair(y_true, y_pred)
    present = _unique(np.concatenate([t, p]))
    lab = present if labels is None else _labels(labels)
    if label_names is not None:
        if isinstance(label_names, str) or len(label_names) != len(lab):
            raise InvalidInputError(
                f"label_names has {1 if isinstance(label_names, str) else len(label_names)} entries "
                f"but there are {len(lab)} labels ({_show(lab)}); give one name per label"
            )
        names = [str(n) for n in label_names]
    else:
        names = [str(x) for x in lab.tolist()]
    per_class = precision_recall_f1(t, p, average=None, labels=lab, zero_division=zero_division)
    rows = {
        name: (per_class.precision[i], per_class.recall[i], per_class.f1[i], int(per_class.support[i]))
        for i, name in enumerate(names)
    }
    total = int(per_class.support.sum())
    micro_is_accuracy = set(lab.tolist()) >= set(present.tolist())
    for average in ("micro", "macro", "weighted"):
        prf = precision_recall_f1(t, p, average=average, labels=lab, zero_division=zero_division)
        name = "accuracy" if average == "micro" and micro_is_accuracy else f"{average} avg"
        rows[name] = (prf.precision, prf.recall, prf.f1, total)
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["precision", "recall", "f1", "support"])
    return frame.astype({"precision": float, "recall": float, "f1": float, "support": int})


# ---- helpers ---------------------------------------------------------------------------------------------


def _as_labels(y: Any, name: str) -> np.ndarray:
    """Labels, or scores [n, classes], in; a 1-D numpy array of labels out."""
    if isinstance(y, str):
        raise InvalidInputError(f"{name} is a string {y[:30]!r}; pass a sequence of labels, one per sample")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim == 2:
        # a column vector is labels; anything wider is scores or logits, one column per class
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.argmax(axis=1)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} has shape {arr.shape}; pass labels [n] or scores/logits [n, classes]")
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty; metrics need at least one sample")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]
            raise InvalidInputError(
                f"{name} holds a non-integer value {bad}; pass class ids, or logits [n, classes] for argmax"
            )
        arr = arr.astype(np.int64)
    return arr


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    shape = np.shape(y_true.detach().cpu() if isinstance(y_true, torch.Tensor) else y_true)
    if len(shape) == 2 and shape[1] > 1:  # argmax of a multi-label 0/1 matrix would score the wrong thing
        raise InvalidInputError(
            f"y_true has shape {tuple(shape)}; pass the true class ids [n] (only y_pred may be scores or logits "
            "[n, classes]); multi-label indicator matrices are not supported"
        )
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if len(t) != len(p):
        raise InvalidInputError(f"y_true has {len(t)} samples but y_pred has {len(p)}; pass one prediction per sample")
    if (t.dtype.kind in "USO") != (p.dtype.kind in "USO"):
        raise InvalidInputError(
            f"y_true holds {t.dtype} labels and y_pred {p.dtype}; use the same kind (ids or names) in both"
        )
    return t, p


def _unique(values: np.ndarray) -> np.ndarray:
    try:
        return np.unique(values)
    except TypeError as exc:  # e.g. strings mixed with numbers in an object array
        raise InvalidInputError(f"labels mix types that cannot be sorted ({exc}); use one kind of label") from None


def _labels(labels: Sequence[Any]) -> np.ndarray:
    lab = _as_labels(labels, "labels")
    if len(_unique(lab)) != len(lab):
        raise InvalidInputError(f"labels {_show(lab)} has duplicates; list each label once")
    return lab


def _positions(values: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Index of each value in `lab`, -1 for values not listed."""
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]
    idx = np.clip(np.searchsorted(sorted_lab, values), 0, len(lab) - 1)
    found = sorted_lab[idx] == values
    return np.where(found, order[idx], -1)


def _counts(t: np.ndarray, p: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per listed label: true positives, predicted count, true count (all samples are counted)."""
    ti, pi = _positions(t, lab), _positions(p, lab)
    k = len(lab)
    true = np.bincount(ti[ti >= 0], minlength=k)
    pred = np.bincount(pi[pi >= 0], minlength=k)
    tp = np.bincount(ti[(ti >= 0) & (ti == pi)], minlength=k)
    return tp.astype(np.int64), pred.astype(np.int64), true.astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray, zero: float) -> np.ndarray:
    den = np.asarray(den, dtype=np.float64)
    out = np.asarray(num, dtype=np.float64) / np.where(den == 0, 1.0, den)
    out[den == 0] = zero
    return out


def _nanaverage(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Mean (weighted when asked) ignoring nan entries; all-zero weights fall back to a plain mean, as sklearn does."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is not None and weights[keep].sum() > 0:
        return float(np.average(values[keep], weights=weights[keep]))
    return float(np.mean(values[keep]))


def _zero_division(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (value in (0, 1) or np.isnan(value)):
        return float(value)
    raise InvalidInputError(f"zero_division={value!r} must be 0.0, 1.0 or float('nan')")


def _show(values: np.ndarray, limit: int = 8) -> str:
    items = values.tolist()
    return "[" + ", ".join(repr(v) for v in items[:limit]) + (", ..." if len(items) > limit else "") + "]"
