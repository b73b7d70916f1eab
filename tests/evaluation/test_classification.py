"""Classification metrics against scikit-learn: fixed cases, zero-division corners and hypothesis properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidInputError, UnknownNameError
from labkit.evaluation.classification import accuracy, classification_report, confusion_matrix, precision_recall_f1

skm = pytest.importorskip("sklearn.metrics")

AVERAGES = ["macro", "micro", "weighted", None]
ZEROS = [0.0, 1.0, float("nan")]


def _sk_prf(y_true, y_pred, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning / pos_label notes are sklearn's, not under test
        return skm.precision_recall_fscore_support(y_true, y_pred, **kw)


def _same(ours, ref) -> None:
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float), np.asarray(ref, dtype=float), rtol=1e-12, atol=0, equal_nan=True
    )


def _check_prf(y_true, y_pred, **kw) -> None:
    try:
        ref = _sk_prf(y_true, y_pred, **kw)
    except ValueError:
        with pytest.raises(ValueError):  # InvalidInputError is a ValueError: we refuse what sklearn refuses
            precision_recall_f1(y_true, y_pred, **kw)
        return
    ours = precision_recall_f1(y_true, y_pred, **kw)
    for a, b in zip(ours[:3], ref[:3]):
        _same(a, b)
    if kw.get("average") is None:
        assert np.array_equal(ours.support, ref[3])


labels_strategy = st.lists(st.integers(0, 4), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), average=st.sampled_from(AVERAGES), zero=st.sampled_from(ZEROS))
def test_precision_recall_f1_equal_sklearn_on_random_labels(data, average, zero):
    y_true = data.draw(labels_strategy)
    y_pred = data.draw(st.lists(st.integers(0, 4), min_size=len(y_true), max_size=len(y_true)))
    labels = data.draw(st.none() | st.lists(st.integers(0, 6), min_size=1, max_size=5, unique=True))
    _check_prf(y_true, y_pred, average=average, labels=labels, zero_division=zero)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), zero=st.sampled_from(ZEROS), pos_label=st.sampled_from([0, 1, 2]))
def test_binary_average_equals_sklearn_including_refusals(data, zero, pos_label):
    pool = data.draw(st.sampled_from([[0, 1], [1, 2], [0, 1, 2], [1], [0]]))
    y_true = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=30))
    y_pred = data.draw(st.lists(st.sampled_from(pool), min_size=len(y_true), max_size=len(y_true)))
    _check_prf(y_true, y_pred, average="binary", pos_label=pos_label, zero_division=zero)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), normalize=st.sampled_from([None, "true", "pred", "all"]))
def test_confusion_matrix_and_accuracy_equal_sklearn(data, normalize):
    y_true = data.draw(labels_strategy)
    y_pred = data.draw(st.lists(st.integers(0, 4), min_size=len(y_true), max_size=len(y_true)))
    labels = data.draw(st.none() | st.permutations([0, 1, 2, 3, 4, 5]).map(lambda p: p[: 1 + len(y_true) % 6]))
    assert accuracy(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = skm.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
    except ValueError:
        with pytest.raises(InvalidInputError):
            confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
        return
    ours = confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    _same(ours, ref)


def test_zero_division_corners_match_sklearn():
    # class 2 is never predicted (precision 0/0), class 3 is only predicted (recall 0/0), class 5 appears nowhere
    y_true, y_pred = [0, 0, 1, 2, 2], [0, 1, 1, 3, 3]
    for average in AVERAGES:
        for zero in ZEROS:
            _check_prf(y_true, y_pred, average=average, zero_division=zero)
            _check_prf(y_true, y_pred, average=average, zero_division=zero, labels=[5, 3, 2])
    # nothing at all is positive: every ratio is 0/0
    for zero in ZEROS:
        _check_prf([0, 0, 0], [0, 0, 0], average="binary", zero_division=zero)
        _check_prf([0, 0, 0], [0, 0, 0], average="weighted", labels=[1], zero_division=zero)


def test_logits_tensors_and_string_labels():
    logits = torch.tensor([[2.0, 0.1, 0.3], [0.0, 1.0, -1.0], [0.1, 0.2, 3.0], [1.0, 0.0, 0.0]])
    y_true = torch.tensor([0, 2, 2, 0])
    assert accuracy(y_true, logits) == skm.accuracy_score([0, 2, 2, 0], [0, 1, 2, 0])
    _same(confusion_matrix(y_true, logits), skm.confusion_matrix([0, 2, 2, 0], [0, 1, 2, 0]))
    cats_true, cats_pred = ["cat", "ant", "cat", "bird", "ant"], ["ant", "ant", "cat", "cat", "bird"]
    for average in AVERAGES:
        _check_prf(cats_true, cats_pred, average=average)
    order = ["cat", "ant"]
    _same(
        confusion_matrix(cats_true, cats_pred, labels=order), skm.confusion_matrix(cats_true, cats_pred, labels=order)
    )


@pytest.mark.parametrize("labels", [None, [2, 0, 1], [1, 2]])
def test_classification_report_equals_sklearn_output_dict(labels):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    names = None if labels is None else [f"class {x}" for x in labels]
    frame = classification_report(y_true, y_pred, labels=labels, label_names=names)
    ref = skm.classification_report(
        y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0.0
    )
    assert list(frame.index) == list(ref)
    for row, values in ref.items():
        if row == "accuracy":  # sklearn keeps only the number; our row repeats it as micro precision = recall = f1
            assert frame.loc[row, ["precision", "recall", "f1"]].tolist() == pytest.approx([values] * 3, rel=1e-12)
            continue
        got = frame.loc[row]
        expected = [values["precision"], values["recall"], values["f1-score"]]
        assert [got.precision, got.recall, got.f1] == pytest.approx(expected, rel=1e-12)
        assert got.support == values["support"]


def test_bad_inputs_raise_one_clear_error():
    with pytest.raises(InvalidInputError, match="3 samples but y_pred has 2"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(InvalidInputError, match="empty"):
        precision_recall_f1([], [])
    with pytest.raises(UnknownNameError, match="macro"):
        precision_recall_f1([0, 1], [0, 1], average="macor")
    with pytest.raises(InvalidInputError, match="binary"):
        precision_recall_f1([0, 1, 2], [0, 1, 1], average="binary")
    with pytest.raises(InvalidInputError, match="non-integer"):
        accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(InvalidInputError, match="zero_division"):
        precision_recall_f1([0, 1], [0, 1], zero_division="warn")
    with pytest.raises(UnknownNameError, match="true"):
        confusion_matrix([0, 1], [0, 1], normalize="rows")
    with pytest.raises(InvalidInputError, match="label_names"):
        classification_report([0, 1], [0, 1], label_names=["only one"])
    assert math.isnan(precision_recall_f1([0], [0], average="macro", labels=[1], zero_division=float("nan")).precision)
